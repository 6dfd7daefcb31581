"""The launch rehearsed over real protocols in the sandbox: the ALB serves only CloudFront (the origin
header), CloudFront reaches the ALB by a name its certificate covers, DNS answers move from the previous
site to the new stack in the file's steps and back on a failed step, and the gate judges the new stack,
not whatever the domain answers before the cutover."""

from __future__ import annotations

from unittest import mock

import pytest

import golive.probes as probes
import tasks.cutover as cutover_walk
from flows.cutover import dns_cutover
from flows.pre_launch import LaunchGateFailed, RestoreVerified, pre_launch_tests
from golive.probes import alb_endpoint, client, new_stack_endpoint, site_endpoint
from tasks.cutover import CutoverFailed
from tasks.dns import ensure_hosted_zone
from tasks.load_balancer import ORIGIN_HEADER
from tests.conftest import prepare, write_environment
from tests.edgehelpers import ORIGIN_SECRET, dns_answers, make_distribution
from tests.test_cutover import LEGACY, WWW, app, failing_from, launch_ready, route53_writes, weights  # noqa: F401

SAMPLES = 40  # answers per step: at 10 %, 40 answers hold no new one with probability 1.5 %; 40 x 10 % vs 90 % is clear


def test_the_alb_answers_only_requests_carrying_cloudfronts_origin_header(aws, app):
    run = prepare()
    make_distribution(run)
    direct = alb_endpoint(run)
    assert probes.probe(direct).status == 403  # around CloudFront: refused by the listener's default action
    with client(direct, headers={ORIGIN_HEADER: ORIGIN_SECRET}) as http:
        assert http.get(f"https://{run.environment.domain}/health/").status_code == 200  # the header is the key
    through = probes.probe(new_stack_endpoint(run))
    assert through.status == 200, through.show()


def test_cloudfront_without_the_viewers_host_cannot_verify_the_alb_and_answers_502(aws, app):
    """The defect tasks/cdn.py refuses: a behaviour to the ALB that does not forward Host makes CloudFront
    check the ALB's certificate against the ALB's own DNS name, which it does not cover."""
    run = prepare()
    make_distribution(run, forward_host=False)
    with client(new_stack_endpoint(run)) as http:
        response = http.get(f"https://{run.environment.domain}/health/")
    assert response.status_code == 502
    assert "certificate does not verify" in response.text and ".elb.amazonaws.com" in response.text


def side_of(chain: list[str], cdn: str) -> str:
    return "new" if cdn in chain else "previous" if LEGACY in chain else "elsewhere"


