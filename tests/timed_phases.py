"""Phase flows that only take time, for the go-live's scheduling test: each records when it ran."""

from __future__ import annotations

import time

from prefect import flow

from golive.report import PhaseResult


def _ran(name: str, started: float) -> PhaseResult:
    return PhaseResult(phase=name, environment="sandbox", mode="apply", target="none", changes=[],
                       outputs={"started": started, "finished": time.monotonic()})


@flow(name="timed-slow")
def slow(environment: str = "sandbox", sandbox: bool | None = None) -> PhaseResult:
    started = time.monotonic()
    time.sleep(4)
    return _ran("slow", started)


@flow(name="timed-fast")
def fast(environment: str = "sandbox", sandbox: bool | None = None) -> PhaseResult:
    return _ran("fast", time.monotonic())


@flow(name="timed-after-fast")
def after_fast(environment: str = "sandbox", sandbox: bool | None = None) -> PhaseResult:
    return _ran("after-fast", time.monotonic())
