"""Phase 1.1-1.2 against moto's server: what apply creates, that it converges, and that its security
settings are least privilege as AWS reports them."""

from __future__ import annotations

import pytest

from flows.infrastructure import infrastructure
from golive.changes import Action, Summary
from golive.resource import ReplacementRefused
from tests.awsstate import EXPECTED_SINGLE_NAT, by_component, counts, ec2_inventory
from tests.conftest import prepare, write_environment


def rules(permissions: list[dict], names: dict[str, str]) -> set[str]:
    found = set()
    for p in permissions:
        ports = "all" if p["IpProtocol"] == "-1" else f"{p['IpProtocol']} {p['FromPort']}-{p['ToPort']}"
        found |= {f"{ports} {r['CidrIp']}" for r in p.get("IpRanges", [])}
        found |= {f"{ports} sg:{names[g['GroupId']]}" for g in p.get("UserIdGroupPairs", [])}
        found |= {f"{ports} {pl['PrefixListId']}" for pl in p.get("PrefixListIds", [])}
    return found


def test_fresh_apply_creates_exactly_the_expected_resources_and_a_second_run_writes_nothing(aws):
    result = infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert Summary.of(result.changes).create == sum(EXPECTED_SINGLE_NAT.values())
    assert all(d.ok for d in result.deliverables), result.deliverables

    plan = infrastructure(environment="sandbox", sandbox=True, mode="plan")
    assert not Summary.of(plan.changes).has_changes
    assert Summary.of(plan.changes).exit_code == 0

    run.aws.log.clear()
    again = infrastructure(environment="sandbox", sandbox=True)
    assert not Summary.of(again.changes).has_changes
    assert run.aws.log.calls, "the re-run must have looked at AWS"
    assert run.aws.log.writes() == [], [c.operation for c in run.aws.log.writes()]


