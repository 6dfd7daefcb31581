"""Backup and restore verification: take a backup, restore it into a scratch copy, prove the copy holds
what the source held (row counts per table, a checksum of every key), always remove the copy."""

from __future__ import annotations

import datetime

import psycopg
from prefect import task
from pydantic import BaseModel

from golive import backups, integrity
from golive.changes import Action, Change
from golive.integrity import Expect, Outcome
from golive.retry import AWS_STEP
from golive.run import Run


class TableFacts(BaseModel):
    rows: int
    key_checksum: str | None  # md5 of every id in order; None for a table without an id column


class BackupRecord(BaseModel):
    id: str
    taken_at: datetime.datetime
    seconds: float
    size_bytes: int | None = None
    facts: dict[str, TableFacts] | None = None  # read in the backup's own snapshot, where possible


class ScratchRecord(BaseModel):
    name: str
    seconds: float
    reachable: bool


class VerificationReport(BaseModel):
    success: bool | None  # None: nothing could be validated (no database behind the emulator's RDS)
    outcomes: list[dict]
    note: str = ""


def read_facts(database_url: str) -> dict[str, TableFacts]:
    """Row count and key checksum of every table in the public schema."""
    with psycopg.connect(database_url) as connection:
        return read_facts_in(connection)


def read_facts_in(connection: psycopg.Connection) -> dict[str, TableFacts]:
    """read_facts on an open connection (inside the backup's snapshot, say)."""
    facts = {}
    tables = [r[0] for r in connection.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
        "AND table_type = 'BASE TABLE' ORDER BY table_name")]
    for table in tables:
        has_id = connection.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = %s "
            "AND column_name = 'id'", (table,)).fetchone()
        if has_id:
            rows, checksum = connection.execute(
                f'SELECT count(*), md5(coalesce(string_agg(id::text, \',\' ORDER BY id), \'\')) FROM "{table}"'
            ).fetchone()
        else:
            rows, checksum = connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0], None
        facts[table] = TableFacts(rows=rows, key_checksum=checksum)
    return facts


@task(**AWS_STEP)
def remove_leftover_copies(run: Run, aws_in_sandbox: bool = False) -> list[Change]:
    """Scratch copies and verification backups an interrupted run left behind (a stopped server, a killed
    worker) go first: the restore is taken again from a fresh backup, so each run proves its own."""
    store = backups.for_run(run, aws_in_sandbox=aws_in_sandbox)
    changes = []
    for scratch in store.leftovers():
        store.remove(scratch)
        change = Change(action=Action.DELETE, kind="scratch-copy", name=scratch.name, note="left by an interrupted run")
        run.report(change)
        changes.append(change)
    for backup in store.leftover_backups():
        store.discard(backup)
        change = Change(action=Action.DELETE, kind="verification-backup", name=backup.id, note="left by an interrupted run")
        run.report(change)
        changes.append(change)
    return changes


@task(**AWS_STEP)
def read_source_facts(run: Run) -> dict[str, TableFacts]:
    """What the restored copy must hold, read from the source database."""
    return read_facts(backups.source_url(run))


@task(**AWS_STEP)
def take_backup(run: Run, aws_in_sandbox: bool = False) -> BackupRecord:
    """pg_dump -Fc in the sandbox; an RDS snapshot in AWS."""
    backup = backups.for_run(run, aws_in_sandbox=aws_in_sandbox).take()
    return BackupRecord(**backup.__dict__)


def validate_copy(database_url: str, facts: dict[str, TableFacts]) -> list[Outcome]:
    """great-expectations on the copy (row counts, unique and present keys), then the key checksums."""
    expectations = []
    for table, fact in facts.items():
        expectations.append(Expect(table, "ExpectTableRowCountToEqual", {"value": fact.rows}))
        if fact.key_checksum is not None:
            expectations += [Expect(table, "ExpectColumnValuesToBeUnique", {"column": "id"}),
                             Expect(table, "ExpectColumnValuesToNotBeNull", {"column": "id"})]
    outcomes = integrity.validate(database_url, expectations)
    restored = read_facts(database_url)
    for table, fact in facts.items():
        if fact.key_checksum is not None:
            found = restored.get(table)
            same = found is not None and found.key_checksum == fact.key_checksum
            outcomes.append(Outcome(table, "key checksum equals the source's", same,
                                    "equal" if same else f"{found.key_checksum if found else 'table missing'} "
                                    f"!= {fact.key_checksum}"))
    return outcomes


@task(**AWS_STEP)
def restore_and_validate(run: Run, backup: BackupRecord, facts: dict[str, TableFacts],
                         aws_in_sandbox: bool = False) -> tuple[ScratchRecord, VerificationReport]:
    """Restore into a scratch copy, validate it, and remove it whatever happened. A source without a row
    proves nothing by its restore: that fails, with what was read."""
    store = backups.for_run(run, aws_in_sandbox=aws_in_sandbox)
    if sum(f.rows for f in facts.values()) == 0:
        store.discard(backups.Backup(**backup.model_dump(exclude={"facts"})))
        what = f"{len(facts)} tables, 0 rows" if facts else "no table"
        return ScratchRecord(name="(none)", seconds=0.0, reachable=False), VerificationReport(
            success=False, outcomes=[], note=f"the backup holds {what}: restoring it would prove nothing (is the "
            "database loaded? Phase 5)")
    scratch = store.restore(backups.Backup(**backup.model_dump(exclude={"facts"})))
    try:
        if scratch.database_url is None:
            report = VerificationReport(success=None, outcomes=[], note=(
                "sandbox: moto has no database behind a restored RDS instance; the snapshot, restore, wait "
                "and deletion ran, the data could not be validated. Against AWS this runs inside the VPC."))
        else:
            outcomes = validate_copy(scratch.database_url, facts)
            report = VerificationReport(success=all(o.success for o in outcomes), outcomes=[o.__dict__ for o in outcomes])
    finally:
        store.remove(scratch)
        store.discard(backups.Backup(**backup.model_dump(exclude={"facts"})))  # the verification's own backup: not kept
    return ScratchRecord(name=scratch.name, seconds=scratch.seconds, reachable=scratch.database_url is not None), report


def recovery_point_seconds(backup: BackupRecord) -> float:
    return (datetime.datetime.now(datetime.timezone.utc) - backup.taken_at).total_seconds()

