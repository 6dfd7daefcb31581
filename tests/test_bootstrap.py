"""`golive bootstrap sandbox` against moto and a Prefect server: what production's go-live deployment
needs, made once; a second run changes nothing in AWS or Prefect; the ECS pool's job variables, read back
from the API, are Phase 1's subnets, security group and roles as AWS itself reports them."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import GOLIVE, REPO, cli_env, prepare


def _bootstrap(prefect_api: str, *args: str) -> str:
    done = subprocess.run([*GOLIVE, "bootstrap", "sandbox", *args], cwd=REPO, env=cli_env(prefect_api),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 2), done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _prefect_state() -> dict:
    """When Prefect last changed each object the bootstrap keeps (the API's `updated` stamps)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("golive-sandbox-ecs")
        block = client.read_block_document_by_name("golive-sandbox-results", "s3-bucket")
        deployments = {name: client.read_deployment_by_name(name)
                       for name in ("go-live/sandbox", "backup-verification/sandbox")}
    return {"pool": (pool.updated, pool.base_job_template), "block": block.data,
            **{name: d.updated for name, d in deployments.items()}}


def test_bootstrap_twice_changes_nothing_and_the_pool_carries_phase_1(aws, prefect_api):
    # The plan from nothing runs the same code and writes nothing, to AWS or to Prefect.
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.bootstrap import bootstrap

    planned = bootstrap(environment="sandbox", sandbox=True, mode="plan")
    assert prepare().aws.log.writes() == []
    creates = {(c.kind, c.name) for c in planned.changes if c.action.value == "create"}
    assert {("work-pool", "golive-sandbox-ecs"), ("prefect-block", "golive-sandbox-results"),
            ("ecr-repository", "golive-sandbox-runbook"), ("runbook-cluster", "golive-sandbox-runbook")} <= creates
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):  # the plan made no work pool
        client.read_work_pool("golive-sandbox-ecs")

    first = _bootstrap(prefect_api)
    assert "Start a worker:   prefect worker start --pool golive-sandbox --type process" in first
    assert "Start the go-live: prefect deployment run go-live/sandbox" in first
    before = _prefect_state()

    second = _bootstrap(prefect_api)
    done = re.search(r"Done: (\d+) created, (\d+) updated, (\d+) replaced, (\d+) deleted, (\d+) unchanged.*?"
                     r"\((\d+) AWS calls, (\d+) writes", second)
    assert done, second[-2000:]
    created, updated, replaced, deleted, unchanged, calls, writes = map(int, done.groups())
    assert (created, updated, replaced, deleted, writes) == (0, 0, 0, 0, 0), second[-3000:]
    assert unchanged > 50 and calls > 0
    assert _prefect_state() == before  # no Prefect object was rewritten

    # The pool's job variables against what AWS reports for Phase 1's network and roles.
    run = prepare()
    ec2, iam = run.client("ec2"), run.client("iam")
    private = {s["SubnetId"] for s in ec2.describe_subnets(Filters=[
        {"Name": "tag:Name", "Values": ["golive-sandbox-private-*"]}])["Subnets"]}
    backend = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": ["golive-sandbox-backend"]}])["SecurityGroups"][0]
    from flows.bootstrap import read_job_variables

    variables = read_job_variables("golive-sandbox-ecs")
    network = variables["network_configuration"]
    assert len(private) == 2 and set(network["subnets"]) == private
    assert network["securityGroups"] == [backend["GroupId"]] and network["assignPublicIp"] == "DISABLED"
    assert variables["vpc_id"] == backend["VpcId"]
    assert variables["task_role_arn"] == iam.get_role(RoleName="golive-sandbox-deploy")["Role"]["Arn"]
    assert variables["execution_role_arn"] == iam.get_role(RoleName="golive-sandbox-ecs-execution")["Role"]["Arn"]
    cluster = run.client("ecs").describe_clusters(clusters=["golive-sandbox-runbook"])["clusters"][0]
    assert variables["cluster"] == cluster["clusterArn"] and variables["launch_type"] == "FARGATE"
    repository, tag = variables["image"].rsplit(":", 1)
    images = run.client("ecr").describe_images(repositoryName="golive-sandbox-runbook",
                                               imageIds=[{"imageTag": tag}])["imageDetails"]
    assert repository.endswith("/golive-sandbox-runbook") and images
    logs = variables["cloudwatch_logs_options"]
    assert variables["configure_cloudwatch_logs"] is True and logs["awslogs-group"] == "/golive/sandbox/runbook"
    assert run.client("logs").describe_log_groups(logGroupNamePrefix=logs["awslogs-group"])["logGroups"]

    # A hand edit of the pool is drift: the plan shows it and writes nothing; apply puts it back.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolUpdate

    from golive.changes import Action
    from golive.resource import ensure
    from tasks.work_pool import PoolInputs, WorkPool, job_variables

    with get_client(sync_client=True) as client:
        template = client.read_work_pool("golive-sandbox-ecs").base_job_template
        template["variables"]["properties"]["vpc_id"]["default"] = "vpc-edited-by-hand"
        client.update_work_pool("golive-sandbox-ecs", WorkPoolUpdate(base_job_template=template))
    inputs = PoolInputs(cluster=variables["cluster"], vpc_id=variables["vpc_id"], private_subnets=network["subnets"],
                        security_group=backend["GroupId"], task_role_arn=variables["task_role_arn"],
                        execution_role_arn=variables["execution_role_arn"], image=variables["image"],
                        log_group=logs["awslogs-group"], region=run.environment.region)
    planned = ensure(WorkPool(prepare(mode="plan"), "golive-sandbox-ecs", "ecs", job_variables(inputs))).change
    assert planned.action is Action.UPDATE and [f.field for f in planned.fields] == ["vpc_id"]
    assert read_job_variables("golive-sandbox-ecs")["vpc_id"] == "vpc-edited-by-hand"
    ensure(WorkPool(run, "golive-sandbox-ecs", "ecs", job_variables(inputs)))
    assert read_job_variables("golive-sandbox-ecs") == variables

    # The environment's teardown (`golive destroy`) finds what the bootstrap made in AWS too.
    from flows.teardown import teardown

    doomed = {(c.kind, c.name) for c in teardown(environment="sandbox", sandbox=True, mode="plan").changes}
    assert {("results-bucket", f"golive-sandbox-{run.account_id()}-prefect-results"),
            ("ecr-repository", "golive-sandbox-runbook"), ("runbook-cluster", "golive-sandbox-runbook"),
            ("log-group", "/golive/sandbox/runbook")} <= doomed

    # The teardown (`golive bootstrap sandbox --destroy` runs this flow) removes what the bootstrap made,
    # Phase 1 aside; run again, it finds nothing.
    from flows.bootstrap import bootstrap_teardown

    removed = bootstrap_teardown(environment="sandbox", sandbox=True)
    assert sorted(c.kind for c in removed.changes) == sorted([
        "prefect-deployment", "prefect-deployment", "work-pool", "prefect-block", "results-bucket",
        "ecr-repository", "runbook-cluster", "log-group"]) and all(c.action.value == "delete" for c in removed.changes)
    assert bootstrap_teardown(environment="sandbox", sandbox=True, mode="plan").changes == []
    assert ec2.describe_subnets(SubnetIds=list(private))["Subnets"]  # Phase 1 stays


def test_bootstrap_against_aws_needs_a_prefect_api_before_any_aws_call(monkeypatch):
    """Against AWS there is no local Prefect server to fall back on: the bootstrap says what to set."""
    from typer.testing import CliRunner

    from golive.cli import Failure, app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(app, ["bootstrap", "production", "--aws", "--verbose"])  # verbose: logging untouched
    assert isinstance(result.exception, Failure) and "set PREFECT_API_URL" in str(result.exception)
