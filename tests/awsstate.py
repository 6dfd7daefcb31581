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
    result["parameters"] = sum(1 for page in run.client("ssm").get_paginator("get_parameters_by_path").paginate(
        Path=f"/golive/{env}/", Recursive=True) for p in page["Parameters"] if not p["Name"].endswith("/lifecycle/generation"))
    result["alarms"] = len(run.client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"])
    return result


def by_component(items: list[dict]) -> dict[str, dict]:
    return {tag_value(item.get("Tags"), "golive:component"): item for item in items}


EXPECTED_SINGLE_NAT = {
    "vpcs": 1, "subnets": 4, "internet_gateways": 1, "addresses": 1, "nat_gateways": 1, "route_tables": 3,
    "security_groups": 5, "network_acls": 2, "iam_roles": 3, "sns_topics": 1, "budgets": 1,
    "db_instances": 1, "db_subnet_groups": 1, "db_parameter_groups": 1, "replication_groups": 1,
    "cache_subnet_groups": 1, "buckets": 2, "hosted_zones": 1, "validation_records": 3, "certificates": 1,
    # parameters: the app's 7, DB_HOST/PORT/NAME/SSLMODE, the cost inputs (not the generation: bookkeeping)
    "secrets": 3, "parameters": 12, "alarms": 3,
}
# What the sandbox cannot delete, left after its teardown (none: golive/sandbox/elasticache_emulation.py
# deletes the cache subnet groups moto 5.2.5 could not).
SANDBOX_UNDELETABLE: set[str] = set()


# --- An independent listing of everything an environment could have left behind -----------------------
# Plain boto3 clients and each service's own list calls, not the runbook's discovery code: a teardown that
# forgets a kind cannot hide it from this. Whatever carries the environment's tag counts, and so do the
# groups, snapshots, records and untaggable things named in its namespace (golive-ENV-..., /golive/ENV/).

def _boto(run: Run, service: str, region: str | None = None):
    import boto3

    return boto3.client(service, endpoint_url=run.target.endpoint_url, region_name=region or run.target.region,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _tagged(tags: list[dict] | dict | None, env: str) -> bool:
    if isinstance(tags, dict):
        return tags.get("golive:environment") == env
    return tag_value(tags, "golive:environment") == env


def leftovers(run: Run) -> dict[str, list[str]]:
    """Kind -> what of it the environment still holds, as each AWS API lists it (live items only: a NAT
    gateway 'deleted', a secret scheduled for deletion, a stopped task are gone in AWS's terms).
    RDS final snapshots are listed under their own key: a destroy keeps them on purpose."""
    env, region = run.env_name, run.target.region
    prefix, path = f"golive-{env}-", f"/golive/{env}/"
    out: dict[str, list[str]] = {}

    ec2 = _boto(run, "ec2")
    by_tag = [{"Name": "tag:golive:environment", "Values": [env]}]
    for kind, op, key, ident in [
        ("vpcs", "describe_vpcs", "Vpcs", "VpcId"), ("subnets", "describe_subnets", "Subnets", "SubnetId"),
        ("internet_gateways", "describe_internet_gateways", "InternetGateways", "InternetGatewayId"),
        ("addresses", "describe_addresses", "Addresses", "AllocationId"),
        ("route_tables", "describe_route_tables", "RouteTables", "RouteTableId"),
        ("security_groups", "describe_security_groups", "SecurityGroups", "GroupId"),
        ("network_acls", "describe_network_acls", "NetworkAcls", "NetworkAclId"),
        ("flow_logs", "describe_flow_logs", "FlowLogs", "FlowLogId"),
    ]:
        items = getattr(ec2, op)(Filters=by_tag)[key]
        out[kind] = [i[ident] for i in items if _tagged(i.get("Tags"), env)]
    # Security groups by name too: one whose tags were stripped is still the environment's.
    out["security_groups"] += [g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                               if g["GroupName"].startswith(prefix) and g["GroupId"] not in out["security_groups"]]
    out["nat_gateways"] = [n["NatGatewayId"] for n in ec2.describe_nat_gateways()["NatGateways"]
                           if _tagged(n.get("Tags"), env) and n["State"] not in ("deleted", "deleting")]

    rds = _boto(run, "rds")
    out["db_instances"] = [d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]
                           if _tagged(d.get("TagList"), env) or d["DBInstanceIdentifier"].startswith(prefix)]
    out["db_subnet_groups"] = [g["DBSubnetGroupName"] for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
                               if g["DBSubnetGroupName"].startswith(prefix)]
    out["db_parameter_groups"] = [g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                                  if g["DBParameterGroupName"].startswith(prefix)]
    snapshots = [s for s in rds.describe_db_snapshots()["DBSnapshots"]
                 if _tagged(s.get("TagList"), env) or s["DBInstanceIdentifier"].startswith(prefix)]
    final = [s for s in snapshots if s["SnapshotType"] == "manual" and "-final-" in s["DBSnapshotIdentifier"]]
    out["db_snapshots"] = [s["DBSnapshotIdentifier"] for s in snapshots if s not in final]
    out["db_automated_backups"] = [b["DBInstanceIdentifier"] for b in
                                   rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
                                   if b["DBInstanceIdentifier"].startswith(prefix)]

    cache = _boto(run, "elasticache")
    out["replication_groups"] = [g["ReplicationGroupId"] for g in cache.describe_replication_groups()["ReplicationGroups"]
                                 if g["ReplicationGroupId"].startswith(prefix)]
    out["cache_clusters"] = [c["CacheClusterId"] for c in cache.describe_cache_clusters()["CacheClusters"]
                             if c["CacheClusterId"].startswith(prefix) and c["CacheClusterStatus"] != "deleted"]
    out["cache_subnet_groups"] = [g["CacheSubnetGroupName"] for g in cache.describe_cache_subnet_groups()["CacheSubnetGroups"]
                                  if g["CacheSubnetGroupName"].startswith(prefix)]
    # Not listed: moto 5.2.5 answers DescribeCacheParameterGroups with HTTP 500 and cannot make one either
    # (tasks/cache.py shows its create as skipped in the sandbox).
    out["cache_snapshots"] = [s["SnapshotName"] for s in cache.describe_snapshots()["Snapshots"]
                              if s["SnapshotName"].startswith(prefix)]

    s3 = _boto(run, "s3")
    out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith(prefix)]

    route53 = _boto(run, "route53")
    out["hosted_zones"], out["dns_records"] = [], []
    for zone in route53.list_hosted_zones()["HostedZones"]:
        zone_id = zone["Id"].rsplit("/", 1)[-1]
        tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"].get("Tags", [])
        if _tagged(tags, env) or zone.get("CallerReference", "").startswith(prefix):
            out["hosted_zones"].append(zone["Name"])
        if zone["Name"] == run.environment.domain + ".":  # a zone that outlives us must not keep our records
            out["dns_records"] += [f"{r['Name']} {r['Type']}" for r in route53.list_resource_record_sets(
                HostedZoneId=zone_id)["ResourceRecordSets"] if r["Type"] not in ("NS", "SOA") or r["Name"] != zone["Name"]]
    checks = route53.list_health_checks()["HealthChecks"]
    out["health_checks"] = [c["Id"] for c in checks if c.get("CallerReference", "").startswith(prefix) or _tagged(
        route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=c["Id"])["ResourceTagSet"].get("Tags"), env)]

    acm = _boto(run, "acm")
    out["certificates"] = [c["CertificateArn"] for c in acm.list_certificates()["CertificateSummaryList"]
                           if _tagged(acm.list_tags_for_certificate(CertificateArn=c["CertificateArn"]).get("Tags"), env)]
    secrets = _boto(run, "secretsmanager")
    out["secrets"] = [s["Name"] for s in secrets.list_secrets()["SecretList"]
                      if (s["Name"].startswith(f"golive/{env}/") or _tagged(s.get("Tags"), env)) and not s.get("DeletedDate")]
    ssm = _boto(run, "ssm")
    out["parameters"] = [p["Name"] for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
                         for p in page["Parameters"]]

    for where in sorted({region, "us-east-1"}):  # CloudFront's and Route 53's alarms live in us-east-1
        cloudwatch = _boto(run, "cloudwatch", where)
        alarms = cloudwatch.describe_alarms(AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        out[f"alarms_{where}"] = [a["AlarmName"] for a in alarms["MetricAlarms"] + alarms.get("CompositeAlarms", [])
                                  if a["AlarmName"].startswith(prefix) or f"golive-{env}-" in str(a.get("Dimensions"))]
        out[f"dashboards_{where}"] = [d["DashboardName"] for d in cloudwatch.list_dashboards()["DashboardEntries"]
                                      if d["DashboardName"].startswith(prefix)]
        logs = _boto(run, "logs", where)
        groups = [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
        out[f"log_groups_{where}"] = [g for g in groups if g.startswith(path) or f"golive-{env}-" in g]
        out[f"metric_filters_{where}"] = [f["filterName"] for f in logs.describe_metric_filters()["metricFilters"]
                                          if f["filterName"].startswith(prefix)]

    ecs = _boto(run, "ecs")
    clusters = ecs.describe_clusters(clusters=ecs.list_clusters()["clusterArns"])["clusters"] if ecs.list_clusters()["clusterArns"] else []
    out["ecs_clusters"] = [c["clusterName"] for c in clusters if c["clusterName"].startswith(prefix) and c["status"] == "ACTIVE"]
    out["ecs_services"] = []
    for cluster in out["ecs_clusters"]:
        arns = ecs.list_services(cluster=cluster)["serviceArns"]
        out["ecs_services"] += [s["serviceName"] for s in (ecs.describe_services(cluster=cluster, services=arns)["services"]
                                if arns else []) if s["status"] != "INACTIVE"]
    out["task_definitions"] = [arn for status in ("ACTIVE", "INACTIVE") for arn in
                               ecs.list_task_definitions(status=status)["taskDefinitionArns"] if f"/{prefix}" in arn]
    ecr = _boto(run, "ecr")
    out["ecr_repositories"] = [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]
                               if r["repositoryName"].startswith(prefix)]
    elb = _boto(run, "elbv2")
    out["load_balancers"] = [b["LoadBalancerName"] for b in elb.describe_load_balancers()["LoadBalancers"]
                             if b["LoadBalancerName"].startswith(prefix)]
    out["target_groups"] = [g["TargetGroupName"] for g in elb.describe_target_groups()["TargetGroups"]
                            if g["TargetGroupName"].startswith(prefix)]
    scaling = _boto(run, "application-autoscaling")
    out["scalable_targets"] = [t["ResourceId"] for t in scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
                               if f"/{prefix}" in t["ResourceId"]]
    out["scheduled_actions"] = [a["ScheduledActionName"] for a in
                                scaling.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]
                                if f"/{prefix}" in a["ResourceId"]]

    cloudfront = _boto(run, "cloudfront", "us-east-1")
    distributions = cloudfront.list_distributions()["DistributionList"].get("Items", [])
    out["distributions"] = [d["Id"] for d in distributions if d["Comment"].startswith(prefix) or _tagged(
        cloudfront.list_tags_for_resource(Resource=d["ARN"])["Tags"].get("Items"), env)]
    out["origin_access_controls"] = [o["Name"] for o in cloudfront.list_origin_access_controls()
                                     ["OriginAccessControlList"].get("Items", []) if o["Name"].startswith(prefix)]
    waf = _boto(run, "wafv2", "us-east-1")
    out["web_acls"] = [a["Name"] for scope in ("CLOUDFRONT", "REGIONAL") for a in waf.list_web_acls(Scope=scope)["WebACLs"]
                       if a["Name"].startswith(prefix)]

    iam = _boto(run, "iam")
    out["iam_roles"] = [r["RoleName"] for r in iam.list_roles()["Roles"]
                        if r["Path"].startswith(f"/golive/{env}/") or r["RoleName"].startswith(prefix)]
    out["iam_policies"] = [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]
                           if p["PolicyName"].startswith(prefix) or p["Path"].startswith(f"/golive/{env}/")]
    out["oidc_providers"] = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
                             if _tagged(iam.list_open_id_connect_provider_tags(OpenIDConnectProviderArn=p["Arn"])["Tags"], env)]
    sns = _boto(run, "sns")
    out["sns_topics"] = [t["TopicArn"] for t in sns.list_topics()["Topics"] if f":{prefix}" in t["TopicArn"]]
    account = _boto(run, "sts").get_caller_identity()["Account"]
    out["budgets"] = [b["BudgetName"] for b in _boto(run, "budgets", "us-east-1").describe_budgets(AccountId=account)
                      .get("Budgets", []) if b["BudgetName"].startswith(prefix)]
    config = _boto(run, "config")
    out["config_recorders"] = [r["name"] for r in config.describe_configuration_recorders()["ConfigurationRecorders"]
                               if r["name"].startswith(prefix)]
    out["config_channels"] = [c["name"] for c in config.describe_delivery_channels()["DeliveryChannels"]
                              if c["name"].startswith(prefix)]
    out["config_rules"] = [r["ConfigRuleName"] for r in config.describe_config_rules()["ConfigRules"]
                           if r["ConfigRuleName"].startswith(prefix)]
    out["trails"] = [t["Name"] for t in _boto(run, "cloudtrail").describe_trails()["trailList"] if t["Name"].startswith(prefix)]

    # Last, AWS's own cross-service index of tags: anything tagged for the environment that a list above
    # missed shows here (moto indexes a subset of services; stopped ECS tasks are history, not resources).
    tagging = _boto(run, "resourcegroupstaggingapi")
    named = {v for values in out.values() for v in values}
    out["tagged_elsewhere"] = [
        r["ResourceARN"] for page in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": "golive:environment", "Values": [env]}])
        for r in page["ResourceTagMappingList"]
        if not any(str(v) in r["ResourceARN"] for v in named) and ":task/" not in r["ResourceARN"]
        and not _is_dead(r["ResourceARN"], ec2, rds, ecs, final)]
    out = {kind: sorted(items) for kind, items in out.items() if kind != "final_snapshots"}
    out["final_snapshots"] = sorted(s["DBSnapshotIdentifier"] for s in final)
    return out


