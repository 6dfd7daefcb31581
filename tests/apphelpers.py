"""Shared pieces of the pre-launch tests (load test, launch checks): the example app running and seeded
on the sandbox, a tiny local HTTP server that answers what a test tells it to, and a local TLS server
with a test certificate authority. Everything listens on 127.0.0.1 only."""

from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import sys
import threading
import urllib.request
from contextlib import contextmanager
from typing import Iterator

import pytest

from golive.aws import forget_clients
from golive.probes import Endpoint
from golive.sandbox import app as sandbox_app
from golive.sandbox import data_plane

SEED_CASES = 300


def _reset_sandbox(aws_endpoint: str) -> None:
    """What conftest's `aws` and `empty_database` do per test, once for a module: an empty emulator and
    an empty database."""
    import psycopg

    urllib.request.urlopen(urllib.request.Request(f"{aws_endpoint}/moto-api/reset", method="POST")).close()
    forget_clients()
    with psycopg.connect(data_plane.status()["postgres_dsn"], autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")


def _production_posture() -> dict[str, str]:
    """The app's environment as the sandbox wires it, with Django's HTTPS redirect on as in production.
    dataplane.app_environment turns SECURE_SSL_REDIRECT off for the sandbox's plain-HTTP app; the launch
    checks verify the production posture, in which a request without X-Forwarded-Proto is redirected."""
    return {**_wire(), "SECURE_SSL_REDIRECT": "true"}


_wire = sandbox_app.wire


def manage(environment: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=sandbox_app.APP_DIR, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **environment})
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"


@contextmanager
def seeded_app(aws_endpoint: str, before_start=lambda: None) -> Iterator[Endpoint]:
    """The example app under gunicorn (2 workers) on an emptied sandbox, migrated and seeded with the
    Northern District of Illinois and SEED_CASES cases; the endpoint the launch flow would use. Stopped
    afterwards. before_start runs once the emulator is reset (to request an ACM certificate early, say)."""
    _reset_sandbox(aws_endpoint)
    before_start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox_app, "wire", _production_posture)
        environment = _production_posture()
        with data_plane.locked():
            sandbox_app.APP.stop()  # one left running would keep its own environment
            state, _ = sandbox_app.APP.start()
    try:
        manage(environment, "migrate", "--noinput")
        manage(environment, "seed_ilnd_data", "--cases", str(SEED_CASES))
        yield Endpoint(url=state["url"], headers={"X-Forwarded-Proto": "https"}, via="the sandbox's local app")
    finally:
        with data_plane.locked():
            sandbox_app.APP.stop()
        forget_clients()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        status, headers, body = self.routes.get(self.path.split("?")[0], (404, {}, b"not found"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # keep the test output quiet
        pass


@contextmanager
def tiny_server(routes: dict[str, tuple[int, dict[str, str], bytes]],
                wrap: ssl.SSLContext | None = None) -> Iterator[str]:
    """A local HTTP server on 127.0.0.1 answering path -> (status, headers, body); 404 otherwise. With
    wrap, it speaks TLS with that server context. Yields its base URL."""
    handler = type("Handler", (_Handler,), {"routes": routes})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if wrap is not None:
        server.socket = wrap.wrap_socket(server.socket, server_side=True)
    # A short poll interval: shutdown() waits for one, and tests start several servers.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{'https' if wrap else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
