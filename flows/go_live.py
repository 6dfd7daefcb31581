"""The go-live: every phase of the deployment plan, then the launch (Phase 8).

1. Phases 1-7 in dependency order (golive/phases.py), each as soon as the phases it stands on are done:
   infrastructure and containers at once; data (one-off ECS tasks on the backend's image) after both; ECS
   after data, so the services never serve before the schema and their login exist, its load balancer
   (3.3) ahead of it, once infrastructure is done; the CDN once that load balancer is, its static files
   (4.2) ahead of it, once infrastructure and containers are done; monitoring last, so its closing
   security audit reads every phase and is the go-live's audit gate.
   Phases not automated yet are shown as such and slot in by giving them a flow.
2. The launch gate (8.1): load test, smoke and security checks, restore verification, failover.
3. Approval: production pauses until someone approves in the Prefect UI (who and when go in the report);
   a file with launch.approval = "auto" (the sandbox) approves itself.
4. The DNS cutover (8.2), weighted and health-checked, rolled back on failure.
5. Post-launch monitoring (8.3) for the file's window.
Every subflow and future is resolved: any failed step fails the go-live (notes/prefect-3.9.md).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from prefect import flow, pause_flow_run, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NONE
from prefect.futures import as_completed
from prefect.input import RunInput
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from golive.cost import check_budget
from golive.lock import one_at_a_time
from golive.phases import PHASES, Phase, load_flow
from golive.report import PhaseResult, artifact_key
from golive.run import Run, logger


class Approval(RunInput):
    """What the approver fills in, in the Prefect UI, to let the cutover go ahead."""

    approved: bool = False
    approver: str = ""
    note: str = ""


class LaunchNotApproved(RuntimeError):
    pass


@task(cache_policy=NONE, task_run_name="phase-{number}")
def run_phase(flow_path: str, number: int, environment: str, sandbox: bool | None,
              handed: dict[str, Any] | None = None) -> PhaseResult:
    """One phase flow, as a child of the go-live (its own run in the UI, its own artifacts). handed: what
    the go-live ran ahead for it (golive/phases.py `Ahead`), by the flow's parameter name."""
    return load_flow(flow_path)(environment=environment, sandbox=sandbox, **(handed or {}))


@task(cache_policy=NONE, task_run_name="phase-{number}-ahead")
def run_ahead(flow_path: str, number: int, environment: str, sandbox: bool | None) -> Any:
    """The part of a phase that stands on less than the phase (golive/phases.py `Ahead`), as its own flow."""
    return load_flow(flow_path)(environment=environment, sandbox=sandbox)


class Progress:
    """The go-live's progress artifact: step k of n, updated as each finishes."""

    def __init__(self, steps: int):
        self.steps, self.done = steps, 0
        self.id = create_progress_artifact(progress=0.0, key="go-live-progress", description="go-live: starting")

    def step(self, what: str) -> None:
        self.done += 1
        logger().info(f"go-live: {what} ({self.done} of {self.steps})")
        update_progress_artifact(artifact_id=self.id, progress=100.0 * self.done / self.steps,
                                 description=f"{what} ({self.done} of {self.steps})")


@task(cache_policy=NONE, task_run_name="restore-verification")
def verify_restore(environment: str, sandbox: bool | None):
    """8.1's restore verification, started as soon as Phase 5 has loaded the data: it needs nothing from
    the CDN, so it runs beside Phase 4 instead of after the load test."""
    from flows.backup_verification import backup_verification
    from flows.pre_launch import restore_summary

    return restore_summary(backup_verification(environment=environment, sandbox=sandbox))


