"""Take a backup and restore it into a scratch copy, two ways (DESIGN.md, "Data plane, two ways").

sandbox: pg_dump -Fc of the local database, pg_restore into a new scratch database.
aws: an RDS snapshot restored to a temporary instance in the private subnets (validated from inside the
VPC, where the ECS work pool runs), then deleted.

Scratch copies carry a recognisable name (golive_restore_* / golive-<env>-restore-*), and so do the
verification's own backups (<env>-<time>.dump / golive-<env>-postgres-verify-*), so a run interrupted
anywhere leaves nothing the next run does not find and remove.
"""

from __future__ import annotations

import datetime
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from golive import dataplane
from golive.naming import resource_name, tag_list
from golive.run import Run

SCRATCH_PREFIX = "golive_restore_"


@dataclass
class Backup:
    id: str  # a dump file, or a snapshot identifier
    taken_at: datetime.datetime
    seconds: float  # how long taking it took
    size_bytes: int | None = None
    # What the backup holds, read in the very snapshot it was taken from (table -> facts), where the
    # engine allows it (pg_dump --snapshot); None: only the live source can be read (an RDS snapshot).
    facts: dict | None = None


@dataclass
class Scratch:
    name: str
    database_url: str | None  # None where nothing can connect (moto has no database behind RDS)
    seconds: float  # how long the restore took: the recovery time measured


def source_url(run: Run) -> str:
    """The database as its owner (the RDS-managed login): backups and restores need the owner's rights."""
    return dataplane.owner_url(run)


def _pg(name: str) -> str:
    from golive.sandbox.data_plane import _pg_bin

    return _pg_bin(name)


def _connection_args(url: str) -> list[str]:
    parts = urlparse(url)
    return ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or "postgres"]


def _replace_database(url: str, database: str) -> str:
    parts = urlparse(url)
    return parts._replace(path=f"/{database}").geturl()


class SandboxBackups:
    """pg_dump / pg_restore against the sandbox's PostgreSQL."""

    def __init__(self, run: Run, url: str | None = None):
        self.run = run
        self.url = url or source_url(run)
        from golive.sandbox.services import state_dir

        self.directory = state_dir() / "backups"

    def take(self, label: str = "") -> Backup:
        self.directory.mkdir(parents=True, exist_ok=True)
        taken_at = datetime.datetime.now(datetime.timezone.utc)
        path = self.directory / f"{self.run.env_name}-{label}{taken_at:%Y%m%dT%H%M%S%f}.dump"
        started = time.monotonic()
        from tasks.verify import read_facts_in

        # One snapshot for both: the facts the copy is judged against are read in the transaction whose
        # snapshot pg_dump dumps, so a write during the backup cannot make them disagree.
        with psycopg.connect(self.url) as connection:
            connection.isolation_level, connection.read_only = psycopg.IsolationLevel.REPEATABLE_READ, True
            snapshot = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
            facts = read_facts_in(connection)
            _run([_pg("pg_dump"), "-Fc", "-Z", "1", f"--snapshot={snapshot}", *_connection_args(self.url),
                  "-f", str(path), urlparse(self.url).path.lstrip("/")], self.url)
            connection.rollback()
        return Backup(id=str(path), taken_at=taken_at, seconds=time.monotonic() - started,
                      size_bytes=path.stat().st_size, facts={t: f.model_dump() for t, f in facts.items()})

    def restore(self, backup: Backup) -> Scratch:
        name = f"{SCRATCH_PREFIX}{int(time.time() * 1000)}"
        started = time.monotonic()
        _run([_pg("createdb"), *_connection_args(self.url), name], self.url)
        _run([_pg("pg_restore"), "--no-owner", "--exit-on-error", "-j", "2", *_connection_args(self.url),
              "-d", name, backup.id], self.url)
        return Scratch(name=name, database_url=_replace_database(self.url, name), seconds=time.monotonic() - started)

    def remove(self, scratch: Scratch) -> None:
        # --force ends the copy's sessions, but not an autovacuum worker that PostgreSQL started on the fresh
        # copy (its own process: "permission denied to terminate process" for the owner, who is not a
        # superuser, as on RDS). Such a worker is done within moments: try again, a few times.
        for attempt in range(6):
            try:
                _run([_pg("dropdb"), "--if-exists", "--force", *_connection_args(self.url), scratch.name], self.url)
                return
            except RuntimeError as error:
                if "permission denied to terminate process" not in str(error) or attempt == 5:
                    raise
                time.sleep(0.5 * 2 ** attempt)

    def leftovers(self) -> list[Scratch]:
        with psycopg.connect(self.url) as connection:
            names = [r[0] for r in connection.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (SCRATCH_PREFIX + "%",))]
        return [Scratch(name=n, database_url=None, seconds=0) for n in names]

    def discard(self, backup: Backup) -> None:
        Path(backup.id).unlink(missing_ok=True)

    def leftover_backups(self) -> list[Backup]:
        """The verification's own dumps (no label: the name goes on with the time's digits) an interrupted
        run did not discard; on-demand backups carry a label and are kept."""
        return [Backup(id=str(path), taken_at=datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc),
                       seconds=0) for path in self.directory.glob(f"{self.run.env_name}-[0-9]*.dump")]

    def expired(self, label: str, before: datetime.datetime) -> list[Backup]:
        found = []
        for path in self.directory.glob(f"{self.run.env_name}-{label}*.dump"):
            taken_at = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
            if taken_at < before:
                found.append(Backup(id=str(path), taken_at=taken_at, seconds=0))
        return found


