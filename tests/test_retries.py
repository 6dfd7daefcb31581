"""Transient AWS errors are retried (by botocore per call, by Prefect per task); validation and
permission errors, a NotFound for something the run did not just create, and an unreachable endpoint
fail at once with one readable message."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from flows.infrastructure import infrastructure
from golive.changes import Summary
from golive.retry import is_transient
from tests.awsstate import EXPECTED_SINGLE_NAT, counts, ec2_inventory
from tests.conftest import GOLIVE, REPO, prepare
from tests.faults import FailFirst, NotYetVisible, Throttle, injected


def client_error(code: str, status: int, message: str = "x") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "Op")


@pytest.mark.parametrize("code,status,transient", [
    ("Throttling", 400, True), ("RequestLimitExceeded", 503, True), ("ThrottlingException", 400, True),
    ("InternalError", 500, True), ("ServiceUnavailable", 503, True),
    ("AccessDenied", 403, False), ("UnauthorizedOperation", 403, False), ("InvalidParameterValue", 400, False),
    ("ValidationError", 400, False), ("DependencyViolation", 400, False),
])
def test_what_counts_as_transient(code, status, transient):
    assert is_transient(client_error(code, status)) is transient


def test_a_not_found_is_eventual_consistency_only_for_what_this_process_just_created(monkeypatch):
    import golive.transient as transient
    from golive.retry import RECENT_CREATES, is_not_yet_visible

    RECENT_CREATES.clear()
    vpc_missing = client_error("InvalidVpcID.NotFound", 400, "The vpc ID 'vpc-0a1b2c3d4e5f60718' does not exist")
    assert not is_not_yet_visible(vpc_missing)  # nothing created: the id is wrong, say so at once
    RECENT_CREATES.remember("CreateVpc", {"VpcId": "vpc-0a1b2c3d4e5f60718"}, {"Vpc": {"VpcId": "vpc-0a1b2c3d4e5f60718"}})
    assert is_not_yet_visible(vpc_missing)
    assert not is_transient(vpc_missing)  # botocore's standard retries do not resend it; our handler does
    assert not is_not_yet_visible(client_error("InvalidAMIID.NotFound", 400,
                                               "The image id '[ami-0123456789abcdef0]' does not exist"))
    assert not is_not_yet_visible(client_error("AccessDenied", 403, "vpc-0a1b2c3d4e5f60718"))
    # A create that returns an ARN: the message may name the ARN or only its last part.
    RECENT_CREATES.remember("RequestCertificate",
                            {"CertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/4f1c-9a2b"})
    assert is_not_yet_visible(client_error("ResourceNotFoundException", 400,
                                           "Could not find certificate 4f1c-9a2b."))
    assert not is_not_yet_visible(client_error("ResourceNotFoundException", 400,
                                               "Could not find certificate 0000-dead."))
    # A NotFound for something the new thing merely has (no lifecycle policy yet on a new repository, a
    # member cluster moto lists but cannot describe) is the answer: retrying it cost 15.5 s a call.
    RECENT_CREATES.remember("CreateRepository", {"repositoryName": "golive-sandbox-backend"})
    assert not is_not_yet_visible(client_error(
        "LifecyclePolicyNotFoundException", 400,
        "Lifecycle policy does not exist for the repository with name 'golive-sandbox-backend'"))
    assert is_not_yet_visible(client_error(
        "RepositoryNotFoundException", 400, "The repository with name 'golive-sandbox-backend' does not exist"))
    RECENT_CREATES.remember("CreateReplicationGroup", {"ReplicationGroupId": "golive-sandbox-redis"},
                            {"ReplicationGroup": {"MemberClusters": ["golive-sandbox-redis-001"]}})
    assert not is_not_yet_visible(client_error("CacheClusterNotFound", 404, "golive-sandbox-redis-001 not found"))
    # Past the window, the same NotFound is the answer.
    monkeypatch.setattr(transient, "EVENTUAL_CONSISTENCY_SECONDS", -1.0)
    assert not is_not_yet_visible(vpc_missing)
    RECENT_CREATES.clear()


def test_a_later_create_naming_the_same_vpc_does_not_hide_that_it_was_just_created():
    """CreateSubnet and CreateSecurityGroup name their VPC too. Whichever parallel create finishes first, a
    NotFound for the VPC in the next CreateSubnet is AWS catching up (it was judged final when a sibling
    subnet's success was the last to name the VPC: the suite failed so on a busy machine)."""
    from golive.retry import RECENT_CREATES, is_not_yet_visible

    RECENT_CREATES.clear()
    vpc_missing = client_error("InvalidVpcID.NotFound", 400, "The vpc ID 'vpc-0a1b2c3d4e5f60718' does not exist")
    RECENT_CREATES.remember("CreateVpc", {"VpcId": "vpc-0a1b2c3d4e5f60718"})
    RECENT_CREATES.remember("CreateSubnet", {"VpcId": "vpc-0a1b2c3d4e5f60718", "CidrBlock": "10.40.0.0/24"},
                            {"Subnet": {"SubnetId": "subnet-0a1b2c3d4e5f60718", "VpcId": "vpc-0a1b2c3d4e5f60718"}})
    assert is_not_yet_visible(vpc_missing)
    # A subnet's create alone does not make its VPC "just created": that NotFound is the answer.
    RECENT_CREATES.clear()
    RECENT_CREATES.remember("CreateSubnet", {"VpcId": "vpc-0a1b2c3d4e5f60718"})
    assert not is_not_yet_visible(vpc_missing)
    RECENT_CREATES.clear()


@pytest.mark.parametrize("code, operation, about_it", [
    ("InvalidVpcID.NotFound", "CreateVpc", True), ("InvalidGroup.NotFound", "CreateSecurityGroup", True),
    ("InvalidAllocationID.NotFound", "AllocateAddress", True),
    ("InvalidAssociationID.NotFound", "AssociateRouteTable", True), ("NoSuchEntity", "CreateRole", True),
    ("InvalidInstanceID.NotFound", "RunInstances", True), ("NoSuchDistribution", "CreateDistributionWithTags", True),
    ("InvalidSubnetID.NotFound", "CreateVpc", False), ("NoSuchBucketPolicy", "CreateBucket", False),
    ("InvalidAssociationID.NotFound", "CreateVpc", False),
])
def test_a_not_found_code_is_matched_to_the_kind_the_create_made(code, operation, about_it):
    from golive.transient import about

    assert about(code, operation) is about_it


def test_a_dropped_connection_is_transient_but_an_unreachable_endpoint_is_not():
    from golive.retry import is_unreachable

    for dropped in (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
                    ReadTimeoutError(endpoint_url="http://127.0.0.1:1")):
        assert is_transient(dropped) and not is_unreachable(dropped)
    for unreachable in (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1")):
        assert is_unreachable(unreachable) and not is_transient(unreachable)


def test_a_not_found_for_a_vpc_just_created_is_resent_by_the_call_and_the_run_converges(aws):
    run = prepare()
    fault = NotYetVisible("CreateSubnet", "VpcId", "InvalidVpcID.NotFound", times=2)
    with injected(run, "before-send.ec2", fault):
        infrastructure(environment="sandbox", sandbox=True)
    vpc_id = ec2_inventory(run)["vpcs"][0]["VpcId"]
    assert fault.named == [vpc_id, vpc_id], "the fault must have named the VPC the run had just created"
    creates = [call for call in run.aws.log.calls if call.operation == "CreateSubnet"]
    assert len(creates) == EXPECTED_SINGLE_NAT["subnets"]  # no task retry: each subnet asked for once
    assert run.aws.log.attempts["CreateSubnet"] == len(creates) + 2  # the call resent twice
    assert counts(run) == EXPECTED_SINGLE_NAT


def test_a_not_found_for_something_the_run_did_not_create_fails_at_once_with_awss_message(aws):
    run = prepare()
    fault = FailFirst("CreateSubnet", 100, "ec2", 400, "InvalidVpcID.NotFound",
                      "The vpc ID 'vpc-0badc0ffee0000000' does not exist")
    with injected(run, "before-send.ec2", fault):
        with pytest.raises(ClientError, match="vpc-0badc0ffee0000000' does not exist") as raised:
            infrastructure(environment="sandbox", sandbox=True)
    assert raised.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"
    creates = [call for call in run.aws.log.calls if call.operation == "CreateSubnet"]
    assert run.aws.log.attempts["CreateSubnet"] == len(creates)  # no call resent
    assert len({call.params["CidrBlock"] for call in creates}) == len(creates)  # no task retried


def test_a_repository_not_made_yet_is_the_answer_though_another_was_just_made_in_the_same_account(aws):
    """ECR's NotFound names the registry (the account id) that every CreateRepository returns: the second
    repository's discover must not be resent for 15.5 s as if it were the first catching up."""
    from golive.resource import ensure
    from tasks.registry import Repository

    run = prepare()
    ensure(Repository(run, "backend"))
    before = run.aws.log.attempts.get("DescribeRepositories", 0)
    with pytest.raises(ClientError, match="registry with id") as raised:
        run.client("ecr").describe_repositories(repositoryNames=["golive-sandbox-frontend"])
    assert raised.value.response["Error"]["Code"] == "RepositoryNotFoundException"
    assert run.aws.log.attempts["DescribeRepositories"] == before + 1, "the NotFound was resent"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", "http://golive-no-such-host.invalid"])
def test_an_unreachable_endpoint_fails_within_seconds_with_one_line(endpoint, tmp_path):
    """Connection refused and a name that does not resolve: one line naming the endpoint, the credentials
    and what to check, well under 10 s, no trace (before Prefect starts, before any flow)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "PREFECT_API_URL"))}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="golive-test", AWS_SECRET_ACCESS_KEY="golive-test",
               AWS_CONFIG_FILE=str(tmp_path / "none"), COLUMNS="200")
    started = time.monotonic()
    result = subprocess.run([*GOLIVE, "plan", "sandbox", "--aws"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=60)
    seconds = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    assert seconds < 10, f"took {seconds:.1f} s"
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach AWS at ")
    assert endpoint in lines[0] and "credentials from env" in lines[0] and f"AWS_ENDPOINT_URL (set to {endpoint})" in lines[0]


def test_throttling_on_a_share_of_calls_is_retried_and_the_run_converges(aws):
    run = prepare()
    throttle = Throttle(every=6)  # one EC2 request in six
    with injected(run, "before-send.ec2", throttle):
        result = infrastructure(environment="sandbox", sandbox=True)
    assert throttle.injected >= 5, "the test must really have throttled"
    assert sum(run.aws.log.attempts.values()) > len(run.aws.log.calls)
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert Summary.of(result.changes).create == sum(EXPECTED_SINGLE_NAT.values())


def test_a_task_is_retried_when_botocore_gives_up_on_a_throttled_call(aws):
    run = prepare()
    attempts_per_call = run.target.max_attempts
    fault = FailFirst("CreateInternetGateway", attempts_per_call, "ec2", 503, "RequestLimitExceeded", "Slow down")
    with injected(run, "before-send.ec2", fault):
        infrastructure(environment="sandbox", sandbox=True)
    assert run.aws.log.attempts["CreateInternetGateway"] == attempts_per_call + 1  # a second task attempt
    assert counts(run)["internet_gateways"] == 1


def test_access_denied_is_not_retried_and_fails_with_awss_message(aws):
    run = prepare()
    fault = FailFirst("CreateRole", 100, "query", 403, "AccessDenied",
                      "User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: iam:CreateRole")
    with injected(run, "before-send.iam", fault):
        with pytest.raises(ClientError, match="not authorized to perform: iam:CreateRole") as raised:
            infrastructure(environment="sandbox", sandbox=True)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert run.aws.log.attempts["CreateRole"] == 1
