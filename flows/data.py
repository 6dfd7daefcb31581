"""Phase 5 of the deployment plan: database migration and initial data.

5.1 the app's own database role, migrations and createcachetable; 5.2 the initial data set and the admin
user; then a data-integrity check with great-expectations, published as an artifact. Every `manage.py`
command is a one-off ECS task of the backend's image (the `manage` task definition: the owner's login),
in the private subnets with the backend's security group: in AWS and in the sandbox alike, whose ECS
runs it for real. Needs Phase 1 (network, database, secrets) and Phase 2 (the image); Phase 3's services
start after it, so they never serve before the schema and their login exist.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from golive import dataplane, integrity
from golive.report import PhaseResult, artifact_key, deliverable, finish_phase
from golive.run import Mode, Run
from tasks.app import (AdminRecord, DataState, IntegrityReport, StepRecord, check_migrations, create_cache_table,
                       ensure_admin_password, ensure_admin_user, load_initial_data, read_data_state, run_migrations,
                       verify_data_integrity)
from tasks.compute import ONE_OFF, current_release_tag, ensure_cluster, ensure_task_definition
from tasks.database_role import ensure_app_database_role
from tasks.foundation import read_foundation
from tasks.one_off import Placement
from tasks.registry import read_image


class IntegrityFailed(RuntimeError):
    pass


@flow(name="phase-5-data")
def data(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
         allow_replace: bool = False, cases: int = 500) -> PhaseResult:
    """Create the app's role, migrate, load the initial data, create the admin user, prove the data is sound."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    if run.applying:
        integrity.preload()  # its process starts now, ready by the time the data is
    role = ensure_app_database_role.submit(run)
    state = read_data_state.submit(run)
    one_offs = prepare_one_off_tasks(run, current_release_tag(run))
    placement, image_ref, cluster, definition, password = (one_offs[k] for k in (
        "placement", "image", "cluster", "task_definition", "admin_password"))
    migrations = run_migrations(run, placement, image_ref, state.result(), wait_for=[role])
    # What follows the migration runs at once, its check included (each an ECS task: a minute in AWS).
    checked = check_migrations.submit(run, placement, image_ref, migrations)
    cache_table = create_cache_table.submit(run, placement, migrations)
    seeded = load_initial_data.submit(run, placement, migrations, image_ref, state.result(), cases)
    admin = ensure_admin_user.submit(run, placement, migrations, state.result(), password)
    report = verify_data_integrity(run, seeded, admin)
    after = read_data_state(run) if run.applying else state.result()

    outputs = {"cluster": cluster, "admin_password": password, "role": role.result(),
               "task_definition": definition, "migrations": migrations, "migrations_check": checked.result(),
               "cache_table": cache_table.result(),
               "initial_data": seeded.result(), "admin": admin.result(), "integrity": report, "state": after}
    if report.outcomes:
        failures = report.failures()
        create_table_artifact(key=artifact_key(run.env_name, "phase-5-data", "integrity"), table=report.outcomes,
                              description=f"great-expectations on {run.env_name}: "
                              f"{'all met' if report.success else f'{len(failures)} failed'}")
        if failures:
            raise IntegrityFailed("data integrity check failed: " + "; ".join(
                f"{f['table']}: {f['expectation']} ({f['observed']})" for f in failures))
    return finish_phase(run, "phase-5-data", outputs, data_deliverables(run, outputs))


def prepare_one_off_tasks(run: Run, tag: str) -> dict:
    """What one-off tasks need, for Phase 5 and for a release: the cluster, the admin password, and the
    `manage` task definition on the tag's backend image with the owner's login; where they run (the private
    subnets, the backend's security group); and the image's reference by digest (what migrated)."""
    base = read_foundation(run)
    cluster = ensure_cluster.submit(run)
    image = read_image.submit(run, "backend", tag)
    password = ensure_admin_password.submit(run)
    definition = ensure_task_definition.submit(run, ONE_OFF, image, base.roles, dataplane.master_secret_arn(run),
                                               wait_for=[password])
    placement = Placement(cluster=cluster.result().name, task_definition=definition.result().id, container=ONE_OFF,
                          subnets=sorted(s.id for s in base.private_subnets if s.id),
                          security_group=base.security_groups["backend"].id)
    record = image.result()
    return {"placement": placement, "image": f"{record.uri}@{record.digest}" if record.digest else record.uri,
            "cluster": cluster.result(), "task_definition": definition.result(), "admin_password": password.result()}


def _tasks_evidence(*steps: StepRecord) -> str:
    ran = [task for step in steps for task in step.tasks]
    return f"; ran as ECS tasks: {', '.join(t.headline() for t in ran)}" if ran else "; no ECS task needed"


def data_deliverables(run: Run, outputs: dict) -> list:
    """Evidence read back, not assumed: the migration check's exit, the rows as the database holds them,
    the admin user as the database holds it, and the expectations' outcomes."""
    planned = not run.applying
    state: DataState = outputs["state"]
    migrations: StepRecord = outputs["migrations"]
    check: StepRecord = outputs["migrations_check"]
    seeded: StepRecord = outputs["initial_data"]
    admin: AdminRecord = outputs["admin"]
    report: IntegrityReport = outputs["integrity"]
    failures = report.failures()
    checked = check.tasks
    return [
        deliverable("5.1", "App's own database role (DML only; the password in its secret, resolved at task start)",
                    bool(outputs["role"].id), f"role {outputs['role'].name}", planned=planned),
        deliverable("5.1", "Database schema created, all migrations applied",
                    state.migrations_applied > 0 and (not migrations.tasks or bool(checked and checked[0].exit_code == 0)),
                    f"{state.migrations_applied} rows in django_migrations; "
                    + (f"migrate --check exit {checked[0].exit_code}" if checked else migrations.change.note)
                    + _tasks_evidence(migrations, check), planned=planned),
        deliverable("5.2", "Initial data loaded", state.courts >= 1 and state.judges >= 1 and state.cases >= 1,
                    f"{state.courts} court, {state.judges} judges, {state.cases} cases in the database"
                    + _tasks_evidence(seeded), planned=planned),
        deliverable("5.2", "Admin access configured", state.admin,
                    f"superuser {admin.username} {'present' if state.admin else 'absent'} in auth_user, password in "
                    f"{admin.password_secret}" + _tasks_evidence(admin), planned=planned),
        deliverable("5.2", "Data integrity verified (great-expectations)", report.success,
                    f"{len(report.outcomes) - len(failures)} of {len(report.outcomes)} expectations met"
                    + "".join(f"; FAILED {f['table']}: {f['expectation']} ({f['observed']})" for f in failures),
                    planned=planned),
    ]
