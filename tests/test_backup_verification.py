"""backup-verification on the sandbox's real PostgreSQL (pg_dump / pg_restore), and its RDS path as far
as moto allows: restored data matches the source; a difference fails loudly, naming table and check;
the scratch copy never outlives the run, even when PostgreSQL stops in the middle of a restore."""

from __future__ import annotations

from unittest import mock

import psycopg
import pytest

from flows.backup_verification import RestoreVerificationFailed, backup_verification
from flows.containers import containers
from flows.data import data
from flows.infrastructure import infrastructure
from golive import backups
from golive.aws import forget_clients
from golive.sandbox import data_plane
from tests.conftest import empty_the_database, prepare, reset_emulator
from tests.test_phase5_data import phase_1  # noqa: F401  (fixture: Phase 1 on an empty database)


def scratch_databases() -> list[str]:
    with psycopg.connect(data_plane.status()["postgres_dsn"]) as connection:
        return [r[0] for r in connection.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'golive_restore_%'")]


@pytest.fixture(scope="module")
def loaded(sandbox, prefect_api):
    """Phases 1, 2 and 5 applied once for the module's verifications (a minute of set-up): each of them
    leaves the source and the emulator as it found them, which the tests check (scratch databases, and
    the RDS path's snapshots and restored instance)."""
    reset_emulator(sandbox)
    empty_the_database()
    infrastructure(environment="sandbox", sandbox=True)
    containers(environment="sandbox", sandbox=True)
    data(environment="sandbox", sandbox=True, cases=200)
    yield prepare()
    forget_clients()


def test_restored_copy_matches_the_source_and_is_removed(loaded):
    result = backup_verification(environment="sandbox", sandbox=True)
    report = result.outputs["report"]
    assert report["success"] is True and all(o["success"] for o in report["outcomes"])
    checked = {o["table"] for o in report["outcomes"]}
    assert {"courts_case", "courts_judge", "courts_court", "auth_user"} <= checked
    assert result.outputs["recovery_time_seconds"] > 0 and result.outputs["recovery_point_seconds"] >= 0
    assert scratch_databases() == []


def test_rows_missing_from_the_restored_copy_fail_naming_table_and_check(loaded):
    original = backups.SandboxBackups.restore

    def restore_then_lose_rows(self, backup):
        scratch = original(self, backup)
        with psycopg.connect(scratch.database_url, autocommit=True) as connection:
            connection.execute("DELETE FROM courts_case WHERE id IN (SELECT id FROM courts_case LIMIT 5)")
        return scratch

    with mock.patch.object(backups.SandboxBackups, "restore", restore_then_lose_rows):
        with pytest.raises(RestoreVerificationFailed) as failed:
            backup_verification(environment="sandbox", sandbox=True)
    message = str(failed.value)
    assert "courts_case: ExpectTableRowCountToEqual(value=200) (195)" in message
    assert "courts_case: key checksum equals the source's" in message
    assert scratch_databases() == [], "the copy is removed when validation fails too"


def test_a_restore_interrupted_by_a_stopped_server_leaves_nothing_after_the_next_run(loaded):
    original = backups.SandboxBackups.restore

    def restore_then_lose_the_server(self, backup):
        original(self, backup)
        data_plane.POSTGRES.stop()
        raise ConnectionError("PostgreSQL went away during the restore")

    with mock.patch.object(backups.SandboxBackups, "restore", restore_then_lose_the_server):
        with pytest.raises(ConnectionError):
            backup_verification(environment="sandbox", sandbox=True)
    with data_plane.locked():
        data_plane.POSTGRES.start()
    assert len(scratch_databases()) == 1, "the interrupted run left its copy behind"

    result = backup_verification(environment="sandbox", sandbox=True)
    # ... and its dump, which the interrupted run never discarded
    assert [c.kind for c in result.changes] == ["scratch-copy", "verification-backup"]
    assert scratch_databases() == []


def test_the_rds_path_snapshots_restores_and_deletes_as_far_as_moto_allows(loaded):
    """What a run SIGKILLed between its backup and its clean-up leaves (a verification snapshot, a scratch
    instance, a dump file) the next run removes first; an on-demand snapshot is not the verification's.
    (One test with the RDS path's own: each costs Phase 1 and a data load.)"""
    store = backups.AwsBackups(loaded)
    left = store.take()  # the snapshot a killed run took ...
    scratch = store.restore(left)  # ... and the instance it restored into
    kept, _ = backups.take_on_demand(loaded, "before-upgrade", aws_in_sandbox=True)
    dump = backups.SandboxBackups(loaded).directory / "sandbox-20261201T000000000000.dump"
    dump.parent.mkdir(parents=True, exist_ok=True)
    dump.write_bytes(b"left by a killed run")

    result = backup_verification(environment="sandbox", sandbox=True, aws_in_sandbox=True)
    removed = {(c.kind, c.name) for c in result.changes}
    assert {("scratch-copy", scratch.name), ("verification-backup", left.id)} <= removed, removed
    assert result.outputs["report"]["success"] is None
    assert "moto has no database behind a restored RDS instance" in result.deliverables[0].evidence
    assert result.deliverables[0].mark == "pending"
    rds = loaded.client("rds")
    instances = [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]
                 if d["DBInstanceStatus"] != "deleting"]
    assert instances == ["golive-sandbox-postgres"], "the temporary instances are gone"
    manual = [s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]]
    assert manual == [kept.id], "the verification's own snapshots are not kept; the on-demand one is"
    backup_verification(environment="sandbox", sandbox=True)  # the local path: its leftover dump goes too
    assert not dump.exists()


def test_a_backup_of_a_database_without_rows_fails_saying_what_it_read(phase_1):  # noqa: F811
    """Restoring nothing proves nothing: a source without a row fails (all([]) would have passed it)."""
    with pytest.raises(RestoreVerificationFailed, match="the backup holds no table: restoring it would prove nothing"):
        backup_verification(environment="sandbox", sandbox=True)
