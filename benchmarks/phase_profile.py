"""Where the go-live's phases spend their time: per flow run (each phase, each child flow), its wall time,
its task runs (count, the slowest ones) and the AWS calls made while it ran; fresh, then converged.

Reads Prefect's own record of the runs (start and end of every flow and task run), so it measures what the
UI shows. Run: .venv/bin/python benchmarks/phase_profile.py [--go-live]
(--go-live: the whole go-live, launch gate, cutover and monitoring included, with the app and the edge up).
"""

from __future__ import annotations

import asyncio
import sys
import time

import isolated  # noqa: F401  (first: telemetry off, a state directory of its own)


async def _runs_since(began) -> tuple[list, list]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime, TaskRunFilter, TaskRunFilterStartTime

    async with get_client() as client:
        flows = await client.read_flow_runs(flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=began)),
                                            limit=200)
        tasks: list = []
        while True:  # the API answers at most 200 at a time
            page = await client.read_task_runs(
                task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=began)), limit=200,
                offset=len(tasks))
            tasks += page
            if len(page) < 200:
                break
        names = {f.id: f.name for f in await client.read_flows()}
    return [(names.get(f.flow_id, "?"), f) for f in flows], tasks


def report(began_wall, began, calls) -> None:
    from golive.sandbox.orchestrator import TASK_RUN_RECORDER_FLUSH_SECONDS

    # The server writes task runs in batches, at least once a flush interval: the last ones may be queued.
    time.sleep(TASK_RUN_RECORDER_FLUSH_SECONDS + 0.5)
    flows, tasks = asyncio.run(_runs_since(began_wall))
    print(f"  {'flow':<26} {'start':>6} {'wall':>6} {'tasks':>5} {'calls':>5}  slowest tasks")
    for name, run in sorted(flows, key=lambda item: item[1].start_time):
        start = (run.start_time - began_wall).total_seconds()
        wall = (run.end_time - run.start_time).total_seconds() if run.end_time else float("nan")
        own = [t for t in tasks if t.flow_run_id == run.id and t.start_time and t.end_time]
        own.sort(key=lambda t: t.end_time - t.start_time, reverse=True)
        slowest = ", ".join(f"{t.name.split('-')[0] if t.name.count('-') > 3 else t.name} "
                            f"{(t.end_time - t.start_time).total_seconds():.2f}" for t in own[:4])
        wall_of = time.time() - time.monotonic()  # call times are monotonic; runs' are wall-clock
        window = [c for c in calls
                  if run.start_time.timestamp() <= c.at + wall_of <= (run.end_time or run.start_time).timestamp()]
        print(f"  {name:<26} {start:6.1f} {wall:6.2f} {len(own):5d} {len(window):5d}  {slowest}")


def main() -> None:
    from datetime import datetime, timezone

    from golive.run import Run
    from golive.sandbox import control_plane, data_plane, orchestrator

    whole = "--go-live" in sys.argv[1:]
    control_plane.up()
    data_plane.up(app=whole)
    if whole:
        from golive.sandbox import edge

        edge.up()  # the launch is probed over the sandbox's TLS listeners and DNS server
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from flows.go_live import Progress, run_phases
    from go_live import cpu_seconds  # benchmarks/go_live.py: CPU by process kind

    @flow(name="phases")
    def only_phases() -> None:
        run_phases("sandbox", None, Progress(steps=7))

    if whole:
        from flows.go_live import go_live

        phases = lambda: go_live(environment="sandbox")  # noqa: E731
    else:
        phases = only_phases

    try:
        # As the go-live runs: on the sandbox's own Prefect server, child flows without heartbeats.
        api = orchestrator.up()["api_url"]
        with temporary_settings(updates={PREFECT_API_URL: api, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            for label in ("fresh", "converged"):
                run = Run.prepare("sandbox")
                run.aws.log.clear()
                cpu_before = cpu_seconds()
                began_wall, began = datetime.now(timezone.utc), time.monotonic()
                phases()
                wall = time.monotonic() - began
                cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds().items()}
                resent = {op: n - sum(c.operation == op for c in run.aws.log.calls)
                          for op, n in run.aws.log.attempts.items()}
                print(f"\n{label} {'go-live' if whole else 'phases'}: {wall:.1f} s, {len(run.aws.log.calls)} AWS calls, "
                      f"{len(run.aws.log.writes())} writes; resent (throttled, not yet visible): "
                      f"{', '.join(f'{op} {n}' for op, n in resent.items() if n) or 'none'}")
                print(f"  CPU {sum(cpu.values()):.1f} s of the {2 * wall:.1f} s two cores give: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05))
                report(began_wall, began, run.aws.log.calls)
    finally:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)  # the last run logs reach the server before it stops
        orchestrator.down()
        if whole:
            edge.down()
        data_plane.down()
        control_plane.down()
    sys.exit(0)


if __name__ == "__main__":
    main()
