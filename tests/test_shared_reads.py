"""golive/shared_reads.py against moto's server: inside a plan, identical reads reach AWS once, at the same
moment or later, and every caller gets the answer (or the error) it would have had alone; outside a plan,
and for writes, throttling and server errors, every call is its own."""

from __future__ import annotations

import json
import threading
import time
from unittest import mock

import pytest

from golive import shared_reads as sharing
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
    first = threading.Event()

    def hold_the_first(event_name: str, **_) -> None:  # the first request in flight while the others ask
        if not first.is_set():
            first.set()
            time.sleep(0.5)

    with shared_reads(), injected(run, "before-send.iam.GetRole", hold_the_first):
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


def test_a_first_read_that_never_answers_holds_up_one_caller_not_the_plan(aws):
    """A first caller that fails where no handler of ours sees it (an earlier after-call handler raising)
    never answers: the next identical read waits the bounded time, then asks AWS and answers the rest."""
    run = prepare(mode="plan")
    iam = run.client("iam")
    iam.create_role(RoleName="shared-reads-stuck", AssumeRolePolicyDocument=json.dumps(TRUST))
    run.aws.log.clear()
    model = iam.meta.service_model.operation_model("GetRole")
    with shared_reads() as reads, mock.patch.object(sharing, "_WAIT_SECONDS", 0.3):
        reads.claim(sharing._key(run.aws, model, {"golive_params": {"RoleName": "shared-reads-stuck"}}))
        began = time.monotonic()
        for _ in range(3):
            assert iam.get_role(RoleName="shared-reads-stuck")["Role"]["RoleName"] == "shared-reads-stuck"
        waited = time.monotonic() - began
    # The first waited the bounded time, then asked AWS and answered the other two: the stuck entry was
    # replaced, so no later read waits for it (how long the calls took is the machine's, not asserted).
    assert waited >= 0.3 and sent(run, "GetRole") == 1 and run.aws.log.shared == 2

