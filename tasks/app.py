"""Plan Phase 5, database migration and initial data: Django's own commands run as one-off ECS tasks on the
backend's image (tasks/one_off.py), then a great-expectations check of what is in the database.

Discover, diff, then change, as every step: what the database holds is read over SQL as its owner (the
runbook reaches it from inside the VPC in AWS; on loopback in the sandbox), and which image last migrated
and seeded it is kept in Parameter Store (`data/migrated-image`, `data/seeded-image`). A task runs only when
something is to do: the image changed since the last migration, or rows are missing. So a converged run
starts no task and writes nothing, and plan says what would run without running it.
"""

from __future__ import annotations

import datetime
import re

import psycopg
from prefect import task
from pydantic import BaseModel

from golive import dataplane, integrity
from golive.changes import Action, Change, Record
from golive.integrity import Expect
from golive.resource import ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.compute import ADMIN_PASSWORD_SECRET
from tasks.one_off import OneOffTask, Placement, run_one_off
from tasks.secrets import Parameter, Secret

ADMIN_USERNAME = "admin"
ROLES = ["chief", "district", "senior", "magistrate"]
MIGRATED_PARAMETER = "data/migrated-image"
SEEDED_PARAMETER = "data/seeded-image"


class DataState(BaseModel):
    """What the database holds, read with the owner's login; reachable=False before Phase 1 made it."""

    reachable: bool
    why_unreachable: str = ""
    migrations_applied: int = 0
    courts: int = 0
    judges: int = 0
    cases: int = 0
    admin: bool = False

    def describe(self) -> str:
        if not self.reachable:
            return f"database not reachable yet ({self.why_unreachable})"
        return (f"{self.migrations_applied} migrations applied; {self.courts} court, {self.judges} judges, "
                f"{self.cases} cases; admin user {'present' if self.admin else 'absent'}")


def _count(connection: psycopg.Connection, table: str, where: str = "") -> int:
    if connection.execute("SELECT to_regclass(%s)", (f"public.{table}",)).fetchone()[0] is None:
        return 0
    return connection.execute(f"SELECT count(*) FROM public.{table} {where}").fetchone()[0]


@task(**AWS_STEP)
def read_data_state(run: Run) -> DataState:
    """Read what the database holds (schema, rows, the admin user): no write, no task."""
    try:
        url = dataplane.owner_url(run)
        with psycopg.connect(url, connect_timeout=10) as connection:
            admin = (_count(connection, "auth_user", f"WHERE username = '{ADMIN_USERNAME}' AND is_superuser") > 0)
            return DataState(reachable=True, migrations_applied=_count(connection, "django_migrations"),
                             courts=_count(connection, "courts_court"), judges=_count(connection, "courts_judge"),
                             cases=_count(connection, "courts_case"), admin=admin)
    except (dataplane.DatabaseUnreachable, psycopg.OperationalError) as error:
        if run.applying:
            raise
        return DataState(reachable=False, why_unreachable=str(error).splitlines()[0])


class StepRecord(Record):
    tasks: list[OneOffTask] = []  # the one-off tasks this step ran (none when nothing was to do)


def _step(run: Run, kind: str, name: str, changed: bool, note: str, tasks: list[OneOffTask] = ()) -> StepRecord:
    change = Change(action=Action.CREATE if changed else Action.NOOP, kind=kind, name=name, note=note)
    if changed:
        run.report(change)
    return StepRecord(name=name, change=change, tasks=list(tasks))


def _marker(run: Run, component: str) -> str | None:
    found = Parameter(run, component).discover()
    return found.state["value"] if found else None


def _record_marker(run: Run, component: str, value: str) -> None:
    ensure(Parameter(run, component, value))


