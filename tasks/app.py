"""Plan Phase 5, database migration and initial data: Django's own commands, run where the app runs
(golive/dataplane.py), then a great-expectations check of what is in the database.

Each command is idempotent by itself (migrate, the seed, ensure_admin); the Change each step reports is
read from the command's own output, so a second run shows nothing to do.
"""

from __future__ import annotations

import datetime
import re

from prefect import task
from pydantic import BaseModel

from golive import dataplane, integrity
from golive.changes import Action, Change, Record
from golive.integrity import Expect
from golive.resource import ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.secrets import Secret

ADMIN_USERNAME = "admin"
ROLES = ["chief", "district", "senior", "magistrate"]


def _step(run: Run, kind: str, name: str, changed: bool, note: str) -> Change:
    change = Change(action=Action.CREATE if changed else Action.NOOP, kind=kind, name=name, note=note)
    if changed:
        run.report(change)
    return change


@task(**AWS_STEP)
def run_migrations(run: Run) -> Record:
    """python manage.py migrate: the schema, and the indexes the migrations declare."""
    if not run.applying:
        plan = dataplane.run_manage(run, "migrate", "--plan")
        pending = re.findall(r"^\s*(\w+\.\d{4}_\w+)\s*$", plan, re.M)
        change = _step(run, "django-migrations", "migrate", bool(pending), f"{len(pending)} to apply")
        return Record(name="migrate", change=change)
    output = dataplane.run_manage(run, "migrate", "--noinput")
    # Proof, not assumption: --check exits non-zero (and run_manage raises) if anything is unapplied.
    dataplane.run_manage(run, "migrate", "--check")
    applied = re.findall(r"Applying (\S+)\.\.\. OK", output)
    change = _step(run, "django-migrations", "migrate", bool(applied),
                   f"applied {len(applied)}: {', '.join(applied[:6])}{' ...' if len(applied) > 6 else ''}"
                   if applied else "no migrations to apply")
    return Record(name="migrate", change=change)


@task(**AWS_STEP)
def create_cache_table(run: Run, migrations: Record) -> Record:
    """python manage.py createcachetable, as the plan lists (a no-op while the cache is Redis)."""
    if run.applying:
        dataplane.run_manage(run, "createcachetable")
    change = Change(action=Action.NOOP, kind="django-cache-table", name="createcachetable",
                    note="no database cache configured; the cache is Redis")
    return Record(name="createcachetable", change=change)


@task(**AWS_STEP)
def load_initial_data(run: Run, migrations: Record, cases: int = 500) -> Record:
    """python manage.py seed_ilnd_data: the Northern District of Illinois, its judges, sample cases."""
    # Plan runs the same command with --check: it computes what is missing, then rolls back.
    check = [] if run.applying else ["--check"]
    output = dataplane.run_manage(run, "seed_ilnd_data", "--cases", str(cases), *check)
    added = sum(int(n) for n in re.findall(r"(\d+) added", output)) + ("court: created" in output)
    change = _step(run, "initial-data", "seed_ilnd_data", added > 0, output.strip())
    return Record(name="seed_ilnd_data", change=change)


class AdminRecord(Record):
    username: str
    password_secret: str  # where the password is; never the password


@task(**AWS_STEP)
def ensure_admin_user(run: Run, migrations: Record) -> AdminRecord:
    """The admin user, its password generated into Secrets Manager and handed to the command's
    environment only (never an argument, a log line or a return value)."""
    secret = Secret(run, "django-admin-password", "Django admin password for Precedentum", generate_length=32)
    ensure(secret)
    if not run.applying:
        output = dataplane.run_manage(run, "ensure_admin", "--username", ADMIN_USERNAME, "--check")
        change = _step(run, "admin-user", ADMIN_USERNAME, "absent" in output, output.strip())
        return AdminRecord(name=ADMIN_USERNAME, change=change, username=ADMIN_USERNAME, password_secret=secret.secret_id)
    password = run.client("secretsmanager").get_secret_value(SecretId=secret.secret_id)["SecretString"]
    output = dataplane.run_manage(run, "ensure_admin", "--username", ADMIN_USERNAME,
                                  "--email", run.environment.alerts_email,
                                  secret_env={"DJANGO_SUPERUSER_PASSWORD": password})
    change = _step(run, "admin-user", ADMIN_USERNAME, "created" in output, output.strip())
    return AdminRecord(name=ADMIN_USERNAME, change=change, username=ADMIN_USERNAME, password_secret=secret.secret_id)


class IntegrityReport(BaseModel):
    success: bool
    outcomes: list[dict]

    def failures(self) -> list[dict]:
        return [o for o in self.outcomes if not o["success"]]


def precedentum_expectations(database_url: str) -> list[Expect]:
    """Row counts, unique and not-null keys, references, value ranges: what the loaded data must satisfy.
    Reference sets are read from the database itself (ids of courts and judges)."""
    import psycopg

    with psycopg.connect(database_url) as connection:
        court_ids = [r[0] for r in connection.execute("SELECT id FROM courts_court")]
        judge_ids = [r[0] for r in connection.execute("SELECT id FROM courts_judge")]
    today = datetime.date.today().isoformat()
    return [
        Expect("courts_court", "ExpectTableRowCountToBeBetween", {"min_value": 1}),
        Expect("courts_court", "ExpectColumnValuesToBeUnique", {"column": "slug"}),
        Expect("courts_court", "ExpectColumnValuesToNotBeNull", {"column": "name"}),
        Expect("courts_judge", "ExpectTableRowCountToBeBetween", {"min_value": 1}),
        Expect("courts_judge", "ExpectCompoundColumnsToBeUnique", {"column_list": ["court_id", "name"]}),
        Expect("courts_judge", "ExpectColumnValuesToNotBeNull", {"column": "name"}),
        Expect("courts_judge", "ExpectColumnValuesToBeInSet", {"column": "role", "value_set": ROLES}),
        Expect("courts_judge", "ExpectColumnValuesToBeInSet", {"column": "court_id", "value_set": court_ids}),
        Expect("courts_case", "ExpectTableRowCountToBeBetween", {"min_value": 1}),
        Expect("courts_case", "ExpectColumnValuesToBeUnique", {"column": "number"}),
        Expect("courts_case", "ExpectColumnValuesToNotBeNull", {"column": "number"}),
        Expect("courts_case", "ExpectColumnValuesToBeInSet", {"column": "judge_id", "value_set": judge_ids}),
        Expect("courts_case", "ExpectColumnValuesToBeInSet", {"column": "court_id", "value_set": court_ids}),
        Expect("courts_case", "ExpectColumnValuesToBeBetween",
               {"column": "filed_on", "min_value": "1990-01-01", "max_value": today}),
        Expect("courts_case", "ExpectColumnValuesToBeInSet", {"column": "status", "value_set": ["open", "closed"]}),
    ]


@task(**AWS_STEP)
def verify_data_integrity(run: Run, seeded: Record, admin: AdminRecord) -> IntegrityReport:
    """great-expectations over the loaded tables. In AWS this task runs inside the VPC (the ECS work pool)."""
    if not run.applying:
        return IntegrityReport(success=True, outcomes=[])
    database_url = dataplane.app_environment(run)["DATABASE_URL"]
    outcomes = integrity.validate(database_url, precedentum_expectations(database_url))
    return IntegrityReport(success=all(o.success for o in outcomes),
                           outcomes=[o.__dict__ for o in outcomes])

