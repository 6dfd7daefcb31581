"""Plan 8.1, the load-test gate: Locust against the public endpoint, judged against launch.load_test.

Locust runs as a subprocess, never in this process: importing locust monkey-patches sockets, threads and
subprocess through gevent, and a Prefect flow run after that hangs (notes/local-data-plane.md). The run
is bounded (its duration plus a margin) and its figures come from the CSV files Locust writes:
PREFIX_stats.csv (totals and one row per endpoint) and PREFIX_stats_history.csv (the chart).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel

from golive.config import LoadTestSettings
from golive.probes import Endpoint, dial

LOCUSTFILE = Path(__file__).resolve().parent.parent / "loadtests" / "locustfile.py"
PREFIX = "locust"  # out_dir/locust_stats.csv, locust_stats_history.csv, locust_failures.csv, ...
HTML_REPORT = "locust-report.html"
# Beyond the run time: Locust's start (about 1 s), the users' stop, the HTML report and the CSV files.
TIMEOUT_MARGIN_SECONDS = 30
TAIL_LINES = 15
# The environment never sends telemetry, the child included (notes/local-data-plane.md).
NO_TELEMETRY = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}


class LoadTestError(RuntimeError):
    """Locust could not run or left no figures: the gate has nothing to judge (not the same as failing it)."""


class EndpointStats(BaseModel):
    """One row of Locust's request statistics: an endpoint (as the locustfile names it) or the total."""

    method: str
    name: str
    requests: int
    failures: int
    rps: float
    median_ms: float
    average_ms: float
    max_ms: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class LatencyPoint(BaseModel):
    """One second of the run, for the latency-over-time chart. Percentiles cover Locust's sliding window
    (about the last 10 s); None while the window holds no request yet (the first seconds)."""

    seconds: float  # since the first sample
    users: int
    rps: float  # requests completed in this interval, per second
    failures_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class FailureSample(BaseModel):
    method: str
    name: str
    error: str
    occurrences: int


class LoadTestResult(BaseModel):
    url: str
    users: int
    duration_seconds: float
    requests: int
    failures: int
    failure_ratio: float
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    endpoints: list[EndpointStats]
    failures_seen: list[FailureSample]
    latency: list[LatencyPoint]
    html_report: Path
    csv_files: list[Path]
    thresholds: LoadTestSettings
    violations: list[str]

    @property
    def passed(self) -> bool:
        return not self.violations


def run_load_test(endpoint: Endpoint, settings: LoadTestSettings, out_dir: Path,
                  *, wait_seconds: tuple[float, float] = (0.1, 0.5)) -> LoadTestResult:
    """Run the locustfile against the endpoint with the settings' users, spawn rate and duration; return
    its figures and every threshold they miss. wait_seconds is each user's think time between tasks
    ((0, 0) for a throughput benchmark). Raises LoadTestError when Locust crashes, overruns its bound or
    writes no statistics."""
    environment = _child_environment(endpoint, wait_seconds)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix, html = out_dir / PREFIX, out_dir / HTML_REPORT
    for stale in [html, *out_dir.glob(f"{PREFIX}_*.csv")]:
        stale.unlink(missing_ok=True)  # a crashed run must not be judged on the previous run's files
    run_seconds = max(1, math.ceil(settings.duration_seconds))
    # The figures are of the load the file names: every user running. Locust resets its statistics once the
    # last user has started (--reset-stats), so the ramp-up, when a cold stack answers its first requests
    # (new TLS sessions, the app's first views: 1-1.5 s each on the sandbox's two cores), is not judged;
    # it runs before the measured duration.
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", endpoint.url,
            "--users", str(settings.users), "--spawn-rate", str(settings.spawn_rate),
            "--run-time", f"{ramp_seconds(settings) + run_seconds}s", "--reset-stats",
            "--csv", str(prefix), "--csv-full-history", "--html", str(html), "--only-summary",
            # Failed requests are figures to judge, not a crash: only a crash may exit non-zero.
            "--exit-code-on-error", "0", "--stop-timeout", "5", "--loglevel", "WARNING"]
    _run_locust(argv, environment, out_dir, timeout=ramp_seconds(settings) + run_seconds + TIMEOUT_MARGIN_SECONDS)
    total, endpoints = read_stats(Path(f"{prefix}_stats.csv"))
    if not html.exists():
        raise LoadTestError(f"Locust finished but wrote no HTML report at {html}; see {out_dir / 'locust.log'}")
    result = LoadTestResult(
        url=endpoint.url, users=settings.users, duration_seconds=run_seconds,
        requests=total.requests, failures=total.failures,
        failure_ratio=total.failures / total.requests if total.requests else 0.0,
        rps=total.rps, p50_ms=total.p50_ms or 0.0, p95_ms=total.p95_ms or 0.0, p99_ms=total.p99_ms or 0.0,
        endpoints=endpoints, failures_seen=read_failures(Path(f"{prefix}_failures.csv")),
        latency=read_history(Path(f"{prefix}_stats_history.csv")), html_report=html,
        csv_files=sorted(out_dir.glob(f"{PREFIX}_*.csv")), thresholds=settings, violations=[],
    )
    return result.model_copy(update={"violations": violations(result, settings)})


