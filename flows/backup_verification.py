"""The nightly proof that backups restore: take a backup, restore it into a scratch copy, validate the
copy against facts read from the source, remove the copy, and report the recovery time (how long the
restore took) and the recovery point (how old the restored data was). Fails loudly on any difference.
"""

from __future__ import annotations

from prefect import flow
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from golive.report import PhaseResult, artifact_key, deliverable
from golive.run import Run
from tasks.verify import (
    read_source_facts,
    recovery_point_seconds,
    remove_leftover_copies,
    restore_and_validate,
    take_backup,
)


class RestoreVerificationFailed(RuntimeError):
    pass


@flow(name="backup-verification")
def backup_verification(environment: str = "sandbox", sandbox: bool | None = None,
                        aws_in_sandbox: bool = False) -> PhaseResult:
    """Backup, restore, validate, clean up; publish the figures."""
    run = Run.prepare(environment, sandbox=sandbox)
    cleaned = remove_leftover_copies(run, aws_in_sandbox)
    backup = take_backup(run, aws_in_sandbox)
    # The facts the copy must match: read in the backup's own snapshot where the engine allows it (pg_dump);
    # an RDS snapshot's can only be read from the live source afterwards, and the evidence says so.
    tables = backup.facts if backup.facts is not None else read_source_facts(run)
    source = ("read in the backup's own snapshot" if backup.facts is not None else
              "read from the live source after the snapshot (rows written in between show as a mismatch)")
    scratch, report = restore_and_validate(run, backup, tables, aws_in_sandbox)
    recovery_point = recovery_point_seconds(backup)

    failures = [o for o in report.outcomes if not o["success"]]
    summary = (f"backup {backup.id} ({backup.seconds:.2f} s"
               + (f", {backup.size_bytes / 1e6:.1f} MB" if backup.size_bytes else "") + "); "
               f"restored into {scratch.name} in {scratch.seconds:.2f} s (recovery time); "
               f"restored data {recovery_point:.0f} s old at the end (recovery point); "
               f"{sum(t.rows for t in tables.values())} rows in {len(tables)} tables, {source}")
    result = PhaseResult(
        phase="backup-verification", environment=run.env_name, mode="apply", target=run.target.describe(),
        changes=cleaned,
        deliverables=[deliverable("8.1", "Database backup/restore testing", report.success,
                                  summary + (f"; {report.note}" if report.note else "")
                                  + "".join(f"; FAILED {f['table']}: {f['expectation']} ({f['observed']})"
                                            for f in failures))],
        outputs={"backup": backup.model_dump(mode="json"), "scratch": scratch.model_dump(),
                 "recovery_time_seconds": scratch.seconds, "recovery_point_seconds": recovery_point,
                 "report": report.model_dump()},
    )
    key = artifact_key(run.env_name, "backup-verification")
    create_markdown_artifact(key=key, markdown=f"# Backup verification: {run.env_name}\n\n{result.deliverables[0].evidence}\n\n"
                             f"Result: **{result.deliverables[0].mark}**", description="restore verified" if report.success else "restore NOT verified")
    if report.outcomes:
        create_table_artifact(key=artifact_key(key, "checks"), table=report.outcomes,
                              description=f"{len(report.outcomes) - len(failures)} of {len(report.outcomes)} checks met")
    if failures:
        raise RestoreVerificationFailed("the restored copy differs from the source: " + "; ".join(
            f"{f['table']}: {f['expectation']} ({f['observed']})" for f in failures))
    if report.success is False:
        raise RestoreVerificationFailed(f"the restore was not verified: {report.note}")
    return result
