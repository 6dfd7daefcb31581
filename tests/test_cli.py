"""The `golive` command as a user runs it: terraform-style plan exit codes, apply, doctor."""

from __future__ import annotations

import subprocess

from tests.conftest import GOLIVE, REPO, cli_env


def golive(prefect_api: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*GOLIVE, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=cli_env(prefect_api))


def test_plan_exits_2_with_changes_then_0_after_apply(aws, prefect_api):
    fresh = golive(prefect_api, "plan", "sandbox", "--phase", "infrastructure")
    assert fresh.returncode == 2, fresh.stdout + fresh.stderr
    assert "+ vpc golive-sandbox-vpc" in fresh.stdout
    assert "cidr_block = 10.40.0.0/16" in fresh.stdout
    assert "to create" in fresh.stdout and "0 writes" in fresh.stdout

    applied = golive(prefect_api, "apply", "sandbox", "--phase", "1")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Apply complete:" in applied.stdout and " 0 updated" in applied.stdout
    assert "FAIL" not in applied.stdout

    converged = golive(prefect_api, "plan", "sandbox", "--phase", "1")
    assert converged.returncode == 0, converged.stdout + converged.stderr
    assert "No changes" in converged.stdout
    # The plan's identical reads went to AWS once (golive/shared_reads.py), and it says so.
    assert "more answered from this plan's identical reads, 0 writes" in converged.stdout, converged.stdout


def test_unknown_phases_and_the_launch_phase_are_clear_errors(aws, prefect_api):
    unknown = golive(prefect_api, "plan", "sandbox", "--phase", "networking")
    assert unknown.returncode == 1 and "unknown phase 'networking'" in unknown.stderr
    launch = golive(prefect_api, "apply", "sandbox", "--phase", "launch")
    assert launch.returncode == 1 and "run `golive go-live ENV`" in launch.stderr, launch.stderr
    # Said before anything is asked of AWS: the same answer with no endpoint to reach (and so whatever a
    # busy emulator's answer time).
    nowhere = subprocess.run([*GOLIVE, "apply", "sandbox", "--aws", "--phase", "launch"], cwd=REPO,
                             capture_output=True, text=True, timeout=120,
                             env=cli_env(prefect_api, AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x",
                                         AWS_SECRET_ACCESS_KEY="x"))
    assert nowhere.returncode == 1 and "run `golive go-live ENV`" in nowhere.stderr, nowhere.stderr


def test_doctor_checks_credentials_and_zones(aws, prefect_api):
    done = golive(prefect_api, "doctor", "production", "--sandbox")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "credentials" in done.stdout and "123456789012" in done.stdout
    assert "us-east-1a, us-east-1b available" in done.stdout
