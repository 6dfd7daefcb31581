"""Plan section 8.1, pre-launch tests: the gate in front of the cutover.

Every probe goes to the new stack, not to the domain (which still answers with the previous site, or
nothing, until the cutover): CloudFront's domain with the site's names as Host and SNI
(probes.new_stack_endpoint), in AWS and in the sandbox alike. A Locust load test (a subprocess: gevent
must never share a process with Prefect) judged against the environment file's thresholds; API and
frontend smoke tests and the security checks (HTTPS redirect, HSTS and the other headers, DEBUG off,
admin behind a login, TLS names and expiry, the API host, the ALB refusing what did not come through
CloudFront); a backup restored and verified; in AWS an RDS Multi-AZ failover, confirmed by the primary's
move to the other zone. Any miss fails the flow, naming the figure or the check, and the go-live stops
before the cutover. A check that cannot be observed is pending and the summary says so.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from pydantic import BaseModel

from golive.config import LoadTestSettings
from golive.launch_checks import run_launch_checks
from golive.probes import Check, new_stack_endpoint
from golive.loadtest import LoadTestResult, run_load_test
from golive.naming import resource_name
from golive.report import PhaseResult, artifact_key, deliverable, publish
from golive.retry import AWS_STEP
from golive.run import Run, logger
from flows.backup_verification import backup_verification


class LaunchGateFailed(RuntimeError):
    """The pre-launch tests found a reason not to launch; the message names each one."""


def results_dir(run: Run) -> Path:
    from golive.sandbox.services import state_dir

    return state_dir().parent / "loadtests" / run.env_name / (flow_run.get_id() or time.strftime("%Y%m%dT%H%M%S"))


@task(cache_policy=NONE, timeout_seconds=3600)
def load_test(run: Run, settings: LoadTestSettings | None = None) -> LoadTestResult:
    """Locust against the new stack (CloudFront's domain, the site's names) with the file's users,
    duration and thresholds."""
    settings = settings or run.environment.launch.load_test
    endpoint = new_stack_endpoint(run)
    logger().info(f"load test: {settings.users} users for {settings.duration_seconds:g} s against {endpoint.url} "
                  f"({endpoint.via})")
    result = run_load_test(endpoint, settings, results_dir(run))
    publish_load_test(run, result)
    return result


def latency_chart(result: LoadTestResult, width: int = 40) -> str:
    """p95 latency over the run as a text bar chart (the UI renders markdown, not scripts)."""
    points = [p for p in result.latency if p.p95_ms is not None]
    if not points:
        return "(no latency samples)"
    step = max(1, len(points) // 20)
    sampled = points[::step]
    top = max(p.p95_ms for p in sampled) or 1
    lines = [f"{p.seconds:6.0f} s | {'█' * max(1, round(p.p95_ms / top * width)):<{width}} {p.p95_ms:7.1f} ms  "
             f"{p.rps:7.1f} req/s" for p in sampled]
    return "```\n  time | p95 latency\n" + "\n".join(lines) + "\n```"


def publish_load_test(run: Run, result: LoadTestResult) -> None:
    base = artifact_key(run.env_name, "load-test")
    rows = [{"endpoint": f"{e.method} {e.name}", "requests": e.requests, "failures": e.failures,
             "req/s": round(e.rps, 1), "p50 ms": e.p50_ms, "p95 ms": e.p95_ms, "p99 ms": e.p99_ms}
            for e in result.endpoints]
    rows.append({"endpoint": "all", "requests": result.requests, "failures": result.failures,
                 "req/s": round(result.rps, 1), "p50 ms": result.p50_ms, "p95 ms": result.p95_ms, "p99 ms": result.p99_ms})
    create_table_artifact(key=artifact_key(base, "figures"), table=rows,
                          description=f"Locust, {result.users} users for {result.duration_seconds:g} s against {result.url}")
    thresholds = result.thresholds
    verdict = "**passed**" if result.passed else "**FAILED**: " + "; ".join(result.violations)
    create_markdown_artifact(key=artifact_key(base, "report"), description="load-test gate", markdown="\n".join([
        f"# Load test: {verdict}", "",
        f"{result.requests} requests, {result.rps:.1f} req/s, failure ratio {result.failure_ratio:.4f}; "
        f"p50 {result.p50_ms:.0f} ms, p95 {result.p95_ms:.0f} ms, p99 {result.p99_ms:.0f} ms.",
        f"Thresholds (launch.load_test): p95 <= {thresholds.p95_ms:g} ms, failures <= {thresholds.max_failure_ratio:g}, "
        f">= {thresholds.min_rps:g} req/s.", "", latency_chart(result), "",
        f"Locust's HTML report: `{result.html_report}`"]))


@task(cache_policy=NONE)
def launch_checks(run: Run) -> list[Check]:
    """Smoke tests and security checks of the new stack, and its certificate, through CloudFront."""
    return run_launch_checks(run)


# How far back a failover counts as this launch gate's own: a run killed after forcing one and started
# again within this window judges that failover instead of forcing a second.
FAILOVER_WINDOW = datetime.timedelta(hours=2)


@task(**AWS_STEP)
def failover_test(run: Run) -> Check:
    """AWS: reboot the Multi-AZ primary with failover, wait until available, and confirm the primary
    moved: its zone is now the former standby's. A failover a killed run forced (the instance still
    rebooting, or RDS's failover events within FAILOVER_WINDOW) is waited for and judged, never forced
    again. The sandbox's PostgreSQL has no standby, so there it is pending with why (never passed)."""
    name = "rds-failover"
    env = run.environment
    if run.target.is_sandbox or not env.database.multi_az:
        why = "the sandbox's PostgreSQL has no standby" if run.target.is_sandbox else "database.multi_az is false"
        return Check(name=name, ok=None, evidence=f"not applicable: {why}")
    rds = run.client("rds")
    instance = resource_name(run.env_name, "postgres")
    before = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    started = time.monotonic()
    earlier = recent_failover_events(rds, instance)
    if not earlier and before.get("DBInstanceStatus") != "rebooting":
        # One attempt: a resent RebootDBInstance that AWS had carried out would force a second failover.
        run.aws.client("rds", retry=False).reboot_db_instance(DBInstanceIdentifier=instance, ForceFailover=True)
    rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=instance,
                                                 WaiterConfig={"Delay": 15, "MaxAttempts": 60})
    after = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    if earlier or before.get("DBInstanceStatus") == "rebooting":
        return judge_resumed_failover(instance, recent_failover_events(rds, instance), after)
    return judge_failover(instance, before, after, time.monotonic() - started)


