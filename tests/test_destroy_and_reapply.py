"""`golive destroy` leaves nothing, and an apply after it converges: a new user who resets the sandbox to
try again is never stuck. On a fresh sandbox, every phase: apply, destroy, apply, destroy, apply, as the
CLI runs them (its entry point, in process). After each destroy an independent listing of the emulator (tests/awsstate.py: plain boto3,
each service's own list calls and AWS's tagging index, not the runbook's discovery) shows nothing of the
environment's but the named final snapshots, which the destroy's output lists.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from golive import generation
from golive.cli import app
from tests.awsstate import left_behind, leftovers
from tests.conftest import prepare


# Creates that carry a client token AWS remembers after the resource is gone.
TOKENED = {"RequestCertificate", "CreateHostedZone", "CreateHealthCheck", "CreateDistributionWithTags"}


def golive(*args: str, exit_code: int = 0) -> str:
    """The CLI's own entry point, in this process (five interpreter and Prefect starts saved); its output
    with rich's wrapping undone."""
    done = CliRunner().invoke(app, [*args, "--verbose"])
    assert done.exit_code == exit_code, f"golive {' '.join(args)} exited {done.exit_code}:\n{done.output[-4000:]}"
    return " ".join(done.output.split())


# `make test` applies, destroys and applies again (what a user resetting the sandbox does); `make soak` runs
# the full apply, destroy, apply, destroy, apply (about 6 min on this machine).
@pytest.mark.parametrize("applies", [pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.soak)])
def test_apply_destroy_apply_destroy_apply_every_phase(aws, empty_database, prefect_api, applies):
    run = prepare()
    generations, tokens = [], []
    for round_ in range(applies):
        run.aws.log.clear()
        applied = golive("apply", "sandbox")
        assert "Apply complete:" in applied, applied[-2000:]
        generations.append(generation.current(run))
        # The client tokens the creates sent (this process's call log): ACM's, Route 53's, CloudFront's.
        sent = {c.operation: c.params.get("IdempotencyToken") or c.params.get("CallerReference")
                or c.params["DistributionConfigWithTags"]["DistributionConfig"]["CallerReference"]
                for c in run.aws.log.calls if c.operation in TOKENED}
        assert set(sent) == TOKENED, sent
        tokens.append(sent)
        if round_ == applies - 1:
            break
        destroyed = golive("destroy", "sandbox")
        assert "Destroy complete:" in destroyed
        assert "moto has no" not in destroyed, "the sandbox deletes every kind it can make"
        assert left_behind(run) == {}, destroyed[-3000:]
        # Kept on purpose, one per destroy, each named in that destroy's output.
        finals = leftovers(run)["final_snapshots"]
        assert len(finals) == round_ + 1, finals
        assert f"kept: RDS final snapshot {finals[-1]}" in destroyed
        assert generation.current(run) is None, "the destroy forgot the generation before deleting anything"
    # Each apply after a destroy drew a new generation, so its client tokens were new too.
    assert len(set(generations)) == applies and None not in generations
    for operation in TOKENED:
        assert len({sent[operation] for sent in tokens}) == applies, [sent[operation] for sent in tokens]
    # ... and the last apply converged: a plan of every phase has nothing to do.
    golive("plan", "sandbox", exit_code=0)


def test_a_retried_create_sends_the_same_token_and_a_create_after_a_destroy_a_new_one(aws):
    """The generation behind every client token: drawn once (plan never draws one), the same for every
    attempt until a destroy forgets it, which a destroy does first, before it deletes anything."""
    planning, applying = prepare(mode="plan"), prepare()
    assert generation.client_token(planning, "certificate") == "golive-sandbox-certificate-next"  # never sent
    assert generation.current(applying) is None and applying.aws.log.writes() == []

    first = generation.client_token(applying, "certificate", 32, r"[^a-zA-Z0-9]")
    assert generation.client_token(applying, "certificate", 32, r"[^a-zA-Z0-9]") == first, "a retry: the same token"
    assert len(first) <= 32 and first.isalnum()
    assert generation.client_token(applying, "uptime") != generation.client_token(applying, "cdn")
    # Tagged for the environment like everything else it owns, so a listing by tag finds it.
    name = "/golive/sandbox/lifecycle/generation"
    tags = applying.client("ssm").list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]
    assert {"Key": "golive:environment", "Value": "sandbox"} in tags

    from flows.teardown import teardown

    applying.aws.log.clear()
    result = teardown(environment="sandbox", sandbox=True)
    assert [c.name for c in result.changes] == [name]
    assert [c.operation for c in applying.aws.log.writes()] == ["DeleteParameter"]
    assert generation.client_token(applying, "certificate", 32, r"[^a-zA-Z0-9]") != first, "after a destroy: a new one"
