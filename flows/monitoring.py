"""Phase 7 of the deployment plan: monitoring and security hardening.

7.1 monitoring: the dashboard, the alarms (file thresholds, all to the alerts topic), the error metric
filter, the uptime health check, the log archive with the ALB's and CloudFront's access logs.
7.2 security: the WAF in front of CloudFront (managed rules, rate limit per IP, logging), Shield
(Standard said with evidence; Advanced only when opted in), VPC flow logs, AWS Config (recorder,
delivery channel, managed rules), a multi-region CloudTrail trail if the account has none. Then the
security audit (golive/audit.py): a critical or high finding the file does not accept fails the phase. The
go-live runs Phase 7 after every other phase, so this audit reads them all and is its audit gate.

What moto cannot show is pending with why: alarms are stored but never evaluated, there are no
composite alarms, Config answers no compliance queries, Route 53's checkers always report success.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from golive.audit import AuditResult, audit
from golive.changes import collect_changes
from golive.report import PhaseResult, artifact_key, deliverable, finish_phase
from golive.retry import AWS_STEP
from golive.emulator import cannot_observe
from golive.run import Mode, Run
from tasks.alarms import ensure_monitoring_alarms
from tasks.cloudtrail import ensure_trail
from tasks.config_rules import MANAGED_RULES, ensure_config
from tasks.dashboard import ensure_dashboard, read_targets
from tasks.flow_logs import ensure_flow_logs
from tasks.log_archive import ensure_log_archive
from tasks.observability import ensure_alerts_topic
from tasks.waf import ensure_shield, ensure_waf

PHASE = "phase-7-monitoring"


ACCEPT_HINT = "Fix them, or accept each in the environment file with [[audit.accept]] id = \"...\", reason = \"...\""


class AuditFailed(RuntimeError):
    """A critical or high finding nobody accepted, when the security-audit flow runs as a gate (gate=True).
    `golive audit` reports findings instead; in the go-live, Phase 7's audit deliverable fails the same way,
    before the launch gate."""

    def __init__(self, result: AuditResult):
        self.result = result
        super().__init__(
            f"security audit of {result.environment}: {len(result.blocking)} blocking finding(s): "
            + "; ".join(f"{f.id} ({f.severity}): {f.title}: {f.evidence}" for f in result.blocking)
            + f". {ACCEPT_HINT}")


@task(**AWS_STEP)
def audit_environment(run: Run) -> AuditResult:
    """Read the live environment and publish the findings: a table artifact, and the report the go-live's
    own report also quotes (a markdown artifact)."""
    result = audit(run)
    create_markdown_artifact(key=artifact_key(run.env_name, "security-audit-report"), markdown=result.markdown(),
                             description=f"security audit of {run.env_name}")
    create_table_artifact(key=artifact_key(run.env_name, "security-audit"),
                          table=result.rows() or [{"id": "(none)", "severity": "", "status": "", "resource": "",
                                                   "finding": "no findings", "evidence": "", "fix": "", "control": "",
                                                   "accepted because": ""}],
                          description=f"security audit of {run.env_name}: {result.summary()}")
    return result


@flow(name="security-audit")
def security_audit(environment: str = "sandbox", sandbox: bool | None = None, gate: bool = True) -> AuditResult:
    """The audit on its own (`golive audit ENV`; gate=True fails on a finding nobody accepted). The go-live's
    gate is the same audit at the end of Phase 7."""
    run = Run.prepare(environment, sandbox=sandbox, mode="plan")  # reads only
    result = audit_environment(run)
    if gate and result.blocking:
        raise AuditFailed(result)
    return result


@flow(name=PHASE)
def monitoring(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
               allow_replace: bool = False) -> PhaseResult:
    """Watch the site and harden it: dashboard, alarms, logs, WAF, Shield, flow logs, Config, CloudTrail."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    targets = read_targets(run)
    topic = ensure_alerts_topic.submit(run)  # Phase 1's topic: found, not made again
    dashboard = ensure_dashboard.submit(run, targets)
    alarms = ensure_monitoring_alarms.submit(run, topic, targets)
    archive = ensure_log_archive(run)
    waf = ensure_waf.submit(run)
    shield = ensure_shield.submit(run, targets.distribution)
    flow_logs = ensure_flow_logs.submit(run, archive.arn)
    config = ensure_config.submit(run, archive.name)
    trail = ensure_trail.submit(run, archive.name)
    outputs = {"targets": targets, "topic": topic.result(), "dashboard": dashboard.result(), "alarms": alarms.result(),
               "log_archive": archive, "waf": waf.result(), "shield": shield.result(), "flow_logs": flow_logs.result(),
               "config": config.result(), "trail": trail.result()}
    # The audit reads what this run made: in plan mode there is nothing new to read, so it is not run.
    outputs["audit"] = audit_environment(run) if run.applying else None
    alarms_record = outputs["alarms"]
    changes = collect_changes(outputs["topic"], outputs["dashboard"], alarms_record.alarms, alarms_record.metric_filter,
                              alarms_record.health_check, alarms_record.site_down, archive, outputs["waf"],
                              outputs["shield"], outputs["flow_logs"], outputs["config"], outputs["trail"])
    return finish_phase(run, PHASE, outputs, monitoring_deliverables(run, outputs), changes)


