"""A run killed with SIGKILL, then started again, converges: in Phase 1 one VPC, no duplicate subnets,
gateways or Elastic IPs, and nothing left to plan; in Phase 3's service wait, a release and a rollback,
the second run finishes what the first started instead of starting it again. (Backup verification's
leftovers: tests/test_backup_verification.py. Every phase under faults: `make soak`, tests/soak.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from flows.infrastructure import infrastructure
from golive.changes import Summary
from tests.awsstate import EXPECTED_SINGLE_NAT, counts
from tests.conftest import REPO, cli_env, prepare

# Right after: a NAT gateway nobody recorded (its address allocated just before); an instance still
# creating (the next run waits for it); a certificate (moto ignores its idempotency token, so only
# discovery by tag prevents a second one). Each point costs ~25 s of the 10-minute suite: an Elastic IP
# alone and a half-written ACL were dropped (2026-11-27), the VPC and the bucket (2026-12-01) for the
# release and rollback test below; `make soak` kills at 20 random moments of every phase (tests/soak.py).
KILL_POINTS = ["CreateNatGateway", "CreateDBInstance", "RequestCertificate"]


@pytest.mark.slow
@pytest.mark.parametrize("operation", KILL_POINTS)
def test_killed_run_converges_when_started_again(aws, prefect_api, operation):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.kill_after", "apply", "sandbox", "--phase", "1"], cwd=REPO, capture_output=True, text=True,
        timeout=180, env=cli_env(prefect_api, GOLIVE_TEST_KILL_AFTER=operation),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    run = prepare()
    partial = counts(run)
    assert partial != EXPECTED_SINGLE_NAT, f"the kill after {operation} came too late to test anything"
    assert partial["vpcs"] <= 1

    result = infrastructure(environment="sandbox", sandbox=True)
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert all(d.ok for d in result.deliverables)
    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    assert not Summary.of(plan.changes).has_changes, [c.headline() for c in plan.changes if c.is_change]


def _killed(prefect_api, operation: str, *args: str) -> None:
    killed = subprocess.run([sys.executable, "-m", "tests.kill_after", *args], cwd=REPO, capture_output=True,
                            text=True, timeout=300, env=cli_env(prefect_api, GOLIVE_TEST_KILL_AFTER=operation))
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr


def _golive(prefect_api, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "golive.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=cli_env(prefect_api))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _revisions(run) -> dict[str, dict[str, list[int]]]:
    """Per family, its ACTIVE and INACTIVE revision numbers; and what each service runs."""
    from golive.naming import resource_name

    ecs = run.client("ecs")
    families = {}
    for family in ("backend", "frontend"):
        name = resource_name("sandbox", family)
        families[family] = {status: sorted(int(a.rsplit(":", 1)[1]) for a in ecs.list_task_definitions(
            familyPrefix=name, status=status)["taskDefinitionArns"] if a.rsplit(":", 1)[0].endswith("/" + name))
            for status in ("ACTIVE", "INACTIVE")}
        described = ecs.describe_services(cluster=resource_name("sandbox", "cluster"), services=[name])["services"]
        families[family]["runs"] = [int(s["taskDefinition"].rsplit(":", 1)[1]) for s in described if s["status"] == "ACTIVE"]
    return families


@pytest.mark.slow
def test_killed_ecs_wait_release_and_rollback_are_finished_not_repeated(empty_database, aws, prefect_api):
    """Phase 3 killed in the ECS service wait; a release killed as the services roll; a rollback killed
    after its first service moved. Each, started again, finishes what the killed run started: one service
    each, one revision per release, and the rollback steps back once, not twice."""
    from flows.containers import containers
    from flows.ecs import ecs
    from flows.release import release
    from tests.awsstate import duplicates_and_orphans, inventory

    infrastructure(environment="sandbox", sandbox=True)
    containers(environment="sandbox", sandbox=True)
    run = prepare()
    _killed(prefect_api, "CreateService", "apply", "sandbox", "--phase", "3")
    _golive(prefect_api, "apply", "sandbox", "--phase", "3")
    assert {f: r["runs"] for f, r in _revisions(run).items()} == {"backend": [1], "frontend": [1]}
    items = inventory(run.target.endpoint_url, run.environment.region)
    duplicates, _ = duplicates_and_orphans(items, set(), "sandbox")
    assert duplicates == []

    _killed(prefect_api, "UpdateService", "release", "sandbox", "--image", "v2")
    _golive(prefect_api, "release", "sandbox", "--image", "v2")
    assert _revisions(run) == {f: {"ACTIVE": [1, 2], "INACTIVE": [], "runs": [2]} for f in ("backend", "frontend")}

    release(environment="sandbox", image_tag="v3", sandbox=True)
    _killed(prefect_api, "UpdateService", "rollback", "sandbox")
    output = _golive(prefect_api, "rollback", "sandbox")
    # Back to v2 (revision 2), revision 3 retired; not on to revision 1.
    assert _revisions(run) == {f: {"ACTIVE": [1, 2], "INACTIVE": [3], "runs": [2]} for f in ("backend", "frontend")}, output
    ssm = run.client("ssm")
    assert ssm.get_parameter(Name="/golive/sandbox/release/image-tag")["Parameter"]["Value"] == "v2"
    with pytest.raises(ssm.exceptions.ParameterNotFound):
        ssm.get_parameter(Name="/golive/sandbox/release/rollback-in-progress")
    plan = ecs(environment="sandbox", sandbox=True, mode="plan")
    assert not Summary.of(plan.changes).has_changes, [c.headline() for c in plan.changes if c.is_change]


def test_route53_resources_a_killed_run_made_but_did_not_tag_are_tagged_not_duplicated(aws):
    """Route 53 tags in a second call. Killed between the two (found by `make soak`: an untagged uptime
    health check), the next run finds the zone and the check by their CallerReference and tags them."""
    from golive.naming import ENVIRONMENT_TAG, resource_name
    from golive.resource import ensure
    from tasks.alarms import UptimeHealthCheck
    from tasks.dns import HostedZone

    run = prepare()
    route53 = run.client("route53")
    zone = route53.create_hosted_zone(Name=run.environment.domain, CallerReference="golive-sandbox-1764558000000")
    check = UptimeHealthCheck(run)
    spec = check.desired()
    made = route53.create_health_check(
        CallerReference=f"{resource_name('sandbox', 'uptime')}-1764558000000",
        HealthCheckConfig={"Type": spec["type"], "FullyQualifiedDomainName": spec["fqdn"], "ResourcePath": spec["path"],
                           "Port": spec["port"], "RequestInterval": spec["interval"],
                           "FailureThreshold": spec["failure_threshold"], "EnableSNI": spec["sni"]})["HealthCheck"]

    zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
    assert ensure(HostedZone(run, "zone")).id == zone_id
    assert ensure(check).id == made["Id"]
    assert len(route53.list_health_checks()["HealthChecks"]) == 1
    for kind, resource_id in (("hostedzone", zone_id), ("healthcheck", made["Id"])):
        tags = route53.list_tags_for_resource(ResourceType=kind, ResourceId=resource_id)["ResourceTagSet"]["Tags"]
        assert {t["Key"]: t["Value"] for t in tags}.get(ENVIRONMENT_TAG) == "sandbox", kind
    run.aws.log.clear()
    ensure(HostedZone(run, "zone")), ensure(check)
    assert run.aws.log.writes() == [], "tagged once, converged after"


def test_a_task_definition_aws_registered_but_whose_answer_was_lost_is_not_registered_twice(aws):
    """RegisterTaskDefinition has no client token. The request reaches AWS (the emulator registers it) and
    the answer is lost (a 500 at the wire): one attempt, no resend; the step's retry finds the revision by
    its family and content and registers nothing."""
    from botocore.exceptions import ClientError
    from botocore.httpsession import URLLib3Session

    from golive.changes import Action, Change
    from golive.resource import ensure
    from tasks.compute import TaskDefinition
    from tasks.registry import ImageRecord
    from tests.faults import error_response, injected

    run = prepare()
    account = run.account_id()
    roles = {r: f"arn:aws:iam::{account}:role/golive/sandbox/golive-sandbox-{r}" for r in ("ecs-execution", "ecs-task")}
    uri = f"{account}.dkr.ecr.us-east-1.amazonaws.com/golive-sandbox-frontend:v1"
    image = ImageRecord(name="frontend", component="frontend", tag="v1", source="sandbox manifest", uri=uri,
                        change=Change(action=Action.NOOP, kind="container-image", name="golive-sandbox-frontend:v1"))
    carried_out = []

    def answer_lost(event_name: str, request, **_):
        if event_name.endswith(".RegisterTaskDefinition") and not carried_out:
            carried_out.append(URLLib3Session().send(request).status_code)  # AWS does it ...
            return error_response("json", 500, "InternalFailure", "answer lost")  # ... the answer is lost
        return None

    with injected(run, "before-send", answer_lost):
        with pytest.raises(ClientError, match="InternalFailure"):
            ensure(TaskDefinition(run, "frontend", image, roles))
        assert carried_out == [200] and run.aws.log.attempts["RegisterTaskDefinition"] == 1
        retried = ensure(TaskDefinition(run, "frontend", image, roles))  # what the task's retry runs
    assert retried.change.action == Action.NOOP
    arns = run.client("ecs").list_task_definitions(familyPrefix="golive-sandbox-frontend")["taskDefinitionArns"]
    assert [a.rsplit(":", 1)[1] for a in arns] == ["1"]