def test_dns_answers_move_from_the_previous_site_in_the_files_steps_and_back_on_a_failed_step(aws, app):
    run = prepare()
    # Before the launch, www is the previous site's (a simple CNAME the cutover takes over).
    zone_id, cdn = launch_ready(run, [{"Name": WWW, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": LEGACY}]}])
    www = site_endpoint(run, WWW)
    before = probes.probe(www, "/")
    assert before.status == 200  # the previous site serves www through the sandbox's DNS

    seen: dict[int, dict[str, int]] = {}
    verify = cutover_walk.verify_authoritative

    def sample_then_verify(run_, layout, percent):
        """What the sandbox's DNS answers for www right after the step's write, then the step's own check."""
        answers = [side_of(chain, cdn) for chain in dns_answers(WWW, SAMPLES)]
        seen[percent] = {side: answers.count(side) for side in ("new", "previous", "elsewhere")}
        return verify(run_, layout, percent)

    # Two probes per step: the first probe of the 100 % step answers 503 (the injected fault).
    with mock.patch("tasks.cutover.verify_authoritative", side_effect=sample_then_verify), \
            mock.patch("golive.probes.probe", side_effect=failing_from(5)):
        with pytest.raises(CutoverFailed, match=r"step 100 %: HTTP health check failed"):
            dns_cutover(environment="sandbox", sandbox=True)
    assert list(seen) == [10, 50, 100]
    assert seen[10]["previous"] > seen[10]["new"]  # about 4 of 40 new
    assert seen[50]["new"] > 0 and seen[50]["previous"] > 0
    assert seen[100] == {"new": SAMPLES, "previous": 0, "elsewhere": 0}
    assert all(counts["elsewhere"] == 0 for counts in seen.values())

    # Rolled back: every answer is the previous site again, and that is what a visitor reaches.
    after = [side_of(chain, cdn) for chain in dns_answers(WWW, SAMPLES)]
    assert after == ["previous"] * SAMPLES
    assert weights(run, zone_id)[WWW] == {"golive-new": 0, "golive-previous": 100}
    reached = probes.probe(www, "/")
    assert reached.status == 200 and reached.ok


def test_the_gate_fails_on_a_broken_new_stack_while_the_previous_site_answers(aws, app, tmp_path):
    """CloudFront sends a stale origin secret, so the ALB refuses everything; the domain still answers
    from the previous site. The gate must judge the new stack and stop before any DNS change."""
    short = write_environment(tmp_path, edit=lambda t: t.replace("duration_seconds = 10", "duration_seconds = 2"))
    run = prepare(str(short))
    zone_id = ensure_hosted_zone.fn(run).id
    run.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
        "Action": "CREATE", "ResourceRecordSet": {"Name": WWW, "Type": "CNAME", "TTL": 300,
                                                  "ResourceRecords": [{"Value": LEGACY}]}}]})
    make_distribution(run, header_value="a-rotated-away-secret")
    previous = probes.probe(site_endpoint(run, WWW), "/")
    assert previous.status == 200, "the previous site answers the domain"
    run.aws.log.clear()

    # The restore verification is not under test here: it is handed in as the go-live hands in its own.
    restored = RestoreVerified(ok=True, evidence="verified separately", recovery_time_seconds=1.0,
                               recovery_point_seconds=1.0)
    with pytest.raises(LaunchGateFailed) as failure:
        pre_launch_tests(environment=str(short), sandbox=True, restore=restored)
    message = str(failure.value)
    print(message)
    assert "Load test passed (Locust)" in message and "Check: health: GET /health/ -> 403" in message
    assert route53_writes(run) == [] and weights(run, zone_id) == {}
    assert probes.probe(site_endpoint(run, WWW), "/").status == 200  # visitors still reach the previous site


def test_a_failover_passes_only_when_the_primary_moved():
    """Available again after the reboot is not enough: a reboot without failover comes back too."""
    from flows.pre_launch import judge_failover

    before = {"AvailabilityZone": "us-east-1a", "SecondaryAvailabilityZone": "us-east-1b"}
    moved = judge_failover("golive-production-postgres", before, {"AvailabilityZone": "us-east-1b"}, 42)
    stayed = judge_failover("golive-production-postgres", before, {"AvailabilityZone": "us-east-1a"}, 42)
    no_standby = judge_failover("golive-production-postgres", {"AvailabilityZone": "us-east-1a"},
                                {"AvailabilityZone": "us-east-1a"}, 3)
    assert moved.ok and "in us-east-1b after" in moved.evidence
    assert stayed.ok is False and stayed.evidence.endswith("the primary did not move")
    assert no_standby.ok is False and "no standby zone reported" in no_standby.evidence


def test_a_failover_a_killed_run_forced_is_judged_by_rds_events_not_forced_again(aws):
    """Started again after a kill, the gate reads RDS's failover events (the request's shape checked by
    moto's own RDS) and passes on a completed failover, never on a started one alone."""
    import datetime

    from flows.pre_launch import judge_resumed_failover, recent_failover_events

    assert recent_failover_events(prepare().client("rds"), "golive-sandbox-postgres") == []
    at = datetime.datetime(2026, 12, 1, 3, 0, tzinfo=datetime.timezone.utc)
    started = {"Date": at, "Message": "Multi-AZ instance failover started."}
    completed = {"Date": at + datetime.timedelta(seconds=40), "Message": "Multi-AZ instance failover completed."}
    after = {"AvailabilityZone": "us-east-1b"}
    done = judge_resumed_failover("golive-production-postgres", [started, completed], after)
    half = judge_resumed_failover("golive-production-postgres", [started], after)
    assert done.ok and "not forced again" in done.evidence and "failover completed" in done.evidence
    assert half.ok is False and half.evidence.endswith("RDS recorded no completed failover")


