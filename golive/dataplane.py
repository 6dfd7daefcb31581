"""Where the application's data lives, two ways (DESIGN.md, "Data plane, two ways").

aws: the RDS instance and the ElastiCache replication group Phase 1 made.
sandbox: the real PostgreSQL and Redis `golive sandbox up` runs on 127.0.0.1; moto's RDS and ElastiCache
have no server behind their endpoints.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlparse

from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.changes import KNOWN_AFTER_APPLY
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


class DatabaseLocation(BaseModel):
    host: str | None  # None while the database does not exist yet (plan mode)
    port: int | None
    sslmode: str  # RDS forces TLS (the parameter group); the sandbox's PostgreSQL serves loopback only


def database_location(run: Run, endpoint: str | None = None, port: int | None = None) -> DatabaseLocation:
    """Where the database answers: the RDS endpoint in AWS; in the sandbox, the local PostgreSQL that the
    sandbox's RDS provisioned the instance's login on (moto's endpoint names no server)."""
    if run.target.is_sandbox:
        local = urlparse(_local()["postgres_dsn"])
        return DatabaseLocation(host=local.hostname, port=local.port, sslmode="disable")
    return DatabaseLocation(host=endpoint, port=port, sslmode="require")


def app_database_role(run: Run) -> str:
    """The role the app logs in as (DML on its tables); migrations run as the database's owner."""
    return f"{run.environment.database.database_name}_app"


class DatabaseUnreachable(RuntimeError):
    pass


def _url(run: Run, login: dict, database: str | None = None) -> str:
    """A connection URL from the DB_* parameters Phase 1 stored and a login; TLS required in AWS."""
    from golive.naming import parameter_name

    ssm = run.client("ssm")
    names = [parameter_name(run.env_name, key) for key in ("DB_HOST", "DB_PORT", "DB_NAME", "DB_SSLMODE")]
    found = {p["Name"]: p["Value"] for p in ssm.get_parameters(Names=names)["Parameters"]}
    host, port, name, sslmode = (found.get(n) for n in names)
    if not host or host == KNOWN_AFTER_APPLY:
        raise DatabaseUnreachable(f"{names[0]} is not set: apply Phase 1 (infrastructure) first")
    return (f"postgresql://{quote(login['username'], safe='')}:{quote(login['password'], safe='')}"
            f"@{host}:{port}/{database or name}?sslmode={sslmode or 'require'}")


def master_secret_arn(run: Run) -> str | None:
    """The RDS-managed master secret's ARN (RDS names it), or None without an instance."""
    from tasks.database import DbInstance

    found = DbInstance(run).discover()
    return ((found.raw if found else {}).get("MasterUserSecret") or {}).get("SecretArn")


def owner_login(run: Run) -> dict | None:
    """The RDS-managed master login (read when needed: RDS rotates it), or None without an instance."""
    arn = master_secret_arn(run)
    if not arn:
        return None
    return json.loads(run.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"])


def owner_url(run: Run) -> str:
    """The database as its owner: for reads that check the data (integrity, backups) and the app's role."""
    login = owner_login(run)
    if login is None:
        raise DatabaseUnreachable(f"no RDS instance with a managed master secret for {run.env_name}: apply Phase 1 first")
    return _url(run, login)


def app_login(run: Run) -> dict | None:
    """The app's own login from its secret (Phase 1), or None while it does not exist."""
    from golive.naming import secret_name

    secrets = run.client("secretsmanager")
    try:
        value = secrets.get_secret_value(SecretId=secret_name(run.env_name, "database-login"))["SecretString"]
    except aws_error("ResourceNotFoundException"):
        return None
    return json.loads(value)


def app_url(run: Run) -> str:
    login = app_login(run)
    if login is None:
        raise DatabaseUnreachable(f"the app's database login secret does not exist for {run.env_name}: apply Phase 1 first")
    return _url(run, login)


def redis_url(run: Run, primary_endpoint: str | None = None, port: int | None = None) -> str | None:
    """The app's REDIS_URL: TLS to the primary endpoint in AWS, the local server in the sandbox."""
    if run.target.is_sandbox:
        return _local()["redis_url"]
    return f"rediss://{primary_endpoint}:{port}/0" if primary_endpoint else None


class CommandFailed(RuntimeError):
    pass


def run_manage_here(run: Run, *args: str, environment: dict[str, str]) -> str:
    """`manage.py ARGS` as a process on the runbook's machine, with the given environment on top of ours.
    Only for commands that need AWS APIs alone (collectstatic to S3), which the runbook reaches in either
    target; anything that needs the database runs as a one-off ECS task (tasks/one_off.py)."""
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
