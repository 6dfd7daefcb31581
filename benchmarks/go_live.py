"""The sandbox go-live's wall time, split: orchestration, the load-test window and the monitoring window
(the two windows are the environment file's durations; everything else is orchestration). A fresh
go-live, then a converged one with its AWS writes counted.

Targets (README): orchestration <= 20 s fresh; a converged re-run <= 10 s of orchestration, 0 AWS writes
outside the cutover's own checks.
Run: .venv/bin/python benchmarks/go_live.py
"""

from __future__ import annotations

import time

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)


def main() -> None:
    from golive.config import load_environment
    from golive.run import Run
    from golive.sandbox import control_plane, data_plane, edge

    started = time.monotonic()
    control_plane.up()
    data_plane.up(app=True)
    edge.up()  # the launch is probed over the sandbox's TLS listeners and DNS server
    print(f"sandbox up (moto, PostgreSQL, Redis, the app, the edge): {time.monotonic() - started:.1f} s")
    env = load_environment("sandbox")
    load_window = env.launch.load_test.duration_seconds
    watch_window = env.launch.monitoring.window_seconds
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=60):
            from flows.go_live import go_live

            for label in ("fresh go-live", "converged go-live"):
                run = Run.prepare("sandbox")
                run.aws.log.clear()
                began = time.monotonic()
                result = go_live(environment="sandbox")
                wall = time.monotonic() - began
                timings = result["timings"]
                writes = run.aws.log.writes()
                non_cutover = [c for c in writes if c.service != "route53"]
                print(f"\n{label}: {wall:.1f} s wall")
                print(f"  orchestration          {wall - load_window - watch_window:6.1f} s  (target <= "
                      f"{'20' if label.startswith('fresh') else '10'} s)")
                print(f"  load-test window       {load_window:6.1f} s  (launch.load_test.duration_seconds)")
                print(f"  monitoring window      {watch_window:6.1f} s  (launch.monitoring.window_seconds)")
                print("  by stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
                report = result["report"].splitlines()
                # The load test through the sandbox's edge, and the verdicts the report gives.
                print("  " + next((line for line in report if " users for " in line), ""))
                print("  " + "; ".join(line for line in report if line.startswith(("Launch gate:", "DNS cutover:",
                                                                                     "Post-launch monitoring:"))))
                print(f"  AWS calls {len(run.aws.log.calls)}, writes {len(writes)} "
                      f"({len(writes) - len(non_cutover)} Route 53, {len(non_cutover)} elsewhere: "
                      f"{sorted({c.operation for c in non_cutover})})")
    finally:
        edge.down()
        data_plane.down()
        control_plane.down()


if __name__ == "__main__":
    main()