def _is_dead(arn: str, ec2, rds, ecs, final: list[dict]) -> bool:
    """The tagging index still lists some things AWS reports as gone: a NAT gateway 'deleted', an ECS
    service or cluster INACTIVE. Those are not left behind."""
    if ":natgateway/" in arn:
        nat = ec2.describe_nat_gateways(NatGatewayIds=[arn.rsplit("/", 1)[-1]])["NatGateways"]
        return not nat or nat[0]["State"] in ("deleted", "deleting")
    if ":ecs:" in arn and (":service/" in arn or ":cluster/" in arn):
        return True  # listed above by status: only ACTIVE ones count
    if ":rds:" in arn and ":snapshot:" in arn:
        return any(s["DBSnapshotArn"] == arn for s in final)
    return False


def left_behind(run: Run) -> dict[str, list[str]]:
    """What a destroy must not leave: every kind with something in it, except the named final snapshots."""
    return {kind: items for kind, items in leftovers(run).items() if items and kind != "final_snapshots"}


# --- The soak's independent listing (tests/soak.py): every kind the runbook makes, read with plain boto3
# clients (not golive's factory, its retries or its discovery), with each item's ownership tags.

from dataclasses import dataclass  # noqa: E402

import boto3  # noqa: E402

from golive.aws import SANDBOX_CREDENTIALS  # noqa: E402
from golive.naming import COMPONENT_TAG, ENVIRONMENT_TAG  # noqa: E402


