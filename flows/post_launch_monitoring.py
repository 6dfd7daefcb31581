"""Plan section 8.3, post-launch monitoring: watch the live environment for a window (24 hours in
production), keep an issue log, alert on every new issue, and roll DNS back to the previous target when
the launch keeps failing.

Every interval one poll runs: synthetic checks of the public endpoints (home page, /health/, an API
list) with their status and latency; the error rate and p95 latency (from the ALB's CloudWatch metrics
in AWS; from the synthetic checks themselves in the sandbox, whose emulated ALB serves no traffic); and
the states of the environment's CloudWatch alarms. A poll fails when a check does not answer 200, a
figure is over its limit, or an alarm is in ALARM. After launch.monitoring.failures_before_rollback
failed polls in a row, the flow rolls the DNS cutover back (tasks/cutover.py) and fails with the reason.
At the end of the window it checks that backups ran (RDS automated snapshots) and the cost so far (Cost
Explorer) against the estimate pro-rated to the days elapsed; the sandbox has no billing data (moto's Cost
Explorer returns none) and says so instead of inventing figures.

What a person sees in the Prefect UI: a progress bar, an issue log (a markdown artifact with a fixed key,
a new version each poll), and the phase's deliverables. Each new issue is also published to the
environment's alerts topic (golive-<env>-alerts, Phase 1), which mails the on-call address.
"""

from __future__ import annotations

import calendar
import datetime
import math
import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from pydantic import BaseModel

import golive.probes as probes  # through the module, so a test can swap in a failing probe
from golive.aws_errors import aws_error
from golive.backups import AwsBackups
from golive.naming import ENVIRONMENT_TAG, resource_name
from golive.report import PhaseResult, artifact_key, deliverable, publish
from golive.retry import AWS_STEP
from golive.run import Run, logger
from golive.probes import Check, Probe
from tasks.cutover import Rollback, rollback_cutover
from tasks.cutover_checks import alarms_firing
from tasks.observability import AlertsTopic

PHASE = "post-launch-monitoring"
SYNTHETIC_PATHS = {"home": "/", "health": "/health/", "api list": "/api/cases/"}
SANDBOX_FIGURES = "sandbox: the synthetic checks' own figures (the sandbox's ALB publishes no CloudWatch metrics)"
BACKUP_FRESHNESS = datetime.timedelta(hours=26)  # a daily automated snapshot, with its window's slack


class MonitoringFailed(RuntimeError):
    pass


class Finding(BaseModel):
    key: str  # what makes two polls' findings the same issue
    summary: str
    fails_poll: bool = True  # False: worth logging, but says nothing about the app's health


class Figures(BaseModel):
    requests: int | None
    errors: int | None
    error_rate: float | None
    p95_ms: float | None
    source: str

    def show(self) -> str:
        if self.requests is None:
            return self.source
        rate = f"{self.error_rate:.2%}" if self.error_rate is not None else "n/a"
        p95 = f"{self.p95_ms:.0f} ms" if self.p95_ms is not None else "n/a"
        return f"{self.requests} requests, {self.errors} errors ({rate}), p95 {p95} [{self.source}]"


class Poll(BaseModel):
    number: int
    at: datetime.datetime
    probes: dict[str, Probe]
    figures: Figures
    alarms: list[str]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not any(f.fails_poll for f in self.findings)


class Issue(BaseModel):
    number: int
    key: str
    summary: str
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    polls: int = 1
    resolved_at: datetime.datetime | None = None
    alerted: bool = False


