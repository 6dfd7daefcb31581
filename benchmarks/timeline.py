"""Does the go-live wait only on what it depends on? The sandbox go-live, with the emulator holding each
resource in its transitional state for the timeline model's AWS duration scaled down
(golive/timeline_model.toml, golive/sandbox/transitions.py), against the model's critical path scaled the same
way (golive/timeline.py: the steps and their waits read from the flows and the phase graph).

Only AWS's waits are scaled; the file's own durations (the load test, the cutover's bake time) are kept, in
the model and in the run alike. The ratio is measured over predicted, to the end of the DNS cutover (the
monitoring window after it is the file's and not counted); target <= 1.10. What the sandbox does not hold
(a failover, a restore by pg_dump, resolver caches, an image build) counts as an API step in the compared
model and is listed. Fixed costs (Prefect's ~1 s per flow, a poll per wait) do not scale: choose a scale at
which the waits dominate.

Run: .venv/bin/python benchmarks/timeline.py [--scale 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)

FLOW_OF_STAGE = {"restore verification": "backup-verification",
                 "8.1 launch gate": "pre-launch-tests", "8.2 DNS cutover": "dns-cutover"}


def stage_flow(stage: str) -> str:
    if stage.startswith("phase "):
        number, name = stage.split(" ")[1:3]
        if "(ahead:" in stage:  # a phase's part the go-live runs ahead: a flow of its own name
            from golive.phases import find_phase

            return find_phase(number).ahead.flow().name
        return f"phase-{number}-{name}"
    return FLOW_OF_STAGE.get(stage, "")


def measured_flow_runs(started_at) -> dict[str, tuple[float, float]]:
    """Each flow run of the go-live (by flow name): seconds from the go-live's start to its start and end."""
    from prefect.client.orchestration import get_client

    spans: dict[str, tuple[float, float]] = {}
    with get_client(sync_client=True) as client:
        names = {}
        for run in client.read_flow_runs(limit=200):
            if run.start_time is None or run.end_time is None:
                continue
            if run.flow_id not in names:
                names[run.flow_id] = client.read_flow(run.flow_id).name
            spans[names[run.flow_id]] = ((run.start_time - started_at).total_seconds(),
                                         (run.end_time - started_at).total_seconds(), run.id)
    return spans


def task_spans(flow_run_id, started_at, at_least: float = 1.0) -> list[tuple[float, float, str]]:
    """The flow run's task runs of at least `at_least` seconds: (start, end, name), from the go-live's start."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    spans = [((r.start_time - started_at).total_seconds(), (r.end_time - started_at).total_seconds(), r.name)
             for r in runs if r.start_time and r.end_time]
    return sorted(s for s in spans if s[1] - s[0] >= at_least)


def benchmark_environment() -> str:
    """sandbox.toml with the load test's thresholds opened up: this measures waits, and the app's throughput on
    a shared 2-core machine is not what it is about (benchmarks/app_throughput.py is). Same name and shape."""
    import re

    from golive.config import REPOSITORY_ROOT

    text = (REPOSITORY_ROOT / "deployments" / "environments" / "sandbox.toml").read_text()
    text = re.sub(r"(?m)^p95_ms = .*$", "p95_ms = 60000", text)
    text = re.sub(r"(?m)^min_rps = .*$", "min_rps = 0", text)
    path = isolated.STATE_DIR / "sandbox.toml"
    path.write_text(text)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1 / 4, help="AWS's waits times this (default 1/4: "
                        "about 17 minutes; at 1/20 Prefect's fixed costs are a third of the run)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up afterwards (to look at it)")
    arguments = parser.parse_args()
    scale = arguments.scale

    from golive.config import load_environment
    from golive.sandbox.transitions import DELAYS_VARIABLE
    from golive.timeline import emulator_delays, load_model, predict

    environment = benchmark_environment()
    env = load_environment(environment)
    delays = emulator_delays(env, scale)
    os.environ[DELAYS_VARIABLE] = json.dumps(delays)  # read by the sandbox's moto process as it starts
    predicted = predict(env, scale=scale, held=set(delays))
    full = predict(env, scale=scale)
    model = load_model()
    not_held = sorted(t for t, e in model["steps"].items() if "emulate" not in e and e.get("scaled", True)
                      and float(e.get("seconds", 0)) >= 60)
    print(f"scale 1/{1 / scale:g}: the emulator holds " + ", ".join(f"{k} {v:.1f} s" for k, v in delays.items()))
    print(f"model to the end of the cutover, scaled: {predicted.total:.1f} s as the sandbox holds it "
          f"({full.total:.1f} s with every AWS wait; not held here: {', '.join(not_held)})")

    from golive.sandbox import control_plane, data_plane, edge

    began = time.monotonic()
    control_plane.up()
    data_plane.up(app=True)
    edge.up()
    print(f"sandbox up: {time.monotonic() - began:.1f} s")
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            from datetime import datetime, timezone

            from flows.go_live import go_live

            started_at = datetime.now(timezone.utc)
            began = time.monotonic()
            result = go_live(environment=environment)
            wall = time.monotonic() - began
            timings = result["timings"]
            spans = measured_flow_runs(started_at)
            steps = {name: task_spans(span[2], started_at) for name, span in spans.items()}
    finally:
        if arguments.keep:
            print(f"sandbox left up: GOLIVE_STATE_DIR={isolated.STATE_DIR}")
        else:
            edge.down()
            data_plane.down()
            control_plane.down()

    to_cutover = timings["total"] - timings["monitoring"]
    print(f"\ngo-live wall {wall:.1f} s; to the end of the cutover {to_cutover:.1f} s (monitoring window "
          f"{timings['monitoring']:.1f} s after it, not counted)")
    print(f"{'stage':25} {'predicted':>17} {'measured':>17}")
    for stage in predicted.stages:
        span = spans.get(stage_flow(stage.name))
        shown = f"{span[0]:7.1f} -> {span[1]:6.1f}" if span else f"{'(no flow run)':>17}"
        print(f"{stage.name:25} {stage.start:7.1f} -> {stage.end:6.1f} {shown}")
        for start, end, name in steps.get(stage_flow(stage.name), []):
            print(f"    {name:40} {'':17} {start:7.1f} -> {end:6.1f}")
    phases_predicted = max(s.end for s in predicted.stages if s.name.startswith("phase "))
    print(f"\nphases 1-7: measured {timings['phases']:.1f} s / predicted {phases_predicted:.1f} s = "
          f"{timings['phases'] / phases_predicted:.2f}")
    ratio = to_cutover / predicted.total
    print(f"to the end of the cutover: measured {to_cutover:.1f} s / predicted {predicted.total:.1f} s = {ratio:.2f} "
          f"(target <= 1.10: {'met' if ratio <= 1.10 else 'MISSED'})")
    print("critical path (predicted): " + " -> ".join(
        f"{s.task} {s.end - s.start:.1f}" for s in predicted.critical_path if s.end - s.start >= 1))


if __name__ == "__main__":
    main()
