"""Plan section 1.3, RDS PostgreSQL: subnet group, parameter group, the instance, an optional read
replica, and alarms.

The master password is managed by RDS in Secrets Manager (ManageMasterUserPassword): it is never
generated, seen, logged or returned here. Modifiable fields are changed in place; a field RDS cannot
change (engine, encryption, database name) is a replacement, which apply refuses without --allow-replace.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from prefect import task

from golive.changes import Record, known_after_apply
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import Found, NamedResource, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.network import SecurityGroupRecord, SubnetRecord
from tasks.observability import alarm


class NotOurs(RuntimeError):
    """A resource with our deterministic name that golive did not make: never adopted silently."""


class RdsResource(NamedResource):
    """An RDS kind: never adopted unless tagged for this environment."""

    service = "rds"

    @property
    def rds(self):
        return self.client

    def _check_ours(self, item: dict) -> None:
        # Untagged, it is ours by its name (golive's namespace) with its tags removed by hand: ensure()
        # shows that as tag drift and restores them. Tagged for another environment, it is not ours.
        if self.owner(self.run, item) not in (None, self.run.env_name):
            raise NotOurs(f"{self.kind} {self.name} exists but is tagged for another {ENVIRONMENT_TAG}, not {self.run.env_name}: "
                          "golive will not take over a resource it did not make. Rename or remove it.")


class DbSubnetGroup(RdsResource):
    kind = "db-subnet-group"
    describe = ("describe_db_subnet_groups", "DBSubnetGroupName", "DBSubnetGroups")
    describe_name_key = "DBSubnetGroupName"
    not_found = "DBSubnetGroupNotFoundFault"
    arn_key = "DBSubnetGroupArn"

    def __init__(self, run: Run, component: str = "db", subnet_ids: list[str | None] = ()):
        super().__init__(run, component)
        self.subnet_ids = list(subnet_ids)

    def desired(self) -> dict[str, Any]:
        return {"subnets": sorted(known_after_apply(s) for s in self.subnet_ids)}

    def discover(self) -> Found | None:
        item = self._describe_one()
        if item is None:
            return None
        self._check_ours(item)
        return Found(id=self.name, component=self.component, raw=item,
                     state={"subnets": sorted(s["SubnetIdentifier"] for s in item["Subnets"])})

    def create(self) -> str:
        self.rds.create_db_subnet_group(
            DBSubnetGroupName=self.name, DBSubnetGroupDescription=f"Private subnets for {self.run.env_name}",
            SubnetIds=self.subnet_ids, Tags=tag_list(self.run.env_name, self.component))
        return self.name

    def update(self, found: Found, changes) -> None:
        self.rds.modify_db_subnet_group(DBSubnetGroupName=self.name, SubnetIds=self.subnet_ids)

    def delete(self, found: Found) -> None:
        self.rds.delete_db_subnet_group(DBSubnetGroupName=found.id)


class DbParameterGroup(RdsResource):
    kind = "db-parameter-group"
    describe = ("describe_db_parameter_groups", "DBParameterGroupName", "DBParameterGroups")
    describe_name_key = "DBParameterGroupName"
    not_found = "DBParameterGroupNotFound"
    arn_key = "DBParameterGroupArn"
    replace_on = frozenset({"family"})

    def desired(self) -> dict[str, Any]:
        db = self.run.environment.database
        return {
            "family": db.parameter_group_family,
            # SSL forced for every connection; statements slower than the threshold logged.
            "parameters": {"rds.force_ssl": "1", "log_min_duration_statement": str(db.slow_statement_ms)},
        }

    def discover(self) -> Found | None:
        item = self._describe_one()
        if item is None:
            return None
        self._check_ours(item)
        pages = self.rds.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=self.name, Source="user")
        values = {p["ParameterName"]: p.get("ParameterValue") for page in pages for p in page["Parameters"]}
        wanted = self.desired()["parameters"]
        return Found(id=self.name, component=self.component, raw=item, state={
            "family": item["DBParameterGroupFamily"], "parameters": {k: values.get(k) for k in wanted}})

    def _set(self) -> None:
        self.rds.modify_db_parameter_group(DBParameterGroupName=self.name, Parameters=[
            # Static parameters (force_ssl on some versions) apply at the next reboot; dynamic at once.
            {"ParameterName": k, "ParameterValue": v,
             "ApplyMethod": "pending-reboot" if k == "rds.force_ssl" else "immediate"}
            for k, v in self.desired()["parameters"].items()])

    def create(self) -> str:
        self.rds.create_db_parameter_group(
            DBParameterGroupName=self.name, DBParameterGroupFamily=self.desired()["family"],
            Description=f"Precedentum PostgreSQL settings for {self.run.env_name}",
            Tags=tag_list(self.run.env_name, self.component))
        self._set()
        return self.name

    def update(self, found: Found, changes) -> None:
        self._set()

    def delete(self, found: Found) -> None:
        self.rds.delete_db_parameter_group(DBParameterGroupName=found.id)


class DbInstance(RdsResource):
    kind = "rds-instance"
    describe = ("describe_db_instances", "DBInstanceIdentifier", "DBInstances")
    describe_name_key = "DBInstanceIdentifier"
    not_found = "DBInstanceNotFound"
    arn_key = "DBInstanceArn"
    replace_on = frozenset({"engine", "storage_encrypted", "database_name", "master_username", "subnet_group"})
    # Field -> modify_db_instance parameter, for the fields RDS changes in place.
    MODIFIABLE: ClassVar[dict[str, str]] = {
        "instance_class": "DBInstanceClass", "allocated_storage_gb": "AllocatedStorage", "storage_type": "StorageType",
        "multi_az": "MultiAZ", "deletion_protection": "DeletionProtection",
        "backup_retention_days": "BackupRetentionPeriod", "backup_window": "PreferredBackupWindow",
        "maintenance_window": "PreferredMaintenanceWindow", "publicly_accessible": "PubliclyAccessible", "security_groups": "VpcSecurityGroupIds",
        "parameter_group": "DBParameterGroupName",
    }

    def __init__(self, run: Run, component: str = "postgres", subnet_group: str | None = None,
                 parameter_group: str | None = None, security_group_id: str | None = None,
                 replica_of: str | None = None):
        super().__init__(run, component)
        self.subnet_group, self.parameter_group = subnet_group, parameter_group
        self.security_group_id, self.replica_of = security_group_id, replica_of

    def desired(self) -> dict[str, Any]:
        db = self.run.environment.database
        spec = {
            "engine": "postgres", "engine_major": db.major, "instance_class": db.instance_class,
            "storage_type": "gp3", "storage_encrypted": True, "publicly_accessible": False,
            "deletion_protection": db.deletion_protection, "security_groups": [known_after_apply(self.security_group_id)],
            "parameter_group": self.parameter_group,
        }
        if self.replica_of:
            return {**spec, "replica_of": self.replica_of}
        return {**spec, "allocated_storage_gb": db.allocated_storage_gb, "multi_az": db.multi_az,
                "backup_retention_days": db.backup_retention_days, "backup_window": db.backup_window,
                "maintenance_window": db.maintenance_window, "subnet_group": self.subnet_group, "database_name": db.database_name,
                "master_username": db.master_username, "managed_master_password": True}

    @staticmethod
    def _state(item: dict) -> dict[str, Any]:
        return {
            "engine": item["Engine"], "engine_major": item["EngineVersion"].split(".")[0],
            "instance_class": item["DBInstanceClass"], "allocated_storage_gb": item["AllocatedStorage"],
            "storage_type": item.get("StorageType"), "storage_encrypted": item.get("StorageEncrypted"),
            "multi_az": item.get("MultiAZ"), "deletion_protection": item.get("DeletionProtection"),
            "backup_retention_days": item.get("BackupRetentionPeriod"), "backup_window": item.get("PreferredBackupWindow"),
            "maintenance_window": item.get("PreferredMaintenanceWindow"), "publicly_accessible": item.get("PubliclyAccessible"),
            "security_groups": sorted(g["VpcSecurityGroupId"] for g in item.get("VpcSecurityGroups", [])),
            "parameter_group": next((g["DBParameterGroupName"] for g in item.get("DBParameterGroups", [])), None),
            "subnet_group": item.get("DBSubnetGroup", {}).get("DBSubnetGroupName"),
            "database_name": item.get("DBName"), "master_username": item.get("MasterUsername"),
            "managed_master_password": bool(item.get("MasterUserSecret")),
            "replica_of": item.get("ReadReplicaSourceDBInstanceIdentifier"),
        }

    def discover(self) -> Found | None:
        item = self._describe_one()
        if item is None or item["DBInstanceStatus"] == "deleting":
            return None
        self._check_ours(item)
        return Found(id=item["DBInstanceIdentifier"], state=self._state(item), component=self.component, raw=item)

    # States an instance passes through on its way to available after create or modify.
    SETTLING = frozenset({"creating", "backing-up", "modifying", "configuring-enhanced-monitoring",
                          "configuring-log-exports", "rebooting", "upgrading", "starting", "storage-optimization"})

    def settle(self, found: Found) -> Found:
        if found.raw.get("DBInstanceStatus") not in self.SETTLING:
            return found
        self._wait("db_instance_available", found.id)
        return self.discover() or found

    def _wait(self, waiter: str, identifier: str) -> None:
        self.rds.get_waiter(waiter).wait(DBInstanceIdentifier=identifier,
                                         WaiterConfig=self.run.waiter(30, self.run.environment.database.wait_minutes))

    def create(self) -> str:
        spec, db = self.desired(), self.run.environment.database
        common = dict(DBInstanceIdentifier=self.name, DBInstanceClass=spec["instance_class"],
                      PubliclyAccessible=False, VpcSecurityGroupIds=spec["security_groups"],
                      DBParameterGroupName=self.parameter_group, DeletionProtection=spec["deletion_protection"],
                      Tags=tag_list(self.run.env_name, self.component), CopyTagsToSnapshot=True,
                      AutoMinorVersionUpgrade=True, EnablePerformanceInsights=False)
        if self.replica_of:
            self.rds.create_db_instance_read_replica(SourceDBInstanceIdentifier=self.replica_of, **common)
        else:
            self.rds.create_db_instance(
                Engine="postgres", EngineVersion=db.engine_version, AllocatedStorage=db.allocated_storage_gb,
                StorageType="gp3", StorageEncrypted=True, MultiAZ=db.multi_az,
                BackupRetentionPeriod=db.backup_retention_days, PreferredBackupWindow=db.backup_window,
                PreferredMaintenanceWindow=db.maintenance_window, DBSubnetGroupName=self.subnet_group, DBName=db.database_name, MasterUsername=db.master_username,
                # RDS generates the password and keeps it in Secrets Manager: it never passes through us.
                ManageMasterUserPassword=True, **common)
        self._wait("db_instance_available", self.name)
        return self.name

    def update(self, found: Found, changes) -> None:
        if "allocated_storage_gb" in changes and changes["allocated_storage_gb"].after < (changes["allocated_storage_gb"].before or 0):
            raise ValueError(f"{self.name}: RDS storage cannot shrink ({changes['allocated_storage_gb'].render()}); "
                             "restore a snapshot into a smaller instance instead")
        desired = self.desired()
        kwargs: dict[str, Any] = {self.MODIFIABLE[f]: desired[f] for f in changes if f in self.MODIFIABLE}
        if "engine_major" in changes:
            kwargs.update(EngineVersion=self.run.environment.database.engine_version, AllowMajorVersionUpgrade=True)
        if "managed_master_password" in changes:
            kwargs["ManageMasterUserPassword"] = True
        self.rds.modify_db_instance(DBInstanceIdentifier=found.id, ApplyImmediately=True, **kwargs)
        self._wait("db_instance_available", found.id)

    def delete(self, found: Found) -> str | None:
        """Delete the instance; the final snapshot (if the file asks for one) is kept and named in the
        returned note. Its automated backups go with it: the final snapshot is what outlives it, and a
        retained automated snapshot would hold the instance's name (an apply after the destroy failed on
        it with DBSnapshotAlreadyExists)."""
        if found.raw.get("DBInstanceStatus") == "deleting":  # a killed teardown already asked for it
            self._wait("db_instance_deleted", found.id)
            return None
        if found.raw.get("DeletionProtection"):
            # Teardown was confirmed by the caller (flows/teardown.py); lift the guard only now.
            self.rds.modify_db_instance(DBInstanceIdentifier=found.id, DeletionProtection=False, ApplyImmediately=True)
        is_replica = bool(found.raw.get("ReadReplicaSourceDBInstanceIdentifier"))
        final = self.run.environment.database.final_snapshot and not is_replica  # replicas have no snapshot
        kwargs: dict[str, Any] = {"SkipFinalSnapshot": not final, "DeleteAutomatedBackups": True}
        snapshot = final_snapshot_name(found.id) if final else None
        if snapshot:
            kwargs["FinalDBSnapshotIdentifier"] = snapshot
        self.rds.delete_db_instance(DBInstanceIdentifier=found.id, **kwargs)
        self._wait("db_instance_deleted", found.id)
        return f"final snapshot {snapshot} kept" if snapshot else None

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        # Replicas before their source, so the source is not deleted under them.
        return sorted(super().discover_all(run), key=lambda f: not f.raw.get("ReadReplicaSourceDBInstanceIdentifier"))


FINAL_SNAPSHOT_MARK = "-final-"


def final_snapshot_name(instance: str) -> str:
    """<instance>-final-<UTC time to the second>: unique per destroy (an apply and a destroy in between
    take far longer than a second), so a re-apply and a second destroy never collide with the first's."""
    return f"{instance}{FINAL_SNAPSHOT_MARK}{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"