def ramp_seconds(settings: LoadTestSettings) -> int:
    """How long Locust takes to start every user (users / spawn_rate, whole seconds): not judged."""
    return math.ceil(settings.users / settings.spawn_rate)


def _child_environment(endpoint: Endpoint, wait_seconds: tuple[float, float]) -> dict[str, str]:
    """This process's environment without LOCUST_* variables (Locust reads them as options: a stray
    LOCUST_USERS would silently change the test), plus what the locustfile reads."""
    low, high = wait_seconds
    if not 0 <= low <= high:
        raise ValueError(f"wait_seconds={wait_seconds}: need 0 <= min <= max seconds, e.g. (0.1, 0.5)")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}
    # Locust speaks to the site by its name (URL, Host, SNI) but dials where probes.dial says: CloudFront's
    # domain before the cutover, a listener of the sandbox's edge there; with the sandbox's CA to trust.
    parts = urlsplit(endpoint.url)
    address, port, _ = dial(endpoint, endpoint.host, parts.scheme, parts.port)
    connect = {"host": endpoint.host, "address": address, "port": port, "ca_file": endpoint.ca_file}
    return {**environment, **NO_TELEMETRY, "GOLIVE_LOADTEST_HEADERS": json.dumps(endpoint.headers),
            "GOLIVE_LOADTEST_WAIT_SECONDS": f"{low},{high}", "GOLIVE_LOADTEST_CONNECT": json.dumps(connect)}


def _run_locust(argv: list[str], environment: dict[str, str], out_dir: Path, timeout: float) -> None:
    """Run Locust with its output in out_dir/locust.log; kill its whole process group past the timeout."""
    log_path = out_dir / "locust.log"
    with open(log_path, "wb") as log:
        # Its own session, so a timeout kills every process it started, not only the first.
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=environment, cwd=out_dir, start_new_session=True)
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise LoadTestError(f"Locust did not finish within {timeout:g} s (the run time plus "
                                f"{TIMEOUT_MARGIN_SECONDS} s) and was killed. Its output ends:\n{_tail(log_path)}")
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)  # interrupted (Ctrl-C, a cancelled flow run): leave nothing
            process.wait()
            raise
    if code != 0:
        raise LoadTestError(f"Locust exited with code {code} (a crash or a locustfile error, not failed requests: "
                            f"those exit 0). Its output ends:\n{_tail(log_path)}")


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(lines[-TAIL_LINES:]) or "(no output)"


