"""Start, find and stop the sandbox's moto server: one per state directory, on 127.0.0.1 only."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 20
STOP_TIMEOUT_SECONDS = 10


def state_dir() -> Path:
    return Path(os.environ.get("GOLIVE_STATE_DIR", ".golive")).resolve() / "sandbox"


def _state_file() -> Path:
    return state_dir() / "moto.json"


@contextmanager
def _locked() -> Iterator[None]:
    """Serialise up/down across processes: two `up`s at once still leave one server."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state() -> dict | None:
    try:
        return json.loads(_state_file().read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _is_our_process(pid: int) -> bool:
    """Alive and still the moto server we started (a pid can be reused after a crash)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return b"golive.sandbox.moto_server" in cmdline


def _responds(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def endpoint_url() -> str | None:
    """The running sandbox's AWS endpoint, or None. Cheap: no HTTP call."""
    state = _read_state()
    if state and _is_our_process(state["pid"]):
        return state["endpoint_url"]
    return None


def status() -> dict:
    state = _read_state()
    running = bool(state and _is_our_process(state["pid"]) and _responds(state["endpoint_url"]))
    return {
        "running": running,
        "aws_endpoint_url": state["endpoint_url"] if running else None,
        "pid": state["pid"] if running else None,
        "state_dir": str(state_dir()),
        "log": str(state_dir() / "moto.log"),
    }


def up() -> dict:
    """Start the moto server unless one is already running for this state directory."""
    with _locked():
        state = _read_state()
        if state and _is_our_process(state["pid"]) and _responds(state["endpoint_url"]):
            return {**status(), "started": False}
        if state:  # a crashed or stale server: clear it before starting afresh
            _terminate(state["pid"])
        port = _free_port()
        url = f"http://{HOST}:{port}"
        log = open(state_dir() / "moto.log", "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "golive.sandbox.moto_server", "-H", HOST, "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI; stopped by `golive sandbox down`
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _responds(url, timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                _terminate(process.pid)
                raise RuntimeError(
                    f"the sandbox's moto server did not start on {url}; see {state_dir() / 'moto.log'}"
                )
            time.sleep(0.05)
        _state_file().write_text(json.dumps({"pid": process.pid, "endpoint_url": url, "started_at": time.time()}))
        return {**status(), "started": True}


def down() -> dict:
    """Stop the server and forget it. Safe to call when nothing runs."""
    with _locked():
        state = _read_state()
        stopped = False
        if state and _is_our_process(state["pid"]):
            _terminate(state["pid"])
            stopped = True
        _state_file().unlink(missing_ok=True)
        return {"running": False, "stopped": stopped, "state_dir": str(state_dir())}


def _terminate(pid: int) -> None:
    if not _is_our_process(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
        except ChildProcessError:
            finished = 0
        if finished or not _is_our_process(pid) or _is_zombie(pid):
            return
        time.sleep(0.05)
    os.killpg(pid, signal.SIGKILL)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True