def recent_failover_events(rds, instance: str) -> list[dict]:
    """RDS's own record of failovers of the instance within FAILOVER_WINDOW, oldest first."""
    since = datetime.datetime.now(datetime.timezone.utc) - FAILOVER_WINDOW
    pages = rds.get_paginator("describe_events").paginate(
        SourceIdentifier=instance, SourceType="db-instance", EventCategories=["failover"], StartTime=since)
    return sorted((e for page in pages for e in page["Events"]), key=lambda e: e["Date"])


def judge_resumed_failover(instance: str, events: list[dict], after: dict) -> Check:
    """A failover an interrupted run forced: passed when RDS recorded it as completed (the zones before it
    were not read by this run, so RDS's event is the evidence)."""
    completed = [e for e in events if "completed" in e.get("Message", "").lower()]
    evidence = (f"{instance}: failover forced by an interrupted run, not forced again; RDS events: "
                + ("; ".join(f"{e['Date']:%H:%M:%S} {e['Message']}" for e in events) or "none")
                + f"; primary now in {after.get('AvailabilityZone')}")
    return Check(name="rds-failover", ok=bool(completed), evidence=evidence + ("" if completed else
                 ": RDS recorded no completed failover"))


def judge_failover(instance: str, before: dict, after: dict, seconds: float) -> Check:
    """Passed only when the primary now runs in the zone the standby was in (available again is not
    enough: a reboot without failover also comes back available)."""
    was, standby = before.get("AvailabilityZone"), before.get("SecondaryAvailabilityZone")
    now = after.get("AvailabilityZone")
    evidence = (f"{instance}: primary in {was} (standby {standby or 'unknown'}) before, in {now} after; "
                f"available again after {seconds:.0f} s")
    if not standby:
        return Check(name="rds-failover", ok=False, evidence=evidence + ": no standby zone reported, so no failover")
    moved = now == standby and now != was
    return Check(name="rds-failover", ok=moved, evidence=evidence + ("" if moved else ": the primary did not move"))