@dataclass(frozen=True)
class Item:
    kind: str
    id: str
    environment: str | None  # the golive:environment tag, None when untagged
    component: str | None
    # "component": AWS gives it a generated id, so a second create makes a second one (a duplicate shows
    # as two items of one component); "name": AWS refuses a second of the name, only its tags can be lost.
    unique_by: str = "component"


def _tags(pairs) -> dict[str, str]:
    if isinstance(pairs, dict):
        return pairs
    return {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in pairs or []}


def inventory(endpoint_url: str, region: str) -> list[Item]:
    """Everything in the emulator of the kinds golive makes (a kind the emulator cannot list is skipped
    by its absence from golive's creates too: see SANDBOX_UNDELETABLE and Resource.sandbox_lacks_create)."""
    session = boto3.Session(region_name=region, **SANDBOX_CREDENTIALS)

    def client(service: str, in_region: str = region):
        return session.client(service, endpoint_url=endpoint_url, region_name=in_region)

    items: list[Item] = []

    def add(kind: str, id_: str, tags, unique_by: str = "component") -> None:
        tags = _tags(tags)
        items.append(Item(kind, id_, tags.get(ENVIRONMENT_TAG), tags.get(COMPONENT_TAG), unique_by))

    ec2 = client("ec2")
    for v in ec2.describe_vpcs()["Vpcs"]:
        add("vpc", v["VpcId"], v.get("Tags"))
    for s in ec2.describe_subnets()["Subnets"]:
        add("subnet", s["SubnetId"], s.get("Tags"))
    for g in ec2.describe_internet_gateways()["InternetGateways"]:
        add("internet-gateway", g["InternetGatewayId"], g.get("Tags"))
    for a in ec2.describe_addresses()["Addresses"]:
        add("elastic-ip", a["AllocationId"], a.get("Tags"))
    for n in ec2.describe_nat_gateways()["NatGateways"]:
        if n["State"] not in ("deleted", "deleting", "failed"):
            add("nat-gateway", n["NatGatewayId"], n.get("Tags"))
    for r in ec2.describe_route_tables()["RouteTables"]:
        if not any(a.get("Main") for a in r.get("Associations", [])):  # a VPC's main table: AWS makes it
            add("route-table", r["RouteTableId"], r.get("Tags"))
    for g in ec2.describe_security_groups()["SecurityGroups"]:
        if g["GroupName"] != "default":  # a VPC's default group: AWS makes it
            add("security-group", g["GroupId"], g.get("Tags"))
    for acl in ec2.describe_network_acls()["NetworkAcls"]:
        if not acl.get("IsDefault"):
            add("network-acl", acl["NetworkAclId"], acl.get("Tags"))
    for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]:
        if e.get("State", "").lower() not in ("deleted", "deleting"):
            add("vpc-endpoint", e["VpcEndpointId"], e.get("Tags"))
    for f in ec2.describe_flow_logs()["FlowLogs"]:
        add("flow-log", f["FlowLogId"], f.get("Tags"))

    iam = client("iam")
    for r in iam.list_roles()["Roles"]:
        add("iam-role", r["RoleName"], iam.list_role_tags(RoleName=r["RoleName"])["Tags"], "name")
    for p in iam.list_policies(Scope="Local")["Policies"]:
        add("iam-policy", p["PolicyName"], iam.list_policy_tags(PolicyArn=p["Arn"])["Tags"], "name")

    s3 = client("s3")
    for b in s3.list_buckets()["Buckets"]:
        try:
            tags = s3.get_bucket_tagging(Bucket=b["Name"])["TagSet"]
        except s3.exceptions.ClientError:
            tags = []  # NoSuchTagSet: the bucket carries no tag at all
        add("bucket", b["Name"], tags, "name")

    rds = client("rds")
    for d in rds.describe_db_instances()["DBInstances"]:
        if d["DBInstanceStatus"] != "deleting":
            add("db-instance", d["DBInstanceIdentifier"], d.get("TagList"), "name")
    for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]:
        if g["DBSubnetGroupName"] != "default":
            add("db-subnet-group", g["DBSubnetGroupName"],
                rds.list_tags_for_resource(ResourceName=g["DBSubnetGroupArn"])["TagList"], "name")
    for g in rds.describe_db_parameter_groups()["DBParameterGroups"]:
        if not g["DBParameterGroupName"].startswith("default."):
            add("db-parameter-group", g["DBParameterGroupName"],
                rds.list_tags_for_resource(ResourceName=g["DBParameterGroupArn"])["TagList"], "name")
    for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]:
        add("db-snapshot", s["DBSnapshotIdentifier"], s.get("TagList"), "name")

    elasticache = client("elasticache")
    for g in elasticache.describe_replication_groups()["ReplicationGroups"]:
        if g["Status"] != "deleting":
            add("replication-group", g["ReplicationGroupId"],
                elasticache.list_tags_for_resource(ResourceName=g["ARN"])["TagList"], "name")

    acm = client("acm")
    for c in acm.list_certificates()["CertificateSummaryList"]:
        add("certificate", c["CertificateArn"], acm.list_tags_for_certificate(CertificateArn=c["CertificateArn"])["Tags"])

    route53 = client("route53")
    for z in route53.list_hosted_zones()["HostedZones"]:
        zone_id = z["Id"].rsplit("/", 1)[-1]
        tags = route53.list_tags_for_resource(ResourceType="hostedzone", ResourceId=zone_id)["ResourceTagSet"]["Tags"]
        add("hosted-zone", zone_id, tags)
    for h in route53.list_health_checks()["HealthChecks"]:
        tags = route53.list_tags_for_resource(ResourceType="healthcheck", ResourceId=h["Id"])["ResourceTagSet"]["Tags"]
        add("health-check", h["Id"], tags)

    for s in client("secretsmanager").list_secrets()["SecretList"]:
        add("secret", s["Name"], s.get("Tags"), "name")
    ssm = client("ssm")
    for page in ssm.get_paginator("describe_parameters").paginate():
        for p in page["Parameters"]:
            add("ssm-parameter", p["Name"],
                ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=p["Name"])["TagList"], "name")

    sns = client("sns")
    for t in sns.list_topics()["Topics"]:
        add("sns-topic", t["TopicArn"], sns.list_tags_for_resource(ResourceArn=t["TopicArn"])["Tags"], "name")
    ecr = client("ecr")
    for r in ecr.describe_repositories()["repositories"]:
        add("ecr-repository", r["repositoryName"], ecr.list_tags_for_resource(resourceArn=r["repositoryArn"])["tags"], "name")

    ecs = client("ecs")
    cluster_arns = ecs.list_clusters()["clusterArns"]
    for c in ecs.describe_clusters(clusters=cluster_arns, include=["TAGS"])["clusters"] if cluster_arns else []:
        if c["status"] == "ACTIVE":
            add("ecs-cluster", c["clusterName"], c.get("tags"), "name")
        service_arns = ecs.list_services(cluster=c["clusterArn"])["serviceArns"]
        for s in ecs.describe_services(cluster=c["clusterArn"], services=service_arns, include=["TAGS"])["services"] \
                if service_arns else []:
            if s["status"] == "ACTIVE":
                add("ecs-service", s["serviceName"], s.get("tags"), "name")
    for arn in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]:
        described = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        add("task-definition (ACTIVE revision)", arn, described.get("tags"))

    elb = client("elbv2")
    balancers = elb.describe_load_balancers()["LoadBalancers"]
    groups = elb.describe_target_groups()["TargetGroups"]
    for kind, arn_key, name_key, found in (("load-balancer", "LoadBalancerArn", "LoadBalancerName", balancers),
                                          ("target-group", "TargetGroupArn", "TargetGroupName", groups)):
        for item in found:
            tags = elb.describe_tags(ResourceArns=[item[arn_key]])["TagDescriptions"][0]["Tags"]
            add(kind, item[name_key], tags, "name")

    cloudfront = client("cloudfront", "us-east-1")
    for d in cloudfront.list_distributions()["DistributionList"].get("Items", []):
        add("cloudfront-distribution", d["Id"], cloudfront.list_tags_for_resource(Resource=d["ARN"])["Tags"].get("Items", []))

    logs = client("logs")
    for page in logs.get_paginator("describe_log_groups").paginate():
        for g in page["logGroups"]:
            add("log-group", g["logGroupName"], logs.list_tags_log_group(logGroupName=g["logGroupName"])["tags"], "name")
    for where in sorted({region, "us-east-1"}):
        cloudwatch = client("cloudwatch", where)
        for a in cloudwatch.describe_alarms()["MetricAlarms"]:
            add("alarm", a["AlarmName"], cloudwatch.list_tags_for_resource(ResourceARN=a["AlarmArn"])["Tags"], "name")

    trails = client("cloudtrail")
    for t in trails.describe_trails()["trailList"]:
        tags = trails.list_tags(ResourceIdList=[t["TrailARN"]])["ResourceTagList"]
        add("cloudtrail", t["Name"], tags[0].get("TagsList", []) if tags else [], "name")
    return items