def p95(values: list[float]) -> float | None:
    """Nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def synthetic_figures(probes: list[Probe]) -> Figures:
    errors = sum(1 for p in probes if not p.ok)
    return Figures(requests=len(probes), errors=errors, error_rate=errors / len(probes) if probes else None,
                   p95_ms=p95([p.ms for p in probes]), source=SANDBOX_FIGURES)


def alb_figures(run: Run, start: datetime.datetime, end: datetime.datetime) -> Figures:
    """RequestCount, 5XX counts and TargetResponseTime p95 of the ALB golive-<env>-alb over [start, end]."""
    name = resource_name(run.env_name, "alb")
    elbv2 = run.client("elbv2")
    try:
        balancer = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]
    except aws_error("LoadBalancerNotFound"):
        return Figures(requests=None, errors=None, error_rate=None, p95_ms=None,
                       source=f"ALB {name} not found: no ALB metrics (Phase 3 makes it)")
    dimension = [{"Name": "LoadBalancer", "Value": balancer["LoadBalancerArn"].split(":loadbalancer/", 1)[1]}]
    period = max(60, math.ceil((end - start).total_seconds() / 60) * 60)  # one datapoint for the span
    cloudwatch = run.client("cloudwatch")

    def datapoints(metric: str, **statistic) -> list[dict]:
        return cloudwatch.get_metric_statistics(Namespace="AWS/ApplicationELB", MetricName=metric, Dimensions=dimension,
                                                StartTime=start, EndTime=end, Period=period, **statistic)["Datapoints"]

    requests = int(sum(p["Sum"] for p in datapoints("RequestCount", Statistics=["Sum"])))
    errors = int(sum(p["Sum"] for metric in ("HTTPCode_Target_5XX_Count", "HTTPCode_ELB_5XX_Count")
                     for p in datapoints(metric, Statistics=["Sum"])))
    latency = [p["ExtendedStatistics"]["p95"] for p in datapoints("TargetResponseTime", ExtendedStatistics=["p95"])
               if "p95" in p.get("ExtendedStatistics", {})]
    return Figures(requests=requests, errors=errors, error_rate=errors / requests if requests else None,
                   p95_ms=max(latency) * 1000 if latency else None,
                   source=f"CloudWatch AWS/ApplicationELB {name}, {start:%H:%M}-{end:%H:%M} UTC")


@task(**AWS_STEP)
def poll(run: Run, number: int) -> Poll:
    """One look at the live environment: synthetic checks of the domain as visitors reach it (through
    DNS, after the cutover), error rate and p95, alarm states."""
    settings = run.environment.launch.monitoring
    endpoint = probes.site_endpoint(run)
    answers, findings = {}, []
    for label, path in SYNTHETIC_PATHS.items():
        answer = answers[label] = probes.probe(endpoint, path)
        if not answer.ok:
            findings.append(Finding(key=f"http {path} {answer.status or answer.error.split(':')[0]}",
                                    summary=f"GET {path} ({label}) via {endpoint.via}: {answer.show()}"))
    now = datetime.datetime.now(datetime.timezone.utc)
    if run.target.is_sandbox:
        figures = synthetic_figures(list(answers.values()))
    else:
        # ALB metrics arrive by the minute, a minute or two late: look back at least five minutes.
        figures = alb_figures(run, now - datetime.timedelta(seconds=max(settings.interval_seconds, 300)), now)
        if figures.requests is None:
            findings.append(Finding(key="alb metrics", summary=figures.source, fails_poll=False))
    if figures.error_rate is not None and figures.error_rate > settings.max_error_rate:
        findings.append(Finding(key="error rate", summary=f"error rate {figures.error_rate:.2%} over the limit "
                                f"{settings.max_error_rate:.2%}: {figures.show()}"))
    if figures.p95_ms is not None and figures.p95_ms > settings.max_p95_ms:
        findings.append(Finding(key="p95", summary=f"p95 latency {figures.p95_ms:.0f} ms over the limit "
                                f"{settings.max_p95_ms:.0f} ms: {figures.show()}"))
    alarms = alarms_firing(run)
    findings += [Finding(key=f"alarm {name}", summary=f"CloudWatch alarm {name} is in ALARM") for name in alarms]
    return Poll(number=number, at=now, probes=answers, figures=figures, alarms=alarms, findings=findings)


@task(**AWS_STEP)
def find_alerts_topic(run: Run) -> str | None:
    """The environment's alerts topic (Phase 1), or None when it does not exist."""
    found = AlertsTopic(run, account=run.account_id()).discover()
    return found.id if found else None


