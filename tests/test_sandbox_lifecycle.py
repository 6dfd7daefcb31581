"""`golive sandbox up|status|down`: one server per state directory, on loopback, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import GOLIVE, REPO


def golive(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GOLIVE_STATE_DIR": str(state)}
    return subprocess.run([*GOLIVE, *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


def status(state: Path) -> dict:
    return json.loads(golive(state, "sandbox", "status", "--json").stdout)


def moto_processes(state: Path, marker: bytes = b"golive.sandbox.moto_server") -> list[int]:
    """Every live process of a sandbox service started for this state directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline and f"GOLIVE_STATE_DIR={state}".encode() in environ:
            stat = (proc / "stat").read_text().split(")")[-1].split()
            if stat[0] != "Z":
                pids.append(int(proc.name))
    return pids


def alive(pid: int) -> bool:
    """Redis rewrites its process title and environment, so it is followed by the pid it was given."""
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes() and \
            Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def postgres_processes(state: Path) -> list[int]:
    """PostgreSQL daemonises (its environment is its own), so find it by its data directory."""
    data = str(state / "sandbox" / "postgres").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if data in (proc / "cmdline").read_bytes() and (proc / "stat").read_text().split(")")[-1].split()[0] != "Z":
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def state(tmp_path):
    yield tmp_path / "state"
    golive(tmp_path / "state", "sandbox", "down")


def test_up_twice_leaves_one_server_and_down_leaves_no_process(state):
    assert status(state) == {**status(state), "running": False}
    first = golive(state, "sandbox", "up", "--no-prefect")
    assert first.returncode == 0, first.stderr
    up = status(state)
    assert up["running"] is True and up["aws_endpoint_url"].startswith("http://127.0.0.1:")
    second = golive(state, "sandbox", "up", "--no-prefect")
    assert "already running" in second.stdout
    assert status(state)["pid"] == up["pid"]
    assert moto_processes(state) == [up["pid"]]

    assert up["postgres_dsn"].startswith("postgresql://postgres@127.0.0.1:")
    assert up["redis_url"].startswith("redis://127.0.0.1:")
    redis_pid = json.loads((state / "sandbox" / "redis.json").read_text())["pid"]
    assert alive(redis_pid) and len(postgres_processes(state)) >= 1
    # The edge: the DNS server and the ALB, CloudFront and previous-site listeners, on loopback only.
    assert up["dns_server"].startswith("127.0.0.1:") and (state / "sandbox" / "ca" / "ca.pem").exists()
    assert set(up["edge"]) == {"alb", "alb-http", "cloudfront", "cloudfront-http", "previous"}
    assert all(url.split("://")[1].startswith("127.0.0.1:") for url in up["edge"].values())
    assert len(moto_processes(state, b"golive.sandbox.edge\x00")) == 5
    assert len(moto_processes(state, b"golive.sandbox.dns_server")) == 1

    assert golive(state, "sandbox", "down").returncode == 0
    assert moto_processes(state) == [] and not alive(redis_pid) and postgres_processes(state) == []
    assert moto_processes(state, b"golive.sandbox.edge\x00") == [] and moto_processes(state, b"golive.sandbox.dns_server") == []
    assert status(state)["running"] is False
    assert "was not running" in golive(state, "sandbox", "down").stdout