@task(**AWS_STEP)
def ensure_admin_password(run: Run) -> Record:
    """The admin user's password, generated once into Secrets Manager: the one-off tasks resolve it."""
    secret = Secret(run, ADMIN_PASSWORD_SECRET, "Django admin password for Precedentum", generate_length=32)
    outcome = ensure(secret)
    return Record(name=secret.secret_id, id=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def run_migrations(run: Run, placement: Placement, image: str, state: DataState) -> StepRecord:
    """python manage.py migrate: when the image changed since the last migration the check confirmed
    (check_migrations records it), or the schema is not there."""
    migrated = _marker(run, MIGRATED_PARAMETER)
    if migrated == image and state.migrations_applied > 0:
        return _step(run, "django-migrations", "migrate", False,
                     f"{state.migrations_applied} migrations applied by {image}")
    why = "the database has no schema yet" if not state.migrations_applied else f"the image changed (was {migrated})"
    if not run.applying:
        return _step(run, "django-migrations", "migrate", True,
                     f"would run `manage.py migrate` then `migrate --check` as ECS tasks from {image}: {why}; "
                     f"{state.migrations_applied} applied so far")
    applied_task = run_one_off(run, placement, ["python", "manage.py", "migrate", "--noinput"], "migrate")
    applied = re.findall(r"Applying (\S+)\.\.\. OK", applied_task.text)
    listing = f"applied {len(applied)}: {', '.join(applied[:6])}{' ...' if len(applied) > 6 else ''}" if applied \
        else "no migrations to apply"
    return _step(run, "django-migrations", "migrate", True, f"{listing} ({applied_task.headline()})", [applied_task])


@task(**AWS_STEP)
def check_migrations(run: Run, placement: Placement, image: str, migrations: StepRecord) -> StepRecord:
    """python manage.py migrate --check after a migration (it exits non-zero if anything is left
    unapplied), beside the other one-off tasks that follow the migration (in AWS each task is a minute
    of Fargate start-up). They run on the schema `migrate` just reported applied; should the check still
    find something unapplied, it fails the phase (or the release, before anything rolls). Only then is the
    image recorded as migrated: a failed check migrates and checks again on the next run, instead of
    being skipped as done."""
    if not migrations.change.is_change:
        return _step(run, "django-migrations-check", "migrate --check", False, "schema unchanged")
    if not run.applying:
        return _step(run, "django-migrations-check", "migrate --check", False,
                     "would run `manage.py migrate --check` as an ECS task after the migration")
    checked = run_one_off(run, placement, ["python", "manage.py", "migrate", "--check"], "migrate-check")
    _record_marker(run, MIGRATED_PARAMETER, image)
    return _step(run, "django-migrations-check", "migrate --check", False,
                 f"nothing unapplied ({checked.headline()})", [checked])


@task(**AWS_STEP)
def create_cache_table(run: Run, placement: Placement, migrations: StepRecord) -> StepRecord:
    """python manage.py createcachetable, as the plan lists, whenever the schema was just migrated (a
    no-op while the cache is Redis; it would make the table of a database cache)."""
    if not migrations.change.is_change:
        return _step(run, "django-cache-table", "createcachetable", False, "schema unchanged; the cache is Redis")
    if not run.applying:
        return _step(run, "django-cache-table", "createcachetable", True, "would run `manage.py createcachetable` as an ECS task")
    created = run_one_off(run, placement, ["python", "manage.py", "createcachetable"], "createcachetable")
    return StepRecord(name="createcachetable", tasks=[created],
                      change=Change(action=Action.NOOP, kind="django-cache-table", name="createcachetable",
                                    note=f"no database cache configured; the cache is Redis ({created.headline()})"))


@task(**AWS_STEP)
def load_initial_data(run: Run, placement: Placement, migrations: StepRecord, image: str, state: DataState,
                      cases: int = 500) -> StepRecord:
    """python manage.py seed_ilnd_data: the Northern District of Illinois, its judges, sample cases. Runs
    when rows are missing or the image changed since the last seed (its data may have)."""
    seeded = _marker(run, SEEDED_PARAMETER)
    complete = state.courts >= 1 and state.judges >= 1 and state.cases >= cases
    if complete and seeded == image:
        return _step(run, "initial-data", "seed_ilnd_data", False,
                     f"{state.courts} court, {state.judges} judges, {state.cases} cases present")
    if not run.applying:
        return _step(run, "initial-data", "seed_ilnd_data", True,
                     f"would run `manage.py seed_ilnd_data --cases {cases}` as an ECS task: "
                     f"{state.courts} court, {state.judges} judges, {state.cases} of {cases} cases present")
    loaded = run_one_off(run, placement, ["python", "manage.py", "seed_ilnd_data", "--cases", str(cases)], "seed")
    _record_marker(run, SEEDED_PARAMETER, image)
    summary = loaded.output[-1] if loaded.output else "(no output)"
    added = sum(int(n) for n in re.findall(r"(\d+) added", summary)) + ("court: created" in summary)
    return _step(run, "initial-data", "seed_ilnd_data", added > 0, f"{summary} ({loaded.headline()})", [loaded])


class AdminRecord(StepRecord):
    username: str
    password_secret: str  # where the password is; never the password


@task(**AWS_STEP)
def ensure_admin_user(run: Run, placement: Placement, migrations: StepRecord, state: DataState,
                      password: Record) -> AdminRecord:
    """The admin user, its password resolved by the task from Secrets Manager (never an argument, an
    override, a log line or a return value)."""
    secret = password.name
    if state.admin:
        step = _step(run, "admin-user", ADMIN_USERNAME, False, f"admin {ADMIN_USERNAME}: present")
    elif not run.applying:
        step = _step(run, "admin-user", ADMIN_USERNAME, True,
                     f"would run `manage.py ensure_admin --username {ADMIN_USERNAME}` as an ECS task")
    else:
        made = run_one_off(run, placement, ["python", "manage.py", "ensure_admin", "--username", ADMIN_USERNAME,
                                            "--email", run.environment.alerts_email], "admin")
        summary = made.output[-1] if made.output else "(no output)"
        step = _step(run, "admin-user", ADMIN_USERNAME, "created" in summary, f"{summary} ({made.headline()})", [made])
    return AdminRecord(**step.model_dump(), username=ADMIN_USERNAME, password_secret=secret)


class IntegrityReport(BaseModel):
    success: bool | None  # None: not run (plan mode)
    outcomes: list[dict]

    def failures(self) -> list[dict]:
        return [o for o in self.outcomes if not o["success"]]


def precedentum_expectations(database_url: str) -> list[Expect]:
    """Row counts, unique and not-null keys, references, value ranges: what the loaded data must satisfy.
    Reference sets are read from the database itself (ids of courts and judges)."""
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
def verify_data_integrity(run: Run, seeded: StepRecord, admin: AdminRecord) -> IntegrityReport:
    """great-expectations over the loaded tables, read as the owner from where the runbook runs."""
    if not run.applying:
        return IntegrityReport(success=None, outcomes=[])
    database_url = dataplane.owner_url(run)
    outcomes = integrity.validate(database_url, precedentum_expectations(database_url))
    return IntegrityReport(success=all(o.success for o in outcomes),
                           outcomes=[o.__dict__ for o in outcomes])