@task(**AWS_STEP)
def send_alert(run: Run, topic_arn: str, subject: str, message: str) -> str:
    """Publish one alert to the alerts topic; returns the message id."""
    # SNS subjects: at most 100 printable ASCII characters, no line breaks.
    clean = "".join(c if 32 <= ord(c) < 127 else " " for c in f"golive {run.env_name}: {subject}")[:100]
    return run.client("sns").publish(TopicArn=topic_arn, Subject=clean, Message=message)["MessageId"]


@task(**AWS_STEP)
def backups_running(run: Run) -> Check:
    """RDS automated backups of golive-<env>-postgres: retention on, a recent automated snapshot, and
    point-in-time recovery caught up."""
    instance = resource_name(run.env_name, "postgres")
    if run.target.is_sandbox:
        # moto 5.2.5 lists one "automated" snapshot, recorded when it creates the instance; no backup window
        # ever runs and no database stands behind it, so that listing proves nothing about backups.
        return Check(name="backups", ok=None, evidence=(
            f"not observable in the sandbox: moto's RDS has no database behind {instance} and runs no backup "
            "window (the only automated snapshot it lists is recorded at creation); restores of the local "
            "database are proved by the backup-verification flow"))
    rds = run.client("rds")
    try:
        described = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
    except aws_error("DBInstanceNotFound"):
        return Check(name="backups", ok=False, evidence=f"RDS instance {instance} not found")
    retention = described.get("BackupRetentionPeriod", 0)
    latest = AwsBackups(run).latest_automated()
    restorable = described.get("LatestRestorableTime")
    now = datetime.datetime.now(datetime.timezone.utc)
    fresh = latest is not None and now - latest <= BACKUP_FRESHNESS
    ok = retention > 0 and fresh
    return Check(name="backups", ok=ok, evidence=(
        f"{instance}: retention {retention} days; latest automated snapshot "
        f"{latest.isoformat(timespec='minutes') if latest else 'none'}"
        f"{'' if fresh else f' (none within {BACKUP_FRESHNESS.total_seconds() / 3600:.0f} h)'}; "
        f"restorable to {restorable.isoformat(timespec='minutes') if restorable else 'unknown'}"))


def spending_began(run: Run) -> datetime.date | None:
    """When the environment started to cost: its database's creation (Phase 1's first big line)."""
    rds = run.client("rds")
    try:
        instance = rds.describe_db_instances(DBInstanceIdentifier=resource_name(run.env_name, "postgres"))["DBInstances"][0]
    except aws_error("DBInstanceNotFound"):
        return None
    created = instance.get("InstanceCreateTime")
    return created.date() if created else None


def cost_gap(expected: float, actual: float, gap_percent: float) -> tuple[bool, str]:
    """Is the actual cost within gap_percent of the pro-rated estimate, either way; and by how much."""
    gap = actual / expected - 1 if expected else math.inf
    return abs(gap) * 100 <= gap_percent, f"{gap:+.0%} against the estimate (limit +/-{gap_percent:g}%)"


