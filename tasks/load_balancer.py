"""Plan section 3.2, the Application Load Balancer: the ALB over the public subnets, a target group per
service, an HTTPS listener with the ACM certificate, HTTP redirected to HTTPS, and the routing rules
(the api host or the backend's paths to the backend, the rest to the frontend).

Only CloudFront reaches the ALB: its security group admits CloudFront's origin-facing prefix list
(tasks/network.py), and every routing rule also requires the secret origin header CloudFront adds
(ORIGIN_HEADER, its value in Secrets Manager: tasks/secrets.py origin_verify_secret). A request without
it matches no rule and gets the listener's default answer, 403. The rules accept the secret's current and
previous values, so a rotation (a new value, then Phase 3, then Phase 4) never refuses CloudFront.

AWS refuses what moto accepts (notes/moto-5.2.5.md): an ALB in one zone, an HTTPS listener on a
certificate that is not ISSUED, a target group name over 32 characters. Each is checked here before the
call, with nothing created.
"""

from __future__ import annotations

from typing import Any, ClassVar

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import Record, known_after_apply
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.dns import CertificateRecord
from tasks.network import SecurityGroupRecord, SubnetRecord

SERVICES = ("backend", "frontend")
TARGET_GROUP_NAME_LIMIT = 32
# TLS 1.2 and 1.3 only, forward secrecy: AWS's recommended policy for new listeners.
SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
BACKEND_PATHS = ["/api/*", "/admin/*", "/health/", "/media/*"]
ORIGIN_HEADER = "X-Origin-Verify"  # CloudFront adds it to every request to the ALB (tasks/cdn.py)
NOT_FROM_CLOUDFRONT = [{"Type": "fixed-response", "FixedResponseConfig": {
    "StatusCode": "403", "ContentType": "text/plain", "MessageBody": "Forbidden: not through CloudFront"}}]


class RefusedByAws(ValueError):
    """A request real AWS would reject; caught before sending it, nothing created."""


def _owned(run: Run, arns: list[str]) -> set[str]:
    """Of these ARNs, those tagged for this environment (describe_tags takes 20 at a time)."""
    owned = set()
    elb = run.client("elbv2")
    for start in range(0, len(arns), 20):
        for description in elb.describe_tags(ResourceArns=arns[start:start + 20])["TagDescriptions"]:
            if {t["Key"]: t["Value"] for t in description["Tags"]}.get(ENVIRONMENT_TAG) == run.env_name:
                owned.add(description["ResourceArn"])
    return owned


def _discover_owned(run: Run, operation: str, noun: str) -> list[Found]:
    """Every load balancer or target group (noun) named with the environment's prefix and tagged for it."""
    prefix = resource_name(run.env_name, "")
    items = [item for page in run.client("elbv2").get_paginator(operation).paginate() for item in page[f"{noun}s"]
             if item[f"{noun}Name"].startswith(prefix)]
    owned = _owned(run, [item[f"{noun}Arn"] for item in items]) if items else set()
    return [Found(id=item[f"{noun}Arn"], state={}, raw=item, component=item[f"{noun}Name"].removeprefix(prefix))
            for item in items if item[f"{noun}Arn"] in owned]


class ElbResource(Resource):
    @property
    def elb(self):
        return self.run.client("elbv2")


