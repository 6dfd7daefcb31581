"""Transient AWS errors are retried (by botocore per call, by Prefect per task); validation and
permission errors fail at once with AWS's message."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from flows.infrastructure import infrastructure
from golive.changes import Summary
from golive.retry import is_transient
from tests.awsstate import EXPECTED_SINGLE_NAT, counts
from tests.conftest import prepare
from tests.faults import FailFirst, Throttle


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize("code,status,transient", [
    ("Throttling", 400, True), ("RequestLimitExceeded", 503, True), ("ThrottlingException", 400, True),
    ("InternalError", 500, True), ("ServiceUnavailable", 503, True),
    ("AccessDenied", 403, False), ("UnauthorizedOperation", 403, False), ("InvalidParameterValue", 400, False),
    ("ValidationError", 400, False), ("DependencyViolation", 400, False),
])
def test_what_counts_as_transient(code, status, transient):
    assert is_transient(client_error(code, status)) is transient


def test_not_yet_visible_resources_retry_the_task_but_not_the_call():
    from golive.retry import is_not_yet_visible

    assert is_not_yet_visible(client_error("InvalidVpcID.NotFound", 400))
    assert is_not_yet_visible(client_error("InvalidGroup.NotFound", 400))
    assert not is_transient(client_error("InvalidVpcID.NotFound", 400))  # botocore does not resend it
    assert not is_not_yet_visible(client_error("AccessDenied", 403))


def test_connection_errors_are_transient():
    assert is_transient(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))


def test_throttling_on_a_share_of_calls_is_retried_and_the_run_converges(aws):
    run = prepare()
    throttle = Throttle(every=6)  # one EC2 request in six
    run.aws.on("before-send.ec2", throttle)
    try:
        result = infrastructure(environment="sandbox", sandbox=True)
    finally:
        run.aws.off("before-send.ec2", throttle)
    assert throttle.injected >= 5, "the test must really have throttled"
    assert sum(run.aws.log.attempts.values()) > len(run.aws.log.calls)
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert Summary.of(result.changes).create == sum(EXPECTED_SINGLE_NAT.values())


def test_a_task_is_retried_when_botocore_gives_up_on_a_throttled_call(aws):
    run = prepare()
    attempts_per_call = run.target.max_attempts
    fault = FailFirst("CreateInternetGateway", attempts_per_call, "ec2", 503, "RequestLimitExceeded", "Slow down")
    run.aws.on("before-send.ec2", fault)
    try:
        infrastructure(environment="sandbox", sandbox=True)
    finally:
        run.aws.off("before-send.ec2", fault)
    assert run.aws.log.attempts["CreateInternetGateway"] == attempts_per_call + 1  # a second task attempt
    assert counts(run)["internet_gateways"] == 1


def test_access_denied_is_not_retried_and_fails_with_awss_message(aws):
    run = prepare()
    fault = FailFirst("CreateRole", 100, "query", 403, "AccessDenied",
                      "User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: iam:CreateRole")
    run.aws.on("before-send.iam", fault)
    try:
        with pytest.raises(ClientError, match="not authorized to perform: iam:CreateRole") as raised:
            infrastructure(environment="sandbox", sandbox=True)
    finally:
        run.aws.off("before-send.iam", fault)
    assert raised.value.response["Error"]["Code"] == "AccessDenied"
    assert run.aws.log.attempts["CreateRole"] == 1
