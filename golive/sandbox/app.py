"""The example Precedentum app in the sandbox: gunicorn (3 workers) on 127.0.0.1, wired to the local
PostgreSQL and Redis through the values stored in the sandbox's Secrets Manager, as ECS would wire it
in AWS (docs/app-environment.md)."""

from __future__ import annotations

import json
import os
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


def app_environment(run) -> dict[str, str]:
    """The app's settings as the backend's task definition hands them over: SECRET_KEY and REDIS_URL from
    Secrets Manager, plain settings from Parameter Store. The database is the local superuser's: this app
    starts with `sandbox up`, before Phase 1 made the database's parameters and Phase 5 the app's own role
    (the ECS tasks of Phase 5 and of releases log in as in AWS; README, "What the sandbox emulates")."""
    from golive.naming import parameter_name, secret_name

    secrets = run.client("secretsmanager")
    values = {variable: secrets.get_secret_value(SecretId=secret_name(run.env_name, name))["SecretString"]
              for variable, name in (("SECRET_KEY", "django-secret-key"), ("REDIS_URL", "redis-url"))}
    prefix = parameter_name(run.env_name, "")
    pages = run.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=False)
    settings = {p["Name"].removeprefix(prefix): p["Value"] for page in pages for p in page["Parameters"]
                if "/" not in p["Name"].removeprefix(prefix)}  # moto returns deeper levels all the same
    # The local app serves plain HTTP and keeps static files on disk (no S3 behind moto's URLs).
    settings.update(SECURE_SSL_REDIRECT="false", AWS_STORAGE_BUCKET_NAME="", AWS_MEDIA_BUCKET_NAME="")
    from golive.sandbox.data_plane import status

    return {**settings, **values, "DATABASE_URL": status()["postgres_dsn"]}


def wire() -> dict[str, str]:
    """Store the app's secrets in the sandbox's Secrets Manager (the same Secret steps Phase 1 runs, so
    Phase 1 finds them converged) and read the app's environment back from there."""
    from golive import dataplane
    from golive.run import Run
    from golive.resource import ensure
    from tasks.secrets import django_secret_key, redis_url_secret

    run = Run.prepare(ENVIRONMENT, sandbox=True)
    for secret in (django_secret_key(run), redis_url_secret(run, lambda: dataplane.redis_url(run))):
        ensure(secret)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        **app_environment(run),
        # Loopback for people on this machine; the site's names for requests through the sandbox's ALB.
        "ALLOWED_HOSTS": ",".join([HOST, "localhost", *run.environment.certificate_names]),
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
        collect_static_files(environment)
        return super().start()


def collect_static_files(environment: dict[str, str]) -> None:
    """The app's static files in STATIC_ROOT, which whitenoise serves. The real run hashes and compresses
    every file again each time (6.7 s of CPU in 4.2 s of wall on this machine, measured), and the app starts
    for every `sandbox up` and many tests, so it is skipped when Django's own dry run (0.7 s) finds nothing
    new or newer and the rest of what the output is made from is as the last complete run left it: the set
    of source files (a deleted one leaves its entry in the manifest), the app's settings and the versions of
    Django and whitenoise. The stamp that records it is removed before a real run and written after it
    succeeded, so a run that failed or was killed half-way is run again."""
    from importlib.metadata import version

    stamp = Path(environment["STATIC_ROOT"]) / ".golive-collected"

    def collect(*options: str) -> list[str]:
        done = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", *options], cwd=APP_DIR,
                              env={**os.environ, **environment}, check=True, capture_output=True, text=True, timeout=120)
        return done.stdout.strip().splitlines()

    def made_from(dry_run: list[str]) -> str:
        sources = sorted(line for line in dry_run[:-1] if line.startswith(("Skipping ", "Pretending to copy ")))
        settings = [path.read_text() for path in sorted((APP_DIR / "config" / "settings").glob("*.py"))]
        return json.dumps({"sources": sources, "settings": settings,
                           "versions": [version("django"), version("whitenoise")]})

    if stamp.exists():
        dry_run = collect("--dry-run", "-v", "2")
        if dry_run and dry_run[-1].startswith("0 static files copied") and stamp.read_text() == made_from(dry_run):
            return
        stamp.unlink()
    collect()
    stamp.write_text(made_from(collect("--dry-run", "-v", "2")))


APP = App(name="app", marker="golive-sandbox-app", argv=_argv, ready=_answers, cwd=APP_DIR,
          extra=lambda port: {"url": f"http://{HOST}:{port}"})
