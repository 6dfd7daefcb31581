"""`golive destroy`: nothing tagged left, an order real AWS accepts, no-op when there is nothing."""

from __future__ import annotations

import subprocess

from flows.infrastructure import infrastructure
from flows.teardown import teardown
from golive.changes import Summary
from tests.aws_rules import teardown_order_violations
from tests.awsstate import EXPECTED_SINGLE_NAT, SANDBOX_UNDELETABLE, counts, left_behind
from tests.conftest import GOLIVE, cli_env, prepare, write_environment


def test_destroy_leaves_nothing_and_deletes_in_an_order_aws_accepts(aws, tmp_path):
    per_az = write_environment(tmp_path, edit=lambda t: t.replace('nat_gateways = "single"', 'nat_gateways = "per-az"'))
    infrastructure(environment=str(per_az), sandbox=True)
    run = prepare(str(per_az))
    run.aws.log.clear()

    plan = teardown(environment=str(per_az), sandbox=True, mode="plan")
    # Everything but the validation records (they go with their zone), plus a second NAT and address, the
    # generation of the environment's client tokens (golive/generation.py, forgotten first), and the managed
    # policies (the boundary and the deploy role's generated policy in parts).
    from tasks.security import deploy_policy_parts

    policies = 1 + len(deploy_policy_parts(run, run.account_id()))
    expected = sum(EXPECTED_SINGLE_NAT.values()) - EXPECTED_SINGLE_NAT["validation_records"] + 2 + 1 + policies
    assert Summary.of(plan.changes).delete + Summary.of(plan.changes).skipped == expected
    assert run.aws.log.writes() == [], "planning a teardown writes nothing"

    result = teardown(environment=str(per_az), sandbox=True)
    assert Summary.of(result.changes).delete == Summary.of(plan.changes).delete
    left = {kind: n for kind, n in counts(run).items() if n}
    assert set(left) <= SANDBOX_UNDELETABLE, left
    assert left_behind(run) == {}, "an independent listing of every kind finds nothing left"
    # The sandbox deletes every kind it can make (it emulates the DeleteCacheSubnetGroup moto lacks).
    assert [c for c in result.changes if c.action.value == "skipped"] == []
    assert teardown_order_violations(run.aws.log.calls) == []
    snapshots = run.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].startswith("golive-sandbox-postgres-final-") for s in snapshots] == [True]


def test_the_order_check_catches_a_wrong_order(aws):
    """The checker itself must fail on a bad order, or the test above proves nothing."""
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    ec2 = run.client("ec2")
    run.aws.log.clear()
    nat = ec2.describe_nat_gateways()["NatGateways"][0]
    address = nat["NatGatewayAddresses"][0]["AllocationId"]
    ec2.release_address(AllocationId=address)  # moto lets this through; AWS would not
    ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
    problems = teardown_order_violations(run.aws.log.calls)
    assert any("ReleaseAddress" in p for p in problems), problems


def test_destroying_an_environment_that_does_not_exist_is_a_no_op(aws):
    run = prepare()
    result = teardown(environment="sandbox", sandbox=True)
    assert result.changes == []
    assert run.aws.log.writes() == []


def test_production_teardown_is_refused_without_confirmation(aws, prefect_api):
    refused = subprocess.run([*GOLIVE, "destroy", "production", "--sandbox"], capture_output=True, text=True,
                             timeout=120, env=cli_env(prefect_api))
    assert refused.returncode == 1
    assert "--confirm production" in refused.stderr

    infrastructure(environment="production", sandbox=True)
    run = prepare("production")
    assert run.client("rds").describe_db_instances()["DBInstances"][0]["DeletionProtection"] is True
    done = subprocess.run([*GOLIVE, "destroy", "production", "--sandbox", "--confirm", "production"],
                          capture_output=True, text=True, timeout=300, env=cli_env(prefect_api))
    assert done.returncode == 0, done.stdout + done.stderr
    assert {k for k, n in counts(run).items() if n} <= SANDBOX_UNDELETABLE


def test_an_address_still_in_use_after_its_nat_gateway_is_released_once_free(aws):
    """AWS can refuse ReleaseAddress for a while after the NAT gateway is gone; teardown waits it out."""
    from tests.faults import FailFirst, injected

    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    fault = FailFirst("ReleaseAddress", 2, "ec2", 400, "InvalidIPAddress.InUse", "Address is in use")
    with injected(run, "before-send.ec2", fault):
        teardown(environment="sandbox", sandbox=True)
    assert run.aws.log.attempts["ReleaseAddress"] >= 3
    assert counts(run)["addresses"] == 0


def test_in_a_zone_golive_did_not_make_the_cutovers_records_are_handed_back_to_the_previous_answer(aws):
    """The domain's own zone outlives a destroy; the cutover's weighted pair at each name does not: the
    name answers again what it answered before (golive-previous, as a simple record), in one batch."""
    from tasks.cutover_records import NEW, PREVIOUS

    run = prepare()
    route53 = run.client("route53")
    zone = route53.create_hosted_zone(Name=run.environment.domain, CallerReference="made-by-a-person")["HostedZone"]
    www = f"www.{run.environment.domain}."
    previous = {"Name": www, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "previous.example.net"}]}
    new = {"Name": www, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": "d111111abcdef8.cloudfront.net"}]}
    route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {**previous, "SetIdentifier": PREVIOUS, "Weight": 0}},
        {"Action": "CREATE", "ResourceRecordSet": {**new, "SetIdentifier": NEW, "Weight": 100}}]})

    result = teardown(environment="sandbox", sandbox=True)
    assert [(c.kind, c.name) for c in result.changes] == [("cutover-records", f"{www.rstrip('.')} CNAME")]
    records = [r for r in route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
               if r["Name"] == www]
    assert records == [previous], records
    assert [z["Id"] for z in route53.list_hosted_zones()["HostedZones"]] == [zone["Id"]], "not golive's: kept"