@task(**AWS_STEP)
def cost_so_far(run: Run, today: datetime.date | None = None) -> Check:
    """What AWS has billed this environment since it began costing this month (Cost Explorer, tagged
    golive:environment), against the monthly estimate (golive/cost.py) pro-rated to those full days. A gap
    beyond cost.gap_percent either way fails; no billing data yet is pending, with why."""
    from golive.cost import estimate_environment, pro_rated

    env = run.environment
    monthly = estimate_environment(env).total
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    month_start = today.replace(day=1)
    began = spending_began(run)
    start = max(month_start, began) if began else month_start
    days = (today - start).days  # full days only: today's figures are partial (Cost Explorer lags up to 24 h)
    expected = pro_rated(monthly, days, calendar.monthrange(today.year, today.month)[1])
    basis = (f"estimate ${monthly:.2f}/month (`golive cost {env.name}`), ${expected:.2f} pro-rated to {days} full "
             f"day(s) from {start}; budget ${env.budget.monthly_limit_usd:.0f}/month")
    if days < 1:
        return Check(name="cost", ok=None, evidence=f"pending: less than a full day billed since {start}, nothing "
                                                     f"to compare yet; {basis}")
    ce = run.client("ce")
    period = {"Start": start.isoformat(), "End": today.isoformat()}

    def total(**extra) -> float | None:
        results = ce.get_cost_and_usage(TimePeriod=period, Granularity="MONTHLY", Metrics=["UnblendedCost"],
                                        **extra)["ResultsByTime"]
        return sum(float(r["Total"]["UnblendedCost"]["Amount"]) for r in results) if results else None

    account = total()
    if account is None:
        return Check(name="cost", ok=None, evidence=(
            f"pending: Cost Explorer returned no billing data for {start} to {today} (moto's Cost Explorer holds "
            f"none; in AWS, enable Cost Explorer once in the Billing console); {basis}"))
    tagged = total(Filter={"Tags": {"Key": ENVIRONMENT_TAG, "Values": [run.env_name]}})
    if not tagged:
        return Check(name="cost", ok=None, evidence=(
            f"pending: ${account:.2f} billed to the account, none of it tagged {ENVIRONMENT_TAG}={run.env_name}: "
            f"activate the tag in Billing > Cost allocation tags to compare this environment's own cost; {basis}"))
    ok, gap = cost_gap(expected, tagged, env.cost.gap_percent)
    return Check(name="cost", ok=ok, evidence=(
        f"${tagged:.2f} tagged {ENVIRONMENT_TAG}={run.env_name} from {start} to {today} (Cost Explorer), {gap}; "
        f"${account:.2f} for the account; {basis}"))


def issue_log_markdown(run: Run, issues: list[Issue], polls: list[Poll], total: int, window: float,
                       started: datetime.datetime, consecutive: int, note: str = "") -> str:
    settings = run.environment.launch.monitoring
    failed = sum(1 for p in polls if not p.ok)
    lines = [
        f"# Post-launch issue log: {run.env_name}",
        f"Window {window:g} s from {started:%Y-%m-%d %H:%M:%S} UTC, a poll every {settings.interval_seconds:g} s. "
        f"Poll {len(polls)} of {total}: {failed} failed so far; {consecutive} in a row "
        f"(DNS rolls back at {settings.failures_before_rollback}).",
    ]
    if polls:
        last = polls[-1]
        lines.append(f"Last poll #{last.number} at {last.at:%H:%M:%S}: {'ok' if last.ok else 'FAILED'}; "
                     + ", ".join(f"{label} {probe.show()}" for label, probe in last.probes.items())
                     + f"; {last.figures.show()}; alarms in ALARM: {', '.join(last.alarms) or 'none'}.")
    if note:
        lines += ["", f"**{note}**"]
    lines += [""]
    if not issues:
        lines.append("No issues so far.")
    else:
        lines += ["| # | first seen (UTC) | last seen | polls | status | alerted | issue |", "|---|---|---|---|---|---|---|"]
        for issue in issues:
            status = f"resolved {issue.resolved_at:%H:%M:%S}" if issue.resolved_at else "open"
            lines.append(f"| {issue.number} | {issue.first_seen:%Y-%m-%d %H:%M:%S} | {issue.last_seen:%H:%M:%S} | "
                         f"{issue.polls} | {status} | {'yes' if issue.alerted else 'no'} | "
                         f"{issue.summary.replace('|', '/')} |")
    return "\n".join(lines)