class LoadBalancer(ElbResource):
    kind = "load-balancer"
    replace_on = frozenset({"scheme"})

    def __init__(self, run: Run, component: str = "alb", subnets: list[SubnetRecord] | None = None,
                 security_group: str | None = None):
        super().__init__(run, component)
        self.subnets, self.security_group = subnets or [], security_group

    def desired(self) -> dict[str, Any]:
        return {"scheme": "internet-facing", "subnets": sorted(known_after_apply(s.id) for s in self.subnets),
                "security_groups": [known_after_apply(self.security_group)],
                "deletion_protection": "true" if self.run.environment.is_production else "false",
                "drop_invalid_header_fields": "true"}

    def _find(self) -> dict | None:
        try:
            return self.elb.describe_load_balancers(Names=[self.name])["LoadBalancers"][0]
        except aws_error("LoadBalancerNotFound"):
            return None

    def discover(self) -> Found | None:
        lb = self._find()
        if lb is None:
            return None
        attributes = {a["Key"]: a["Value"] for a in self.elb.describe_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
        return Found(id=lb["LoadBalancerArn"], component=self.component, raw=lb, state={
            "scheme": lb["Scheme"], "subnets": sorted(z["SubnetId"] for z in lb["AvailabilityZones"]),
            "security_groups": lb.get("SecurityGroups", []),
            "deletion_protection": attributes.get("deletion_protection.enabled"),
            "drop_invalid_header_fields": attributes.get("routing.http.drop_invalid_header_fields.enabled", "false"),
        })

    def _attributes(self) -> list[dict]:
        desired = self.desired()
        return [{"Key": "deletion_protection.enabled", "Value": desired["deletion_protection"]},
                {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": desired["drop_invalid_header_fields"]}]

    def create(self) -> str:
        zones = {s.availability_zone for s in self.subnets}
        if len(zones) < 2:
            raise RefusedByAws(f"the ALB needs subnets in at least 2 availability zones; got {sorted(zones)} "
                               "(network.availability_zones). Nothing was created.")
        lb = self.elb.create_load_balancer(
            Name=self.name, Subnets=[s.id for s in self.subnets], SecurityGroups=[self.security_group],
            Scheme="internet-facing", Type="application", IpAddressType="ipv4",
            Tags=tag_list(self.run.env_name, self.component))["LoadBalancers"][0]
        self.elb.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=self._attributes())
        self._wait_available(lb["LoadBalancerArn"])
        return lb["LoadBalancerArn"]

    def _wait_available(self, arn: str) -> None:
        self.elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[arn], WaiterConfig=self.run.waiter(15, 10))

    def settle(self, found: Found) -> Found:
        if found.raw.get("State", {}).get("Code") != "provisioning":
            return found
        self._wait_available(found.id)
        return self.discover() or found

    def update(self, found: Found, changes) -> None:
        if "subnets" in changes:
            self.elb.set_subnets(LoadBalancerArn=found.id, Subnets=[s.id for s in self.subnets])
        if "security_groups" in changes:
            self.elb.set_security_groups(LoadBalancerArn=found.id, SecurityGroups=[self.security_group])
        if {"deletion_protection", "drop_invalid_header_fields"} & set(changes):
            self.elb.modify_load_balancer_attributes(LoadBalancerArn=found.id, Attributes=self._attributes())

    def delete(self, found: Found) -> None:
        # Teardown of an environment is the decision to remove it: protection comes off first.
        self.elb.modify_load_balancer_attributes(
            LoadBalancerArn=found.id, Attributes=[{"Key": "deletion_protection.enabled", "Value": "false"}])
        self.elb.delete_load_balancer(LoadBalancerArn=found.id)
        self.elb.get_waiter("load_balancers_deleted").wait(LoadBalancerArns=[found.id],
                                                           WaiterConfig=self.run.waiter(10, 5))

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return _discover_owned(run, "describe_load_balancers", "LoadBalancer")


class TargetGroup(ElbResource):
    kind = "target-group"
    replace_on = frozenset({"port", "protocol", "target_type", "vpc"})

    def __init__(self, run: Run, component: str, vpc_id: str | None = None):
        super().__init__(run, component)
        self.vpc_id = vpc_id
        if len(self.name) > TARGET_GROUP_NAME_LIMIT:
            raise RefusedByAws(f"target group name {self.name} has {len(self.name)} characters; AWS allows "
                               f"{TARGET_GROUP_NAME_LIMIT}. Shorten the environment's name. Nothing was created.")

    @property
    def settings(self):
        return getattr(self.run.environment.services, self.component)

    def desired(self) -> dict[str, Any]:
        backend = self.component == "backend"
        return {
            "port": self.settings.port, "protocol": "HTTP", "target_type": "ip", "vpc": known_after_apply(self.vpc_id),
            "health_check": {"path": "/health/" if backend else "/", "interval": 15, "timeout": 5,
                             "healthy": 2, "unhealthy": 3, "matcher": "200"},
            # Sticky sessions for the backend (the plan's 3.2); the static frontend needs none.
            "stickiness": "true" if backend else "false",
            "deregistration_delay": "30",
        }

    def discover(self) -> Found | None:
        try:
            tg = self.elb.describe_target_groups(Names=[self.name])["TargetGroups"][0]
        except aws_error("TargetGroupNotFound"):
            return None
        attributes = {a["Key"]: a["Value"] for a in self.elb.describe_target_group_attributes(
            TargetGroupArn=tg["TargetGroupArn"])["Attributes"]}
        return Found(id=tg["TargetGroupArn"], component=self.component, raw=tg, state={
            "port": tg["Port"], "protocol": tg["Protocol"], "target_type": tg["TargetType"], "vpc": tg["VpcId"],
            "health_check": {"path": tg.get("HealthCheckPath"), "interval": tg["HealthCheckIntervalSeconds"],
                             "timeout": tg["HealthCheckTimeoutSeconds"], "healthy": tg["HealthyThresholdCount"],
                             "unhealthy": tg["UnhealthyThresholdCount"], "matcher": tg.get("Matcher", {}).get("HttpCode")},
            "stickiness": attributes.get("stickiness.enabled", "false"),
            "deregistration_delay": attributes.get("deregistration_delay.timeout_seconds"),
        })

    def _health_check(self) -> dict:
        check = self.desired()["health_check"]
        return dict(HealthCheckProtocol="HTTP", HealthCheckPath=check["path"], HealthCheckIntervalSeconds=check["interval"],
                    HealthCheckTimeoutSeconds=check["timeout"], HealthyThresholdCount=check["healthy"],
                    UnhealthyThresholdCount=check["unhealthy"], Matcher={"HttpCode": check["matcher"]})

    def _attributes(self, arn: str) -> None:
        desired = self.desired()
        attributes = [{"Key": "stickiness.enabled", "Value": desired["stickiness"]},
                      {"Key": "deregistration_delay.timeout_seconds", "Value": desired["deregistration_delay"]}]
        if desired["stickiness"] == "true":
            attributes += [{"Key": "stickiness.type", "Value": "lb_cookie"},
                           {"Key": "stickiness.lb_cookie.duration_seconds", "Value": "86400"}]
        self.elb.modify_target_group_attributes(TargetGroupArn=arn, Attributes=attributes)

    def create(self) -> str:
        tg = self.elb.create_target_group(
            Name=self.name, Protocol="HTTP", Port=self.settings.port, VpcId=self.vpc_id, TargetType="ip",
            Tags=tag_list(self.run.env_name, self.component), **self._health_check())["TargetGroups"][0]
        self._attributes(tg["TargetGroupArn"])
        return tg["TargetGroupArn"]

    def update(self, found: Found, changes) -> None:
        if "health_check" in changes:
            self.elb.modify_target_group(TargetGroupArn=found.id, **self._health_check())
        if {"stickiness", "deregistration_delay"} & set(changes):
            self._attributes(found.id)

    def delete(self, found: Found) -> None:
        self.elb.delete_target_group(TargetGroupArn=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return _discover_owned(run, "describe_target_groups", "TargetGroup")


def _forward(target_group_arn: str | None) -> list[dict]:
    return [{"Type": "forward", "TargetGroupArn": known_after_apply(target_group_arn)}]


REDIRECT_TO_HTTPS = [{"Type": "redirect", "RedirectConfig": {
    "Protocol": "HTTPS", "Port": "443", "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
    "StatusCode": "HTTP_301"}}]


class Listener(ElbResource):
    """The HTTPS listener (default: the frontend) or the HTTP one (redirects to HTTPS)."""

    kind = "listener"
    replace_on = frozenset({"port"})
    ports: ClassVar[dict[str, int]] = {"https": 443, "http": 80}

    def __init__(self, run: Run, component: str, load_balancer_arn: str | None = None,
                 certificate: CertificateRecord | None = None, default_target_group: str | None = None):
        super().__init__(run, component)
        self.load_balancer_arn, self.certificate, self.default_target_group = (
            load_balancer_arn, certificate, default_target_group)

    def desired(self) -> dict[str, Any]:
        if self.component == "https":
            # Every forward is a rule that needs the origin header; what matches none is refused.
            return {"port": 443, "protocol": "HTTPS",
                    "certificate": known_after_apply(self.certificate.id if self.certificate else None),
                    "ssl_policy": SSL_POLICY, "actions": NOT_FROM_CLOUDFRONT}
        return {"port": 80, "protocol": "HTTP", "certificate": None, "ssl_policy": None,
                "actions": REDIRECT_TO_HTTPS}

    @staticmethod
    def _actions(listener: dict) -> list[dict]:
        keep = ("Type", "TargetGroupArn", "RedirectConfig", "FixedResponseConfig")
        return [{k: a[k] for k in keep if k in a} for a in listener.get("DefaultActions", [])]

    def _find(self) -> dict | None:
        if not self.load_balancer_arn:
            return None
        listeners = self.elb.describe_listeners(LoadBalancerArn=self.load_balancer_arn)["Listeners"]
        return next((l for l in listeners if l["Port"] == self.ports[self.component]), None)

    def discover(self) -> Found | None:
        listener = self._find()
        if listener is None:
            return None
        return Found(id=listener["ListenerArn"], component=self.component, raw=listener, state={
            "port": listener["Port"], "protocol": listener["Protocol"],
            "certificate": next((c["CertificateArn"] for c in listener.get("Certificates", [])), None),
            # moto reports a TLS policy on plain-HTTP listeners too; it means nothing there.
            "ssl_policy": listener.get("SslPolicy") if listener["Protocol"] == "HTTPS" else None,
            "actions": self._actions(listener)})

    def _tls(self) -> dict:
        if self.component != "https":
            return {}
        if self.certificate is None or self.certificate.status != "ISSUED":
            status = self.certificate.status if self.certificate else "missing"
            raise RefusedByAws(f"the HTTPS listener needs an ISSUED certificate; {getattr(self.certificate, 'id', None)} "
                               f"is {status}. Let Phase 1.6 finish validating it, then apply again. Nothing was created.")
        return {"Certificates": [{"CertificateArn": self.certificate.id}], "SslPolicy": SSL_POLICY}

    def create(self) -> str:
        desired = self.desired()
        return self.elb.create_listener(
            LoadBalancerArn=self.load_balancer_arn, Protocol=desired["protocol"], Port=desired["port"],
            DefaultActions=desired["actions"], Tags=tag_list(self.run.env_name, self.component),
            **self._tls())["Listeners"][0]["ListenerArn"]

    def update(self, found: Found, changes) -> None:
        desired = self.desired()
        self.elb.modify_listener(ListenerArn=found.id, Protocol=desired["protocol"], Port=desired["port"],
                                 DefaultActions=desired["actions"], **self._tls())

    def delete(self, found: Found) -> None:
        self.elb.delete_listener(ListenerArn=found.id)  # its rules go with it

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = []
        for lb in LoadBalancer.discover_all(run):
            for listener in run.client("elbv2").describe_listeners(LoadBalancerArn=lb.id)["Listeners"]:
                component = {443: "https", 80: "http"}.get(listener["Port"], str(listener["Port"]))
                found.append(Found(id=listener["ListenerArn"], state={}, raw=listener, component=component))
        return found


class ListenerRule(ElbResource):
    """A routing rule on the HTTPS listener, found by its priority (unique per listener). Each requires the
    origin header with one of the secret's values (current and, during a rotation, previous)."""

    kind = "listener-rule"
    priorities: ClassVar[dict[str, int]] = {"api-host": 10, "backend-paths": 20, "frontend": 30}
    targets: ClassVar[dict[str, str]] = {"api-host": "backend", "backend-paths": "backend", "frontend": "frontend"}

    def __init__(self, run: Run, component: str, listener_arn: str | None = None, target_group_arn: str | None = None,
                 origin_values: list[str] | None = None):
        super().__init__(run, component)
        self.listener_arn, self.target_group_arn = listener_arn, target_group_arn
        self.origin_values = origin_values or []

    def _conditions(self) -> list[dict]:
        header = [{"Field": "http-header", "HttpHeaderConfig": {"HttpHeaderName": ORIGIN_HEADER,
                                                                "Values": sorted(self.origin_values)}}]
        if self.component == "api-host":
            return [{"Field": "host-header", "HostHeaderConfig": {"Values": [f"api.{self.run.environment.domain}"]}}, *header]
        if self.component == "backend-paths":
            return [{"Field": "path-pattern", "PathPatternConfig": {"Values": BACKEND_PATHS}}, *header]
        return header

    def desired(self) -> dict[str, Any]:
        return {"conditions": self._conditions(), "actions": _forward(self.target_group_arn)}

    def discover(self) -> Found | None:
        if not self.listener_arn:
            return None
        rules = self.elb.describe_rules(ListenerArn=self.listener_arn)["Rules"]
        rule = next((r for r in rules if r["Priority"] == str(self.priorities[self.component])), None)
        if rule is None:
            return None
        conditions = [{k: c[k] for k in ("Field", "HostHeaderConfig", "PathPatternConfig", "HttpHeaderConfig") if k in c}
                      for c in rule["Conditions"]]
        for condition in conditions:  # the values' order carries no meaning
            if "HttpHeaderConfig" in condition:
                condition["HttpHeaderConfig"] = {**condition["HttpHeaderConfig"],
                                                 "Values": sorted(condition["HttpHeaderConfig"]["Values"])}
        actions = [{k: a[k] for k in ("Type", "TargetGroupArn") if k in a} for a in rule["Actions"]]
        return Found(id=rule["RuleArn"], component=self.component, raw=rule,
                     state={"conditions": conditions, "actions": actions})

    def create(self) -> str:
        return self.elb.create_rule(
            ListenerArn=self.listener_arn, Priority=self.priorities[self.component], Conditions=self._conditions(),
            Actions=_forward(self.target_group_arn), Tags=tag_list(self.run.env_name, self.component))["Rules"][0]["RuleArn"]

    def update(self, found: Found, changes) -> None:
        self.elb.modify_rule(RuleArn=found.id, Conditions=self._conditions(), Actions=_forward(self.target_group_arn))

    def delete(self, found: Found) -> None:
        self.elb.delete_rule(RuleArn=found.id)


class LoadBalancerRecord(Record):
    dns_name: str | None
    hosted_zone_id: str | None  # for Route 53 alias records
    target_groups: dict[str, Record]
    listeners: dict[str, Record]
    rules: list[Record]

    @property
    def full_name(self) -> str | None:
        """app/<name>/<id>, as CloudWatch dimensions and request-count scaling name the ALB."""
        return self.id.split(":loadbalancer/")[1] if self.id else None


@task(**AWS_STEP)
def ensure_target_groups(run: Run, vpc_id: str | None) -> dict[str, Record]:
    """One IP target group per service (Fargate tasks register by IP), health-checked."""
    groups = {}
    for service in SERVICES:
        outcome = ensure(TargetGroup(run, service, vpc_id))
        groups[service] = Record(name=resource_name(run.env_name, service), id=outcome.id, change=outcome.change)
    return groups


@task(**AWS_STEP)
def ensure_load_balancer(run: Run, public_subnets: list[SubnetRecord], security_groups: dict[str, SecurityGroupRecord],
                         certificate: CertificateRecord, target_groups: dict[str, Record],
                         origin_values: list[str] | None = None) -> LoadBalancerRecord:
    """The ALB over the public subnets, its two listeners and the routing rules, each requiring the origin
    header with one of origin_values (the secret's current and previous values)."""
    alb = ensure(LoadBalancer(run, "alb", public_subnets, security_groups["alb"].id))
    description = alb.current(run, lambda: LoadBalancer(run, "alb")._find() or {})
    https = ensure(Listener(run, "https", alb.id, certificate, target_groups["frontend"].id))
    http = ensure(Listener(run, "http", alb.id))
    rules = []
    for component in ListenerRule.priorities:
        rule = ListenerRule(run, component, https.id, target_groups[ListenerRule.targets[component]].id, origin_values)
        outcome = ensure(rule)
        rules.append(Record(name=rule.name, id=outcome.id, change=outcome.change))
    return LoadBalancerRecord(
        name=resource_name(run.env_name, "alb"), id=alb.id, change=alb.change, dns_name=description.get("DNSName"),
        hosted_zone_id=description.get("CanonicalHostedZoneId"), target_groups=target_groups, rules=rules,
        listeners={"https": Record(name="https:443", id=https.id, change=https.change),
                   "http": Record(name="http:80 -> https", id=http.id, change=http.change)})


TEARDOWN_ORDER: list[type[Resource]] = [Listener, LoadBalancer, TargetGroup]


@task(**AWS_STEP)
def read_load_balancer(run: Run) -> LoadBalancerRecord:
    """The ALB Phase 3 made, read back for the phases after it (None ids in a plan before it exists)."""
    from golive.changes import Action, Change

    lb = LoadBalancer(run, "alb")._find()
    name = resource_name(run.env_name, "alb")
    if lb is None and run.applying:
        raise RuntimeError(f"the load balancer {name} does not exist; run `golive apply {run.env_name} --phase ecs` first")
    return LoadBalancerRecord(
        name=name, id=lb["LoadBalancerArn"] if lb else None, dns_name=lb["DNSName"] if lb else None,
        hosted_zone_id=lb["CanonicalHostedZoneId"] if lb else None, target_groups={}, listeners={}, rules=[],
        change=Change(action=Action.NOOP, kind="load-balancer", name=name, note="made by Phase 3"))