def run_phases(environment: str, sandbox: bool | None, progress: Progress,
               after: dict[int, Any] | None = None, phases: list[Phase] | None = None) -> dict[int, PhaseResult | None]:
    """Start each automated phase once its dependencies are done, and a phase's part that stands on less
    (its `ahead`) once that part's are: the phase then starts when both its dependencies and that part are
    done, and is handed its result. Wait for all; any failure raises.
    after: phase number -> a callable started (not awaited) as soon as that phase is done."""
    phases = [p for p in (phases or PHASES) if p.number != 8]
    futures: dict[Any, Any] = {}  # phase number, or ("ahead", number) for a phase's part run ahead
    results: dict[int, PhaseResult | None] = {}
    ahead_results: dict[int, Any] = {}
    pending = list(phases)
    waiting_ahead = [p for p in phases if p.automated and p.ahead]
    finished: list[str] = []  # progress to report once the phases it made ready are started
    while True:
        for phase in [p for p in waiting_ahead if all(d in results for d in p.ahead.after)]:
            waiting_ahead.remove(phase)
            futures[("ahead", phase.number)] = run_ahead.submit(phase.ahead.flow_path, phase.number, environment, sandbox)
        ready = [p for p in pending if all(d in results for d in p.after)
                 and all(d in ahead_results or d in results for d in p.after_ahead)
                 and (not p.automated or p.ahead is None or p.number in ahead_results)]
        for phase in ready:
            pending.remove(phase)
            if not phase.automated:
                results[phase.number] = None
                finished.append(f"phase {phase.number} {phase.name}: not automated yet")
                continue
            handed = {phase.ahead.parameter: ahead_results[phase.number]} if phase.ahead else None
            futures[phase.number] = run_phase.submit(phase.flow_path, phase.number, environment, sandbox, handed)
        for step in finished:  # after the submissions: each is a call to the API, the next phase need not wait
            progress.step(step)
        finished.clear()
        if ready and any(p.automated is False for p in ready):
            continue  # a phase marked done may have made others ready
        # Wait for whichever running flow finishes first, then look again for newly ready ones: a phase
        # whose dependencies are done never waits behind an unrelated slower one.
        running = {future: key for key, future in futures.items()
                   if (key[1] not in ahead_results if isinstance(key, tuple) else key not in results)}
        if not running:
            if pending:
                raise RuntimeError(f"phases {[p.number for p in pending]} wait on phases that never run")
            return results
        key = running[next(as_completed(list(running)))]
        if isinstance(key, tuple):  # a phase's part run ahead: it raises if it failed
            ahead_results[key[1]] = futures[key].result()
            logger().info(f"phase {key[1]}: its part that needs less was done ahead of the rest")
            continue
        results[key] = futures[key].result()  # raises if the phase failed
        if after and key in after:
            after[key]()
        name = next(p.name for p in phases if p.number == key)
        finished.append(f"phase {key} {name}: {results[key].summary.brief()}")


