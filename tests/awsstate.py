"""Read what the emulator holds for an environment, by tag, the way an auditor would."""

from __future__ import annotations

from golive.naming import ec2_filters, tag_value
from golive.resource import owned_by
from golive.run import Run


def ec2_inventory(run: Run) -> dict[str, list[dict]]:
    ec2 = run.client("ec2")
    filters = ec2_filters(run.env_name)
    return {
        "vpcs": ec2.describe_vpcs(Filters=filters)["Vpcs"],
        "subnets": ec2.describe_subnets(Filters=filters)["Subnets"],
        "internet_gateways": ec2.describe_internet_gateways(Filters=filters)["InternetGateways"],
        "addresses": ec2.describe_addresses(Filters=filters)["Addresses"],
        # moto ignores tag filters here: check the tags as well.
        "nat_gateways": [n for n in ec2.describe_nat_gateways(Filter=filters)["NatGateways"]
                         if n["State"] not in ("deleted", "deleting") and owned_by(n, run.env_name, None)],
        "route_tables": ec2.describe_route_tables(Filters=filters)["RouteTables"],
        "security_groups": ec2.describe_security_groups(Filters=filters)["SecurityGroups"],
        "network_acls": ec2.describe_network_acls(Filters=filters)["NetworkAcls"],
    }


def counts(run: Run) -> dict[str, int]:
    inventory = ec2_inventory(run)
    result = {kind: len(items) for kind, items in inventory.items()}
    result["iam_roles"] = len(run.client("iam").list_roles(PathPrefix=f"/golive/{run.env_name}/")["Roles"])
    result["sns_topics"] = sum(1 for t in run.client("sns").list_topics()["Topics"]
                               if t["TopicArn"].endswith(f":golive-{run.env_name}-alerts"))
    account = run.client("sts").get_caller_identity()["Account"]
    result["budgets"] = sum(1 for b in run.client("budgets").describe_budgets(AccountId=account).get("Budgets", [])
                            if b["BudgetName"] == f"golive-{run.env_name}-monthly")
    return result


def by_component(items: list[dict]) -> dict[str, dict]:
    return {tag_value(item.get("Tags"), "golive:component"): item for item in items}


EXPECTED_SINGLE_NAT = {
    "vpcs": 1, "subnets": 4, "internet_gateways": 1, "addresses": 1, "nat_gateways": 1, "route_tables": 3,
    "security_groups": 5, "network_acls": 2, "iam_roles": 3, "sns_topics": 1, "budgets": 1,
}
