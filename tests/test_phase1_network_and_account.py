"""Phase 1.1-1.2 against moto's server: what apply creates, that it converges, and that its security
settings are least privilege as AWS reports them."""

from __future__ import annotations

import pytest

from flows.infrastructure import infrastructure
from golive.changes import Action, Summary
from golive.resource import ReplacementRefused
from tests.awsstate import EXPECTED_SINGLE_NAT, by_component, counts, ec2_inventory
from tests.conftest import prepare, write_environment


def test_drift_is_planned_as_an_update_and_reverted(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    ec2 = run.client("ec2")
    backend = by_component(ec2_inventory(run)["security_groups"])["backend"]
    ec2.authorize_security_group_ingress(GroupId=backend["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    [change] = [c for c in plan.changes if c.is_change]
    assert (change.action, change.kind, change.name) == (Action.UPDATE, "security-group", "golive-sandbox-backend")
    assert [f.field for f in change.fields] == ["ingress"]
    assert "tcp 22 0.0.0.0/0" in change.fields[0].before and "tcp 22 0.0.0.0/0" not in change.fields[0].after

    infrastructure(environment="sandbox", sandbox=True)
    after = by_component(ec2_inventory(run)["security_groups"])["backend"]
    assert all(p.get("FromPort") != 22 for p in after["IpPermissions"])


def test_a_change_that_forces_replacement_is_planned_and_refused_without_consent(aws, tmp_path):
    infrastructure(environment="sandbox", sandbox=True)
    moved = write_environment(tmp_path, edit=lambda t: t.replace('"10.40.11.0/24"', '"10.40.12.0/24"'))
    plan = infrastructure(environment=str(moved), sandbox=True, mode="plan")
    [change] = [c for c in plan.changes if c.is_change]
    assert change.action is Action.REPLACE and change.name == "golive-sandbox-private-b"
    assert "cidr_block forces replacement" in change.note

    with pytest.raises(ReplacementRefused, match="--allow-replace"):
        infrastructure(environment=str(moved), sandbox=True)
    subnets = by_component(ec2_inventory(prepare())["subnets"])
    assert subnets["private-b"]["CidrBlock"] == "10.40.11.0/24", "a refused replacement changes nothing"


def test_one_nat_gateway_per_zone_when_asked(aws, tmp_path):
    per_az = write_environment(tmp_path, edit=lambda t: t.replace('nat_gateways = "single"', 'nat_gateways = "per-az"'))
    infrastructure(environment=str(per_az), sandbox=True)
    inventory = ec2_inventory(prepare(str(per_az)))
    nats = by_component(inventory["nat_gateways"])
    assert set(nats) == {"nat-a", "nat-b"} and len(inventory["addresses"]) == 2
    tables = by_component(inventory["route_tables"])
    for letter in "ab":
        route = next(r for r in tables[f"private-rt-{letter}"]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
        assert route["NatGatewayId"] == nats[f"nat-{letter}"]["NatGatewayId"]


def test_production_file_applies_against_the_sandbox_with_its_own_figures(aws):
    result = infrastructure(environment="production", sandbox=True)
    run = prepare("production")
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert ec2_inventory(run)["vpcs"][0]["CidrBlock"] == "10.20.0.0/16"
    assert "golive-production-vpc" in {c.name for c in result.changes}


def test_going_back_from_per_az_to_a_single_nat_gateway_removes_the_second(aws, tmp_path):
    per_az = write_environment(tmp_path, name="sandbox",
                               edit=lambda t: t.replace('nat_gateways = "single"', 'nat_gateways = "per-az"'))
    infrastructure(environment=str(per_az), sandbox=True)
    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    deletions = sorted((c.kind, c.name) for c in plan.changes if c.action is Action.DELETE)
    assert deletions == [("elastic-ip", "golive-sandbox-nat-eip-b"), ("nat-gateway", "golive-sandbox-nat-b")]

    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    assert counts(run) == EXPECTED_SINGLE_NAT
    route = next(r for r in by_component(ec2_inventory(run)["route_tables"])["private-rt-b"]["Routes"]
                 if r.get("DestinationCidrBlock") == "0.0.0.0/0")
    assert route["NatGatewayId"] == by_component(ec2_inventory(run)["nat_gateways"])["nat-a"]["NatGatewayId"]


def test_access_added_by_hand_over_ipv6_shows_as_drift_and_is_revoked(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    database = by_component(ec2_inventory(run)["security_groups"])["database"]
    run.client("ec2").authorize_security_group_ingress(GroupId=database["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    [change] = [c for c in plan.changes if c.is_change]
    assert change.name == "golive-sandbox-database" and "tcp 5432 ::/0" in change.fields[0].before
    infrastructure(environment="sandbox", sandbox=True)
    after = by_component(ec2_inventory(run)["security_groups"])["database"]
    assert not any(p.get("Ipv6Ranges") for p in after["IpPermissions"])


def test_routes_someone_else_added_are_left_alone(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    inventory = ec2_inventory(run)
    table = by_component(inventory["route_tables"])["private-rt-a"]
    run.client("ec2").create_route(RouteTableId=table["RouteTableId"], DestinationCidrBlock="192.168.0.0/16",
                                   GatewayId=inventory["internet_gateways"][0]["InternetGatewayId"])
    run.aws.log.clear()
    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    assert not Summary.of(plan.changes).has_changes


def test_a_changed_acl_rule_is_replaced_in_place(aws, tmp_path):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    acl = by_component(ec2_inventory(run)["network_acls"])["public-acl"]
    run.client("ec2").replace_network_acl_entry(
        NetworkAclId=acl["NetworkAclId"], RuleNumber=110, Egress=False, Protocol="6", RuleAction="allow",
        CidrBlock="10.0.0.0/8", PortRange={"From": 443, "To": 443})
    run.aws.log.clear()
    infrastructure(environment="sandbox", sandbox=True)
    operations = [c.operation for c in run.aws.log.writes()]
    assert operations == ["ReplaceNetworkAclEntry"], operations
    entry = next(e for e in by_component(ec2_inventory(run)["network_acls"])["public-acl"]["Entries"]
                 if e["RuleNumber"] == 110 and not e["Egress"])
    assert entry["CidrBlock"] == "0.0.0.0/0"


