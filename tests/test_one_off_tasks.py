"""One-off ECS tasks, one code path: the sandbox's ECS runs them for real (golive/sandbox/ecs_emulation.py).

On a copy of the example app: Phases 1, 2, 5 and 3; the app's database login rotated and a new task that
logs in with it; then a migration that fails stops a release before anything rolls, and stops Phase 5,
naming the command, the exit code, the task and its last log lines. Nothing leaks a password."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest

from flows.containers import containers
from flows.data import data
from flows.ecs import ecs
from flows.infrastructure import infrastructure
from flows.release import release
from golive import dataplane
from tasks.database_role import AppDatabaseRole
from tasks.one_off import OneOffFailed, Placement, run_one_off
from golive.resource import ensure
from tests.conftest import REPO, prepare, write_environment

BROKEN_MIGRATION = '''from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("this migration is broken on purpose")


class Migration(migrations.Migration):
    dependencies = [("courts", "0001_initial")]
    operations = [migrations.RunPython(fail, migrations.RunPython.noop)]
'''
WHO_AM_I = ["python", "manage.py", "shell", "-c",
            "from django.db import connection; connection.ensure_connection(); "
            "print('logged in as', connection.get_connection_params()['user'])"]


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "precedentum"
    shutil.copytree(REPO / "examples" / "precedentum", copy,
                    ignore=shutil.ignore_patterns("staticfiles", "__pycache__", "*.pyc"))
    return copy


def backend_placement(run) -> Placement:
    ecs_client = run.client("ecs")
    service = ecs_client.describe_services(cluster="golive-sandbox-cluster",
                                           services=["golive-sandbox-backend"])["services"][0]
    network = service["networkConfiguration"]["awsvpcConfiguration"]
    return Placement(cluster="golive-sandbox-cluster", task_definition=service["taskDefinition"], container="backend",
                     subnets=network["subnets"], security_group=network["securityGroups"][0])


def rotate_app_password(run) -> tuple[str, str]:
    """What a rotation does: a new secret value, then ALTER ROLE (Phase 5's role step sees the role no
    longer logs in with its secret and sets the new password)."""
    secrets = run.client("secretsmanager")
    login = json.loads(secrets.get_secret_value(SecretId="golive/sandbox/database-login")["SecretString"])
    new = secrets.get_random_password(PasswordLength=40, ExcludeCharacters="\"'\\`$/@:?#%&=+ ")["RandomPassword"]
    secrets.put_secret_value(SecretId="golive/sandbox/database-login",
                             SecretString=json.dumps({**login, "password": new}))
    outcome = ensure(AppDatabaseRole(run))
    assert outcome.change.action == "update" and [f.field for f in outcome.change.fields] == ["logs_in_with_its_secret"]
    return login["password"], new


def everything_stored(run) -> str:
    """Task definitions, parameters and every log event the sandbox holds, as one text to search."""
    ecs_client, ssm, logs = run.client("ecs"), run.client("ssm"), run.client("logs")
    texts = []
    for arn in ecs_client.list_task_definitions()["taskDefinitionArns"]:
        texts.append(json.dumps(ecs_client.describe_task_definition(taskDefinition=arn)["taskDefinition"], default=str))
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path="/golive/", Recursive=True):
        texts += [p["Value"] for p in page["Parameters"]]
    for group in logs.describe_log_groups()["logGroups"]:
        for stream in logs.describe_log_streams(logGroupName=group["logGroupName"])["logStreams"]:
            texts += [e["message"] for e in logs.get_log_events(logGroupName=group["logGroupName"],
                                                                 logStreamName=stream["logStreamName"])["events"]]
    return "\n".join(texts)


def test_logins_survive_rotation_and_a_failed_migration_stops_release_and_phase_5(aws, empty_database, app_copy,
                                                                                tmp_path):
    environment = str(write_environment(tmp_path, edit=lambda t: t + f'\n[app]\npath = "{app_copy}"\n'))
    infrastructure(environment=environment, sandbox=True)
    containers(environment=environment, sandbox=True)
    data(environment=environment, sandbox=True, cases=20)
    ecs(environment=environment, sandbox=True)
    run = prepare(environment)

    # The service's task definition names where its login is, never a password; a task of it logs in as the
    # app's own role, which may read and write the app's tables and nothing more.
    definition = run.client("ecs").describe_task_definition(taskDefinition="golive-sandbox-backend")["taskDefinition"]
    secrets = {s["name"]: s["valueFrom"] for s in definition["containerDefinitions"][0]["secrets"]}
    assert secrets["DB_PASSWORD"].endswith(":password::") and ":secret:golive/sandbox/database-login" in secrets["DB_PASSWORD"]
    assert {"DB_HOST", "DB_PORT", "DB_NAME", "DB_SSLMODE"} <= set(secrets) and "DATABASE_URL" not in secrets
    before = run_one_off(run, backend_placement(run), WHO_AM_I, "whoami")
    assert before.output[-1] == "logged in as precedentum_app", before.output

    old, new = rotate_app_password(run)
    where = urlparse(dataplane.app_url(run))
    login = dict(host=where.hostname, port=where.port, dbname=where.path.lstrip("/"), user="precedentum_app",
                 connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**login, password=old).close()
    psycopg.connect(**login, password=new).close()
    after = run_one_off(run, backend_placement(run), WHO_AM_I, "whoami")
    assert after.output[-1] == "logged in as precedentum_app", after.output
    stored = everything_stored(run)
    master = json.loads(run.client("secretsmanager").get_secret_value(SecretId=dataplane.master_secret_arn(run))["SecretString"])
    for label, value in {"old app password": old, "new app password": new, "master password": master["password"]}.items():
        assert value not in stored, f"the {label} is stored in a task definition, a parameter or a log"

    # A release whose migration fails: the command, the exit code, the task and its last lines; no roll.
    (app_copy / "courts" / "migrations" / "0002_broken.py").write_text(BROKEN_MIGRATION)
    ecs_client = run.client("ecs")
    serving = ecs_client.describe_services(cluster="golive-sandbox-cluster",
                                           services=["golive-sandbox-backend"])["services"][0]["taskDefinition"]
    with pytest.raises(OneOffFailed) as failed:
        release(environment=environment, image_tag="v2", sandbox=True)
    message = str(failed.value)
    assert "`python manage.py migrate --noinput` failed in ECS task arn:aws:ecs:" in message, message
    assert "exit 1" in message and "this migration is broken on purpose" in message, message
    assert ecs_client.describe_services(cluster="golive-sandbox-cluster", services=["golive-sandbox-backend"])[
        "services"][0]["taskDefinition"] == serving, "nothing was rolled"
    assert len(ecs_client.list_task_definitions(familyPrefix="golive-sandbox-backend")["taskDefinitionArns"]) == 1
    tag = run.client("ssm").get_parameters(Names=["/golive/sandbox/release/image-tag"])["Parameters"]
    assert [p["Value"] for p in tag] in ([], ["initial"]), "the failed release is not recorded as deployed"

    # Phase 5 on the broken image fails the same way, and the schema is left as the good image made it.
    broken = str(write_environment(tmp_path, edit=lambda t: t + f'\n[app]\npath = "{app_copy}"\n'
                                   '[app.images]\ntag = "v2"\n', name="broken"))
    state = data(environment=broken, sandbox=True, cases=20, return_state=True)
    assert state.is_failed()
    assert "migrate --noinput` failed in ECS task" in state.message and "broken on purpose" in state.message


def test_a_resumed_run_waits_for_the_migration_still_running(aws, empty_database, app_copy, tmp_path):
    """A run killed while its migration ran must not start a second one: it finds the task by startedBy."""
    slow = '''from django.db import migrations
import time


def wait(apps, schema_editor):
    time.sleep(3)


class Migration(migrations.Migration):
    dependencies = [("courts", "0001_initial")]
    operations = [migrations.RunPython(wait, migrations.RunPython.noop)]
'''
    (app_copy / "courts" / "migrations" / "0002_slow.py").write_text(slow)
    environment = str(write_environment(tmp_path, edit=lambda t: t + f'\n[app]\npath = "{app_copy}"\n'))
    infrastructure(environment=environment, sandbox=True)
    containers(environment=environment, sandbox=True)
    run = prepare(environment)
    from prefect import flow

    from flows.data import prepare_one_off_tasks

    placement = flow(name="one-off-placement")(lambda: prepare_one_off_tasks(run, "initial")["placement"])()
    ecs_client = run.client("ecs")
    # The killed run's migration, started and left running.
    ecs_client.run_task(cluster=placement.cluster, taskDefinition=placement.task_definition, launchType="FARGATE",
                        startedBy="golive-migrate", overrides={"containerOverrides": [
                            {"name": "manage", "command": ["python", "manage.py", "migrate", "--noinput"]}]},
                        networkConfiguration={"awsvpcConfiguration": {"subnets": placement.subnets,
                                                                      "securityGroups": [placement.security_group]}})
    time.sleep(0.5)
    resumed = run_one_off(run, placement, ["python", "manage.py", "migrate", "--noinput"], "migrate")
    assert resumed.reused and "Applying courts.0002_slow... OK" in resumed.text, resumed
    started = ecs_client.list_tasks(cluster=placement.cluster, startedBy="golive-migrate", desiredStatus="STOPPED")
    assert len(started["taskArns"]) == 1, "one migration ran, not two"


def test_a_describe_answer_is_a_snapshot_a_stop_landing_meanwhile_does_not_tear():
    """moto serialises DescribeTasks' answer field by field after describe_tasks returns; the sandbox's ECS
    answers from a snapshot, so a stop that lands meanwhile cannot give lastStatus STOPPED with no exit code
    (a task that had run once read as one that never started). moto in process, its own ECS objects."""
    import boto3
    from moto import mock_aws
    from moto.ecs.models import ecs_backends

    from golive.sandbox import ecs_emulation

    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1")
        ecs.create_cluster(clusterName="snapshot")
        ecs.register_task_definition(family="snapshot", containerDefinitions=[
            {"name": "app", "image": "example/app:1", "memory": 128}])
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
        ecs.run_task(cluster="snapshot", taskDefinition="snapshot", count=1, launchType="FARGATE",
                     networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet]}})
        task = next(iter(ecs_backends["123456789012"]["us-east-1"].tasks["snapshot"].values()))
        task.containers[0].exitCode = None  # running, as the sandbox's run_task leaves it

        answer = ecs_emulation._snapshot(task)
        ecs_emulation._stopped(task, stop_code="EssentialContainerExited", reason="Essential container in task exited",
                               exit_code=3)

        assert (answer.containers[0].exitCode, answer.stopped_reason) == (None, "")
        assert (task.containers[0].exitCode, task.stopped_reason) == (3, "Essential container in task exited")
        assert ecs_emulation._snapshot(task).containers[0].exitCode == 3