def test_a_pending_restore_verification_is_not_summarised_as_a_pass():
    from flows.pre_launch import restore_summary
    from golive.report import PhaseResult, deliverable

    pending = PhaseResult(phase="backup-verification", environment="sandbox", mode="apply", target="sandbox",
                          changes=[], deliverables=[deliverable("8.1", "Database backup/restore testing", None,
                                                                "moto has no database behind the restored instance")],
                          outputs={"recovery_time_seconds": 1.0, "recovery_point_seconds": 2.0})
    summary = restore_summary(pending)
    assert summary.ok is None and "pending: Database backup/restore testing" in summary.evidence
    gate = pending.model_copy(update={"deliverables": [deliverable("8.1", "Load test passed (Locust)", True),
                                                       deliverable("8.1", "RDS failover tested", None, "n/a")]})
    assert gate.verdict() == "passed, 1 pending (RDS failover tested)"


def test_least_privilege_is_judged_from_the_policies_not_from_the_roles_existing():
    from tasks.security import privilege_problems

    admin = {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    s3_everywhere = {"Statement": [{"Effect": "Allow", "Action": ["s3:*"], "Resource": "*"}]}
    scoped = {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]},
                            {"Effect": "Allow", "Action": ["ec2:*"], "Resource": "*",
                             "Condition": {"StringEquals": {"aws:RequestedRegion": ["us-east-1"]}}}]}
    assert privilege_problems("app", {"p": admin}, []) == ["app/p: allows every action"]
    assert privilege_problems("app", {"p": s3_everywhere}, []) == ["app/p: s3:* on every resource without a condition"]
    assert privilege_problems("app", {"p": scoped}, ["AdministratorAccess"]) == ["app: managed policy AdministratorAccess attached"]
    assert privilege_problems("app", {"p": scoped}, []) == []


def test_a_record_that_points_elsewhere_fails_the_dns_checks_on_real_answers(aws, app):
    """After the cutover someone points www's golive-new record at another host: Route 53's record sets
    and the answers the sandbox's DNS gives both say so, and so do the resolver locations."""
    from tasks.cutover_checks import check_public_resolvers, verify_authoritative
    from tasks.cutover_records import NEW, read_layout
    from tasks.cutover_target import locate_new_target

    run = prepare()
    zone_id, _ = launch_ready(run)
    dns_cutover(environment="sandbox", sandbox=True)
    layout = read_layout.fn(run, locate_new_target.fn(run))
    record = next(r for r in run.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
                  if r["Name"].rstrip(".") == WWW and r.get("SetIdentifier") == NEW)
    record["ResourceRecords"] = [{"Value": "elsewhere.example.net"}]
    run.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [
        {"Action": "UPSERT", "ResourceRecordSet": record}]})

    authoritative = verify_authoritative.fn(run, layout, 100)
    assert authoritative.ok is False
    assert f"{WWW}: 12 answers point at neither target" in authoritative.evidence
    locations = check_public_resolvers.fn(run, layout, 100)
    assert locations.ok is False and "over UDP" in locations.evidence and "over TCP" in locations.evidence
    assert "answers point at neither target" in locations.evidence


def test_the_sandboxs_alb_reads_only_star_and_question_mark_as_wildcards():
    """A generated origin secret may hold '[' and ']': the ALB compares them literally (fnmatch read them as
    a class, and the sandbox's ALB answered CloudFront's own requests 403 now and then)."""
    from golive.sandbox.edge import aws_wildcard_matches, choose_rule

    secret = "ab[c]d{e}f!"
    assert aws_wildcard_matches(secret, secret, case_sensitive=False)
    assert not aws_wildcard_matches("abcd{e}f!", secret, case_sensitive=False)
    assert aws_wildcard_matches("API.Example.test", "*.example.test", case_sensitive=False)
    assert not aws_wildcard_matches("/Static/app.js", "/static/*", case_sensitive=True)
    assert aws_wildcard_matches("/static/a.js", "/static/?.js", case_sensitive=True)
    verify = {"Priority": "1", "Actions": [{"Type": "forward"}], "Conditions": [
        {"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": "X-Origin-Verify", "Values": [secret]}}]}
    refuse = {"Priority": "default", "Actions": [{"Type": "fixed-response"}], "Conditions": []}
    assert choose_rule([verify, refuse], "h", "/", {"X-Origin-Verify": secret}) is verify
    assert choose_rule([verify, refuse], "h", "/", {"X-Origin-Verify": "abcd{e}f!"}) is refuse
