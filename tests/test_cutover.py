"""Plan 8.2, the DNS cutover, against moto's Route 53 and the sandbox's real app: the weighted walk read
back from Route 53, convergence, rollback on a failed probe or an alarm, the record model AWS accepts,
and plan mode writing nothing."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from prefect.artifacts import Artifact

import golive.probes as probes
from flows.cutover import dns_cutover
from golive.changes import Action, Summary
from golive.naming import tag_list
from golive.sandbox import app as sandbox_app
from golive.sandbox import data_plane
from golive.probes import Probe
from tasks.cutover import CutoverFailed, rollback_cutover
from tasks.cutover_records import CLOUDFRONT_ZONE_ID, NEW, PREVIOUS, CutoverConflict, validate_batch
from tasks.cutover_target import locate_new_target
from tasks.dns import ensure_hosted_zone
from tests.conftest import prepare, write_environment
from tests.edgehelpers import dns_answers, make_distribution

DOMAIN = "sandbox.precedentum.test"
APEX, WWW, API = DOMAIN, f"www.{DOMAIN}", f"api.{DOMAIN}"
LEGACY = "previous.sandbox.localhost"  # sandbox.toml's previous target: the sandbox's previous site


@pytest.fixture(scope="module")
def app(sandbox, edge):
    """The app under gunicorn, as tests/test_example_app.py starts it (once for the module: every test
    resets moto, which the running app no longer needs)."""
    with data_plane.locked():
        state, _ = sandbox_app.APP.start()
    yield state["url"]
    with data_plane.locked():
        sandbox_app.APP.stop()


def launch_ready(run, records: list[dict] = ()) -> tuple[str, str]:
    """Phase 1's zone (plus records that served the domain before) and Phase 4's distribution."""
    zone_id = ensure_hosted_zone.fn(run).id
    if records:
        run.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Changes": [{"Action": "CREATE", "ResourceRecordSet": r} for r in records]})
    distribution = make_distribution(run)
    run.aws.log.clear()
    return zone_id, distribution["DomainName"]


def route53_records(run, zone_id: str) -> dict[tuple[str, str, str | None], dict]:
    """Straight from Route 53: (name, type, set identifier) -> record, for the domain's names."""
    records = run.client("route53").list_resource_record_sets(HostedZoneId=zone_id)["ResourceRecordSets"]
    return {(r["Name"].rstrip("."), r["Type"], r.get("SetIdentifier")): r for r in records
            if r["Type"] in ("A", "AAAA", "CNAME")}


