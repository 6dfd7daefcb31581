"""Where the application's data lives, two ways (DESIGN.md, "Data plane, two ways").

aws: the RDS instance and the ElastiCache replication group Phase 1 made.
sandbox: the real PostgreSQL and Redis `golive sandbox up` runs on 127.0.0.1; moto's RDS and ElastiCache
have no server behind their endpoints.
"""

from __future__ import annotations

import json
from urllib.parse import quote

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


def database_url(run: Run, endpoint: str | None, port: int | None, database: str,
                 master_secret_arn: str | None) -> str | None:
    """The app's DATABASE_URL; None while the database does not exist yet (plan mode)."""
    if run.target.is_sandbox:
        return _local()["postgres_dsn"]
    if not (endpoint and master_secret_arn):
        return None
    secret = json.loads(run.client("secretsmanager").get_secret_value(SecretId=master_secret_arn)["SecretString"])
    return (f"postgresql://{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
            f"@{endpoint}:{port}/{database}?sslmode=require")


def redis_url(run: Run, primary_endpoint: str | None, port: int | None) -> str | None:
    """The app's REDIS_URL: TLS to the primary endpoint in AWS, the local server in the sandbox."""
    if run.target.is_sandbox:
        return _local()["redis_url"]
    return f"rediss://{primary_endpoint}:{port}/0" if primary_endpoint else None