@flow(name="post-launch-monitoring")
def post_launch_monitoring(environment: str = "sandbox", sandbox: bool | None = None,
                           window_seconds: float | None = None) -> PhaseResult:
    """Watch the launched environment for the window; roll DNS back if it keeps failing."""
    run = Run.prepare(environment, sandbox=sandbox)
    settings = run.environment.launch.monitoring
    window = window_seconds if window_seconds is not None else settings.window_seconds
    total = int(window // settings.interval_seconds) + 1  # at the start, then every interval to the end
    started_at, started = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    log_key = artifact_key(run.env_name, PHASE, "issue-log")
    progress = create_progress_artifact(progress=0.0, key=artifact_key(run.env_name, PHASE, "progress"),
                                        description=f"post-launch watch of {run.env_name}: {total} polls over {window:g} s")
    topic = find_alerts_topic(run)
    issues: dict[str, Issue] = {}
    polls: list[Poll] = []
    consecutive = 0

    def record(key: str, summary: str, at: datetime.datetime) -> Issue | None:
        """Log a finding; returns the issue when it is new (or back after being resolved)."""
        issue = issues.get(key)
        if issue is not None and issue.resolved_at is None:
            issues[key] = issue.model_copy(update={"last_seen": at, "polls": issue.polls + 1, "summary": summary})
            return None
        issues[key] = Issue(number=len(issues) + 1 if issue is None else issue.number, key=key, summary=summary,
                            first_seen=at, last_seen=at)
        return issues[key]

    def alert(issue: Issue, subject: str, message: str) -> None:
        if topic is None:
            return
        try:
            send_alert(run, topic, subject, message)
        except Exception as error:  # the watch goes on: a lost alert is logged, not a reason to stop looking
            logger().error(f"could not publish the alert for issue #{issue.number}: {type(error).__name__}: {error}")
            record("alerts failing", f"alerts to {topic} fail: {type(error).__name__}: {error}",
                   datetime.datetime.now(datetime.timezone.utc))
            return
        issues[issue.key] = issues[issue.key].model_copy(update={"alerted": True})

    def publish_log(note: str = "") -> None:
        create_markdown_artifact(key=log_key, markdown=issue_log_markdown(
            run, sorted(issues.values(), key=lambda i: i.number), polls, total, window, started_at, consecutive, note),
            description=f"post-launch issues of {run.env_name}: "
            f"{sum(1 for i in issues.values() if not i.resolved_at)} open, {len(issues)} in all")

    if topic is None:
        record("alerts topic", f"alerts topic {resource_name(run.env_name, 'alerts')} not found: issues are logged "
               "here but nobody is mailed (Phase 1 makes the topic)", started_at)

    for number in range(1, total + 1):
        due = started + (number - 1) * settings.interval_seconds
        time.sleep(max(0.0, due - time.monotonic()))
        current = poll(run, number)
        polls.append(current)
        seen = {f.key for f in current.findings}
        for finding in current.findings:
            new = record(finding.key, finding.summary, current.at)
            if new is not None:
                alert(new, f"issue: {finding.summary}", f"Post-launch poll {number} of {total} found a new issue on "
                      f"{run.environment.domain}:\n\n{finding.summary}\n\n{current.figures.show()}")
        for key, issue in list(issues.items()):  # what this poll no longer sees has recovered
            if key not in seen and issue.resolved_at is None and key not in ("alerts topic", "alerts failing"):
                issues[key] = issue.model_copy(update={"resolved_at": current.at})
        consecutive = 0 if current.ok else consecutive + 1
        publish_log()
        update_progress_artifact(artifact_id=progress, progress=100.0 * number / total,
                                 description=f"poll {number} of {total}: {'ok' if current.ok else 'FAILED'}")
        if consecutive >= settings.failures_before_rollback:
            _roll_back(run, current, consecutive, record, alert, publish_log, polls, window, issues)

    backups, cost = backups_running(run), cost_so_far(run)
    end = datetime.datetime.now(datetime.timezone.utc)
    for check in (backups, cost):
        if check.ok is False:
            new = record(check.name, f"{check.name}: {check.evidence}", end)
            if new is not None:
                alert(new, f"{check.name} check failed", check.evidence)
    publish_log(f"window complete: {len(polls)} polls")
    window_figures = (synthetic_figures([p for poll_ in polls for p in poll_.probes.values()]) if run.target.is_sandbox
                      else alb_figures(run, started_at, end))
    result = _result(run, polls, window, window_figures, backups, cost, issues, log_key)
    publish(result)
    if result.failed_deliverables:
        raise MonitoringFailed("post-launch monitoring: " + "; ".join(
            f"{d.text}: {d.evidence}" for d in result.failed_deliverables))
    return result


def _roll_back(run: Run, current: Poll, consecutive: int, record, alert, publish_log, polls: list[Poll],
               window: float, issues: dict[str, Issue]) -> None:
    """N failed polls in a row: send DNS back to the previous target, tell everyone, fail the flow."""
    settings = run.environment.launch.monitoring
    reasons = "; ".join(f.summary for f in current.findings if f.fails_poll)
    logger().error(f"{consecutive} failed polls in a row, rolling the DNS cutover back: {reasons}")
    try:
        back: Rollback | None = rollback_cutover(run)
        outcome = f"DNS rollback: {back.note}" + (f" ({back.summary})" if back.weights else "")
    except Exception as error:
        back, outcome = None, f"the DNS rollback FAILED too ({type(error).__name__}: {error}); roll back by hand"
    issue = record("rollback", f"{consecutive} failed polls in a row: {outcome}", current.at)
    if issue is not None:
        alert(issue, "launch rolled back" if back else "ROLLBACK FAILED",
              f"{consecutive} consecutive post-launch polls failed on {run.environment.domain} "
              f"(limit {settings.failures_before_rollback}).\n\nLast poll: {reasons}\n\n{outcome}")
    publish_log(f"rolled back after {consecutive} failed polls in a row")
    figures = synthetic_figures([p for poll_ in polls for p in poll_.probes.values()]) if run.target.is_sandbox \
        else current.figures
    skipped = Check(name="backups", ok=None, evidence="not checked: the watch stopped at the rollback")
    cost = Check(name="cost", ok=None, evidence="not checked: the watch stopped at the rollback")
    publish(_result(run, polls, window, figures, skipped, cost, issues, artifact_key(run.env_name, PHASE, "issue-log"),
                    rolled_back=back, stopped=True))
    raise MonitoringFailed(f"post-launch monitoring: {consecutive} consecutive failed polls (limit "
                           f"{settings.failures_before_rollback}), last: {reasons}. {outcome}.")


def _result(run: Run, polls: list[Poll], window: float, figures: Figures, backups: Check, cost: Check,
            issues: dict[str, Issue], log_key: str, rolled_back: Rollback | None = None,
            stopped: bool = False) -> PhaseResult:
    settings = run.environment.launch.monitoring
    failed = [p.number for p in polls if not p.ok]
    # No request in the window is no error rate at all (pending), not 0 %.
    within = (None if not figures.requests or figures.error_rate is None else
              figures.error_rate <= settings.max_error_rate
              and (figures.p95_ms is None or figures.p95_ms <= settings.max_p95_ms))
    return PhaseResult(
        phase=PHASE, environment=run.env_name, mode=run.mode, target=run.target.describe(),
        changes=rolled_back.changes if rolled_back else [],
        deliverables=[
            # Stable over the window: every poll passed, not only the last one.
            deliverable("8.3", "Stable production environment (monitored for the window)",
                        not stopped and bool(polls) and not failed,
                        f"{len(polls)} polls over {window:g} s, {len(failed)} failed"
                        + (f" (#{', #'.join(map(str, failed))})" if failed else "")
                        + (f"; stopped and rolled back: {rolled_back.summary if rolled_back else 'the rollback failed'}"
                           if stopped else "")),
            deliverable("8.3", "Error rates checked", within,
                        ("no request reached the ALB in the window: no error rate to judge; " if within is None else "")
                        + f"window: {figures.show()}; limits {settings.max_error_rate:.2%} errors, "
                        f"p95 {settings.max_p95_ms:.0f} ms"),
            deliverable("8.3", "Backups verified running", backups.ok, backups.evidence),
            deliverable("8.3", "Costs monitored", cost.ok, cost.evidence),
            deliverable("8.3", "Issue log", True,
                        f"artifact {log_key}: {len(issues)} issues, "
                        f"{sum(1 for i in issues.values() if not i.resolved_at)} open"),
        ],
        outputs={"polls": polls, "figures": figures, "issues": list(issues.values()), "backups": backups, "cost": cost},
    )
