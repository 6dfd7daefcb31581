"""The sandbox's AWS control plane: moto's server on 127.0.0.1, one per state directory."""

from __future__ import annotations

import sys
import urllib.request

from golive.sandbox.services import HOST, Service, locked, state_dir


def _responds(port: int) -> bool:
    try:
        # /moto-api/ is its dashboard page (4 ms); data.json dumps every resource (seconds once IAM is loaded).
        with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


MOTO = Service(
    name="moto",
    marker="golive.sandbox.moto_server",
    argv=lambda port: [sys.executable, "-m", "golive.sandbox.moto_server", "-H", HOST, "-p", str(port)],
    ready=_responds,
    extra=lambda port: {"endpoint_url": f"http://{HOST}:{port}"},
)


def endpoint_url() -> str | None:
    """The running sandbox's AWS endpoint, or None. Cheap: no HTTP call."""
    state = MOTO.read()
    return state["endpoint_url"] if MOTO.alive(state) else None


def status() -> dict:
    state = MOTO.running()
    return {
        "running": state is not None,
        "aws_endpoint_url": state["endpoint_url"] if state else None,
        "pid": state["pid"] if state else None,
        "state_dir": str(state_dir()),
        "log": str(MOTO.log_file),
    }


def up() -> dict:
    """Start the moto server unless one is already running for this state directory."""
    with locked():
        _, started = MOTO.start()
    return {**status(), "started": started}


def down() -> dict:
    """Stop the server and forget it. Safe to call when nothing runs."""
    with locked():
        stopped = MOTO.stop()
    return {"running": False, "stopped": stopped, "state_dir": str(state_dir())}
