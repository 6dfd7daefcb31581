"""Plan 8.2's new target: the environment's CloudFront distribution (Phase 4) the domain moves to, and
the Route 53 health check of it that the golive-new records carry (while it fails, Route 53 answers with
golive-previous whatever the weights say)."""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Record
from golive.generation import client_token
from golive.naming import COMPONENT_TAG, ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import AmbiguousResource, Found, Resource, ensure, owned_by
from golive.retry import AWS_STEP
from golive.run import Run, logger
from tasks.cutover_records import CutoverConflict, Distribution, NoDistribution, host
from tasks.dns import restore_route53_tags

CDN_COMPONENT = "cdn"
HEALTH_COMPONENT = "cdn-health"
HEALTH_PATH = "/health/"


class HealthCheckRecord(Record):
    fqdn: str | None





def find_distribution(run: Run) -> Distribution | None:
    """The environment's distribution: Comment golive-<env>-cdn, and tagged as ours (a Comment is free
    text anyone can write; the tags say golive made it for this environment)."""
    cloudfront = run.client("cloudfront")
    comment = resource_name(run.env_name, CDN_COMPONENT)
    matches = []
    for page in cloudfront.get_paginator("list_distributions").paginate():
        for item in page["DistributionList"].get("Items", []):
            if item.get("Comment") != comment:
                continue
            tags = cloudfront.list_tags_for_resource(Resource=item["ARN"])["Tags"].get("Items", [])
            if owned_by({"Tags": tags}, run.env_name, CDN_COMPONENT):
                matches.append(item)
    if len(matches) > 1:
        raise AmbiguousResource(f"{len(matches)} CloudFront distributions carry Comment {comment} and the "
                                f"{run.env_name} tags: {', '.join(m['Id'] for m in matches)}; delete the extra ones")
    if not matches:
        return None
    item = matches[0]
    return Distribution(id=item["Id"], arn=item["ARN"], domain_name=host(item["DomainName"]), status=item["Status"],
                        aliases=sorted(host(a) for a in item.get("Aliases", {}).get("Items", [])))