def weights(run, zone_id: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for (name, _, set_id), record in route53_records(run, zone_id).items():
        if set_id:
            found.setdefault(name, {})[set_id] = record["Weight"]
    return found


def route53_writes(run) -> list[str]:
    return [c.operation for c in run.aws.log.writes() if c.service == "route53"]


def failing_from(call: int):
    """A probe that answers like the real one until the given call, then 503 (the injected fault)."""
    real, calls = probes.probe, {"n": 0}

    def probe(endpoint, path="/health/", **kwargs):
        calls["n"] += 1
        if calls["n"] >= call:
            return Probe(url=f"{endpoint.url}{path}", status=503, ms=3.0)
        return real(endpoint, path, **kwargs)
    return probe


def test_plan_writes_nothing_apply_walks_10_50_100_read_back_from_route53_a_rerun_changes_nothing(aws, app):
    run = prepare()
    zone_id, cdn = launch_ready(run)

    plan = dns_cutover(environment="sandbox", sandbox=True, mode="plan")
    assert route53_writes(run) == [] and run.aws.log.writes() == []
    assert weights(run, zone_id) == {}
    created = {c.name for c in plan.changes if c.action == Action.CREATE}
    assert {f"{WWW} CNAME {NEW}", f"{WWW} CNAME {PREVIOUS}", f"{APEX} A {NEW}", "golive-sandbox-cdn-health"} <= created
    assert all(d.ok is None for d in plan.deliverables)

    result = dns_cutover(environment="sandbox", sandbox=True)
    outcome = result.outputs["cutover"]
    assert [s.percent for s in outcome.steps] == [10, 50, 100]
    # Each step's weights were read back from Route 53 after its change was INSYNC.
    assert [s.weights[WWW] for s in outcome.steps] == [
        {NEW: 10, PREVIOUS: 90}, {NEW: 50, PREVIOUS: 50}, {NEW: 100, PREVIOUS: 0}]
    assert all(c.ok is not False for s in outcome.steps for c in s.checks)
    assert all(d.ok is not False for d in result.deliverables), result.deliverables
    # Real handshakes and real DNS answers in the sandbox: these pass, they are not pending.
    marks = {d.text: d for d in result.deliverables}
    for text in ("SSL working", "Tested from multiple locations",
                 "DNS propagation verified (Route 53 authoritative at every step)"):
        assert marks[text].ok is True, marks[text]
    assert "sandbox DNS 127.0.0.1:" in marks["Tested from multiple locations"].evidence
    assert f"via CloudFront {cdn}" in marks["SSL working"].evidence

    records = route53_records(run, zone_id)
    health_check = outcome.health_check.id
    for name in (WWW, API):  # a plain-host previous target: weighted CNAMEs on the subdomains
        assert records[(name, "CNAME", NEW)]["ResourceRecords"] == [{"Value": cdn}]
        assert records[(name, "CNAME", NEW)]["HealthCheckId"] == health_check
        assert records[(name, "CNAME", PREVIOUS)]["ResourceRecords"] == [{"Value": LEGACY}]
    # The apex served nothing before and cannot hold a CNAME: the alias joined at the 100 % step only.
    assert records[(APEX, "A", NEW)]["AliasTarget"]["HostedZoneId"] == CLOUDFRONT_ZONE_ID
    assert records[(APEX, "A", NEW)]["AliasTarget"]["DNSName"].rstrip(".") == cdn
    assert (APEX, "A", PREVIOUS) not in records and APEX not in outcome.steps[0].weights
    assert weights(run, zone_id) == {APEX: {NEW: 100}, WWW: {NEW: 100, PREVIOUS: 0}, API: {NEW: 100, PREVIOUS: 0}}
    check = run.client("route53").get_health_check(HealthCheckId=health_check)["HealthCheck"]["HealthCheckConfig"]
    assert (check["Type"], check["FullyQualifiedDomainName"], check["ResourcePath"]) == ("HTTPS", cdn, "/health/")
    table = json.loads(Artifact.get("sandbox-dns-cutover-steps").data)
    assert [row["step"] for row in table] == ["10 %", "50 %", "100 %"]
    assert all(row["HTTP health"].startswith("pass: 2 of 2 GET") for row in table)

    run.aws.log.clear()
    again = dns_cutover(environment="sandbox", sandbox=True)
    assert route53_writes(run) == [] and run.aws.log.writes() == []
    assert not Summary.of(again.changes).has_changes
    assert [(s.percent, s.changed) for s in again.outputs["cutover"].steps] == [(100, False)]
    assert weights(run, zone_id)[WWW] == {NEW: 100, PREVIOUS: 0}


def test_a_failing_health_check_rolls_dns_back_and_names_the_check(aws, app):
    run = prepare()
    zone_id, _ = launch_ready(run)
    # Two probes per step: step 10 passes, the first probe of step 50 answers 503.
    with mock.patch("golive.probes.probe", side_effect=failing_from(3)):
        with pytest.raises(CutoverFailed, match=r"step 50 %: HTTP health check failed: .*503") as failure:
            dns_cutover(environment="sandbox", sandbox=True)
    assert "rolled back to the previous target" in str(failure.value)
    assert weights(run, zone_id) == {WWW: {NEW: 0, PREVIOUS: 100}, API: {NEW: 0, PREVIOUS: 100}}
    result = failure.value.result
    assert result.rolled_back and [s.percent for s in result.steps] == [10, 50]

    # A new attempt starts over at 10 %, not where the failed one stopped.
    run.aws.log.clear()
    dns_cutover(environment="sandbox", sandbox=True)
    assert weights(run, zone_id)[WWW] == {NEW: 100, PREVIOUS: 0}


def test_an_alarm_in_alarm_rolls_back(aws, app):
    run = prepare()
    zone_id, _ = launch_ready(run)
    cloudwatch = run.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="golive-sandbox-backend-5xx", Namespace="AWS/ApplicationELB",
                                MetricName="HTTPCode_Target_5XX_Count", Statistic="Sum", Period=60,
                                EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="golive-sandbox-backend-5xx", StateValue="ALARM", StateReason="test")
    with pytest.raises(CutoverFailed, match="CloudWatch alarms check failed: in ALARM: golive-sandbox-backend-5xx"):
        dns_cutover(environment="sandbox", sandbox=True)
    assert weights(run, zone_id) == {WWW: {NEW: 0, PREVIOUS: 100}, API: {NEW: 0, PREVIOUS: 100}}


