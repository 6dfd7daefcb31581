"""Example app throughput on the sandbox: Locust's visitor journeys with no think time against the app
under gunicorn (2 sync workers), on this machine's cores, which Locust shares with the app, PostgreSQL
and Redis.

Target (project): >= 800 req/s at p95 <= 50 ms on 2 cores, with no failed request beyond 1 %.
With no think time every user always has a request in flight, so the mean latency is users / throughput
(Little's law): at 50 users, p95 <= 50 ms needs well over 1,000 req/s; at 16 users, 800 req/s is 20 ms.
The CPU each kind of process used is printed too (what dominates), and a warning when other work on the
machine took a share (the figures then understate the app).
Run: .venv/bin/python benchmarks/app_throughput.py [--users 50] [--duration 30] [--users 8,16,32,50]
A list of user counts runs one load test per count (each on the same app and data).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

import isolated  # noqa: F401,E402  (first: telemetry off, a state directory of its own)

TARGET_RPS = 800
TARGET_P95_MS = 50
TARGET_FAILURE_RATIO = 0.01
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CpuSampler(threading.Thread):
    """CPU seconds used per kind of process while the load runs, read from /proc twice a second (Locust
    exits before the run ends: each process's last reading counts). Says what the cores were spent on."""

    KINDS = (("locust", b"locust"), ("gunicorn (app)", b"golive-sandbox-app"), ("postgres", b"postgres"),
             ("redis", b"redis-server"))

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.stopping = threading.Event()
        self.started_at = self.stopped_at = 0.0
        self.machine: tuple[tuple[int, int], tuple[int, int]] | None = None

    def _kind(self, pid: int, comm: str) -> str | None:
        """The process's kind by its command line; any other process by its name. None when the command
        line is empty: a kernel thread, or a process that has exited (a zombie until it is reaped)."""
        if pid == os.getpid():
            return "this benchmark"
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            command = b""
        if not command:
            return None
        known = next((name for name, marker in self.KINDS if marker in command), None)
        if known or not comm.startswith("python"):
            return known or comm
        argv = [a.decode(errors="replace") for a in command.split(b"\0") if a]
        # python -m MODULE or python SCRIPT: name it by what it runs (pytest, moto's server, Prefect's...)
        what = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else Path(argv[1]).name if len(argv) > 1 else ""
        return f"python {what}".strip()

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                head, _, tail = (entry / "stat").read_text().rpartition(")")
                fields, comm = tail.split(), head.partition("(")[2]
            except (OSError, IndexError):
                continue
            # Classified afresh each time (a child read between fork and exec still shows its parent's
            # command), keeping what it was once its command line is gone.
            kind = self._kind(pid, comm) or (self.last[pid][0] if pid in self.last else comm)
            seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
            self.first.setdefault(pid, 0.0)  # a process started during the run: all its CPU counts
            self.last[pid] = (kind, seconds)

    def run(self) -> None:
        self._sample()
        for pid, (_, seconds) in self.last.items():
            self.first[pid] = seconds  # what each process had used before the load started
        self.started_at, machine_before = time.monotonic(), cpu_times()
        while not self.stopping.wait(0.5):
            self._sample()
        self._sample()
        self.stopped_at, self.machine = time.monotonic(), (machine_before, cpu_times())

    def cores(self) -> dict[str, float]:
        """Average cores each kind of process used during the run."""
        wall = max(1e-9, self.stopped_at - self.started_at)
        used: dict[str, float] = defaultdict(float)
        for pid, (kind, seconds) in self.last.items():
            used[kind] += seconds - self.first.get(pid, 0.0)
        cores = {kind: used.pop(kind, 0.0) / wall for kind, _ in self.KINDS}
        # Other processes by name, the busiest first (any other work on this machine shows up here and
        # makes the figures unreliable: rerun when it is idle).
        for kind, seconds in sorted(used.items(), key=lambda item: -item[1]):
            if seconds / wall >= 0.02:
                cores[kind] = seconds / wall
        # What no process is charged for: mostly the kernel's interrupt work for loopback TCP.
        busy = busy_between(*self.machine) * (os.cpu_count() or 1) if self.machine else 0.0
        cores["uncharged (kernel)"] = max(0.0, busy - sum(used.values()) / wall - sum(
            cores[kind] for kind, _ in self.KINDS))
        return cores


def cpu_times() -> tuple[int, int]:
    """(all, idle) jiffies of the machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values[:8]), values[3] + values[4]  # user..steal; idle + iowait


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Fraction of all cores busy between two cpu_times() readings."""
    return 1 - (after[1] - before[1]) / max(1, after[0] - before[0])


def machine_busy(seconds: float) -> float:
    """Fraction of all cores busy over the next `seconds`."""
    before = cpu_times()
    time.sleep(seconds)
    return busy_between(before, cpu_times())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="50", help="concurrent users, or a comma-separated list to sweep")
    parser.add_argument("--duration", type=float, default=30, help="seconds of load per user count")
    parser.add_argument("--cases", type=int, default=500, help="sample cases to seed")
    parser.add_argument("--out", type=Path, default=None, help="where Locust's CSV and HTML go")
    args = parser.parse_args()
    user_counts = [int(u) for u in args.users.split(",")]

    from golive import dataplane
    from golive.config import LoadTestSettings
    from golive.loadtest import run_load_test
    from golive.run import Run
    from golive.probes import Endpoint
    from golive.sandbox import control_plane, data_plane

    started = time.monotonic()
    control_plane.up()
    data_plane.up(app=True)  # the app exactly as `golive sandbox up` runs it
    run = Run.prepare("sandbox", sandbox=True)
    # The local app's own environment (its superuser login): the benchmark measures the app, not Phase 5.
    from golive.sandbox.app import wire

    local = wire()
    dataplane.run_manage_here(run, "migrate", "--noinput", environment=local)
    dataplane.run_manage_here(run, "seed_ilnd_data", "--cases", str(args.cases), environment=local)
    # The app itself, as the ALB reaches it (the benchmark measures the app, not the sandbox's edge).
    endpoint = Endpoint(url=data_plane.status()["app_url"], headers={"X-Forwarded-Proto": "https"},
                        via="the sandbox's local app")
    print(f"sandbox up, app migrated and seeded ({args.cases} cases): {time.monotonic() - started:.1f} s, "
          f"{endpoint.url}; {os.cpu_count()} cores, idle machine {machine_busy(1):.0%} busy")
    out = args.out or isolated.STATE_DIR / "loadtest"
    rows = []
    try:
        for users in user_counts:
            settings = LoadTestSettings(users=users, spawn_rate=max(users, 1), duration_seconds=args.duration,
                                        p95_ms=TARGET_P95_MS, min_rps=TARGET_RPS, max_failure_ratio=TARGET_FAILURE_RATIO)
            sampler = CpuSampler()
            sampler.start()
            result = run_load_test(endpoint, settings, out / f"users-{users}", wait_seconds=(0, 0))
            sampler.stopping.set()
            sampler.join()
            rows.append((users, result, sampler.cores()))
            report(users, result, sampler.cores())
    finally:
        data_plane.down()
        control_plane.down()
    if len(rows) > 1:
        print("\nusers   req/s   p50   p95   p99 (ms)  failures  target")
        for users, result, _ in rows:
            print(f"{users:5d} {result.rps:7.0f} {result.p50_ms:5.0f} {result.p95_ms:5.0f} {result.p99_ms:5.0f}"
                  f"       {result.failure_ratio:7.2%}  {'met' if result.passed else 'missed'}")


