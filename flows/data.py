"""Phase 5 of the deployment plan: database migration and initial data.

5.1 migrations and createcachetable; 5.2 the initial data set and the admin user; then a data-integrity
check with great-expectations, published as an artifact. Needs Phase 1 (the database and the app's
secrets); in AWS the commands run as one-off ECS tasks on the backend task definition (Phase 3).
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_table_artifact

from golive.changes import collect_changes
from golive.report import PhaseResult, artifact_key, deliverable, publish
from golive.run import Mode, Run
from tasks.app import create_cache_table, ensure_admin_user, load_initial_data, run_migrations, verify_data_integrity


class IntegrityFailed(RuntimeError):
    pass


@flow(name="phase-5-data")
def data(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
         allow_replace: bool = False, cases: int = 500) -> PhaseResult:
    """Migrate, load the initial data, create the admin user, and prove the data is sound."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    migrations = run_migrations(run)
    cache_table = create_cache_table.submit(run, migrations)
    seeded = load_initial_data.submit(run, migrations, cases)
    admin = ensure_admin_user.submit(run, migrations)
    report = verify_data_integrity(run, seeded, admin)

    planned = not run.applying
    failures = report.failures()
    result = PhaseResult(
        phase="phase-5-data", environment=run.env_name, mode=run.mode, target=run.target.describe(),
        changes=collect_changes(migrations, cache_table.result(), seeded.result(), admin.result()),
        deliverables=[
            # run_migrations fails unless `migrate --check` finds nothing unapplied afterwards.
            deliverable("5.1", "Database schema created, all migrations applied", True,
                        f"{migrations.change.note}; migrate --check: nothing unapplied", planned=planned),
            deliverable("5.2", "Initial data loaded", True, seeded.result().change.note, planned=planned),
            deliverable("5.2", "Admin access configured", True,
                        f"user {admin.result().username}, password in {admin.result().password_secret}", planned=planned),
            deliverable("5.2", "Data integrity verified (great-expectations)", report.success,
                        f"{len(report.outcomes) - len(failures)} of {len(report.outcomes)} expectations met"
                        + "".join(f"; FAILED {f['table']}: {f['expectation']} ({f['observed']})" for f in failures),
                        planned=planned),
        ],
        outputs={"integrity": report.model_dump()},
    )
    publish(result)
    if report.outcomes:
        create_table_artifact(key=artifact_key(run.env_name, "phase-5-data", "integrity"), table=report.outcomes,
                              description=f"great-expectations on {run.env_name}: "
                              f"{'all met' if report.success else f'{len(failures)} failed'}")
    if failures:
        raise IntegrityFailed("data integrity check failed: " + "; ".join(
            f"{f['table']}: {f['expectation']} ({f['observed']})" for f in failures))
    return result
