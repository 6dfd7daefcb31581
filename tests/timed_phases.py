"""Phase flows for the go-live's scheduling test. `environment` is a directory they share: `slow` keeps
running until `after_fast` has left its mark there (or 60 s pass), so the test needs no timing margin."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from golive.report import PhaseResult


def _ran(name: str, **outputs) -> PhaseResult:
    return PhaseResult(phase=name, environment="sandbox", mode="apply", target="none", changes=[], outputs=outputs)


def _seen(mark: Path) -> bool:
    """Whether the mark appears within 60 s."""
    deadline = time.monotonic() + 60
    while not mark.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return mark.exists()


@flow(name="timed-slow")
def slow(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    return _ran("slow", saw_after_fast_while_running=_seen(Path(environment) / "after-fast-ran"))


@flow(name="timed-slow-until-ahead")
def slow_until_ahead(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    return _ran("slow", saw_ahead_while_running=_seen(Path(environment) / "ahead-ran"))


@flow(name="timed-ahead-part")
def ahead_part(environment: str = "", sandbox: bool | None = None) -> str:
    (Path(environment) / "ahead-ran").touch()
    return "made ahead"


@flow(name="timed-with-part")
def with_part(environment: str = "", sandbox: bool | None = None, part: str | None = None) -> PhaseResult:
    return _ran("with-part", part=part)


@flow(name="timed-fast")
def fast(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    return _ran("fast")


@flow(name="timed-after-fast")
def after_fast(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    (Path(environment) / "after-fast-ran").touch()
    return _ran("after-fast")


@flow(name="timed-slow-until-after-part")
def slow_until_after_part(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    return _ran("slow", saw_after_part_while_running=_seen(Path(environment) / "after-part-ran"))


@flow(name="timed-after-part")
def after_part(environment: str = "", sandbox: bool | None = None) -> PhaseResult:
    (Path(environment) / "after-part-ran").touch()
    return _ran("after-part", saw_part=(Path(environment) / "ahead-ran").exists())