def _number(value: str) -> float | None:
    """A CSV cell as a number; None for Locust's "N/A" (no request in that row)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _row_stats(row: dict[str, str]) -> EndpointStats:
    return EndpointStats(
        method=row["Type"], name=row["Name"], requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
        rps=float(row["Requests/s"]), median_ms=float(row["Median Response Time"]),
        average_ms=float(row["Average Response Time"]), max_ms=float(row["Max Response Time"]),
        p50_ms=_number(row["50%"]), p95_ms=_number(row["95%"]), p99_ms=_number(row["99%"]),
    )


def read_stats(path: Path) -> tuple[EndpointStats, list[EndpointStats]]:
    """The Aggregated row of PREFIX_stats.csv and the per-endpoint rows."""
    try:
        with open(path, newline="") as handle:
            rows = [_row_stats(row) for row in csv.DictReader(handle)]
    except FileNotFoundError:
        raise LoadTestError(f"Locust wrote no statistics at {path}: it stopped before its first report") from None
    totals = [r for r in rows if r.name == "Aggregated"]
    if not totals:
        raise LoadTestError(f"{path} has no Aggregated row: the file is incomplete")
    return totals[0], [r for r in rows if r.name != "Aggregated"]


def read_failures(path: Path) -> list[FailureSample]:
    """PREFIX_failures.csv: each distinct failure (endpoint, error) and how often it happened."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [FailureSample(method=r["Method"], name=r["Name"], error=r["Error"], occurrences=int(r["Occurrences"]))
                for r in csv.DictReader(handle)]


def _grown(row: dict, previous: dict | None, column: str) -> int:
    """How much a cumulative count grew since the previous row; after Locust's reset (the ramp-up's end) it
    counts from zero again, so what it shows is all new."""
    now, before = int(row[column]), int(previous[column]) if previous else 0
    return now - before if now >= before else now


def read_history(path: Path) -> list[LatencyPoint]:
    """The Aggregated rows of PREFIX_stats_history.csv (one a second) as a latency-over-time series.
    Throughput comes from the growth of the cumulative request count between rows (exact), not from
    Locust's own Requests/s column (an average that lags two seconds behind)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"]
    points: list[LatencyPoint] = []
    start = int(rows[0]["Timestamp"]) if rows else 0
    for previous, row in zip([None, *rows], rows):
        elapsed = int(row["Timestamp"]) - int(previous["Timestamp"]) if previous else 0
        requests = _grown(row, previous, "Total Request Count")
        failures = _grown(row, previous, "Total Failure Count")
        # Locust writes 0 for a window that has no sample yet; a real window's maximum is at least 1 ms.
        empty = _number(row["100%"]) in (None, 0)
        points.append(LatencyPoint(
            seconds=int(row["Timestamp"]) - start, users=int(row["User Count"]),
            rps=requests / elapsed if elapsed > 0 else 0.0,
            failures_per_second=failures / elapsed if elapsed > 0 else 0.0,
            p50_ms=None if empty else _number(row["50%"]), p95_ms=None if empty else _number(row["95%"]),
            p99_ms=None if empty else _number(row["99%"]),
        ))
    return points


def _figure(value: float) -> str:
    """412 -> "412", 0.001 -> "0.001", 1234.5 -> "1,234.5": thresholds as the file states them."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def violations(result: LoadTestResult, settings: LoadTestSettings) -> list[str]:
    """Every threshold of launch.load_test the figures miss, each naming the figure, its value, the
    threshold and the setting that holds it."""
    if result.requests == 0:
        return [f"no request completed in {_figure(result.duration_seconds)} s against {result.url}: nothing "
                "to measure (is the endpoint up?)"]
    found = []
    if result.p95_ms > settings.p95_ms:
        found.append(f"p95 latency {_figure(result.p95_ms)} ms is above the {_figure(settings.p95_ms)} ms threshold "
                     "(launch.load_test.p95_ms)")
    if result.failure_ratio > settings.max_failure_ratio:
        found.append(f"failure ratio {result.failure_ratio:.2%} ({result.failures:,} of {result.requests:,} requests) "
                     f"is above the {settings.max_failure_ratio:.2%} threshold (launch.load_test.max_failure_ratio)")
    if result.rps < settings.min_rps:
        found.append(f"throughput {result.rps:,.1f} req/s is below the {_figure(settings.min_rps)} req/s threshold "
                     "(launch.load_test.min_rps)")
    return found
