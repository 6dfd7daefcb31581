"""`golive destroy` leaves nothing, and an apply after it converges: a new user who resets the sandbox to
try again is never stuck. On a fresh sandbox, every phase: apply, destroy, apply, destroy, apply, as the
CLI runs them. After each destroy an independent listing of the emulator (tests/awsstate.py: plain boto3,
each service's own list calls and AWS's tagging index, not the runbook's discovery) shows nothing of the
environment's but the named final snapshots, which the destroy's output lists.
"""

from __future__ import annotations

import subprocess

import pytest

from golive import generation
from tests.awsstate import left_behind, leftovers
from tests.conftest import GOLIVE, REPO, cli_env, prepare


def golive(prefect_api: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*GOLIVE, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=cli_env(prefect_api))
    assert done.returncode == 0, f"golive {' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_apply_destroy_apply_destroy_apply_every_phase(aws, empty_database, prefect_api):
    run = prepare()
    generations, tokens = [], []
    for round_ in range(3):
        applied = golive(prefect_api, "apply", "sandbox")
        assert "Apply complete:" in applied.stdout, applied.stdout[-2000:]
        generations.append(generation.current(run))
        tokens.append(generation.client_token(run, "certificate", 32, r"[^a-zA-Z0-9]"))
        if round_ == 2:
            break
        destroyed = golive(prefect_api, "destroy", "sandbox")
        assert "Destroy complete:" in destroyed.stdout
        assert "moto has no" not in destroyed.stdout, "the sandbox deletes every kind it can make"
        assert left_behind(run) == {}, destroyed.stdout[-3000:]
        # Kept on purpose, one per destroy, each named in that destroy's output.
        finals = leftovers(run)["final_snapshots"]
        assert len(finals) == round_ + 1, finals
        assert f"kept: RDS final snapshot {finals[-1]}" in destroyed.stdout
        assert generation.current(run) is None, "the destroy forgot the generation before deleting anything"
    # Each apply after a destroy drew a new generation, so its client tokens were new too.
    assert len(set(generations)) == 3 and len(set(tokens)) == 3 and None not in generations
    # ... and the third apply converged: a plan of every phase has nothing to do.
    plan = subprocess.run([*GOLIVE, "plan", "sandbox"], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=cli_env(prefect_api))
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-2000:]