def test_up_after_a_crash_starts_afresh_what_died_and_the_data_plane_answers(state):
    """PostgreSQL, then moto, die hard (one sandbox for both: a sandbox's start is the cost of this file);
    each time the next `up` notices and starts again what died, PostgreSQL on the same data directory."""
    import psycopg
    import redis

    golive(state, "sandbox", "up", "--no-prefect")
    first = status(state)
    with psycopg.connect(first["postgres_dsn"]) as connection:
        assert connection.execute("SELECT current_database()").fetchone()[0] == "precedentum"
        connection.execute("CREATE TABLE before_the_crash AS SELECT 42 AS answer")
    assert redis.Redis.from_url(first["redis_url"]).ping() is True

    # PostgreSQL dies hard while moto runs on: `up` must not stop at "already running".
    for pid in postgres_processes(state):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while status(state)["postgres_dsn"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(state)["postgres_dsn"] is None
    golive(state, "sandbox", "up", "--no-prefect")
    again = status(state)
    assert again["pid"] == first["pid"]  # moto was left as it was
    with psycopg.connect(again["postgres_dsn"]) as connection:  # on the same data directory: the table is there
        assert connection.execute("SELECT answer FROM before_the_crash").fetchone() == (42,)

    # Then moto dies hard: the next `up` starts a fresh one.
    crashed = again["pid"]
    os.kill(crashed, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while crashed in moto_processes(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(state)["running"] is False
    golive(state, "sandbox", "up", "--no-prefect")
    restarted = status(state)
    assert restarted["running"] is True and restarted["pid"] != crashed
    assert moto_processes(state) == [restarted["pid"]]


def test_commands_against_a_stopped_sandbox_say_how_to_start_it(state):
    done = golive(state, "plan", "sandbox")
    assert done.returncode == 1
    assert "golive sandbox up" in done.stderr


def test_sandbox_up_brings_prefect_and_a_first_plan_runs_on_it_from_an_empty_prefect_home(tmp_path):
    """`golive sandbox up` starts the local Prefect server and worker with the rest; a `golive plan sandbox`
    from an empty Prefect home (a fresh clone) records its runs there, with no traceback in the terminal;
    the worker polls the sandbox's pool (what `make go-live` runs on); `golive sandbox down` stops both."""
    from prefect.client.orchestration import get_client

    state, home = tmp_path / "state", tmp_path / "prefect-home"
    env = {**os.environ, "GOLIVE_STATE_DIR": str(state), "PREFECT_HOME": str(home), "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)

    def golive_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([*GOLIVE, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)

    try:
        up = golive_cli("sandbox", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        started = json.loads(golive_cli("sandbox", "status", "--json").stdout)
        api, ui = started["prefect_api_url"], started["prefect_ui_url"]
        assert api == f"{ui}/api" and ui.startswith("http://127.0.0.1:") and started["prefect_worker"] is True
        assert ui in up.stdout
        # `up` returns once the worker it started polls: the API has that worker (by its name) with a heartbeat.
        from golive.sandbox.orchestrator import worker_name

        port = json.loads((state / "sandbox" / "prefect-worker.json").read_text())["port"]
        request = urllib.request.Request(f"{api}/work_pools/golive-sandbox/workers/filter", data=b"{}",
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            polling = {w["name"]: w["last_heartbeat_time"] for w in json.loads(response.read())}
        assert polling.get(worker_name(port)), polling

        assert not home.exists() or not any(home.iterdir())
        began = time.monotonic()
        planned = golive_cli("plan", "sandbox")
        seconds = time.monotonic() - began
        assert planned.returncode == 2, planned.stdout + planned.stderr
        # (The plan itself shows the app-errors metric filter, whose pattern is "Traceback".)
        assert "Traceback (most recent call last)" not in planned.stdout + planned.stderr, planned.stderr
        assert planned.stderr == "", planned.stderr
        assert f"runs in the sandbox's Prefect UI at {ui}" in planned.stdout
        assert "Plan:" in planned.stdout and "0 writes" in planned.stdout
        print(f"first plan from an empty Prefect home: {seconds:.1f} s")

        async def recorded() -> tuple[set[str], list[str]]:
            async with get_client() as client:
                flows = {f.id: f.name for f in await client.read_flows()}
                runs = await client.read_flow_runs()
                workers = [w.name for w in await client.read_workers_for_work_pool("golive-sandbox")]
                return {flows[r.flow_id] for r in runs if r.state and r.state.is_completed()}, workers

        import asyncio

        from prefect.settings import PREFECT_API_URL, temporary_settings

        deadline, workers = time.monotonic() + 60, []
        with temporary_settings(updates={PREFECT_API_URL: api}):
            while time.monotonic() < deadline:
                try:
                    completed, workers = asyncio.run(recorded())
                except Exception:  # the pool appears with the worker's first poll
                    completed, workers = set(), []
                if workers:
                    break
                time.sleep(1)
        assert workers, "the worker never polled the golive-sandbox pool"
        # Every phase the plan ran is a completed run in the sandbox's server, so in its UI.
        assert {f"phase-{n}" for n in range(1, 8)} <= {name[:7] for name in completed}, completed
    finally:
        down = golive_cli("sandbox", "down", timeout=60)
    assert down.returncode == 0, down.stdout
    assert all(name in down.stdout for name in ("prefect-worker", "prefect-server", "prefect-database")), down.stdout
    for marker in (b"prefect server start", b"worker start --pool golive-sandbox", b"golive.sandbox.moto_server",
                   str(state / "sandbox" / "prefect-postgres").encode()):  # the server's own PostgreSQL
        assert moto_processes(state, marker) == [], marker


def test_a_new_emulator_is_warmed_up_for_every_service_the_runbook_calls():
    """moto's first request per service is slow (it builds the service's app and model): `up` makes it
    for each service the code calls, so a new service in the code must join control_plane.WARM_UP."""
    from golive.permissions import code_operations
    from golive.sandbox.control_plane import WARM_UP

    called = {operation.split(".")[0] for operation in code_operations()}
    assert called - {service for service, _, _ in WARM_UP} == set()