class AwsBackups:
    """An RDS snapshot restored to a temporary instance, then deleted."""

    def __init__(self, run: Run):
        self.run = run
        self.rds = run.client("rds")
        self.instance = resource_name(run.env_name, "postgres")

    def _wait(self, waiter: str, **kwargs) -> None:
        self.rds.get_waiter(waiter).wait(**kwargs, WaiterConfig=self.run.waiter(30, self.run.environment.database.wait_minutes))

    def take(self, label: str = "verify-", component: str = "backup-verification") -> Backup:
        taken_at = datetime.datetime.now(datetime.timezone.utc)
        snapshot = f"{self.instance}-{label}{taken_at:%Y%m%d%H%M%S}"
        started = time.monotonic()
        self.rds.create_db_snapshot(DBSnapshotIdentifier=snapshot, DBInstanceIdentifier=self.instance,
                                    Tags=tag_list(self.run.env_name, component))
        self._wait("db_snapshot_available", DBSnapshotIdentifier=snapshot)
        return Backup(id=snapshot, taken_at=taken_at, seconds=time.monotonic() - started)

    def restore(self, backup: Backup) -> Scratch:
        source = self.rds.describe_db_instances(DBInstanceIdentifier=self.instance)["DBInstances"][0]
        name = resource_name(self.run.env_name, f"restore-{int(time.time())}")
        started = time.monotonic()
        self.rds.restore_db_instance_from_db_snapshot(
            DBInstanceIdentifier=name, DBSnapshotIdentifier=backup.id,
            DBInstanceClass=source["DBInstanceClass"], DBSubnetGroupName=source["DBSubnetGroup"]["DBSubnetGroupName"],
            VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source["VpcSecurityGroups"]],
            PubliclyAccessible=False, MultiAZ=False, DeletionProtection=False,
            Tags=tag_list(self.run.env_name, "backup-verification"))
        self._wait("db_instance_available", DBInstanceIdentifier=name)
        restored = self.rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
        url = None
        if not self.run.target.is_sandbox:  # moto has no database behind its endpoints
            base = urlparse(source_url(self.run))
            url = base._replace(netloc=base.netloc.replace(base.hostname, restored["Endpoint"]["Address"])).geturl()
        return Scratch(name=name, database_url=url, seconds=time.monotonic() - started)

    def remove(self, scratch: Scratch) -> None:
        status = next(iter(self.rds.describe_db_instances(DBInstanceIdentifier=scratch.name)["DBInstances"]), {}).get(
            "DBInstanceStatus")
        if status in ("creating", "modifying", "backing-up"):  # a killed run's restore, still under way
            self._wait("db_instance_available", DBInstanceIdentifier=scratch.name)
        # moto copies DeletionProtection from the source; AWS takes the request's False. Lift it either way.
        self.rds.modify_db_instance(DBInstanceIdentifier=scratch.name, DeletionProtection=False, ApplyImmediately=True)
        self.rds.delete_db_instance(DBInstanceIdentifier=scratch.name, SkipFinalSnapshot=True,
                                    DeleteAutomatedBackups=True)
        self._wait("db_instance_deleted", DBInstanceIdentifier=scratch.name)

    def leftovers(self) -> list[Scratch]:
        prefix = resource_name(self.run.env_name, "restore-")
        return [Scratch(name=d["DBInstanceIdentifier"], database_url=None, seconds=0)
                for d in self.rds.describe_db_instances()["DBInstances"]
                if d["DBInstanceIdentifier"].startswith(prefix) and d["DBInstanceStatus"] != "deleting"]

    def discard(self, backup: Backup) -> None:
        self.rds.delete_db_snapshot(DBSnapshotIdentifier=backup.id)

    def leftover_backups(self) -> list[Backup]:
        """Verification snapshots an interrupted run did not delete (waited for first: RDS deletes only an
        available snapshot). On-demand and final snapshots carry other names and are kept."""
        prefix = f"{self.instance}-verify-"
        pages = self.rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=self.instance,
                                                                          SnapshotType="manual")
        found = []
        for snapshot in (s for page in pages for s in page["DBSnapshots"]):
            if not snapshot["DBSnapshotIdentifier"].startswith(prefix):
                continue
            if snapshot.get("Status") == "creating":
                self._wait("db_snapshot_available", DBSnapshotIdentifier=snapshot["DBSnapshotIdentifier"])
            found.append(Backup(id=snapshot["DBSnapshotIdentifier"], seconds=0,
                                taken_at=snapshot.get("SnapshotCreateTime") or datetime.datetime.now(datetime.timezone.utc)))
        return found

    def expired(self, label: str, before: datetime.datetime) -> list[Backup]:
        pages = self.rds.get_paginator("describe_db_snapshots").paginate(DBInstanceIdentifier=self.instance,
                                                                          SnapshotType="manual")
        return [Backup(id=s["DBSnapshotIdentifier"], taken_at=s["SnapshotCreateTime"], seconds=0)
                for page in pages for s in page["DBSnapshots"]
                if s["DBSnapshotIdentifier"].startswith(f"{self.instance}-{label}") and s.get("SnapshotCreateTime")
                and s["SnapshotCreateTime"] < before]

    def latest_automated(self) -> datetime.datetime | None:
        snapshots = self.rds.describe_db_snapshots(DBInstanceIdentifier=self.instance, SnapshotType="automated")
        times = [s["SnapshotCreateTime"] for s in snapshots["DBSnapshots"] if s.get("SnapshotCreateTime")]
        return max(times) if times else None


