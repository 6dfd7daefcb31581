"""Background services of the sandbox (moto, Redis, the app under gunicorn): start one detached,
remember it in a state file, recognise it again (a pid can be reused after a crash), stop it.

One state directory holds one sandbox; every service binds 127.0.0.1 only.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

HOST = "127.0.0.1"
STOP_TIMEOUT_SECONDS = 10


def state_dir() -> Path:
    return Path(os.environ.get("GOLIVE_STATE_DIR", ".golive")).resolve() / "sandbox"


@contextmanager
def locked() -> Iterator[None]:
    """Serialise up/down across processes: two `up`s at once still leave one of each service."""
    state_dir().mkdir(parents=True, exist_ok=True)
    with open(state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return b""


def is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@dataclass
class Service:
    """A process the sandbox runs detached, recognised by a marker in its command line."""

    name: str
    marker: str  # a string only this service's command line contains
    argv: Callable[[int], list[str]]  # port -> command
    ready: Callable[[int], bool] = port_open
    env: Callable[[], dict[str, str]] = dict
    cwd: Path | None = None
    start_timeout: float = 20
    extra: Callable[[int], dict] = field(default=lambda port: {})  # port -> what status shows
    port_env: Callable[[int], dict] = field(default=lambda port: {})  # port -> environment that names it

    @property
    def state_file(self) -> Path:
        return state_dir() / f"{self.name}.json"

    @property
    def log_file(self) -> Path:
        return state_dir() / f"{self.name}.log"

    def read(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def alive(self, state: dict | None) -> bool:
        return bool(state) and self.marker.encode() in cmdline(state["pid"]) and not is_zombie(state["pid"])

    def running(self) -> dict | None:
        """The state of a live, answering instance, or None."""
        state = self.read()
        return state if self.alive(state) and state.get("port") and self.ready(state["port"]) else None

    def start(self) -> tuple[dict, bool]:
        """Start unless already running; returns (state, started). Call under locked()."""
        current = self.running()
        if current:
            return current, False
        stale = self.read()
        if stale:
            terminate(stale["pid"], self.marker)
        port = free_port()
        log = open(self.log_file, "ab")
        process = subprocess.Popen(
            self.argv(port), cwd=self.cwd, env={**os.environ, **self.env(), **self.port_env(port)}, stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,  # outlives the CLI; `sandbox down` stops it
        )
        deadline = time.monotonic() + self.start_timeout
        while not self.ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                terminate(process.pid, self.marker)
                raise RuntimeError(f"the sandbox's {self.name} did not start on {HOST}:{port}; see {self.log_file}")
            time.sleep(0.05)
        state = {"pid": process.pid, "port": port, "started_at": time.time(), **self.extra(port)}
        self.state_file.write_text(json.dumps(state))
        return state, True

    def stop(self) -> bool:
        """Stop it and forget it; True when something was running. Call under locked()."""
        state = self.read()
        stopped = bool(state) and self.alive(state)
        if state:
            terminate(state["pid"], self.marker)
        self.state_file.unlink(missing_ok=True)
        return stopped


def terminate(pid: int, marker: str) -> None:
    """SIGTERM the process group, SIGKILL it if it lingers; only if the pid is still ours."""
    if marker.encode() not in cmdline(pid):
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
        if finished or marker.encode() not in cmdline(pid) or is_zombie(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
