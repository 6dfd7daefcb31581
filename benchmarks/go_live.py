"""The sandbox go-live's wall time, split: orchestration, the load-test window and the monitoring window
(the two windows are the environment file's durations; everything else is orchestration). A fresh
go-live, then a converged one with its AWS writes counted.

Targets (README): orchestration <= 20 s fresh; a converged re-run <= 10 s of orchestration, 0 AWS writes
outside the cutover's own checks; then `golive plan sandbox` on the converged sandbox, as a user runs it (a new
process, the sandbox's Prefect server up): <= 5 s.
Then the converged go-live again as a process worker runs it: a new process (Python, the imports and the
great-expectations validator count). Run: .venv/bin/python benchmarks/go_live.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) so far of this process, its finished children (the one-off tasks' Django,
    collectstatic, Locust) and each live sandbox service of this benchmark's state directory, by kind (a
    PostgreSQL backend counts with its cluster; a process that ended, a backend included, is not counted)."""

    tick = os.sysconf("SC_CLK_TCK")
    state = os.environ["GOLIVE_STATE_DIR"].encode()
    kinds = {"moto": b"moto_server", "prefect server": b"prefect server start", "prefect worker": b"worker start",
             "prefect's postgres": b"prefect-postgres", "the app's postgres": b"postgres -D",
             "app (gunicorn)": b"gunicorn", "great-expectations": b"golive.integrity", "edge and dns": b"golive.sandbox."}
    totals = {kind: 0.0 for kind in kinds}

    def read(pid: str) -> tuple[bytes, bytes, list[str]] | None:
        try:
            return ((Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" "),
                    (Path("/proc") / pid / "environ").read_bytes(),
                    (Path("/proc") / pid / "stat").read_text().rsplit(")", 1)[1].split())
        except OSError:
            return None

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid() or (found := read(proc.name)) is None:
            continue
        cmdline, environ, fields = found
        if cmdline.startswith(b"postgres: ") and (parent := read(fields[1])):  # a backend: its postmaster says
            cmdline, environ = parent[0], parent[1]
        if state not in environ and state not in cmdline:
            continue
        kind = next((k for k, m in kinds.items() if m in cmdline), None)
        if kind:
            totals[kind] += (int(fields[11]) + int(fields[12])) / tick
    own = os.times()
    totals["this process"] = own.user + own.system
    totals["its subprocesses"] = own.children_user + own.children_system
    return totals


# A go-live in a process of its own, as a process worker starts one: prints its stages and AWS writes.
NEW_PROCESS_GO_LIVE = """
from flows.go_live import go_live
from golive.run import Run
result = go_live(environment="sandbox")
writes = [c for c in Run.prepare("sandbox").aws.log.writes() if c.service != "route53"]
print("by stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in result["timings"].items())
      + f"; AWS writes outside Route 53: {len(writes)}")
"""


def main() -> None:
    from golive.config import load_environment
    from golive.run import Run
    from golive.sandbox import control_plane, data_plane, edge

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    started = time.monotonic()
    control_plane.up()
    data_plane.up(app=True)
    edge.up()  # the launch is probed over the sandbox's TLS listeners and DNS server
    print(f"sandbox up (moto, PostgreSQL, Redis, the app, the edge): {time.monotonic() - started:.1f} s")
    env = load_environment("sandbox")
    from golive.loadtest import ramp_seconds

    load_window = env.launch.load_test.duration_seconds + ramp_seconds(env.launch.load_test)
    watch_window = env.launch.monitoring.window_seconds
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from golive.sandbox import orchestrator

    try:
        # The sandbox's own Prefect server, as `golive sandbox up` starts it (its worker is not used here).
        api = orchestrator.up()["api_url"]
        with temporary_settings(updates={PREFECT_API_URL: api}):
            from flows.go_live import go_live

            for label in ("fresh go-live", "converged go-live"):
                run = Run.prepare("sandbox")
                run.aws.log.clear()
                cpu_before = cpu_seconds()
                began = time.monotonic()
                try:
                    result = go_live(environment="sandbox")
                except Exception as error:  # e.g. the load test's thresholds on a machine busy with other work
                    print(f"\n{label}: FAILED after {time.monotonic() - began:.1f} s, not a measurement: "
                          f"{type(error).__name__}: {str(error)[:400]}")
                    continue
                wall = time.monotonic() - began
                cpu = {k: v - cpu_before.get(k, 0.0) for k, v in cpu_seconds().items()}
                timings = result["timings"]
                writes = run.aws.log.writes()
                non_cutover = [c for c in writes if c.service != "route53"]
                print(f"\n{label}: {wall:.1f} s wall")
                target = 20 if label.startswith("fresh") else 10
                orchestration = wall - load_window - watch_window
                print(f"  orchestration          {orchestration:6.1f} s  (target <= {target} s: "
                      f"{'met' if orchestration <= target else 'MISSED'})")
                print(f"  load-test window       {load_window:6.1f} s  (launch.load_test.duration_seconds and its ramp-up)")
                print(f"  monitoring window      {watch_window:6.1f} s  (launch.monitoring.window_seconds)")
                print("  by stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
                print(f"  CPU {sum(cpu.values()):.1f} s of the {2 * wall:.1f} s two cores give in {wall:.1f} s: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05))
                report = result["report"].splitlines()
                # The load test through the sandbox's edge, and the verdicts the report gives.
                print("  " + next((line for line in report if " users for " in line), ""))
                print("  " + "; ".join(line for line in report if line.startswith(("Launch gate:", "DNS cutover:",
                                                                                     "Post-launch monitoring:"))))
                print(f"  AWS calls {len(run.aws.log.calls)}, writes {len(writes)} "
                      f"({len(writes) - len(non_cutover)} Route 53, {len(non_cutover)} elsewhere: "
                      f"{sorted({c.operation for c in non_cutover})})")
            # The converged go-live as the worker runs a deployment run: a new process, so Python's start, the
            # imports and great-expectations' validator count too (the runs above share this warm process).
            began = time.monotonic()
            again = subprocess.run([sys.executable, "-c", NEW_PROCESS_GO_LIVE], capture_output=True, text=True,
                                   env={**os.environ, "PREFECT_API_URL": api}, cwd=Path(__file__).parent.parent)
            wall = time.monotonic() - began
            if again.returncode == 0:
                orchestration = wall - load_window - watch_window
                print(f"\nconverged go-live in a new process: {wall:.1f} s wall, orchestration {orchestration:.1f} s "
                      f"(target <= 10 s: {'met' if orchestration <= 10 else 'MISSED'}); "
                      f"{again.stdout.strip().splitlines()[-1]}")
            else:
                print(f"\nconverged go-live in a new process: FAILED, not a measurement: {again.stderr[-400:]}")
            # The converged plan as a user runs it: its own process, no PREFECT_API_URL, the sandbox up.
            began = time.monotonic()
            planned = subprocess.run([sys.executable, "-m", "golive.cli", "plan", "sandbox"], capture_output=True,
                                     text=True, env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
            seconds = time.monotonic() - began
            summary = next((line for line in planned.stdout.splitlines() if line.startswith("Plan:")), planned.stderr[-300:])
            print(f"\ngolive plan sandbox, converged: {seconds:.1f} s wall (target <= 5 s: "
                  f"{'met' if seconds <= 5 else 'MISSED'}), exit {planned.returncode}; {summary}")
    finally:
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        orchestrator.down()
        edge.down()
        data_plane.down()
        control_plane.down()


if __name__ == "__main__":
    main()