def final_snapshots(run: Run) -> list[dict]:
    """The environment's final snapshots (kept by a destroy, tagged by CopyTagsToSnapshot), oldest first."""
    rds = run.client("rds")
    found = [s for page in rds.get_paginator("describe_db_snapshots").paginate(SnapshotType="manual")
             for s in page["DBSnapshots"]
             if FINAL_SNAPSHOT_MARK in s["DBSnapshotIdentifier"]
             and {t["Key"]: t["Value"] for t in s.get("TagList", [])}.get(ENVIRONMENT_TAG) == run.env_name]
    return sorted(found, key=lambda s: s["DBSnapshotIdentifier"])


class DatabaseRecord(Record):
    endpoint: str | None
    port: int | None
    database_name: str
    settings: dict[str, Any] = {}  # as RDS reports them: class, storage, Multi-AZ, backups, encryption
    master_secret_arn: str | None  # the RDS-managed secret: its ARN only, never its value
    parameter_group: Record
    subnet_group: Record
    replica: Record | None = None


@task(**AWS_STEP)
def ensure_db_subnet_group(run: Run, private_subnets: list[SubnetRecord]) -> Record:
    """The DB subnet group over the private subnets (two zones, as Multi-AZ needs)."""
    outcome = ensure(DbSubnetGroup(run, "db", [s.id for s in private_subnets]))
    return Record(name=resource_name(run.env_name, "db"), id=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def ensure_db_parameter_group(run: Run) -> Record:
    """The parameter group for the engine family: SSL forced, slow statements logged."""
    component = run.environment.database.parameter_group_family
    outcome = ensure(DbParameterGroup(run, component))
    return Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def ensure_db_instance(run: Run, subnet_group: Record, parameter_group: Record,
                       security_groups: dict[str, SecurityGroupRecord]) -> DatabaseRecord:
    """The PostgreSQL instance (about 20 minutes in AWS for Multi-AZ), and its replica if asked."""
    security_group = security_groups["database"].id
    outcome = ensure(DbInstance(run, "postgres", subnet_group.name, parameter_group.name, security_group))
    replica = None
    if run.environment.database.read_replica:
        replica_outcome = ensure(DbInstance(run, "postgres-replica", None, parameter_group.name, security_group,
                                            replica_of=outcome.id or resource_name(run.env_name, "postgres")))
        replica = Record(name=resource_name(run.env_name, "postgres-replica"), id=replica_outcome.id,
                         change=replica_outcome.change)
    item = outcome.current(run, lambda: run.client("rds").describe_db_instances(
        DBInstanceIdentifier=outcome.id)["DBInstances"][0])
    return DatabaseRecord(
        name=resource_name(run.env_name, "postgres"), id=outcome.id, change=outcome.change,
        endpoint=item.get("Endpoint", {}).get("Address"), port=item.get("Endpoint", {}).get("Port"),
        database_name=run.environment.database.database_name,
        master_secret_arn=item.get("MasterUserSecret", {}).get("SecretArn"),
        settings=DbInstance._state(item) if item else {},
        parameter_group=parameter_group, subnet_group=subnet_group, replica=replica,
    )


def database_alarms(run: Run) -> dict[str, dict[str, Any]]:
    """CPU, free storage and connections: the plan's 'monitoring and alerts' for the database."""
    db = run.environment.database
    dimensions = {"DBInstanceIdentifier": resource_name(run.env_name, "postgres")}
    return {
        "postgres-cpu": alarm("AWS/RDS", "CPUUtilization", dimensions, "GreaterThanThreshold", 80),
        # Below a tenth of the allocated storage (bytes).
        "postgres-free-storage": alarm("AWS/RDS", "FreeStorageSpace", dimensions, "LessThanThreshold",
                                       db.allocated_storage_gb * 1024 ** 3 / 10),
        # db.t4g.medium allows about 400 connections; alert well before.
        "postgres-connections": alarm("AWS/RDS", "DatabaseConnections", dimensions, "GreaterThanThreshold", 300),
    }


TEARDOWN_ORDER: list[type[Resource]] = [DbInstance, DbParameterGroup, DbSubnetGroup]
