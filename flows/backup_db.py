"""An on-demand, named database backup (`golive backup-db ENV --name NAME`, scripts/backup-db.sh):
an RDS snapshot in AWS, kept for the environment's backup retention; a pg_dump in the sandbox."""

from __future__ import annotations

import re

from prefect import flow

from golive.backups import take_on_demand
from golive.changes import Action, Change
from golive.report import PhaseResult, deliverable, publish
from golive.run import Run

BACKUP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")


@flow(name="backup-db")
def backup_db(environment: str = "sandbox", name: str = "manual", sandbox: bool | None = None,
              aws_in_sandbox: bool = False) -> PhaseResult:
    """Take the named backup now; delete on-demand backups older than the retention."""
    if not BACKUP_NAME.match(name):
        raise ValueError(f"backup name {name!r}: lower-case letters, digits and '-', at most 31, e.g. before-v1-4")
    run = Run.prepare(environment, sandbox=sandbox)
    backup, pruned = take_on_demand(run, name, aws_in_sandbox=aws_in_sandbox)
    changes = [Change(action=Action.CREATE, kind="database-backup", name=name, id=backup.id)]
    changes += [Change(action=Action.DELETE, kind="database-backup", name=old, id=old,
                       note=f"older than {run.environment.database.backup_retention_days} days") for old in pruned]
    for change in changes:
        run.report(change)
    size = f", {backup.size_bytes / 1e6:.2f} MB" if backup.size_bytes else ""
    result = PhaseResult(
        phase="backup-db", environment=run.env_name, mode="apply", target=run.target.describe(), changes=changes,
        deliverables=[deliverable("6.3", "Database backup taken", True,
                                  f"{backup.id} in {backup.seconds:.2f} s{size}; kept "
                                  f"{run.environment.database.backup_retention_days} days; {len(pruned)} expired removed")],
        outputs={"backup": backup.id, "seconds": backup.seconds, "size_bytes": backup.size_bytes, "pruned": pruned})
    publish(result)
    return result
