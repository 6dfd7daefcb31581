"""golive/shared_reads.py against moto's server: inside a plan, identical reads reach AWS once, at the same
moment or later, and every caller gets the answer (or the error) it would have had alone; outside a plan,
and for writes, throttling and server errors, every call is its own."""

from __future__ import annotations

import json
import threading

import pytest

from golive.shared_reads import shared_reads
from tests.conftest import prepare
from tests.faults import FailFirst, injected

TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                                "Action": "sts:AssumeRole"}]}


def sent(run, operation: str) -> int:
    """Requests that reached the wire (botocore's before-send fires once per attempt)."""
    return run.aws.log.attempts.get(operation, 0)


def test_identical_reads_in_a_plan_reach_aws_once_and_answer_as_alone(aws):
    run = prepare(mode="plan")
    iam = run.client("iam")
    iam.create_role(RoleName="shared-reads-probe", AssumeRolePolicyDocument=json.dumps(TRUST))
    alone = iam.get_role(RoleName="shared-reads-probe")["Role"]
    run.aws.log.clear()

    answers: list[dict] = []
    with shared_reads():
        # At the same moment, from threads started from the plan's context (as its phases' are), then later.
        from contextvars import copy_context

        threads = [threading.Thread(target=copy_context().run,
                                    args=(lambda: answers.append(iam.get_role(RoleName="shared-reads-probe")["Role"]),))
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answers.append(iam.get_role(RoleName="shared-reads-probe")["Role"])
        # A missing role: the same NoSuchEntity for each caller, asked once.
        for _ in range(2):
            with pytest.raises(iam.exceptions.NoSuchEntityException):
                iam.get_role(RoleName="shared-reads-missing")
        # Writes are never shared.
        for _ in range(2):
            iam.tag_role(RoleName="shared-reads-probe", Tags=[{"Key": "probe", "Value": "1"}])

    assert sent(run, "GetRole") == 2, run.aws.log.attempts  # one for the role, one for the missing one
    assert run.aws.log.shared == 5 and sent(run, "TagRole") == 2
    # Each caller's answer is the one it would have had alone, its trust policy decoded by botocore's own
    # after-call handler (the shared copy is reworked like any answer, not twice), and its own copy.
    assert all(answer == alone for answer in answers) and answers[0]["AssumeRolePolicyDocument"] == TRUST
    answers[0]["RoleName"] = "changed by one caller"
    assert answers[1]["RoleName"] == "shared-reads-probe"

    # Outside a plan every read is sent: a write may come between two reads.
    iam.get_role(RoleName="shared-reads-probe")
    iam.get_role(RoleName="shared-reads-probe")
    assert sent(run, "GetRole") == 4


def test_throttling_is_not_shared_each_caller_retries_for_itself(aws):
    run = prepare(mode="plan")
    ssm = run.aws.client("ssm", retry=False)  # one attempt a call: the throttled answer is the caller's to see
    ssm.put_parameter(Name="/shared-reads/probe", Value="v", Type="String")
    run.aws.log.clear()
    # The first caller is throttled; the next identical read must not be handed that answer: it asks AWS
    # and gets the value, which the one after it then shares.
    throttled = FailFirst("GetParameter", 1, "json", 400, "ThrottlingException", "Rate exceeded")
    with shared_reads(), injected(run, "before-send.ssm", throttled):
        with pytest.raises(ssm.exceptions.ClientError, match="ThrottlingException"):
            ssm.get_parameter(Name="/shared-reads/probe")
        assert ssm.get_parameter(Name="/shared-reads/probe")["Parameter"]["Value"] == "v"
        assert ssm.get_parameter(Name="/shared-reads/probe")["Parameter"]["Value"] == "v"
    assert sent(run, "GetParameter") == 2 and run.aws.log.shared == 1
