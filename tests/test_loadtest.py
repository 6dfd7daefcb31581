"""Plan 8.1, the load-test gate: Locust (as a subprocess) against the example app on the sandbox, its
figures read from Locust's CSV files and judged against launch.load_test."""

from __future__ import annotations

import pytest

from golive.config import LoadTestSettings, load_environment
from golive.loadtest import LoadTestError, run_load_test
from tests.apphelpers import seeded_app


@pytest.fixture(scope="module")
def endpoint(sandbox):
    """The app, seeded, for the module: the load tests only read, so they can share it."""
    with seeded_app(sandbox) as endpoint:
        yield endpoint


# A few users for a few seconds: enough requests to judge, short enough for the suite.
SHORT = dict(users=8, spawn_rate=4, duration_seconds=3)  # a 2 s ramp-up, then 3 s judged


def test_a_short_load_test_passes_with_sane_figures_and_a_report(endpoint, tmp_path):
    # The mechanics and the figures' sanity, not the app's speed (benchmarks/app_throughput.py measures that):
    # the latency bound is the sanity bound below, as the suite's other workers share the two cores.
    settings = load_environment("sandbox").launch.load_test.model_copy(update={**SHORT, "min_rps": 10, "p95_ms": 1000})
    result = run_load_test(endpoint, settings, tmp_path)

    assert result.passed, result.violations
    assert result.requests >= 30 and result.failures == 0 and result.failure_ratio == 0
    assert 10 <= result.rps < 5000
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms < 1000
    names = {e.name for e in result.endpoints}
    assert {"/ (index.html)", "/static/[asset]", "/api/cases/?page=[n]", "/api/cases/[number]/",
            "/api/judges/?court=[court]", "/api/judges/[id]/"} <= names
    assert sum(e.requests for e in result.endpoints) == result.requests, "per-endpoint rows add up to the total"
    html = result.html_report.read_text()
    assert result.html_report.parent == tmp_path and "Locust" in html and "/api/cases/[number]/" in html
    assert {p.name for p in result.csv_files} >= {"locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv"}
    assert result.latency and all(p.rps >= 0 for p in result.latency)
    assert any(p.p95_ms for p in result.latency), "the chart has latency once Locust's window fills"


def test_a_threshold_the_app_cannot_meet_is_a_violation_naming_the_figure(endpoint, tmp_path):
    settings = LoadTestSettings(**{**SHORT, "duration_seconds": 2}, p95_ms=0.001, min_rps=1_000_000)
    result = run_load_test(endpoint, settings, tmp_path)

    assert not result.passed
    p95 = [v for v in result.violations if v.startswith("p95 latency")]
    assert p95 == [f"p95 latency {result.p95_ms:g} ms is above the 0.001 ms threshold (launch.load_test.p95_ms)"]
    assert any("below the 1,000,000 req/s threshold (launch.load_test.min_rps)" in v for v in result.violations)
    assert not any("failure ratio" in v for v in result.violations)


def test_requests_without_the_headers_the_endpoint_needs_are_failures_not_successes(endpoint, tmp_path):
    """Without X-Forwarded-Proto the app redirects to https://: a redirect is not the page."""
    bare = endpoint.model_copy(update={"headers": {}})
    result = run_load_test(bare, LoadTestSettings(users=2, spawn_rate=2, duration_seconds=2, min_rps=0), tmp_path)

    # Every request failed but /health/'s, which is exempt from the redirect (the load balancer checks it
    # over plain HTTP): how large a share that is depends on Locust's random picks, so count per endpoint.
    redirected = [e for e in result.endpoints if e.name != "/health/"]
    assert redirected and all(e.failures == e.requests > 0 for e in redirected), \
        [(e.name, e.requests, e.failures) for e in result.endpoints]
    assert any(v.startswith("failure ratio") and "launch.load_test.max_failure_ratio" in v for v in result.violations)
    assert any("301 redirect" in f.error and "GOLIVE_LOADTEST_HEADERS" in f.error for f in result.failures_seen)


def test_a_locust_crash_is_an_error_with_its_output(endpoint, tmp_path, monkeypatch):
    monkeypatch.setattr("golive.loadtest.LOCUSTFILE", tmp_path / "missing_locustfile.py")
    with pytest.raises(LoadTestError, match="Locust exited with code") as raised:
        run_load_test(endpoint, LoadTestSettings(users=1, spawn_rate=1, duration_seconds=1), tmp_path / "out")
    assert "missing_locustfile.py" in str(raised.value)


def test_the_chart_counts_on_from_zero_after_locusts_reset(tmp_path):
    """Locust resets its statistics when the last user has started (the ramp-up is not judged): the
    history's cumulative count drops to zero there, and the chart's throughput stays what was asked."""
    from golive.loadtest import read_history

    history = tmp_path / "locust_stats_history.csv"
    columns = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,95%,99%,100%,Total Request Count,Total Failure Count"
    rows = [(100, 0, 0), (101, 4, 50), (102, 8, 10), (103, 8, 90)]
    history.write_text(columns + "\n" + "".join(
        f"{t},{users},,Aggregated,0,0,10,20,30,40,{count},0\n" for t, users, count in rows))
    assert [p.rps for p in read_history(history)] == [0.0, 50.0, 10.0, 80.0]
