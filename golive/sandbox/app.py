"""The example Precedentum app in the sandbox: gunicorn (3 workers) on 127.0.0.1, wired to the local
PostgreSQL and Redis through the values stored in the sandbox's Secrets Manager, as ECS would wire it
in AWS (docs/app-environment.md)."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from golive.sandbox.services import HOST, Service, state_dir

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "precedentum"
ENVIRONMENT = "sandbox"


def _answers(port: int) -> bool:
    """Up once /health/ answers at all: 503 (say, before the database is reachable) counts as up."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/health/", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def wire() -> dict[str, str]:
    """Store the local data plane in the sandbox's Secrets Manager (the same Secret steps Phase 1 runs,
    so Phase 1 finds them converged) and read the app's environment back from there."""
    from golive import dataplane
    from golive.run import Run
    from golive.resource import ensure
    from tasks.secrets import database_url_secret, django_secret_key, redis_url_secret

    run = Run.prepare(ENVIRONMENT, sandbox=True)
    for secret in (django_secret_key(run), database_url_secret(run, lambda: dataplane.database_url(run)),
                   redis_url_secret(run, lambda: dataplane.redis_url(run))):
        ensure(secret)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        **dataplane.app_environment(run),  # what Phase 5's commands get too
        "ALLOWED_HOSTS": f"{HOST},localhost",  # the local app answers on loopback, not the domain
        "STATIC_ROOT": str(state_dir() / "app-static"),
        "WEB_CONCURRENCY": "3",  # measured: 3 sync workers hold p95 <= 50 ms at 50 users on 2 cores, 2 do not
        "GUNICORN_PROC_NAME": "golive-sandbox-app",
    }


def _argv(port: int) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--config", "gunicorn.conf.py",
            "--bind", f"{HOST}:{port}", "--name", "golive-sandbox-app"]


class App(Service):
    def start(self) -> tuple[dict, bool]:
        current = self.running()
        if current:
            return current, False
        environment = wire()
        self.env = lambda: environment
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=APP_DIR,
                       env={**__import__("os").environ, **environment}, check=True, capture_output=True, timeout=120)
        return super().start()


APP = App(name="app", marker="golive-sandbox-app", argv=_argv, ready=_answers, cwd=APP_DIR,
          extra=lambda port: {"url": f"http://{HOST}:{port}"})
