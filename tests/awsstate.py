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
    """How many of each kind the environment owns, as AWS (the emulator) reports them."""
    env = run.env_name
    prefix = f"golive-{env}-"
    inventory = ec2_inventory(run)
    result = {kind: len(items) for kind, items in inventory.items()}
    result["iam_roles"] = len(run.client("iam").list_roles(PathPrefix=f"/golive/{env}/")["Roles"])
    result["sns_topics"] = sum(1 for t in run.client("sns").list_topics()["Topics"]
                               if t["TopicArn"].endswith(f":golive-{env}-alerts"))
    account = run.client("sts").get_caller_identity()["Account"]
    result["budgets"] = sum(1 for b in run.client("budgets").describe_budgets(AccountId=account).get("Budgets", [])
                            if b["BudgetName"] == f"golive-{env}-monthly")
    rds = run.client("rds")
    result["db_instances"] = sum(1 for d in rds.describe_db_instances()["DBInstances"]
                                 if d["DBInstanceIdentifier"].startswith(prefix) and d["DBInstanceStatus"] != "deleting")
    result["db_subnet_groups"] = sum(1 for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
                                     if g["DBSubnetGroupName"].startswith(prefix))
    result["db_parameter_groups"] = sum(1 for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                                        if g["DBParameterGroupName"].startswith(prefix))
    elasticache = run.client("elasticache")
    result["replication_groups"] = sum(1 for g in elasticache.describe_replication_groups()["ReplicationGroups"]
                                       if g["ReplicationGroupId"].startswith(prefix) and g["Status"] != "deleting")
    result["cache_subnet_groups"] = sum(1 for g in elasticache.describe_cache_subnet_groups()["CacheSubnetGroups"]
                                        if g["CacheSubnetGroupName"].startswith(prefix))
    result["buckets"] = sum(1 for b in run.client("s3").list_buckets()["Buckets"] if b["Name"].startswith(prefix))
    route53 = run.client("route53")
    zones = [z for z in route53.list_hosted_zones()["HostedZones"] if z["Name"] == run.environment.domain + "."]
    result["hosted_zones"] = len(zones)
    result["validation_records"] = sum(
        1 for z in zones for r in route53.list_resource_record_sets(HostedZoneId=z["Id"])["ResourceRecordSets"]
        if r["Type"] == "CNAME" and r["Name"].startswith("_"))
    acm = run.client("acm")
    result["certificates"] = sum(
        1 for c in acm.list_certificates()["CertificateSummaryList"]
        if {t["Key"]: t["Value"] for t in acm.list_tags_for_certificate(CertificateArn=c["CertificateArn"])["Tags"]}
        .get("golive:environment") == env)
    result["secrets"] = sum(1 for x in run.client("secretsmanager").list_secrets()["SecretList"]
                            if x["Name"].startswith(f"golive/{env}/"))
    result["parameters"] = sum(len(page["Parameters"]) for page in run.client("ssm").get_paginator(
        "get_parameters_by_path").paginate(Path=f"/golive/{env}/", Recursive=True))
    result["alarms"] = len(run.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"])
    return result


def by_component(items: list[dict]) -> dict[str, dict]:
    return {tag_value(item.get("Tags"), "golive:component"): item for item in items}


EXPECTED_SINGLE_NAT = {
    "vpcs": 1, "subnets": 4, "internet_gateways": 1, "addresses": 1, "nat_gateways": 1, "route_tables": 3,
    "security_groups": 5, "network_acls": 2, "iam_roles": 3, "sns_topics": 1, "budgets": 1,
    "db_instances": 1, "db_subnet_groups": 1, "db_parameter_groups": 1, "replication_groups": 1,
    "cache_subnet_groups": 1, "buckets": 2, "hosted_zones": 1, "validation_records": 3, "certificates": 1,
    "secrets": 3, "parameters": 12, "alarms": 3,  # parameters: the app's 7, DB_HOST/PORT/NAME/SSLMODE, the cost inputs
}
# What moto 5.2.5 cannot delete (notes/moto-5.2.5.md): left after a sandbox teardown, deleted in AWS.
SANDBOX_UNDELETABLE = {"cache_subnet_groups"}
