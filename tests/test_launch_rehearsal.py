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
