"""Plan 7.2: the WAF in front of CloudFront, its logs, and DDoS protection.

A WAFv2 web ACL of scope CLOUDFRONT (which lives in us-east-1 whatever the environment's region) with
AWS's managed rule groups (common rule set, known bad inputs, SQL injection, IP reputation) and a
rate-based rule per client IP (the plan's "rate limiting", security.waf_rate_limit requests in any
5 minutes). Its requests are logged to the log group aws-waf-logs-golive-<env> (WAF accepts only log
groups named aws-waf-logs-*). The distribution takes the ACL in its config (WebACLId), which is how
CloudFront associates a WAF; associate_web_acl is for regional resources only.

Shield Standard protects every CloudFront distribution and ALB at no cost, with nothing to turn on.
Shield Advanced (USD 3,000 a month, a one-year commitment) is subscribed only when
security.shield_advanced says so; then the distribution and the ALB get a protection each.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import Record, known_after_apply
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list, tags
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.cdn import Distribution
from tasks.load_balancer import LoadBalancer
from tasks.log_archive import DistributionSetting

MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesSQLiRuleSet", "AWSManagedRulesAmazonIpReputationList")
SCOPE = "CLOUDFRONT"


def waf_log_group_name(environment: str) -> str:
    return f"aws-waf-logs-{resource_name(environment, 'waf')}"


def _visibility(metric: str) -> dict:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": metric}


class WebAcl(Resource):
    kind = "waf-web-acl"

    @property
    def waf(self):
        return self.run.edge_client("wafv2")

    def rules(self) -> list[dict]:
        managed = [{"Name": group, "Priority": i, "OverrideAction": {"None": {}},
                    "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group}},
                    "VisibilityConfig": _visibility(group)} for i, group in enumerate(MANAGED_RULE_GROUPS)]
        rate = {"Name": "rate-per-ip", "Priority": len(MANAGED_RULE_GROUPS), "Action": {"Block": {}},
                "Statement": {"RateBasedStatement": {"Limit": self.run.environment.security.waf_rate_limit,
                                                     "AggregateKeyType": "IP"}},
                "VisibilityConfig": _visibility("rate-per-ip")}
        return managed + [rate]

    @staticmethod
    def _observe(rules: list[dict]) -> list[dict]:
        shaped = []
        for rule in rules:
            statement = rule["Statement"]
            if "ManagedRuleGroupStatement" in statement:
                what = f"managed:{statement['ManagedRuleGroupStatement']['VendorName']}/{statement['ManagedRuleGroupStatement']['Name']}"
            elif "RateBasedStatement" in statement:
                rate = statement["RateBasedStatement"]
                what = f"rate:{rate['AggregateKeyType']}:{rate['Limit']}"
            else:
                what = "other"
            action = next(iter(rule.get("Action") or rule.get("OverrideAction") or {"None": {}}))
            shaped.append({"name": rule["Name"], "priority": rule["Priority"], "rule": what, "action": action})
        return sorted(shaped, key=lambda r: r["priority"])

    def desired(self) -> dict[str, Any]:
        return {"default_action": "Allow", "rules": self._observe(self.rules())}

    def _summary(self) -> dict | None:
        pages, marker = [], None
        while True:
            page = self.waf.list_web_acls(Scope=SCOPE, **({"NextMarker": marker} if marker else {}))
            pages.extend(page.get("WebACLs", []))
            marker = page.get("NextMarker")
            if not marker or not page.get("WebACLs"):
                break
        return next((acl for acl in pages if acl["Name"] == self.name), None)

    def discover(self) -> Found | None:
        summary = self._summary()
        if summary is None:
            return None
        acl = self.waf.get_web_acl(Name=self.name, Scope=SCOPE, Id=summary["Id"])
        web_acl = acl["WebACL"]
        return Found(id=web_acl["ARN"], component=self.component,
                     raw={**web_acl, "LockToken": acl["LockToken"]},
                     state={"default_action": next(iter(web_acl["DefaultAction"])),
                            "rules": self._observe(web_acl.get("Rules", []))})

    def create(self) -> str:
        return self.waf.create_web_acl(
            Name=self.name, Scope=SCOPE, DefaultAction={"Allow": {}}, Rules=self.rules(),
            VisibilityConfig=_visibility(self.name), Description=f"golive {self.run.env_name}: CloudFront",
            Tags=tag_list(self.run.env_name, self.component))["Summary"]["ARN"]

    def update(self, found: Found, changes) -> None:
        self.waf.update_web_acl(Name=self.name, Scope=SCOPE, Id=found.raw["Id"], LockToken=found.raw["LockToken"],
                                DefaultAction={"Allow": {}}, Rules=self.rules(), VisibilityConfig=_visibility(self.name))

    def delete(self, found: Found) -> None:
        acl = self.waf.get_web_acl(Name=found.raw["Name"], Scope=SCOPE, Id=found.raw["Id"])
        self.waf.delete_web_acl(Name=found.raw["Name"], Scope=SCOPE, Id=found.raw["Id"], LockToken=acl["LockToken"])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run, "waf").discover()
        if found is None:
            return []
        acl_tags = run.edge_client("wafv2").list_tags_for_resource(ResourceARN=found.id)["TagInfoForResource"]["TagList"]
        return [found] if {t["Key"]: t["Value"] for t in acl_tags}.get(ENVIRONMENT_TAG) == run.env_name else []


class WafLogGroup(Resource):
    """aws-waf-logs-golive-<env>-waf in us-east-1, with the file's retention."""

    kind = "waf-log-group"

    def __init__(self, run: Run, component: str = "waf-logs"):
        super().__init__(run, component)
        self.name = waf_log_group_name(run.env_name)

    @property
    def logs(self):
        return self.run.edge_client("logs")

    def desired(self) -> dict[str, Any]:
        return {"retention_days": self.run.environment.security.waf_log_retention_days}

    def discover(self) -> Found | None:
        groups = self.logs.describe_log_groups(logGroupNamePrefix=self.name)["logGroups"]
        group = next((g for g in groups if g["logGroupName"] == self.name), None)
        return Found(id=group["arn"].removesuffix(":*"), component=self.component, raw=group,
                     state={"retention_days": group.get("retentionInDays")}) if group else None

    def create(self) -> str:
        self.logs.create_log_group(logGroupName=self.name, tags=tags(self.run.env_name, self.component))
        self.logs.put_retention_policy(logGroupName=self.name, retentionInDays=self.desired()["retention_days"])
        return self.discover().id

    def update(self, found: Found, changes) -> None:
        self.logs.put_retention_policy(logGroupName=self.name, retentionInDays=self.desired()["retention_days"])

    def delete(self, found: Found) -> None:
        self.logs.delete_log_group(logGroupName=self.name)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class WafLogging(Resource):
    """The web ACL's logging configuration: every request's verdict to the WAF log group."""

    kind = "waf-logging"

    def __init__(self, run: Run, component: str = "waf-logging", acl_arn: str | None = None,
                 log_group_arn: str | None = None):
        super().__init__(run, component)
        self.acl_arn, self.log_group_arn = acl_arn, log_group_arn

    @property
    def waf(self):
        return self.run.edge_client("wafv2")

    def desired(self) -> dict[str, Any]:
        return {"destinations": [known_after_apply(self.log_group_arn)]}

    def discover(self) -> Found | None:
        if not self.acl_arn:
            return None
        try:
            config = self.waf.get_logging_configuration(ResourceArn=self.acl_arn)["LoggingConfiguration"]
        except aws_error("WAFNonexistentItemException"):
            return None
        return Found(id=self.acl_arn, component=self.component, raw=config,
                     state={"destinations": config.get("LogDestinationConfigs", [])})

    def create(self) -> str:
        self.waf.put_logging_configuration(LoggingConfiguration={
            "ResourceArn": self.acl_arn, "LogDestinationConfigs": [self.log_group_arn]})
        return self.acl_arn

    def update(self, found: Found, changes) -> None:
        self.create()

    def delete(self, found: Found) -> None:
        self.waf.delete_logging_configuration(ResourceArn=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        acl = WebAcl.discover_all(run)
        found = cls(run, acl_arn=acl[0].id).discover() if acl else None
        return [found] if found else []


class CdnWebAcl(DistributionSetting):
    """The distribution's WebACLId: the web ACL in front of CloudFront."""

    kind = "cloudfront-web-acl"

    def __init__(self, run: Run, component: str = "cdn-web-acl", acl_arn: str | None = None):
        super().__init__(run, component)
        self.acl_arn = acl_arn

    def desired(self) -> dict[str, Any]:
        return {"web_acl": known_after_apply(self.acl_arn)}

    def observe(self, config: dict) -> dict[str, Any]:
        return {"web_acl": config.get("WebACLId") or None}

    def apply_to(self, config: dict, spec: dict | None) -> dict:
        return {**config, "WebACLId": spec["web_acl"] if spec else ""}


class ShieldProtection(Resource):
    """A Shield Advanced protection of one resource (only with security.shield_advanced)."""

    kind = "shield-protection"

    def __init__(self, run: Run, component: str, resource_arn: str | None = None):
        super().__init__(run, component)
        self.resource_arn = resource_arn

    @property
    def shield(self):
        return self.run.edge_client("shield")  # Shield's API is served from us-east-1

    def desired(self) -> dict[str, Any]:
        return {"resource": self.resource_arn}

    def discover(self) -> Found | None:
        mine = [f for f in self.discover_all(self.run) if f.component == self.component]
        return mine[0] if mine else None

    def create(self) -> str:
        return self.shield.create_protection(Name=self.name, ResourceArn=self.resource_arn,
                                             Tags=tag_list(self.run.env_name, self.component))["ProtectionId"]

    def update(self, found: Found, changes) -> None:
        self.shield.delete_protection(ProtectionId=found.id)
        self.create()

    def delete(self, found: Found) -> None:
        self.shield.delete_protection(ProtectionId=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")
        shield = run.edge_client("shield")
        protections = shield.list_protections().get("Protections", [])
        return [Found(id=p["Id"], component=p["Name"].removeprefix(prefix), raw=p, state={"resource": p["ResourceArn"]})
                for p in protections if p["Name"].startswith(prefix)]


class ShieldRecord(Record):
    advanced: bool
    covered: list[str]  # the distribution's and the ALB's ARNs
    evidence: str
    protections: list[Record] = []


@task(**AWS_STEP)
def ensure_shield(run: Run, distribution_id: str | None) -> ShieldRecord:
    """Shield Standard's coverage, said with evidence; Advanced subscribed and applied only when opted in."""
    shield = run.edge_client("shield")
    try:
        subscription = shield.describe_subscription()["Subscription"]
    except aws_error("ResourceNotFoundException"):
        subscription = None
    lb = LoadBalancer(run, "alb")._find()
    distribution_arn = (f"arn:aws:cloudfront::{run.account_id()}:distribution/{distribution_id}"
                        if distribution_id else None)
    covered = [a for a in (distribution_arn, lb["LoadBalancerArn"] if lb else None) if a]
    standard = (f"Shield Standard: on by default at no cost for CloudFront and ALBs, nothing to enable; covers "
                f"{', '.join(covered) or '(nothing yet)'}")
    name = resource_name(run.env_name, "shield")
    from golive.changes import Action, Change

    if not run.environment.security.shield_advanced:
        stray = ShieldProtection.discover_all(run)
        note = f"; Advanced: {'subscribed (not by golive)' if subscription else 'not subscribed'} (security.shield_advanced = false)"
        return ShieldRecord(name=name, id=None, advanced=False, covered=covered, evidence=standard + note + (
            f"; {len(stray)} golive protections still exist (golive destroy removes them)" if stray else ""),
            change=Change(action=Action.NOOP, kind="shield", name=name, note="Standard only"))
    if subscription is None:
        # The subscription is a one-year commitment AWS does not let anyone cancel: never torn down.
        change = Change(action=Action.CREATE, kind="shield-advanced-subscription", name="account",
                        note="USD 3,000/month, one-year commitment; not removed by destroy")
        if run.applying:
            shield.create_subscription()
        run.report(change)
    else:
        change = Change(action=Action.NOOP, kind="shield-advanced-subscription", name="account")
    protections = []
    for component, arn in (("shield-cdn", distribution_arn), ("shield-alb", lb["LoadBalancerArn"] if lb else None)):
        outcome = ensure(ShieldProtection(run, component, arn))
        protections.append(Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change))
    return ShieldRecord(name=name, id=name, change=change, advanced=True, protections=protections, covered=covered,
                        evidence=standard + f"; Advanced: subscribed, {len(protections)} protections")


class WafRecord(Record):
    arn: str | None
    rules: list[str]
    log_group: Record
    logging: Record
    association: Record


@task(**AWS_STEP)
def ensure_waf(run: Run) -> WafRecord:
    """The web ACL, its log group and logging, and the distribution behind it."""
    acl = WebAcl(run, "waf")
    outcome = ensure(acl)
    group = ensure(WafLogGroup(run))
    logging = ensure(WafLogging(run, acl_arn=outcome.id, log_group_arn=group.id))
    association = ensure(CdnWebAcl(run, acl_arn=outcome.id))
    rules = [f"{r['name']} ({r['rule']})" for r in acl.desired()["rules"]]
    return WafRecord(name=acl.name, id=outcome.id, arn=outcome.id, change=outcome.change, rules=rules,
                     log_group=Record(name=waf_log_group_name(run.env_name), id=group.id, change=group.change),
                     logging=Record(name=f"{acl.name} logging", id=logging.id, change=logging.change),
                     association=Record(name=f"{acl.name} on {resource_name(run.env_name, 'cdn')}", id=association.id,
                                        change=association.change))


def distribution_id(run: Run) -> str | None:
    found = Distribution(run).discover()
    return found.id if found else None


# The distribution's WebACLId goes with the distribution (the cdn chain runs first); protections, the
# logging configuration and the log group before the web ACL.
TEARDOWN_ORDER = [ShieldProtection, WafLogging, WebAcl, WafLogGroup]