def sentry_wired(run: Run) -> tuple[bool, str]:
    """The app's side of error tracking, read from its repository: sentry-sdk pinned, and initialised only
    when SENTRY_DSN is set (so it is off unless someone stores a DSN)."""
    app = run.environment.app.directory
    pinned = [line for line in (app / "requirements.txt").read_text().splitlines() if line.startswith("sentry-sdk==")]
    settings = (app / "config" / "settings" / "base.py").read_text()
    guarded = 'os.environ.get("SENTRY_DSN")' in settings and "sentry_sdk.init(" in settings
    return bool(pinned) and guarded, (f"{', '.join(pinned) or 'sentry-sdk not pinned'} in {app.name}/requirements.txt; "
                                     f"{'initialised only when SENTRY_DSN is set' if guarded else 'no SENTRY_DSN guard'} "
                                     "(config/settings/base.py); the DSN is a secret, none is stored by default "
                                     "(docs/app-environment.md)")


def monitoring_deliverables(run: Run, o: dict) -> list:
    planned = not run.applying
    evaluation, composite = cannot_observe(run, "alarm-evaluation"), cannot_observe(run, "composite-alarm")
    checkers, log_metrics = cannot_observe(run, "health-check-results"), cannot_observe(run, "log-metrics")
    compliance = cannot_observe(run, "config-compliance")
    env = run.environment
    alarms, waf, shield, config, trail = o["alarms"], o["waf"], o["shield"], o["config"], o["trail"]
    alarm_names = [r.name for r in alarms.alarms]
    retention = {group: days for group, days in alarms.log_groups.items()}
    wanted_retention = env.app.log_retention_days
    archive = o["log_archive"]
    audit_result: AuditResult | None = o["audit"]
    items = [
        deliverable("7.1", "CloudWatch dashboard of the environment", bool(o["dashboard"].id),
                    f"{o['dashboard'].name}: {o['dashboard'].widgets} widgets over ALB {o['targets'].load_balancer}, "
                    f"services {', '.join(o['targets'].services)}, {o['targets'].database}, Redis "
                    f"{', '.join(o['targets'].cache_nodes) or '(none)'}, distribution {o['targets'].distribution}; "
                    f"{o['dashboard'].url}", planned=planned),
        deliverable("7.1", "Alarms to the alerts topic, thresholds from the file",
                    all(r.id for r in alarms.alarms) and bool(o["topic"].id),
                    f"{len(alarm_names)} alarms to {o['topic'].id}: {', '.join(alarm_names)}", planned=planned),
        # moto stores alarms and never evaluates them: that they fire on real metrics cannot be seen here.
        deliverable("7.1", "Alarms evaluate real metrics and notify",
                    None if evaluation else all(r.id for r in alarms.alarms),
                    f"pending: {evaluation}" if evaluation
                    else "CloudWatch evaluates them; the email subscription must be confirmed", planned=planned),
        deliverable("7.1", "Composite 'site down' alarm", None if composite else bool(alarms.site_down.id),
                    f"pending: {composite}" if composite
                    else f"{alarms.site_down.name} ({alarms.site_down.id})", planned=planned),
        deliverable("7.1", "Uptime health check of the site", bool(alarms.health_check.id),
                    f"Route 53 {alarms.health_check.id}: HTTPS {env.domain}/health/ every 30 s, alarm "
                    f"{[n for n in alarm_names if n.endswith('-uptime')][0]} in us-east-1"
                    + (f" (checker results pending: {checkers})" if checkers else ""), planned=planned),
        deliverable("7.1", "Log groups with retention and an application-error metric",
                    bool(retention) and all(days == wanted_retention for days in retention.values())
                    and bool(alarms.metric_filter.id),
                    ", ".join(f"{g}: {d} days" for g, d in retention.items()) + f"; metric filter {alarms.metric_filter.name} "
                    "counts ERROR/CRITICAL/Traceback lines, alarm app-errors"
                    + (f" (pending: {log_metrics})" if log_metrics else ""), planned=planned),
        deliverable("7.1", "ALB and CloudFront access logs to the logs bucket with lifecycle",
                    bool(archive.id and archive.alb_access_logs.id and archive.cdn_access_logs.id),
                    f"s3://{archive.name}/ (alb/, cloudfront/), objects expire after {env.security.log_archive_days} days",
                    planned=planned),
        deliverable("7.1", "Error tracking (Sentry), off by default", *sentry_wired(run)),
        deliverable("7.2", "WAF on CloudFront: managed rules, rate limit per IP, logging",
                    bool(waf.arn and waf.logging.id and waf.association.id),
                    f"{waf.arn}: {', '.join(waf.rules)}; logs to {waf.log_group.name}; on distribution "
                    f"{waf.association.id}", planned=planned),
        deliverable("7.2", "DDoS protection (Shield)",
                    len(shield.covered) == 2 and shield.advanced == env.security.shield_advanced, shield.evidence,
                    planned=planned),
        deliverable("7.2", "VPC flow logs", bool(o["flow_logs"].id),
                    f"{o['flow_logs'].id} on {o['flow_logs'].vpc_id} to {o['flow_logs'].destination} "
                    f"({o['flow_logs'].status})", planned=planned),
        deliverable("7.2", "AWS Config recorder, delivery channel and managed rules",
                    config.recording and all(r.id for r in config.rules),
                    f"recorder {config.recorder} ({'the account' + chr(39) + 's own' if config.external else 'golive'}), "
                    f"recording {config.recording}; {len(config.rules)} rules: {', '.join(MANAGED_RULES)}", planned=planned),
        deliverable("7.2", "AWS Config compliance answers", None if compliance else True,
                    f"pending: {compliance}" if compliance
                    else "read by the audit below", planned=planned),
        deliverable("7.2", "Multi-region CloudTrail trail", trail.multi_region and trail.logging,
                    f"{trail.name} ({'the account' + chr(39) + 's own' if trail.external else 'golive'}): multi-region "
                    f"{trail.multi_region}, logging {trail.logging}", planned=planned),
    ]
    if audit_result is not None:
        accepted = "; accepted: " + ", ".join(f"{f.id} ({f.accepted})" for f in audit_result.accepted) \
            if audit_result.accepted else ""
        items.append(deliverable("7.2", "Security audit: no unaccepted critical or high finding", not audit_result.blocking,
                                 audit_result.summary() + accepted + (
                                     "; blocking: " + ", ".join(f"{f.id}: {f.evidence}" for f in audit_result.blocking)
                                     + f". {ACCEPT_HINT}" if audit_result.blocking else "")))
    else:
        items.append(deliverable("7.2", "Security audit: no unaccepted critical or high finding", None,
                                 "runs after apply (plan reads nothing new)", planned=True))
    return items