def test_rollback_flag_returns_every_name_to_the_previous_target_and_repeats_safely(aws, app):
    run = prepare()
    existing_apex = {"Name": APEX, "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "203.0.113.10"}]}
    existing_www = {"Name": WWW, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": LEGACY}]}
    zone_id, _ = launch_ready(run, [existing_apex, existing_www])
    dns_cutover(environment="sandbox", sandbox=True)
    records = route53_records(run, zone_id)
    # The records that served the domain were taken over in the first batch (no simple record beside the
    # weighted ones, which AWS rejects); the apex's A record became its golive-previous.
    assert (APEX, "A", None) not in records and (WWW, "CNAME", None) not in records
    assert records[(APEX, "A", PREVIOUS)]["ResourceRecords"] == [{"Value": "203.0.113.10"}]
    assert weights(run, zone_id) == {n: {NEW: 100, PREVIOUS: 0} for n in (APEX, WWW, API)}

    back = dns_cutover(environment="sandbox", sandbox=True, rollback=True)
    assert weights(run, zone_id) == {n: {NEW: 0, PREVIOUS: 100} for n in (APEX, WWW, API)}
    assert all(d.ok for d in back.deliverables)
    assert {c.action for c in back.changes} == {Action.UPDATE}

    run.aws.log.clear()
    again = rollback_cutover.fn(run)  # what the flow's rollback=True runs, once more
    assert route53_writes(run) == [] and again.note == "already on the previous target"


def test_an_aliasable_previous_target_gets_weighted_alias_records_everywhere(aws, app, tmp_path):
    old = "d111111abcdef8.cloudfront.net"
    path = write_environment(tmp_path, edit=lambda text: text.replace(f'"{LEGACY}"', f'"{old}"'))
    run = prepare(str(path))
    # www used to CNAME to the old distribution: the same destination, now as a weighted alias.
    zone_id, cdn = launch_ready(run, [{"Name": WWW, "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": old}]}])
    dns_cutover(environment=str(path), sandbox=True)
    records = route53_records(run, zone_id)
    assert {key for key in records} == {(n, "A", s) for n in (APEX, WWW, API) for s in (NEW, PREVIOUS)}
    for name in (APEX, WWW, API):
        assert records[(name, "A", PREVIOUS)]["AliasTarget"]["DNSName"].rstrip(".") == old
        assert records[(name, "A", NEW)]["AliasTarget"]["DNSName"].rstrip(".") == cdn
        assert records[(name, "A", NEW)]["Weight"] == 100 and records[(name, "A", PREVIOUS)]["Weight"] == 0


def test_a_record_pointing_elsewhere_stops_the_cutover_before_any_write(aws):
    run = prepare()
    zone_id, _ = launch_ready(run, [{"Name": WWW, "Type": "CNAME", "TTL": 300,
                                     "ResourceRecords": [{"Value": "someone-else.example.net"}]}])
    with pytest.raises(CutoverConflict, match=r"www\.sandbox\.precedentum\.test CNAME -> CNAME someone-else"):
        dns_cutover(environment="sandbox", sandbox=True)
    assert route53_writes(run) == []


def test_a_distribution_that_does_not_serve_every_name_is_refused(aws):
    run = prepare()
    ensure_hosted_zone.fn(run)
    make_distribution(run, aliases=[APEX, WWW])
    run.aws.log.clear()
    with pytest.raises(CutoverConflict, match=r"does not list api\.sandbox\.precedentum\.test"):
        locate_new_target.fn(run)  # the cutover's first step, before any write
    assert run.aws.log.writes() == []


def test_changes_route53_would_reject_are_refused_before_sending():
    """moto accepts all of these; AWS does not (notes/moto-5.2.5.md)."""
    simple = {"Name": f"{WWW}.", "Type": "CNAME", "TTL": 300, "ResourceRecords": [{"Value": LEGACY}]}
    weighted = {"Name": f"{WWW}.", "Type": "CNAME", "SetIdentifier": NEW, "Weight": 10, "TTL": 60,
                "ResourceRecords": [{"Value": "d1.cloudfront.net"}]}
    with pytest.raises(CutoverConflict, match="weighted and simple records together"):
        validate_batch(DOMAIN, [simple], [], [weighted])
    validate_batch(DOMAIN, [simple], [simple], [weighted])  # the takeover: delete and create in one batch
    apex_cname = {**weighted, "Name": f"{APEX}."}
    with pytest.raises(CutoverConflict, match="a CNAME at the zone apex"):
        validate_batch(DOMAIN, [], [], [apex_cname])
    beside = {"Name": f"{WWW}.", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "203.0.113.1"}]}
    with pytest.raises(CutoverConflict, match="a CNAME beside A records"):
        validate_batch(DOMAIN, [beside], [], [weighted])
    other_ttl = {**weighted, "SetIdentifier": PREVIOUS, "TTL": 300, "ResourceRecords": [{"Value": LEGACY}]}
    with pytest.raises(CutoverConflict, match="weighted records with different TTLs"):
        validate_batch(DOMAIN, [], [], [weighted, other_ttl])
    evaluating = {"Name": f"{APEX}.", "Type": "A", "SetIdentifier": NEW, "Weight": 10, "AliasTarget": {
        "HostedZoneId": CLOUDFRONT_ZONE_ID, "DNSName": "d1.cloudfront.net", "EvaluateTargetHealth": True}}
    with pytest.raises(CutoverConflict, match="cannot evaluate target health"):
        validate_batch(DOMAIN, [], [], [evaluating])
