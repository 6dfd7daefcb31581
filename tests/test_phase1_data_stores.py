"""Phase 1.3-1.6 against moto's server: security-relevant settings as AWS reports them, the plan's
production figures, no secret value anywhere a person or the UI can see, and nothing waiting on RDS."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from flows.infrastructure import infrastructure
from golive.changes import Action, Summary
from tests.conftest import prepare


def test_production_file_against_the_sandbox_gets_the_plans_production_figures(aws):
    infrastructure(environment="production", sandbox=True)
    rds = prepare("production").client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier="golive-production-postgres")["DBInstances"][0]
    assert (db["MultiAZ"], db["DBInstanceClass"], db["AllocatedStorage"], db["BackupRetentionPeriod"],
            db["DeletionProtection"]) == (True, "db.t4g.medium", 100, 7, True)


def test_a_modifiable_field_is_an_update_in_place(aws, tmp_path):
    from tests.conftest import write_environment

    infrastructure(environment="sandbox", sandbox=True)
    bigger = write_environment(tmp_path, edit=lambda t: t.replace(
        "[database]\n", '[database]\ninstance_class = "db.t4g.large"\nallocated_storage_gb = 200\n'
                         'maintenance_window = "Tue:06:00-Tue:06:30"\n'))
    plan = infrastructure(environment=str(bigger), sandbox=True, mode="plan")
    changes = {c.kind: c for c in plan.changes if c.is_change}
    # The free-storage alarm follows the size; the applied cost estimate follows the class and the size.
    assert set(changes) == {"rds-instance", "cloudwatch-alarm", "cost-estimate"}
    assert changes["rds-instance"].action is Action.UPDATE
    assert {f.field for f in changes["rds-instance"].fields} == {"instance_class", "allocated_storage_gb",
                                                                  "maintenance_window"}
    assert changes["cloudwatch-alarm"].name == "golive-sandbox-postgres-free-storage"
    infrastructure(environment=str(bigger), sandbox=True)
    db = prepare().client("rds").describe_db_instances(DBInstanceIdentifier="golive-sandbox-postgres")["DBInstances"][0]
    assert (db["DBInstanceClass"], db["AllocatedStorage"], db["PreferredMaintenanceWindow"]) == (
        "db.t4g.large", 200, "tue:06:00-tue:06:30")
    again = infrastructure(environment=str(bigger), sandbox=True, mode="plan")
    assert not [c for c in again.changes if c.kind == "rds-instance" and c.is_change]  # converged


def test_a_secret_key_is_generated_once_and_kept(aws):
    infrastructure(environment="sandbox", sandbox=True)
    secrets = prepare().client("secretsmanager")
    first = secrets.get_secret_value(SecretId="golive/sandbox/django-secret-key")["SecretString"]
    assert len(first) == 64
    again = infrastructure(environment="sandbox", sandbox=True)
    assert not Summary.of(again.changes).has_changes
    assert secrets.get_secret_value(SecretId="golive/sandbox/django-secret-key")["SecretString"] == first


def test_no_secret_value_in_logs_artifacts_or_parameters(aws, capfd):
    """Every log line, artifact and flow parameter of a full Phase 1 run, searched for every secret."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
    )

    from golive.sandbox.orchestrator import TASK_RUN_RECORDER_FLUSH_SECONDS

    state = infrastructure(environment="sandbox", sandbox=True, return_state=True)
    assert state.is_completed(), state
    flow_run_id = state.state_details.flow_run_id
    run = prepare()
    secrets = run.client("secretsmanager")
    master_arn = run.client("rds").describe_db_instances()["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
    master = json.loads(secrets.get_secret_value(SecretId=master_arn)["SecretString"])
    values = {
        "SECRET_KEY": secrets.get_secret_value(SecretId="golive/sandbox/django-secret-key")["SecretString"],
        "master password": master["password"],
        "app's database password": json.loads(secrets.get_secret_value(
            SecretId="golive/sandbox/database-login")["SecretString"])["password"],
    }
    assert all(len(v) >= 8 for v in values.values())

    async def everything_shown() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
            flow_run = await client.read_flow_run(flow_run_id)
            # The sandbox's server writes task runs in batches (golive/sandbox/orchestrator.py): read until
            # a flush interval and more passes with no new one (a few tries: a recorder that never writes
            # fails the count below instead of hanging the test).
            ours = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[flow_run_id]))
            task_runs = await client.read_task_runs(task_run_filter=ours)
            for _ in range(10):
                await asyncio.sleep(TASK_RUN_RECORDER_FLUSH_SECONDS + 0.5)
                again = await client.read_task_runs(task_run_filter=ours)
                if task_runs and len(again) == len(task_runs):
                    break
                task_runs = again
            assert len(task_runs) >= 30, "Phase 1's task runs, every one of them searched"
        return ([log.message for log in logs] + [json.dumps(a.data) + (a.description or "") for a in artifacts]
                + [json.dumps(flow_run.parameters), flow_run.state.message or ""]
                + [json.dumps(t.task_inputs, default=str) + (t.state.message or "") for t in task_runs if t.state])

    shown = asyncio.run(everything_shown())
    assert len(shown) > 50, "the search must have something to search"
    assert any("golive/sandbox/database-login" in text for text in shown), "secret names are shown"
    captured = capfd.readouterr()
    shown += [captured.out, captured.err]
    for label, value in values.items():
        leaks = [text[:120] for text in shown if value in text]
        assert not leaks, f"{label} appears in: {leaks}"


def test_nothing_independent_waits_for_the_database(aws):
    """RDS Multi-AZ takes ~20 minutes in AWS: slow its creation down and watch the rest finish first."""
    run = prepare()
    gate = threading.Event()
    started = {}

    def slow_database(event_name: str, **_):
        started["rds"] = time.monotonic()
        gate.wait(timeout=30)  # held until the independent work has happened (or 30 s pass)

    def watch(event_name: str, **_):
        operation = event_name.rsplit(".", 1)[-1]
        started.setdefault(operation, time.monotonic())
        independent = {"CreateBucket", "RequestCertificate", "CreateReplicationGroup", "CreateSecret"}
        if independent <= set(started):
            gate.set()

    run.aws.on("before-send.rds.CreateDBInstance", slow_database)
    run.aws.on("before-send", watch)
    try:
        t0 = time.monotonic()
        infrastructure(environment="sandbox", sandbox=True)
    finally:
        run.aws.off("before-send.rds.CreateDBInstance", slow_database)
        run.aws.off("before-send", watch)
    assert gate.is_set(), f"the bucket, certificate, cache and secret waited for the database: {sorted(started)}"
    assert time.monotonic() - t0 < 30