ON_DEMAND_LABEL = "ondemand-"


def take_on_demand(run: Run, name: str, *, aws_in_sandbox: bool = False) -> tuple[Backup, list[str]]:
    """A named backup taken now (`golive backup-db`, scripts/backup-db.sh): an RDS snapshot in AWS, a
    pg_dump in the sandbox. Manual snapshots never expire by themselves, so on-demand ones older than the
    environment's retention (database.backup_retention_days) are deleted. Returns it and what was pruned."""
    backups = for_run(run, aws_in_sandbox=aws_in_sandbox)
    label = f"{ON_DEMAND_LABEL}{name}-"
    if isinstance(backups, AwsBackups):
        backup = backups.take(label, component="on-demand-backup")
    else:
        backup = backups.take(label)
    cutoff = backup.taken_at - datetime.timedelta(days=run.environment.database.backup_retention_days)
    pruned = []
    for old in backups.expired(ON_DEMAND_LABEL, cutoff):
        backups.discard(old)
        pruned.append(old.id)
    return backup, pruned


def for_run(run: Run, *, aws_in_sandbox: bool = False) -> SandboxBackups | AwsBackups:
    """The sandbox's local database, or RDS. aws_in_sandbox exercises the RDS path against moto."""
    if run.target.is_sandbox and not aws_in_sandbox:
        return SandboxBackups(run)
    return AwsBackups(run)


def _run(argv: list[str], url: str | None = None) -> None:
    """A PostgreSQL client tool; the login's password goes in its environment, never on its command line."""
    import os
    from urllib.parse import unquote

    password = urlparse(url).password if url else None
    env = {**os.environ, "PGPASSWORD": unquote(password)} if password else None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