def report(users: int, result, cores: dict[str, float]) -> None:
    """One load test's figures against the target, its slowest endpoints, and where the CPU went."""
    print(f"\n{users} users, no think time, {result.duration_seconds:g} s: {result.requests:,} requests, "
          f"{result.rps:,.0f} req/s; p50 {result.p50_ms:g} ms, p95 {result.p95_ms:g} ms, p99 {result.p99_ms:g} ms; "
          f"failure ratio {result.failure_ratio:.2%}")
    print(f"  target >= {TARGET_RPS} req/s at p95 <= {TARGET_P95_MS} ms: "
          + ("met" if result.passed else "missed: " + "; ".join(result.violations)))
    if result.rps < TARGET_RPS:
        print(f"  throughput is {TARGET_RPS - result.rps:,.0f} req/s ({1 - result.rps / TARGET_RPS:.0%}) short")
    if result.p95_ms > TARGET_P95_MS:
        # Closed loop, no think time: every user always has a request queued (Little's law).
        print(f"  with no think time the mean latency is users / throughput: {users} / {result.rps:,.0f} req/s = "
              f"{1000 * users / max(result.rps, 1e-9):.0f} ms; fewer users at this throughput, or more throughput, "
              "lowers it")
    print("  endpoint                                 share   req/s   p50   p95  (ms)")
    for row in sorted(result.endpoints, key=lambda e: -e.requests):
        print(f"  {row.name:40s} {row.requests / max(1, result.requests):5.0%} {row.rps:7.0f} "
              f"{row.p50_ms or 0:5.0f} {row.p95_ms or 0:5.0f}")
    shown = ", ".join(f"{kind} {value:.2f}" for kind, value in cores.items())
    print(f"  cores used on average: {shown} (of {os.cpu_count()}); report {result.html_report}")
    ours = {kind for kind, _ in CpuSampler.KINDS} | {"this benchmark", "uncharged (kernel)"}
    others = sum(value for kind, value in cores.items() if kind not in ours)
    if others > 0.1:
        print(f"  WARNING: other processes used {others:.2f} cores during this run: the figures understate the app; "
              "rerun on an idle machine")


if __name__ == "__main__":
    main()
