"""`golive sandbox up|status|down`: one server per state directory, on loopback, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import GOLIVE, REPO


def golive(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GOLIVE_STATE_DIR": str(state)}
    return subprocess.run([*GOLIVE, *args], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)


def status(state: Path) -> dict:
    return json.loads(golive(state, "sandbox", "status", "--json").stdout)


def moto_processes(state: Path) -> list[int]:
    """Every live moto server started for this state directory's sandbox."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"golive.sandbox.moto_server" in cmdline and f"GOLIVE_STATE_DIR={state}".encode() in environ:
            stat = (proc / "stat").read_text().split(")")[-1].split()
            if stat[0] != "Z":
                pids.append(int(proc.name))
    return pids


@pytest.fixture
def state(tmp_path):
    yield tmp_path / "state"
    golive(tmp_path / "state", "sandbox", "down")


def test_up_twice_leaves_one_server_and_down_leaves_no_process(state):
    assert status(state) == {**status(state), "running": False}
    first = golive(state, "sandbox", "up")
    assert first.returncode == 0, first.stderr
    up = status(state)
    assert up["running"] is True and up["aws_endpoint_url"].startswith("http://127.0.0.1:")
    second = golive(state, "sandbox", "up")
    assert "already running" in second.stdout
    assert status(state)["pid"] == up["pid"]
    assert moto_processes(state) == [up["pid"]]

    assert golive(state, "sandbox", "down").returncode == 0
    assert moto_processes(state) == []
    assert status(state)["running"] is False
    assert "was not running" in golive(state, "sandbox", "down").stdout


def test_up_after_a_crash_starts_a_fresh_server(state):
    golive(state, "sandbox", "up")
    crashed = status(state)["pid"]
    os.kill(crashed, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while crashed in moto_processes(state) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(state)["running"] is False
    golive(state, "sandbox", "up")
    restarted = status(state)
    assert restarted["running"] is True and restarted["pid"] != crashed
    assert moto_processes(state) == [restarted["pid"]]


def test_commands_against_a_stopped_sandbox_say_how_to_start_it(state):
    done = golive(state, "plan", "sandbox")
    assert done.returncode == 1
    assert "golive sandbox up" in done.stderr
