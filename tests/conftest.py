"""Shared fixtures: one sandbox (moto's server, started by the product's own control plane) and the
sandbox's own Prefect server for the session; every test starts from an emptied emulator (the read-only
checks of tests/test_phase1_as_aws_reports_it.py share one, emptied once for the file)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# Before Prefect, great-expectations or our tasks are imported: no telemetry, short task-retry delays.
os.environ.update(
    PREFECT_SERVER_ANALYTICS_ENABLED="false",
    DO_NOT_TRACK="1",
    GX_ANALYTICS_ENABLED="false",
    GOLIVE_RETRY_BASE_DELAY="0.05",
    PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
    # Certificates still start PENDING_VALIDATION (the wait is exercised), then issue after 1 s, not the
    # sandbox's 2: dozens of fresh Phase 1 runs in the suite.
    MOTO_ACM_VALIDATION_WAIT="1",
)
_STATE = tempfile.mkdtemp(prefix="golive-tests-")
os.environ["GOLIVE_STATE_DIR"] = _STATE
os.environ.setdefault("PREFECT_HOME", str(Path(_STATE) / "prefect"))

import pytest

from golive.aws import forget_clients
from golive.run import Run
from golive.sandbox import control_plane

REPO = Path(__file__).resolve().parent.parent
ENVIRONMENTS = REPO / "deployments" / "environments"


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox for the whole session: moto, PostgreSQL and Redis (the app starts where a test needs
    it); stopped, no process left, at the end."""
    from golive.sandbox import data_plane

    state = control_plane.up()
    data_plane.up(app=False)
    yield state["aws_endpoint_url"]
    data_plane.down()
    control_plane.down()


@pytest.fixture(scope="session")
def edge(sandbox):
    """The sandbox's DNS server and edge listeners (ALB, CloudFront, the previous site) for the session;
    they read moto at request time, so every test's own records are what they serve."""
    from golive.sandbox import edge

    state = edge.up()
    _EDGE_UP[0] = True
    yield state
    edge.down()


# The edge reuses a read of moto for CONFIG_SECONDS (golive/sandbox/edge.py, as a real edge serves a change
# once propagated), and every test makes its ALB and distribution anew, under the same names, after the
# emulator's reset: a test that probed within that second of the previous test's last request was served the
# previous test's distribution (seen: one that forwards Host answering for one made not to, 200 where 502 was
# asserted). So, with the edge up, a reset waits until the previous test's reads have expired: mostly no wait.
_EDGE_UP = [False]
_LAST_TEST_ENDED: list[float | None] = [None]


@pytest.fixture(autouse=True)
def _note_when_the_test_ended():
    yield
    _LAST_TEST_ENDED[0] = time.monotonic()


def _wait_out_the_edges_reads() -> None:
    from golive.sandbox.edge import CONFIG_SECONDS

    if _EDGE_UP[0] and _LAST_TEST_ENDED[0] is not None:
        time.sleep(max(0.0, _LAST_TEST_ENDED[0] + CONFIG_SECONDS - time.monotonic()))


@pytest.fixture(scope="session")
def prefect_api():
    """The sandbox's own Prefect server (golive/sandbox/orchestrator.py: on a PostgreSQL of its own, in this
    session's state directory) for the session; its URL is handed to CLI subprocesses too. Not Prefect's
    test harness: on SQLite, writes that meet answer "database is locked", a 503 and the client's 2 s
    back-off, which the suite's parallel task runs met often (the suite took 935 s on it, 878 s on this)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    import prefect.context

    from golive.sandbox import orchestrator
    from golive.sandbox.services import locked

    with locked():
        orchestrator.start_server()
    try:
        # No flow-run heartbeats in tests: nothing here watches for crashed runs, and joining the heartbeat
        # thread costs up to a second at the end of every flow (hundreds of flows in the suite).
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                                         PREFECT_API_URL: orchestrator.api_url()}), \
                prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
            # (as Prefect's harness: code in a context copied before this one still reaches this server)
            yield PREFECT_API_URL.value()
            _drain_prefect_clients()
    finally:
        orchestrator.down()


def _drain_prefect_clients() -> None:
    """Logs and events still queued reach the server before it stops (as Prefect's harness does); otherwise
    their workers retry a closed port for a minute at exit."""
    import inspect

    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def drain() -> None:
        for result in (APILogWorker.instance().drain(), EventsWorker.drain_all()):
            if inspect.isawaitable(result):
                await result

    run_coro_as_sync(drain())


def reset_emulator(endpoint: str) -> None:
    """Empty the emulator and drop the process's clients (so call logs start at zero)."""
    from golive.transient import RECENT_CREATES

    _wait_out_the_edges_reads()
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).close()
    RECENT_CREATES.clear()  # the emulator forgot everything: a NotFound now is not AWS catching up
    forget_clients()


def empty_the_database() -> None:
    """The sandbox's PostgreSQL database emptied: tests that load data do not see each other's rows."""
    import psycopg

    from golive.sandbox import data_plane

    with psycopg.connect(data_plane.status()["postgres_dsn"], autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


@pytest.fixture
def aws(sandbox, prefect_api):
    """An empty emulator and fresh clients."""
    reset_emulator(sandbox)
    yield sandbox
    forget_clients()


@pytest.fixture
def empty_database(sandbox):
    empty_the_database()


def prepare(environment: str = "sandbox", mode: str = "apply", **kwargs) -> Run:
    return Run.prepare(environment, sandbox=True, mode=mode, **kwargs)


def write_environment(tmp_path: Path, base: str = "sandbox", edit=lambda text: text, name: str | None = None) -> Path:
    """A copy of a shipped environment file with an edit applied."""
    text = edit((ENVIRONMENTS / f"{base}.toml").read_text())
    path = tmp_path / f"{name or base}.toml"
    path.write_text(text)
    return path


def cli_env(prefect_api: str, **extra: str) -> dict[str, str]:
    """Environment for a `golive` subprocess: the session's sandbox and Prefect server."""
    # A wide terminal: the tests read the CLI's lines, which rich would otherwise wrap at 80 columns.
    return {**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "200", **extra}


GOLIVE = [sys.executable, "-m", "golive.cli"]