def approve(run: Run) -> dict[str, str]:
    """Pause for a person (manual) or record the file's standing approval (auto)."""
    settings = run.environment.launch
    if settings.approval == "auto":
        return {"approved_by": "the environment file (launch.approval = \"auto\")",
                "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    logger().warning(f"go-live for {run.env_name} is waiting for approval in the Prefect UI before the DNS cutover "
                     f"(times out after {settings.approval_timeout_hours:g} h)")
    answer = pause_flow_run(wait_for_input=Approval.with_initial_data(
        description=f"Approve the DNS cutover of {run.env_name} ({run.environment.domain})?"),
        timeout=int(settings.approval_timeout_hours * 3600), poll_interval=5)
    if not answer.approved:
        raise LaunchNotApproved(f"the cutover of {run.env_name} was not approved"
                                + (f" by {answer.approver}" if answer.approver else "") + (f": {answer.note}" if answer.note else ""))
    return {"approved_by": answer.approver or "(unnamed)", "note": answer.note,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@flow(name="go-live")
@one_at_a_time("go-live flow")  # golive.lock: one run per environment at a time
def go_live(environment: str = "sandbox", sandbox: bool | None = None) -> dict:
    """Take the environment live: every phase, the launch gate, approval, DNS cutover, monitoring."""
    run = Run.prepare(environment, sandbox=sandbox)  # a bad file stops here, before any AWS call
    check_budget(run.environment)  # so does an estimate above budget that the file does not acknowledge
    # The go-live's own heartbeat tells the server this process is alive; the child runs in the same
    # process skip theirs (joining a heartbeat thread costs up to a second at the end of every child).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        return _go_live(run, environment, sandbox)


def _go_live(run: Run, environment: str, sandbox: bool | None) -> dict:
    from flows.cutover import dns_cutover
    from flows.post_launch_monitoring import post_launch_monitoring
    from flows.pre_launch import pre_launch_tests

    started = time.monotonic()
    progress = Progress(steps=len(PHASES) - 1 + 4)
    timings: dict[str, float] = {}

    # Phase 5 and the restore verification check data with great-expectations, in a process of its own
    # whose ~3 s start is best spent now, on the other core, while Phases 1 and 2 run.
    from golive import integrity

    integrity.preload()
    restore: dict[str, Any] = {}
    phases = run_phases(environment, sandbox, progress,
                        after={5: lambda: restore.update(future=verify_restore.submit(environment, sandbox))})
    timings["phases"] = time.monotonic() - started

    # The audit gate is Phase 7's last step: Phase 7 starts once every other phase is done (golive/phases.py),
    # so its audit read all of them, and a critical or high finding the file does not accept failed Phase 7,
    # and so the go-live, before the load test, the approval and the cutover.
    audit = phases[7].outputs["audit"]

    mark = time.monotonic()
    verified = restore["future"].result() if "future" in restore else None
    gate = pre_launch_tests(environment=environment, sandbox=sandbox, restore=verified)
    timings["pre-launch tests"] = time.monotonic() - mark
    progress.step(f"8.1 launch gate {gate.verdict()}")

    approval = approve(run)
    progress.step(f"approved by {approval['approved_by']}")

    mark = time.monotonic()
    cutover = dns_cutover(environment=environment, sandbox=sandbox)
    timings["cutover"] = time.monotonic() - mark
    progress.step("8.2 DNS cut over")

    mark = time.monotonic()
    monitoring = post_launch_monitoring(environment=environment, sandbox=sandbox)
    timings["monitoring"] = time.monotonic() - mark
    progress.step("8.3 monitoring window passed")
    timings["total"] = time.monotonic() - started

    report = go_live_report(run, phases, gate, approval, cutover, monitoring, timings, audit)
    create_markdown_artifact(key=artifact_key(run.env_name, "go-live-report"), markdown=report,
                             description=f"go-live report for {run.env_name}")
    return {"environment": run.env_name, "timings": timings, "approval": approval, "report": report}


def go_live_report(run: Run, phases: dict[int, PhaseResult | None], gate: PhaseResult, approval: dict,
                   cutover: PhaseResult, monitoring: PhaseResult, timings: dict[str, float], audit=None) -> str:
    from flows.pre_launch import latency_chart
    from golive.loadtest import LoadTestResult

    env = run.environment
    cdn = phases.get(4)
    ecs = phases.get(3)
    load = LoadTestResult.model_validate(gate.outputs["load_test"])
    lines = [f"# Go-live report: {env.name} ({env.domain})", "",
             f"Target: {run.target.describe()}. Total {timings['total']:.0f} s "
             f"(phases {timings['phases']:.0f} s, launch gate {timings['pre-launch tests']:.0f} s, "
             f"cutover {timings['cutover']:.0f} s, monitoring {timings['monitoring']:.0f} s).", "",
             "## Endpoints", "",
             f"- Site: https://{env.domain} (and {', '.join(f'https://{n}' for n in env.certificate_names[1:])})"]
    if cdn:
        lines.append(f"- CloudFront: https://{cdn.outputs['distribution'].domain_name}")
    if ecs:
        lines.append(f"- ALB: {ecs.outputs['load_balancer'].dns_name}")
    lines += ["", "## Phases", "", "| phase | result | resources | deliverables |", "|---|---|---|---|"]
    for phase in PHASES[:-1]:
        result = phases.get(phase.number)
        if result is None:
            lines.append(f"| {phase.number} {phase.title} | not automated yet | | |")
            continue
        passed = sum(1 for d in result.deliverables if d.ok)
        pending = sum(1 for d in result.deliverables if d.ok is None)
        from tasks.one_off import describe_tasks_run

        one_offs = describe_tasks_run(result.outputs)
        lines.append(f"| {phase.number} {phase.title} | done{'; ' + one_offs if one_offs else ''} | "
                     f"{result.summary.brief()} | {passed} passed" + (f", {pending} pending" if pending else "") + " |")
    lines += ["", "## Load test (8.1)", "",
              f"{load.users} users for {load.duration_seconds:g} s: {load.requests} requests, {load.rps:.1f} req/s, "
              f"p50 {load.p50_ms:.0f} ms, p95 {load.p95_ms:.0f} ms, p99 {load.p99_ms:.0f} ms, "
              f"failure ratio {load.failure_ratio:.4f}. HTML report: `{load.html_report}`.", "", latency_chart(load), "",
              "## Checks and restore verification (8.1)", "", "| check | result | evidence |", "|---|---|---|"]
    lines += [f"| {d.text} | {d.mark} | {d.evidence.replace('|', '/')} |" for d in gate.deliverables]
    lines += ["", f"Launch gate: {gate.verdict()}."]
    lines += ["", "## Approval", "", f"Approved by {approval['approved_by']} at {approval['at']}"
              + (f": {approval['note']}" if approval.get("note") else "") + ".", "",
              "## DNS cutover (8.2)", "", "| check | result | evidence |", "|---|---|---|"]
    lines += [f"| {d.text} | {d.mark} | {d.evidence.replace('|', '/')} |" for d in cutover.deliverables]
    lines += ["", f"DNS cutover: {cutover.verdict()}."]
    lines += ["", "## Post-launch monitoring (8.3)", "", "| check | result | evidence |", "|---|---|---|"]
    lines += [f"| {d.text} | {d.mark} | {d.evidence.replace('|', '/')} |" for d in monitoring.deliverables]
    lines += ["", *audit_section(audit)]
    lines += ["", f"Post-launch monitoring: {monitoring.verdict()}."]
    lines += ["", *cost_section(run, monitoring)]
    return "\n".join(lines)


def audit_section(audit) -> list[str]:
    """The security audit the go-live passed before the cutover: its findings and accepted exceptions."""
    if audit is None:
        return ["## Security audit", "", "Not run."]
    lines = ["## Security audit (before the cutover)", "", audit.markdown()]
    if audit.accepted:
        lines += ["", "Accepted exceptions (environment file, [[audit.accept]]):", ""]
        lines += [f"- {f.id} ({f.severity}, {f.title}): {f.accepted}" for f in audit.accepted]
    return lines


def cost_section(run: Run, monitoring: PhaseResult) -> list[str]:
    """The file's monthly estimate (golive/cost.py), the budget, and what the monitoring saw billed."""
    from golive.cost import CostInputs, budget_problem, estimate, markdown, optimizations

    env = run.environment
    inputs = CostInputs.of(env)
    result = estimate(inputs)
    lines = ["## Cost estimate", "", markdown(result, optimizations(inputs), env.budget.monthly_limit_usd)]
    problem = budget_problem(env, result.total)
    if problem:
        lines += ["", f"**Over budget:** {problem}."]
    actual = monitoring.outputs.get("cost")
    if actual is not None:
        lines += ["", f"Actual so far ({actual.name}: {'pending' if actual.ok is None else 'ok' if actual.ok else 'GAP'}): "
                      f"{actual.evidence}"]
    return lines
