"""Phase 7 on the sandbox: every 7.1 and 7.2 deliverable passes or is pending with why; a converged re-run
writes nothing; an alarm set to ALARM makes the post-launch monitoring fail and alert; port 22 opened to
the world by hand is a high audit finding naming the group, which stops the gate until the file accepts
it; teardown removes everything Phase 7 made."""

from __future__ import annotations

import pytest
from prefect.artifacts import Artifact

from flows.cdn import cdn
from flows.containers import containers
from flows.ecs import ecs
from flows.infrastructure import infrastructure
from flows.monitoring import AuditFailed, monitoring, security_audit
from flows.post_launch_monitoring import MonitoringFailed, post_launch_monitoring
from flows.teardown import teardown
from golive.changes import Summary
from golive.naming import resource_name
from tasks import alarms, cloudtrail, config_rules, dashboard, flow_logs, log_archive, waf
from tests.conftest import prepare, write_environment
from tests.test_post_launch_monitoring import alerts_queue, app, delivered  # noqa: F401 (the app fixture)

ENV = "sandbox"
MADE_BY_PHASE_7 = [dashboard.Dashboard, alarms.CompositeAlarm, alarms.ErrorMetricFilter, config_rules.ConfigRule,
                   config_rules.ConfigRecorder, config_rules.DeliveryChannel, cloudtrail.Trail, waf.WafLogging,
                   waf.WebAcl, waf.WafLogGroup, flow_logs.VpcFlowLog, log_archive.LogsBucket]


def open_ssh_to_the_world(run) -> str:
    ec2 = run.client("ec2")
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [resource_name(ENV, "backend")]}])
    group_id = group["SecurityGroups"][0]["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    return group_id


def test_phase7_applies_converges_reacts_to_alarms_gates_on_the_audit_and_tears_down(aws, app, tmp_path):  # noqa: F811
    infrastructure(environment=ENV, sandbox=True)
    for phase in (containers, ecs, cdn):
        phase(environment=ENV, sandbox=True)
    run = prepare()
    queue = alerts_queue(run)

    result = monitoring(environment=ENV, sandbox=True)
    marks = {d.text: d for d in result.deliverables}
    assert {d.section for d in result.deliverables} == {"7.1", "7.2"}
    assert not result.failed_deliverables
    # What moto cannot show is pending with why, never a pass.
    pending = {text: d.evidence for text, d in marks.items() if d.ok is None}
    assert set(pending) == {"Alarms evaluate real metrics and notify", "Composite 'site down' alarm",
                            "AWS Config compliance answers"}, pending
    assert all("moto" in why for why in pending.values())
    assert marks["Security audit: no unaccepted critical or high finding"].ok is True
    assert "IAM.9:root" in marks["Security audit: no unaccepted critical or high finding"].evidence

    # Read back from AWS: the dashboard names the real ALB and distribution; the WAF is on the distribution.
    targets = result.outputs["targets"]
    body = run.client("cloudwatch").get_dashboard(DashboardName=resource_name(ENV, "dashboard"))["DashboardBody"]
    assert targets.load_balancer in body and targets.distribution in body and targets.cache_nodes[0] in body
    config = run.client("cloudfront").get_distribution_config(Id=targets.distribution)["DistributionConfig"]
    assert config["WebACLId"] == result.outputs["waf"].arn
    assert config["Logging"]["Enabled"] and config["Logging"]["Bucket"].startswith(result.outputs["log_archive"].name)
    acl = run.client("wafv2").get_web_acl(Name=resource_name(ENV, "waf"), Scope="CLOUDFRONT",
                                          Id=result.outputs["waf"].arn.rsplit("/", 1)[1])["WebACL"]
    rate = [r for r in acl["Rules"] if "RateBasedStatement" in r["Statement"]]
    assert rate[0]["Statement"]["RateBasedStatement"]["Limit"] == run.environment.security.waf_rate_limit
    assert len(acl["Rules"]) == 5
    alarm_names = {a["AlarmName"] for a in run.client("cloudwatch").describe_alarms(
        AlarmNamePrefix=resource_name(ENV, ""))["MetricAlarms"]}
    assert {resource_name(ENV, n) for n in ("backend-cpu", "alb-5xx-rate", "alb-p95-latency", "cdn-5xx-rate",
                                            "uptime", "app-errors")} <= alarm_names

    # Converged: plan shows nothing to do, a second apply writes nothing.
    run.aws.log.clear()
    planned = monitoring(environment=ENV, sandbox=True, mode="plan")
    assert not Summary.of(planned.changes).has_changes, [c.headline() for c in planned.changes if c.is_change]
    monitoring(environment=ENV, sandbox=True)
    assert [c.operation for c in run.aws.log.writes()] == [], "a converged run writes nothing"

    # The alarm wiring: moto never evaluates alarms, so a state is set by hand, as CloudWatch would.
    alarm = resource_name(ENV, "alb-5xx-rate")
    run.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="test: 5xx over 1%")
    with pytest.raises(MonitoringFailed, match=alarm):
        post_launch_monitoring(environment=ENV, sandbox=True, window_seconds=60)
    assert any(alarm in m["Subject"] or alarm in m["Message"] for m in delivered(run, queue))
    run.client("cloudwatch").set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="test over")

    # Port 22 open to the world, by hand: a high finding naming the group stops the gate.
    group_id = open_ssh_to_the_world(run)
    with pytest.raises(AuditFailed, match=rf"EC2.13:{resource_name(ENV, 'backend')} \(high\).*{group_id}.*port 22"):
        security_audit(environment=ENV, sandbox=True)
    table = Artifact.get(f"{ENV}-security-audit")
    assert "BLOCKS" in str(table.data) and resource_name(ENV, "backend") in str(table.data)
    # ... until the file accepts it: then it passes, and the exception is listed with its reason.
    accepted = write_environment(tmp_path, edit=lambda t: t + (
        f'\n[[audit.accept]]\nid = "EC2.13:{resource_name(ENV, "backend")}"\n'
        'reason = "reviewed: a test opens it on purpose"\n'))
    passed = security_audit(environment=str(accepted), sandbox=True)
    assert not passed.blocking
    assert [f.id for f in passed.accepted] == ["EC2.13:golive-sandbox-backend", "IAM.9:root"]
    from flows.go_live import audit_section

    section = "\n".join(audit_section(passed))
    assert "EC2.13:golive-sandbox-backend (high, SSH (22) open to the internet): reviewed: a test opens it on purpose" in section

    # Teardown removes everything Phase 7 made.
    teardown(environment=ENV, sandbox=True)
    left = {kind.kind: kind.discover_all(run) for kind in MADE_BY_PHASE_7}
    assert {k: v for k, v in left.items() if v} == {}
    assert run.client("cloudwatch").describe_alarms(AlarmNamePrefix=resource_name(ENV, ""))["MetricAlarms"] == []
    assert run.client("route53").list_health_checks()["HealthChecks"] == []