def test_network_is_wired_and_least_privilege_as_aws_reports_it(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    ec2 = run.client("ec2")
    inventory = ec2_inventory(run)
    vpc = inventory["vpcs"][0]
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    for attribute, key in (("enableDnsSupport", "EnableDnsSupport"), ("enableDnsHostnames", "EnableDnsHostnames")):
        assert ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute=attribute)[key]["Value"] is True

    subnets = by_component(inventory["subnets"])
    assert {c: (s["CidrBlock"], s["AvailabilityZone"]) for c, s in subnets.items()} == {
        "public-a": ("10.40.0.0/24", "us-east-1a"), "public-b": ("10.40.1.0/24", "us-east-1b"),
        "private-a": ("10.40.10.0/24", "us-east-1a"), "private-b": ("10.40.11.0/24", "us-east-1b"),
    }
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets.values())

    igw = inventory["internet_gateways"][0]
    assert igw["Attachments"][0]["VpcId"] == vpc["VpcId"]
    nat = inventory["nat_gateways"][0]
    assert nat["SubnetId"] == subnets["public-a"]["SubnetId"]
    assert nat["NatGatewayAddresses"][0]["AllocationId"] == inventory["addresses"][0]["AllocationId"]

    tables = by_component(inventory["route_tables"])
    def default_route(table):
        return next(r for r in table["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0")
    def associated(table):
        return {a["SubnetId"] for a in table["Associations"] if not a.get("Main")}
    assert default_route(tables["public-rt"])["GatewayId"] == igw["InternetGatewayId"]
    assert associated(tables["public-rt"]) == {subnets["public-a"]["SubnetId"], subnets["public-b"]["SubnetId"]}
    for letter in "ab":
        assert default_route(tables[f"private-rt-{letter}"])["NatGatewayId"] == nat["NatGatewayId"]
        assert associated(tables[f"private-rt-{letter}"]) == {subnets[f"private-{letter}"]["SubnetId"]}

    groups = by_component(inventory["security_groups"])
    names = {g["GroupId"]: c for c, g in groups.items()}
    ingress = {c: rules(g["IpPermissions"], names) for c, g in groups.items()}
    egress = {c: rules(g["IpPermissionsEgress"], names) for c, g in groups.items()}
    cloudfront = run.client("ec2").describe_managed_prefix_lists(Filters=[{
        "Name": "prefix-list-name", "Values": ["com.amazonaws.global.cloudfront.origin-facing"]}])["PrefixLists"][0]
    assert ingress == {
        "alb": {f"tcp 443-443 {cloudfront['PrefixListId']}"},  # CloudFront only: nothing from 0.0.0.0/0
        "backend": {"tcp 8000-8000 sg:alb"},
        "frontend": {"tcp 8080-8080 sg:alb"},
        "database": {"tcp 5432-5432 sg:backend"},
        "cache": {"tcp 6379-6379 sg:backend"},
    }
    assert egress["database"] == set() and egress["cache"] == set()
    assert egress["alb"] == {"tcp 8000-8000 10.40.0.0/16", "tcp 8080-8080 10.40.0.0/16"}

    acls = by_component(inventory["network_acls"])
    assert {a["SubnetId"] for a in acls["public-acl"]["Associations"]} == {
        subnets["public-a"]["SubnetId"], subnets["public-b"]["SubnetId"]}
    public_in = {(e["RuleNumber"], e.get("PortRange", {}).get("From")) for e in acls["public-acl"]["Entries"]
                 if not e["Egress"] and e["RuleNumber"] < 32767}
    assert public_in == {(100, 80), (110, 443), (120, 1024), (130, None)}


def test_iam_roles_are_scoped_to_the_environment(aws):
    infrastructure(environment="sandbox", sandbox=True)
    iam = prepare().client("iam")
    execution = iam.get_role_policy(RoleName="golive-sandbox-ecs-execution", PolicyName="execution")["PolicyDocument"]
    for statement in execution["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        if statement.get("Condition", {}).get("StringEquals", {}).get(
                "secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn"):
            # The RDS-managed master secret (named by RDS, rds!db-<uuid>): scoped by the instance's tag.
            assert statement["Condition"]["StringEquals"]["secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn"] \
                == "arn:aws:rds:us-east-1:123456789012:db:golive-sandbox-postgres", statement
            assert actions == ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], statement
        elif statement["Resource"] != "*":
            assert all("golive/sandbox" in r or "golive-sandbox-" in r for r in statement["Resource"]), statement
        else:  # only the call AWS offers no resource scoping for
            assert actions == ["ecr:GetAuthorizationToken"]
    trust = iam.get_role(RoleName="golive-sandbox-ecs-task")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012"
    assert iam.list_role_policies(RoleName="golive-sandbox-ecs-task")["PolicyNames"] == ["app-storage"]
    storage = iam.get_role_policy(RoleName="golive-sandbox-ecs-task", PolicyName="app-storage")["PolicyDocument"]
    resources = {r for s in storage["Statement"] for r in s["Resource"]}
    buckets = {f"arn:aws:s3:::golive-sandbox-123456789012-{p}" for p in ("static", "media")}
    assert resources == buckets | {f"{b}/*" for b in buckets}
    deploy_trust = iam.get_role(RoleName="golive-sandbox-deploy")["Role"]["AssumeRolePolicyDocument"]
    assert deploy_trust["Statement"][0]["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def test_billing_alerts_and_alerts_topic(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    budgets = run.client("budgets")
    budget = budgets.describe_budget(AccountId="123456789012", BudgetName="golive-sandbox-monthly")["Budget"]
    assert float(budget["BudgetLimit"]["Amount"]) == 400 and budget["TimeUnit"] == "MONTHLY"
    notifications = budgets.describe_notifications_for_budget(
        AccountId="123456789012", BudgetName="golive-sandbox-monthly")["Notifications"]
    assert sorted(n["Threshold"] for n in notifications) == [50, 80, 100]
    arn = "arn:aws:sns:us-east-1:123456789012:golive-sandbox-alerts"
    subscriptions = run.client("sns").list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@precedentum.test")]


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


def test_the_deploy_role_cannot_widen_its_own_rights(aws):
    infrastructure(environment="sandbox", sandbox=True)
    iam = prepare().client("iam")
    role = iam.get_role(RoleName="golive-sandbox-deploy")["Role"]
    # The generated policy, in managed parts (golive/permissions.py); the Deny is in one of them.
    statements = []
    for attached in iam.list_attached_role_policies(RoleName="golive-sandbox-deploy")["AttachedPolicies"]:
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        statements += iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]["Statement"]
    assert statements and not iam.list_role_policies(RoleName="golive-sandbox-deploy")["PolicyNames"]
    [deny] = [s for s in statements if s["Effect"] == "Deny"]
    assert deny["Resource"] == role["Arn"]
    assert {"iam:PutRolePolicy", "iam:AttachRolePolicy", "iam:UpdateAssumeRolePolicy"} <= set(deny["Action"])
