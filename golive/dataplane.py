"""Where the application's data lives, two ways (DESIGN.md, "Data plane, two ways").

aws: the RDS instance and the ElastiCache replication group Phase 1 made.
sandbox: the real PostgreSQL and Redis `golive sandbox up` runs on 127.0.0.1; moto's RDS and ElastiCache
have no server behind their endpoints.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from pydantic import BaseModel

from golive.run import Run


class DataPlaneNotRunning(RuntimeError):
    pass


def _local() -> dict:
    from golive.sandbox import data_plane

    state = data_plane.status()
    if not (state["postgres_dsn"] and state["redis_url"]):
        raise DataPlaneNotRunning("the sandbox's PostgreSQL and Redis are not running: start them with "
                                  "`golive sandbox up`")
    return state


def database_url(run: Run, endpoint: str | None = None, port: int | None = None, database: str = "",
                 master_secret_arn: str | None = None) -> str | None:
    """The app's DATABASE_URL; None while the database does not exist yet (plan mode)."""
    if run.target.is_sandbox:
        return _local()["postgres_dsn"]
    if not (endpoint and master_secret_arn):
        return None
    secret = json.loads(run.client("secretsmanager").get_secret_value(SecretId=master_secret_arn)["SecretString"])
    return (f"postgresql://{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
            f"@{endpoint}:{port}/{database}?sslmode=require")


def redis_url(run: Run, primary_endpoint: str | None = None, port: int | None = None) -> str | None:
    """The app's REDIS_URL: TLS to the primary endpoint in AWS, the local server in the sandbox."""
    if run.target.is_sandbox:
        return _local()["redis_url"]
    return f"rediss://{primary_endpoint}:{port}/0" if primary_endpoint else None


class CommandFailed(RuntimeError):
    pass


def app_environment(run: Run) -> dict[str, str]:
    """The app's environment as ECS hands it over: secrets from Secrets Manager, settings from SSM.
    For the one-off commands of Phase 5; the values stay in this process and the child's environment."""
    from golive.naming import parameter_name, secret_name

    secrets = run.client("secretsmanager")
    values = {
        variable: secrets.get_secret_value(SecretId=secret_name(run.env_name, name))["SecretString"]
        for variable, name in (("SECRET_KEY", "django-secret-key"), ("DATABASE_URL", "database-url"),
                               ("REDIS_URL", "redis-url"))
    }
    prefix = parameter_name(run.env_name, "")
    # One level: the release state below it (release/image-tag) is not an app setting.
    pages = run.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=prefix, Recursive=False)
    settings = {p["Name"].removeprefix(prefix): p["Value"] for page in pages for p in page["Parameters"]
                if "/" not in p["Name"].removeprefix(prefix)}  # moto returns deeper levels all the same
    if run.target.is_sandbox:
        # The local app serves plain HTTP and keeps static files on disk (no S3 behind moto's URLs).
        settings.update(SECURE_SSL_REDIRECT="false", AWS_STORAGE_BUCKET_NAME="", AWS_MEDIA_BUCKET_NAME="")
    return {**settings, **values}


def run_manage(run: Run, *args: str, secret_env: dict[str, str] | None = None) -> str:
    """Run `manage.py ARGS` where the app runs: a local process in the sandbox; in AWS, a one-off ECS
    task on the backend task definition (Phase 3), inside the VPC. Returns its output; raises on failure
    with the output's tail (which never contains the secret_env values: they are not echoed)."""
    if not run.target.is_sandbox:
        raise CommandFailed(
            f"manage.py {' '.join(args)}: in AWS this runs as a one-off ECS task on the backend task definition; "
            "that path is not automated yet (moto answers RunTask with HTTP 500, so it could not be tested here).")
    return run_manage_here(run, *args, environment={**app_environment(run), **(secret_env or {})})


def run_manage_here(run: Run, *args: str, environment: dict[str, str]) -> str:
    """`manage.py ARGS` as a process on this machine, with the given environment on top of ours. For
    commands that need only AWS APIs (collectstatic to S3), which the runner reaches in either target."""
    import os
    import subprocess
    import sys

    from golive.sandbox.app import APP_DIR

    app_dir = run.environment.app.directory if run.environment.app.directory.exists() else APP_DIR
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=app_dir, env={**os.environ, **environment},
                          capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise CommandFailed(f"manage.py {' '.join(args)} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


class Endpoint(BaseModel):
    """Where users reach the app, and the headers a request needs to look like theirs."""

    url: str  # no trailing slash
    headers: dict[str, str] = {}
    via: str  # what answers: "CloudFront" or "the sandbox's local app"


def public_endpoint(run: Run) -> Endpoint:
    """https://<domain> in AWS. In the sandbox the local app under gunicorn stands in for CloudFront and
    the ALB (moto serves no traffic); requests carry the X-Forwarded-Proto header the ALB would add, so
    Django's HTTPS redirect and secure cookies behave as behind the load balancer."""
    if not run.target.is_sandbox:
        return Endpoint(url=f"https://{run.environment.domain}", via="CloudFront")
    url = _local().get("app_url")
    if not url:
        raise DataPlaneNotRunning("the sandbox's app is not running: start it with `golive sandbox up`")
    return Endpoint(url=url.rstrip("/"), headers={"X-Forwarded-Proto": "https"}, via="the sandbox's local app")
