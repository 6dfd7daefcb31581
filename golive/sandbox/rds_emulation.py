"""The sandbox's RDS gives its instance a real login: moto 5.2.5 keeps no database behind an instance and
fills the RDS-managed master secret with a fixed {"username": "admin", "password": "P@55w0rd!"}.

Installed in the sandbox's moto process, this module makes the managed secret hold what AWS puts there
(the instance's master username and a generated password), and makes that login real on the sandbox's
PostgreSQL: the master role is created (or its password reset) with the secret's password, and the
instance's database is created for it or handed to it, as RDS does when it creates an instance. The
runbook then logs in as the owner exactly as it would in AWS, by reading the managed secret.

The local server trusts only its own superuser `postgres` on loopback (the sandbox's tooling and app use
it); every other role, the master and the app's own, must give its password (golive/sandbox/data_plane.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import string
import threading

from golive.pgauth import scram_sha256_verifier

log = logging.getLogger("golive.sandbox.rds")
PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#%&()*+,-.:;<=>?[]^_{|}~"


def generated_password(length: int = 32) -> str:
    """Like RDS's: printable, without the characters RDS excludes ('/', '"', '@', space)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def provision_master_login(username: str, password: str, database: str) -> bool:
    """The master role and its database on the sandbox's PostgreSQL. False when PostgreSQL is not up
    (the instance then has no server behind it, as in plain moto; the runbook's login fails, naming it)."""
    import psycopg
    from psycopg import sql

    from golive.sandbox.data_plane import PG_USER, POSTGRES
    from golive.sandbox.services import HOST

    state = POSTGRES.running()
    if state is None:
        log.warning("RDS instance created while the sandbox's PostgreSQL is down: no login for %s", username)
        return False
    admin = f"postgresql://{PG_USER}@{HOST}:{state['port']}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)).fetchone()
        verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
        # RDS's master is no superuser: it owns its database, may create roles and databases.
        connection.execute(sql.SQL("{} {} LOGIN CREATEROLE CREATEDB PASSWORD {}").format(
            verb, sql.Identifier(username), sql.Literal(scram_sha256_verifier(password))))
        if connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
            connection.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(username)))
        else:
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(username)))
    with psycopg.connect(f"postgresql://{PG_USER}@{HOST}:{state['port']}/{database}", autocommit=True) as connection:
        # The schema as a new database has it: owned by whoever owns the database.
        connection.execute("ALTER SCHEMA public OWNER TO pg_database_owner")
    return True


_restoring = threading.local()


def install() -> None:
    from moto.rds.models import MasterUserSecret, RDSBackend

    def _generate_secret_string(self) -> str:
        username = getattr(self.resource, "master_username", None) or "postgres"
        return json.dumps({"username": username, "password": generated_password()})

    MasterUserSecret._generate_secret_string = _generate_secret_string

    original_create = RDSBackend.create_db_instance

    def create_db_instance(self, db_kwargs):
        instance = original_create(self, db_kwargs)
        secret = getattr(instance, "master_user_secret", None)
        if secret is not None and not getattr(instance, "source_db_instance_identifier", None) \
                and not getattr(_restoring, "active", False):
            credentials = json.loads(secret.secret.secret_string)
            provision_master_login(credentials["username"], credentials["password"], instance.db_name or "postgres")
        return instance

    RDSBackend.create_db_instance = create_db_instance

    # A restored copy has no server behind it in the sandbox (one local PostgreSQL serves the source):
    # provisioning its login would reset the source's master password under the source's own secret.
    original_restore = RDSBackend.restore_db_instance_from_db_snapshot

    def restore_db_instance_from_db_snapshot(self, *args, **kwargs):
        _restoring.active = True
        try:
            return original_restore(self, *args, **kwargs)
        finally:
            _restoring.active = False

    RDSBackend.restore_db_instance_from_db_snapshot = restore_db_instance_from_db_snapshot