def made_by_aws(item: Item) -> bool:
    """What AWS makes for us and removes with what it belongs to: RDS's managed master secret, Application
    Auto Scaling's target-tracking alarms, service-linked roles. Not golive's to tag."""
    return ((item.kind == "secret" and item.id.startswith("rds!"))
            or (item.kind == "alarm" and item.id.startswith("TargetTracking-"))
            or (item.kind == "iam-role" and item.id.startswith("AWSServiceRoleFor")))


def duplicates_and_orphans(items: list[Item], baseline: set[tuple[str, str]], environment: str
                           ) -> tuple[list[str], list[str]]:
    """Duplicates: two items of a kind AWS ids itself carrying one component's tags. Orphans: anything made
    since the baseline (the emulator's own defaults) that no environment's tags claim."""
    new = [i for i in items if (i.kind, i.id) not in baseline and not made_by_aws(i)]
    orphans = [f"{i.kind} {i.id}" for i in new if i.environment is None]
    seen: dict[tuple[str, str | None], list[str]] = {}
    for item in new:
        if item.environment == environment and item.unique_by == "component":
            family = item.id.rsplit("/", 1)[-1].rsplit(":", 1)[0] if item.kind.startswith("task-definition") else ""
            seen.setdefault((item.kind, item.component or family), []).append(item.id)
    duplicates = [f"{kind} {component}: {', '.join(ids)}" for (kind, component), ids in seen.items() if len(ids) > 1]
    return duplicates, orphans
