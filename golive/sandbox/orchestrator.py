"""The sandbox's own Prefect: a local server (on a PostgreSQL of its own in the sandbox's state directory) and
a process worker.
`golive sandbox up` starts both with the rest, so `make go-live` runs the go-live the way production does (a
deployment run picked up by a worker), and every `golive` command against the sandbox records its runs there
(no temporary server to start, runs visible in the UI).

Both run detached under the same supervisor as moto and PostgreSQL; `golive sandbox down` stops them.

Why PostgreSQL and not Prefect's default SQLite: a go-live writes task runs, states, events and logs at once,
and SQLite answers a write that meets another with "database is locked", which the server turns into a 503
and the client into a 2 s back-off (measured: one child flow in five stalled 1.8-2.5 s; fifteen child flows
took 7-10 s on SQLite, 2.6 s on PostgreSQL). The cluster is the sandbox's second, apart from the data
plane's: a failover or restore drill on the app's database never touches the runbook's own state.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from golive.sandbox.data_plane import PG_USER, Postgres
from golive.sandbox.services import HOST, Service, locked, state_dir

POOL = "golive-sandbox"
PROJECT_DIR = Path(__file__).resolve().parents[2]
_PREFECT = [sys.executable, "-m", "prefect"]
_QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/api/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def api_url() -> str | None:
    state = SERVER.running()
    return f"http://{HOST}:{state['port']}/api" if state else None


DATABASE = Postgres(name="prefect-postgres", database="prefect")


def _server_env() -> dict[str, str]:
    # The server's database lives with the sandbox it records (one state directory, one sandbox), whatever
    # PREFECT_HOME the shell has: a new state directory is a new, empty history. Its first start migrates the
    # database (about 6 s on this machine): within the start timeout.
    database = DATABASE.running()
    if database is None:
        raise RuntimeError("the sandbox's Prefect database is not running: start the server with start_server()")
    return {**_QUIET, "PREFECT_HOME": str(state_dir() / "prefect"),
            "PREFECT_API_DATABASE_CONNECTION_URL":
                f"postgresql+asyncpg://{PG_USER}@{HOST}:{database['port']}/{DATABASE.database}",
            **TASK_RUN_RECORDER_BATCHING}


# Prefect records each task run state event in a transaction of its own (batch_size 1): in a converged
# go-live's phases, about 100 task runs, that was 45 % of the server's CPU and the server the biggest user
# of the two cores (measured with py-spy). Written in batches instead, a task run reaches the UI up to
# a second later; nothing in the runbook reads task runs back while it runs.
TASK_RUN_RECORDER_FLUSH_SECONDS = 1  # what reads task runs back right after a run waits longer than this
TASK_RUN_RECORDER_BATCHING = {"PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
                              "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL":
                                  str(TASK_RUN_RECORDER_FLUSH_SECONDS)}


SERVER = Service(
    name="prefect-server", marker="prefect server start --host 127.0.0.1",
    argv=lambda port: [*_PREFECT, "server", "start", "--host", HOST, "--port", str(port)],
    ready=_healthy, env=_server_env, start_timeout=90,
    extra=lambda port: {"url": f"http://{HOST}:{port}"},
    # The UI in the browser calls the API at this address (its default is port 4200).
    port_env=lambda port: {"PREFECT_UI_API_URL": f"http://{HOST}:{port}/api"},
)


def _worker_env() -> dict[str, str]:
    return {**_QUIET, "PREFECT_API_URL": api_url() or "", "PREFECT_WORKER_QUERY_SECONDS": "2",
            "GOLIVE_STATE_DIR": os.environ.get("GOLIVE_STATE_DIR", str(PROJECT_DIR / ".golive")),
            "GOLIVE_PROJECT_DIR": str(PROJECT_DIR)}


def worker_name(port: int) -> str:
    """The name the worker started with this (otherwise unused) port registers under: this start's own."""
    return f"golive-sandbox-{port}"


def _worker_polling(port: int) -> bool:
    """A worker listens on no port: it is up once the API lists it under this start's name with a
    heartbeat, sent when it has imported Prefect and begins polling the pool. Until then a go-live run would
    wait for its first poll, and its start-up (about 2 s of CPU) would compete with the run."""
    import json

    request = urllib.request.Request(f"{api_url()}/work_pools/{POOL}/workers/filter", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            workers = json.loads(response.read())
    except (OSError, ValueError):
        return False  # the pool is not there yet (the worker makes it) or the server is busy: ask again
    return any(w["name"] == worker_name(port) and w.get("last_heartbeat_time") for w in workers)


WORKER = Service(
    name="prefect-worker", marker=f"worker start --pool {POOL}",
    argv=lambda port: [*_PREFECT, "worker", "start", "--pool", POOL, "--type", "process",
                       "--name", worker_name(port)],
    ready=_worker_polling, env=_worker_env, cwd=PROJECT_DIR, start_timeout=60,
)


def start_server() -> tuple[dict, bool]:
    """Its database, then the server; (server state, whether it was started). Call under locked()."""
    DATABASE.start()
    return SERVER.start()


def up() -> dict:
    """The database and the server, then the worker (which needs the server's address)."""
    with locked():
        server, server_started = start_server()
        worker, worker_started = WORKER.start()
    return {"api_url": api_url(), "ui_url": server["url"], "server_started": server_started,
            "worker_started": worker_started}


def status() -> dict:
    """Where the sandbox's Prefect listens (None when not running), and whether its worker runs. Cheap (no
    HTTP call, as control_plane.endpoint_url): every command against the sandbox asks, and a busy server
    that is slow to answer a health check is still the one its runs belong in."""
    state = SERVER.read()
    state = state if SERVER.alive(state) and state.get("port") else None
    return {"prefect_api_url": f"http://{HOST}:{state['port']}/api" if state else None,
            "prefect_ui_url": state["url"] if state else None,
            "prefect_worker": WORKER.alive(WORKER.read())}


def down() -> dict:
    with locked():
        return {"prefect-worker": WORKER.stop(), "prefect-server": SERVER.stop(), "prefect-database": DATABASE.stop()}