@task(**AWS_STEP)
def locate_new_target(run: Run) -> Distribution | None:
    """Find the distribution the domain moves to; check it serves every name and is deployed."""
    distribution = find_distribution(run)
    names = run.environment.certificate_names
    if distribution is None:
        if run.applying:
            raise NoDistribution(
                f"no CloudFront distribution with Comment {resource_name(run.env_name, CDN_COMPONENT)} tagged for "
                f"{run.env_name}: Phase 4 (CDN) makes it; run that phase first. Nothing was changed.")
        logger().warning("plan: no CloudFront distribution yet; its domain is known after Phase 4 applies")
        return None
    missing = [n for n in names if n not in distribution.aliases]
    if missing:
        # CloudFront refuses requests for host names it does not list: the domain would go dark.
        raise CutoverConflict(
            f"distribution {distribution.id} does not list {', '.join(missing)} among its alternate domain names "
            f"(it lists {', '.join(distribution.aliases) or 'none'}); CloudFront would refuse their requests. "
            "Phase 4 must add them (with the certificate). Nothing was changed.")
    if distribution.status != "Deployed" and run.applying:
        delay = run.poll_delay(30)
        run.client("cloudfront").get_waiter("distribution_deployed").wait(
            Id=distribution.id, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(1800 // delay))})
        distribution = distribution.model_copy(update={"status": "Deployed"})
    return distribution


class NewTargetHealthCheck(Resource):
    """A Route 53 health check of the distribution, attached to the golive-new records."""

    kind = "route53-health-check"
    replace_on = frozenset({"type", "interval"})  # fixed when a health check is created

    def __init__(self, run: Run, component: str = HEALTH_COMPONENT, fqdn: str | None = None):
        super().__init__(run, component)
        self.fqdn = fqdn

    @property
    def route53(self):
        return self.run.client("route53")

    def desired(self) -> dict[str, Any]:
        return {"type": "HTTPS", "fqdn": self.fqdn, "path": HEALTH_PATH, "port": 443, "interval": 30,
                "failure_threshold": 3, "sni": True}

    @staticmethod
    def _state(check: dict) -> dict[str, Any]:
        config = check["HealthCheckConfig"]
        return {"type": config["Type"], "fqdn": host(config.get("FullyQualifiedDomainName", "")),
                "path": config.get("ResourcePath"), "port": config.get("Port"),
                "interval": config.get("RequestInterval"), "failure_threshold": config.get("FailureThreshold"),
                "sni": config.get("EnableSNI")}

    @classmethod
    def _ours(cls, run: Run) -> list[Found]:
        """Health checks golive made for this environment: by tag, or by the CallerReference it sets
        (which marks one as ours even if the run died before tagging it)."""
        route53 = run.client("route53")
        checks = [c for page in route53.get_paginator("list_health_checks").paginate() for c in page["HealthChecks"]]
        tags: dict[str, dict[str, str]] = {}
        for start in range(0, len(checks), 10):  # the API takes 10 ids at a time
            ids = [c["Id"] for c in checks[start:start + 10]]
            for tag_set in route53.list_tags_for_resources(ResourceType="healthcheck", ResourceIds=ids)["ResourceTagSets"]:
                tags[tag_set["ResourceId"]] = {t["Key"]: t["Value"] for t in tag_set.get("Tags", [])}
        prefix = resource_name(run.env_name, "")  # env names carry no '-': this prefix is the environment's alone
        found = []
        for check in checks:
            mine = tags.get(check["Id"], {})
            reference = check.get("CallerReference", "")
            if mine.get(ENVIRONMENT_TAG) == run.env_name:
                component = mine.get(COMPONENT_TAG, "")
            elif reference.startswith(prefix):
                component = reference.removeprefix(prefix).rsplit("-", 1)[0]
            else:
                continue
            found.append(Found(id=check["Id"], state=cls._state(check), component=component,
                               raw={**check, "_tagged": mine.get(ENVIRONMENT_TAG) == run.env_name}))
        return found

    def settle(self, found: Found) -> Found:
        """Found by its CallerReference, untagged: a killed run made it and died before tagging it."""
        if not found.raw.get("_tagged"):
            restore_route53_tags(self, "healthcheck", found.id)
        return found

    def discover(self) -> Found | None:
        mine = [f for f in self._ours(self.run) if f.component == self.component]
        if len(mine) > 1:
            raise AmbiguousResource(f"{len(mine)} Route 53 health checks are {self.name}: "
                                    f"{', '.join(f.id for f in mine)}; delete the extra ones")
        return mine[0] if mine else None

    def create(self) -> str:
        # One attempt: a resent create would make a second health check; the task retries after rediscovery.
        once = self.run.aws.client("route53", retry=False)
        spec = self.desired()
        check = once.create_health_check(
            # golive-ENV-COMPONENT-GENERATION: Route 53 refuses a reference of a deleted check for good, so
            # it must be new after a destroy (golive/generation.py); the prefix marks it ours before tagging.
            CallerReference=client_token(self.run, self.component, 64),
            HealthCheckConfig={"Type": spec["type"], "FullyQualifiedDomainName": spec["fqdn"],
                               "ResourcePath": spec["path"], "Port": spec["port"], "RequestInterval": spec["interval"],
                               "FailureThreshold": spec["failure_threshold"], "EnableSNI": spec["sni"]},
        )["HealthCheck"]
        self.route53.change_tags_for_resource(ResourceType="healthcheck", ResourceId=check["Id"],
                                              AddTags=tag_list(self.run.env_name, self.component))
        return check["Id"]

    def update(self, found: Found, changes) -> None:
        spec = self.desired()
        self.route53.update_health_check(
            HealthCheckId=found.id, HealthCheckVersion=found.raw["HealthCheckVersion"],
            FullyQualifiedDomainName=spec["fqdn"], ResourcePath=spec["path"], Port=spec["port"],
            FailureThreshold=spec["failure_threshold"], EnableSNI=spec["sni"])

    def delete(self, found: Found) -> None:
        self.route53.delete_health_check(HealthCheckId=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return cls._ours(run)


@task(**AWS_STEP)
def ensure_new_target_health_check(run: Run, distribution: Distribution | None) -> HealthCheckRecord:
    """The Route 53 health check of the new target: HTTPS GET /health/ on the distribution's own name."""
    fqdn = distribution.domain_name if distribution else None
    check = NewTargetHealthCheck(run, fqdn=fqdn)
    outcome = ensure(check)
    return HealthCheckRecord(name=check.name, id=outcome.id, change=outcome.change, fqdn=fqdn)

