"""`golive plan` before anything exists, as a careful new user runs it first: every phase plans (values
an earlier step has yet to make are "known after apply"), per phase and in total, with no write; then
again after each phase is applied. An unexpected error is one line naming the phase and the step.

Every automated phase, in the order a one-phase-at-a-time run takes (golive.phases.automated()).
"""

from __future__ import annotations

import re
import subprocess
from unittest import mock

from typer.testing import CliRunner

from flows.ecs import ecs
from golive.changes import Action, KnownAfterApply
from golive.cli import Failure, app
from golive.phases import automated
from tasks.cdn import Distribution
from tasks.compute import Cluster
from tasks.load_balancer import LoadBalancer
from tasks.network import Vpc
from tasks.registry import Repository
from tests.conftest import GOLIVE, REPO, cli_env, prepare

ORDER = [phase.number for phase in automated()]  # 1, 2, 5, 3, 4, 6
PHASES = {phase.number: (phase.name, phase.flow()) for phase in automated()}


def plan_in_process(*args: str):
    """The CLI's own entry point in this process (no interpreter start; the call log is this process's).
    --verbose leaves Prefect's console handler as the test session set it."""
    return CliRunner().invoke(app, [*args, "--verbose"])
COUNTS = ("create", "update", "replace", "delete", "unchanged", "skipped")


def golive(prefect_api: str, *args: str, command=GOLIVE, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=cli_env(prefect_api, **env))


def by_phase(stdout: str) -> dict[int, dict[str, int]]:
    """The 'Plan by phase' table: phase number -> counts."""
    rows = {}
    for number, (name, _) in PHASES.items():
        match = re.search(rf"{number} {name}\W+" + r"\W+".join([r"(\d+)"] * len(COUNTS)), stdout)
        if match:
            rows[number] = dict(zip(COUNTS, map(int, match.groups())))
    return rows


def test_every_phase_plans_from_nothing_then_after_each_apply(aws, empty_database, prefect_api):
    fresh = golive(prefect_api, "plan", "sandbox")
    output = fresh.stdout + fresh.stderr
    assert fresh.returncode == 2, output
    counts = by_phase(fresh.stdout)
    assert sorted(counts) == sorted(ORDER), output
    assert all(counts[n]["create"] > 0 and counts[n]["delete"] == 0 for n in PHASES), counts
    # What an earlier step makes is planned as known after apply, never compared as None.
    assert "+ load-balancer golive-sandbox-alb" in fresh.stdout
    assert "subnets = [(known after apply), (known after apply)]" in fresh.stdout
    total = sum(c["create"] for c in counts.values())
    assert f"Plan: {total} to create" in fresh.stdout and " 0 writes" in fresh.stdout, fresh.stdout[-400:]
    assert "Traceback (most recent call last)" not in output
    # ... and the emulator agrees that nothing was made.
    run = prepare()
    assert Vpc.discover_all(run) == [] and Repository.discover_all(run) == [] and Cluster.discover_all(run) == []
    assert LoadBalancer.discover_all(run) == [] and Distribution.discover_all(run) == []

    # After each phase is applied in turn: that phase plans no change and the next still plans creates (the
    # last plan covers every phase again and exits 0). In process, so the call log itself shows that
    # planning wrote nothing.
    for index, applied in enumerate(ORDER):
        name, flow = PHASES[applied]
        flow(environment="sandbox", sandbox=True)
        run.aws.log.clear()
        last = index == len(ORDER) - 1
        planning = ORDER if last else ORDER[index:index + 2]
        planned = plan_in_process("plan", "sandbox", *(arg for n in planning for arg in ("--phase", str(n))))
        assert [c.operation for c in run.aws.log.writes()] == [], name
        counts = by_phase(planned.stdout)
        assert sorted(counts) == sorted(planning), (planned.stdout, planned.exception)
        done = {n: c for n, c in counts.items() if n in ORDER[:index + 1]}
        assert all(not (c["create"] or c["update"] or c["replace"] or c["delete"]) for c in done.values()), (name, counts)
        assert all(counts[n]["create"] > 0 for n in planning if n not in done), (name, counts)
        assert planned.exit_code == (0 if last else 2), (name, planned.stdout[-600:])

    # A new image: the task definition's next revision is known after apply, and the services that run it
    # are planned onto it (not compared with the revision they run now and left alone).
    released = ecs(environment="sandbox", sandbox=True, mode="plan", image_tag="v2")
    moves = {c.name: c for c in released.changes if c.kind == "ecs-service"}
    assert {c.action for c in moves.values()} == {Action.UPDATE}, [c.headline() for c in released.changes]
    planned_onto = {name: {f.field: f.after for f in c.fields}.get("task_definition") for name, c in moves.items()}
    assert len(planned_onto) == 2 and all(isinstance(arn, KnownAfterApply) for arn in planned_onto.values()), planned_onto


def test_a_phase_planned_alone_names_the_phase_to_apply_first(aws, prefect_api):
    planned = plan_in_process("plan", "sandbox", "--phase", "cdn")
    assert planned.exit_code == 2, (planned.stdout, planned.exception)
    assert "phase 1 (infrastructure) is not applied" in planned.stdout
    assert "Apply it first: golive apply sandbox --phase 1" in planned.stdout
    assert "phase 3 (ecs) is not applied: the load balancer golive-sandbox-alb missing" in planned.stdout
    assert "origins = {'alb': '(known after apply)'" in planned.stdout


def test_an_unexpected_error_is_one_line_naming_phase_and_step(aws, prefect_api):
    fault = {"GOLIVE_TEST_FAIL": "tasks.registry:Repository.desired"}
    failed = golive(prefect_api, "plan", "sandbox", "--phase", "2", command=[*GOLIVE[:2], "tests.fail_step"], **fault)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"error: phase 2 containers, step ensure_repositories: TypeError: injected: a bug in this step "
        r"\(at golive/resource\.py:\d+ in ensure; --verbose for the trace\)", lines[0]), failed.stderr
    # With --verbose the trace is printed too (in process: the same fault, injected the same way).
    with mock.patch.object(Repository, "desired", side_effect=TypeError("injected: a bug in this step")):
        verbose = plan_in_process("plan", "sandbox", "--phase", "2")
    assert verbose.exit_code == 1 and isinstance(verbose.exception, Failure)
    assert str(verbose.exception).startswith("phase 2 containers, step ensure_repositories: TypeError: injected")
    assert "Traceback (most recent call last)" in verbose.output and "--verbose for" not in str(verbose.exception)
