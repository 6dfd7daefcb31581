"""The app's own database role: it logs in with the password in its secret (Phase 1 generated it) and may
read and write the app's tables, nothing more; migrations run as the database's owner (the RDS-managed
master login). Rotating the app's password is a new secret value plus ALTER ROLE, which this step does when
the role cannot log in with what its secret says: a new task resolves the secret when it starts.

Discovered, diffed and applied like every resource (golive/resource.py), over SQL as the owner, from where
the runbook runs (inside the VPC on the ECS work pool in AWS; loopback in the sandbox). The password is
sent as a SCRAM verifier (golive/pgauth.py), never as text a statement log could keep.
"""

from __future__ import annotations

from typing import Any

import psycopg
from prefect import task
from psycopg import sql

from golive import dataplane
from golive.changes import Record
from golive.pgauth import scram_sha256_verifier
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run

DML = "SELECT, INSERT, UPDATE, DELETE"
CONNECT_TIMEOUT_SECONDS = 10


class AppDatabaseRole(Resource):
    kind = "database-role"

    def __init__(self, run: Run, component: str = "app-role"):
        super().__init__(run, component)
        self.name = dataplane.app_database_role(run)

    def desired(self) -> dict[str, Any]:
        return {"logs_in_with_its_secret": True, "dml_on_every_table": True, "dml_on_future_tables": True}

    def _owner(self) -> psycopg.Connection:
        return psycopg.connect(dataplane.owner_url(self.run), connect_timeout=CONNECT_TIMEOUT_SECONDS, autocommit=True)

    def _logs_in(self) -> bool:
        login = dataplane.app_login(self.run)
        if login is None:
            return False
        try:
            with psycopg.connect(dataplane.app_url(self.run), connect_timeout=CONNECT_TIMEOUT_SECONDS):
                return True
        except psycopg.OperationalError:
            return False

    def discover(self) -> Found | None:
        try:
            connection = self._owner()
        except (dataplane.DatabaseUnreachable, psycopg.OperationalError):
            if self.run.applying:
                raise  # apply needs the database; plan shows the role as to be created
            return None
        with connection:
            if not connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.name,)).fetchone():
                return None
            owner = connection.execute("SELECT current_user").fetchone()[0]
            lacking = connection.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND NOT "
                "has_table_privilege(%s, format('%%I.%%I', schemaname, tablename), %s)",
                (self.name, DML)).fetchone()[0]
            defaults = connection.execute(
                "SELECT count(*) FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace "
                "WHERE n.nspname = 'public' AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = %s) "
                "AND d.defaclobjtype = 'r' AND array_to_string(d.defaclacl, ',') LIKE %s",
                (owner, f"%{self.name}=arwd%")).fetchone()[0]
        return Found(id=self.name, component=self.component, raw={"owner": owner, "tables_lacking_dml": lacking},
                     state={"logs_in_with_its_secret": self._logs_in(), "dml_on_every_table": lacking == 0,
                            "dml_on_future_tables": defaults > 0})

    def _grant(self, connection: psycopg.Connection) -> None:
        role = sql.Identifier(self.name)
        owner = sql.Identifier(connection.execute("SELECT current_user").fetchone()[0])
        database = sql.Identifier(connection.execute("SELECT current_database()").fetchone()[0])
        for statement in (
            "GRANT CONNECT ON DATABASE {database} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            f"GRANT {DML} ON ALL TABLES IN SCHEMA public TO {{role}}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
            # Tables the owner's migrations create later are granted as they appear.
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {{owner}} IN SCHEMA public GRANT {DML} ON TABLES TO {{role}}",
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
        ):
            connection.execute(sql.SQL(statement).format(role=role, owner=owner, database=database))

    def _password(self, connection: psycopg.Connection, verb: str) -> None:
        login = dataplane.app_login(self.run)
        if login is None:
            raise dataplane.DatabaseUnreachable("the app's database login secret does not exist: apply Phase 1 first")
        connection.execute(sql.SQL("{} {} LOGIN PASSWORD {}").format(
            sql.SQL(verb), sql.Identifier(self.name), sql.Literal(scram_sha256_verifier(login["password"]))))

    def create(self) -> str:
        with self._owner() as connection:
            self._password(connection, "CREATE ROLE")
            self._grant(connection)
        return self.name

    def update(self, found: Found, changes) -> None:
        with self._owner() as connection:
            if "logs_in_with_its_secret" in changes:
                self._password(connection, "ALTER ROLE")  # the secret was rotated (or the role changed by hand)
            self._grant(connection)

    def delete(self, found: Found) -> None:
        with self._owner() as connection:
            role = sql.Identifier(self.name)
            connection.execute(sql.SQL("DROP OWNED BY {}").format(role))
            connection.execute(sql.SQL("DROP ROLE {}").format(role))


@task(**AWS_STEP)
def ensure_app_database_role(run: Run) -> Record:
    """The app's database role: logs in with its secret's password, DML on every table, now and later."""
    role = AppDatabaseRole(run)
    outcome = ensure(role)
    return Record(name=role.name, id=outcome.id, change=outcome.change)