class RestoreVerified(BaseModel):
    """A restore verification the caller already ran (the go-live runs it beside Phase 4). ok None: part of
    it could not be observed (pending), which is not a pass."""

    ok: bool | None
    evidence: str
    recovery_time_seconds: float
    recovery_point_seconds: float


def restore_summary(result: PhaseResult) -> RestoreVerified:
    failed = result.failed_deliverables
    pending = [d for d in result.deliverables if d.ok is None]
    return RestoreVerified(
        ok=False if failed else None if pending else True, recovery_time_seconds=result.outputs["recovery_time_seconds"],
        recovery_point_seconds=result.outputs["recovery_point_seconds"],
        evidence=f"recovery time {result.outputs['recovery_time_seconds']:.1f} s, recovery point "
                 f"{result.outputs['recovery_point_seconds']:.0f} s" + ("" if not failed else ": " + "; ".join(
                     f"{d.text}: {d.evidence}" for d in failed)) + "".join(
                     f"; pending: {d.text}: {d.evidence}" for d in pending))


@flow(name="pre-launch-tests")
def pre_launch_tests(environment: str = "sandbox", sandbox: bool | None = None,
                     restore: RestoreVerified | None = None) -> PhaseResult:
    """The launch gate: load test, smoke and security checks, restore verification, failover.
    restore: a verification already done for this launch (otherwise it runs here)."""
    run = Run.prepare(environment, sandbox=sandbox)
    # The smoke and security checks first: they take about a second, spent while Locust starts and ramps
    # up (neither is judged). What would skew the judged window (the failover's reboot above all) waits
    # for the load test to end.
    checks = launch_checks.submit(run)
    figures = load_test(run)
    failover = failover_test.submit(run)
    if restore is None:
        restore = restore_summary(backup_verification(environment=environment, sandbox=sandbox))
    checks, failover = checks.result(), failover.result()
    thresholds = run.environment.launch.load_test
    deliverables = [
        deliverable("8.1", "Load test passed (Locust)", figures.passed,
                    f"{figures.rps:.0f} req/s, p50/p95/p99 {figures.p50_ms:.0f}/{figures.p95_ms:.0f}/{figures.p99_ms:.0f} ms, "
                    f"failure ratio {figures.failure_ratio:.4f} (p95 <= {thresholds.p95_ms:g} ms, >= {thresholds.min_rps:g} req/s)"
                    + ("" if figures.passed else ": " + "; ".join(figures.violations))),
        *[deliverable("8.1", f"Check: {c.name}", c.ok, c.evidence) for c in checks],
        deliverable("8.1", "RDS failover tested",
                    failover.ok, failover.evidence),
        deliverable("8.1", "Backup and restore verified", restore.ok, restore.evidence),
    ]
    result = PhaseResult(phase="pre-launch-tests", environment=run.env_name, mode=run.mode, target=run.target.describe(),
                         changes=[], deliverables=deliverables,
                         outputs={"load_test": figures.model_dump(mode="json"), "checks": [c.model_dump() for c in checks],
                                  "failover": failover.model_dump(),
                                  "restore": restore.model_dump()})
    publish(result)
    if result.failed_deliverables:
        raise LaunchGateFailed("the launch gate stopped the go-live before the cutover: "
                               + "; ".join(f"{d.text}: {d.evidence}" for d in result.failed_deliverables))
    return result
