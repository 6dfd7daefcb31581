"""Plan section 8.2, DNS cutover: move the domain from what served it before the launch to the
environment's CloudFront distribution in weighted steps (10 % -> 50 % -> 100 % by default), proving at
every step that Route 53 holds and answers what was intended and that the app is healthy, and sending
every name back to the previous target the moment a check fails.

The record model, and why Route 53 accepts it
---------------------------------------------
Every name the certificate covers (the apex, then each of dns.subdomains: www and api by default) gets
two weighted record sets of one name and type, told apart by their set identifiers: "golive-previous"
(what served the name before) and "golive-new" (the distribution). A step writes the weights of all
names in one change batch (new = p, previous = 100 - p): Route 53 applies a batch atomically, so every
name moves together and a killed run never leaves half a step behind. AWS rejects records that break
these rules (moto accepts most of them, so `validate_batch` checks them before every write):

* no CNAME at the zone apex, and no CNAME beside any other record of the same name;
* records of one name and type are either all weighted or a single simple record, never a mix;
* an alias can target an AWS resource (CloudFront, a load balancer, ...) or another record of the same
  type in the same zone, never an arbitrary host name; an alias to CloudFront cannot evaluate target
  health.

So the record type follows from what the previous target (launch.cutover.previous_target) is:

* aliasable (a *.cloudfront.net name, a load balancer of this account and region, or a name in this
  zone that holds an A record): every name gets weighted A *alias* records, previous and new alike;
* a plain host name served elsewhere (legacy.example.net): the subdomains get weighted CNAMEs (previous
  -> the host, new -> dxxx.cloudfront.net). The apex cannot hold a CNAME, and an alias cannot name an
  outside host, so at the apex golive-previous is a copy of the A record the apex holds now (that is
  what served it) beside an A alias to the distribution. An apex that holds no A record served
  nothing: there is no share to move, and golive-new joins it at the last (100 %) step, after the
  other names proved healthy at every share;
* none (a first launch): nothing to share traffic with; the walk is a single 100 % step, with a note,
  and its checks still run.

Records golive did not write are replaced only when they already answer what golive-previous answers
(a simple CNAME to the previous host, an alias to the same target, the apex's A record in the host-name
case). They are deleted in the same batch that creates the weighted pair, so the name is never without
an answer. Any other record at these names (an AAAA, a CNAME somewhere else) stops the cutover before its
first write, naming the record: pointing a name at two places by accident is worse than stopping.

golive-new carries a Route 53 health check of the distribution (HTTPS /health/ with SNI). While it fails,
Route 53 answers with golive-previous whatever the weights say. golive-previous stays at weight 0 after
the cutover instead of being deleted, so rolling back is one UPSERT of weights and Route 53 can still
fail over to it. Records have a 60 s TTL while traffic moves, so a step and a rollback reach resolvers
within a minute (step_wait_seconds should be at least that in AWS).

Rollback
--------
A failed check at any step (Route 53 not holding or answering what was written, an HTTP probe not 200,
an alarm of the environment in ALARM, the health check's checkers reporting failure) or an error after
the walk started sets previous = 100 and new = 0 on every name that has a previous record, then raises
CutoverFailed naming the check. Not "back one step": a failed check means the new stack is unwell at
any share, and the previous target is the one known good. A name with no previous record (a first
launch, or an apex that served nothing) stays on the new target: there is nothing to return it to, and
deleting it would take the name off the air; the result says so. The public-resolver check is evidence,
not a gate: resolver caches lag behind Route 53, and a lagging cache says nothing about the new stack.

What the sandbox can show
-------------------------
moto stores the records, reports every change INSYNC at once, serves no DNS, has no test_dns_answer, and
its health checks always report Success. In the sandbox the authoritative check is a read-back of the
record sets, the HTTP probes go to the local app (dataplane.public_endpoint), and public resolvers are
reported as not observable. In AWS the probes go to https://<domain>, which during a partial step
resolves to either target; the Route 53 health check is the check aimed at the new target alone.
"""

from __future__ import annotations

import datetime
import time
import urllib.error
import urllib.request
from collections import defaultdict
from typing import Any

from prefect import task
from pydantic import BaseModel, ConfigDict

from golive import dataplane
from golive.changes import Action, Change, FieldChange, Record
from golive.naming import COMPONENT_TAG, ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import AmbiguousResource, Found, Resource, diff, ensure, owned_by
from golive.retry import AWS_STEP
from golive.run import Run, logger
from tasks.dns import HostedZone

NEW, PREVIOUS = "golive-new", "golive-previous"
OURS = (NEW, PREVIOUS)
CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"  # the hosted zone of every CloudFront alias target
RECORD_TTL = 60  # seconds; short while traffic moves so that a step or a rollback takes effect quickly
INSYNC_WAIT_SECONDS = 600  # Route 53 usually propagates a change to all its servers within 60 s
CDN_COMPONENT = "cdn"
HEALTH_COMPONENT = "cdn-health"
HEALTH_PATH = "/health/"
PUBLIC_RESOLVERS = {"Google 8.8.8.8": "8.8.8.8", "Cloudflare 1.1.1.1": "1.1.1.1", "Quad9 9.9.9.9": "9.9.9.9"}
SANDBOX_NO_DNS = "moto serves no DNS and has no test_dns_answer"


class CutoverError(RuntimeError):
    """The cutover cannot start or go on; nothing is left half-done (see the message)."""


class NoDistribution(CutoverError):
    pass


class NoZone(CutoverError):
    pass


class CutoverConflict(CutoverError):
    """Records at the domain's names (or a change) that Route 53 would reject or that golive must not
    overwrite. Raised before any write."""


class CutoverFailed(CutoverError):
    """A step's check failed (or the walk broke); DNS was sent back to the previous target."""

    def __init__(self, message: str, result: "CutoverResult | None" = None):
        super().__init__(message)
        self.result = result


# ---------------------------------------------------------------------------------------------------
# The typed records the steps pass along


class Distribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    arn: str
    domain_name: str  # dxxx.cloudfront.net, the alias target
    status: str
    aliases: list[str]


class Answer(BaseModel):
    """What a record answers: an alias target, a CNAME's host, or plain values (an adopted A record)."""

    model_config = ConfigDict(frozen=True)

    type: str  # "A" or "CNAME" for the records golive writes
    alias_zone: str | None = None
    alias_name: str | None = None
    evaluate_target_health: bool = False
    values: tuple[str, ...] = ()
    ttl: int | None = None

    @property
    def is_alias(self) -> bool:
        return self.alias_name is not None

    @property
    def destination(self) -> str:
        return f"alias {self.alias_name}" if self.is_alias else f"{self.type} {' '.join(self.values)}"

    def body(self) -> dict[str, Any]:
        if self.is_alias:
            return {"AliasTarget": {"HostedZoneId": self.alias_zone, "DNSName": self.alias_name,
                                    "EvaluateTargetHealth": self.evaluate_target_health}}
        return {"TTL": self.ttl, "ResourceRecords": [{"Value": v} for v in self.values]}

    @classmethod
    def of(cls, record: dict, ttl: int | None = None) -> "Answer":
        alias = record.get("AliasTarget")
        if alias:
            return cls(type=record["Type"], alias_zone=alias["HostedZoneId"], alias_name=host(alias["DNSName"]),
                       evaluate_target_health=bool(alias.get("EvaluateTargetHealth")))
        values = [v["Value"] for v in record.get("ResourceRecords", [])]
        if record["Type"] == "CNAME":
            values = [host(v) for v in values]
        return cls(type=record["Type"], values=tuple(sorted(values)), ttl=ttl or record.get("TTL"))


class NameLayout(BaseModel):
    """One name's weighted pair: its record type, what each side answers, what it takes over."""

    model_config = ConfigDict(frozen=True)

    name: str  # without the trailing dot
    type: str
    previous: Answer | None = None
    new: Answer | None = None  # None only when planning before Phase 4 made the distribution
    replaces: list[dict] = []  # records this pair takes over, deleted in the batch that creates it
    note: str = ""

    def weights(self, percent: int) -> dict[str, int]:
        """The weights at a step. Without a previous record there is no share to move: the new record
        appears at the 100 % step only."""
        if self.previous is None:
            return {NEW: 100} if percent >= 100 else {}
        return {NEW: percent, PREVIOUS: 100 - percent}

    def record(self, set_id: str, weight: int, health_check_id: str | None) -> dict[str, Any]:
        answer = self.new if set_id == NEW else self.previous
        body = answer.body() if answer is not None else {}
        record = {"Name": f"{self.name}.", "Type": self.type, "SetIdentifier": set_id, "Weight": weight, **body}
        if set_id == NEW and health_check_id:
            record["HealthCheckId"] = health_check_id
        return record


class Layout(BaseModel):
    """The cutover's record model for one environment, read before the first write."""

    model_config = ConfigDict(frozen=True)

    domain: str
    zone_id: str | None
    previous_target: str | None
    previous_kind: str  # how the previous target was classified, for people
    distribution: Distribution | None
    health_check_id: str | None = None
    names: list[NameLayout]
    position: int = 0  # the new target's current share, where a resumed walk carries on from

    def steps(self, configured: list[int]) -> list[int]:
        return list(configured) if any(n.previous for n in self.names) else [100]

    @property
    def first_launch(self) -> bool:
        return not any(n.previous for n in self.names)


class Check(BaseModel):
    name: str
    ok: bool | None  # None: not observable here (said in the evidence)
    evidence: str
    gate: bool = True  # a failed gate rolls back; a failed non-gate is reported only


class Probe(BaseModel):
    url: str
    status: int | None
    ms: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200

    def show(self) -> str:
        return f"{self.status} in {self.ms:.0f} ms" if self.status is not None else f"{self.error} ({self.ms:.0f} ms)"


class Shift(BaseModel):
    percent: int
    changes: list[Change]
    change_id: str | None
    insync: str
    weights: dict[str, dict[str, int]]


class Step(BaseModel):
    percent: int
    started_at: datetime.datetime
    seconds: float
    weights: dict[str, dict[str, int]]  # read back from Route 53 after the write
    changed: bool
    insync: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks if c.gate)


class HealthCheckRecord(Record):
    fqdn: str | None


class Rollback(BaseModel):
    changes: list[Change]
    weights: dict[str, dict[str, int]]
    kept_on_new: list[str]  # names with no previous record: nothing to return them to
    insync: str
    note: str

    @property
    def summary(self) -> str:
        text = f"weights now: {show_weights(self.weights)}" if self.weights else self.note
        if self.kept_on_new:
            text += f"; {', '.join(self.kept_on_new)} stay on the new target (no previous record to return to)"
        return text


class CutoverResult(BaseModel):
    environment: str
    domain: str
    mode: str
    zone_id: str | None
    distribution: Distribution | None
    health_check: HealthCheckRecord
    layout: Layout
    steps: list[Step] = []
    final_weights: dict[str, dict[str, int]] = {}
    rolled_back: bool = False
    reason: str = ""
    changes: list[Change] = []


# ---------------------------------------------------------------------------------------------------
# Helpers: names, record sets, validation


def host(name: str) -> str:
    return name.rstrip(".").lower()


def record_key(record: dict) -> tuple[str, str, str | None]:
    return host(record["Name"]), record["Type"], record.get("SetIdentifier")


def zone_records(run: Run, zone_id: str | None) -> list[dict]:
    if zone_id is None:
        return []
    pages = run.client("route53").get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone_id)
    return [record for page in pages for record in page["ResourceRecordSets"]]


def find_zone(run: Run) -> str | None:
    found = HostedZone(run, "zone").discover()
    return found.id if found else None


def record_state(record: dict) -> dict[str, Any]:
    """The fields a diff compares, normalised (AWS adds trailing dots and may change case)."""
    answer = Answer.of(record)
    known = answer.is_alias or answer.values  # neither: the new target before Phase 4 made it (plan)
    return {"weight": record.get("Weight"), "answer": answer.destination if known else None,
            "ttl": None if answer.is_alias else record.get("TTL"), "health_check": record.get("HealthCheckId")}


def weights_of(records: list[dict], names: list[str]) -> dict[str, dict[str, int]]:
    """name -> {set identifier: weight} for golive's weighted records."""
    wanted = set(names)
    weights: dict[str, dict[str, int]] = {}
    for record in records:
        name = host(record["Name"])
        if name in wanted and record.get("SetIdentifier") in OURS:
            weights.setdefault(name, {})[record["SetIdentifier"]] = record.get("Weight", 0)
    return {name: weights[name] for name in names if name in weights}


def show_weights(weights: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{name} new {w.get(NEW, '-')} / previous {w.get(PREVIOUS, '-')}" for name, w in weights.items())


def validate_batch(domain: str, records: list[dict], deletes: list[dict], upserts: list[dict]) -> None:
    """Refuse a change batch Route 53 would reject. moto 5.2.5 accepts all of these (notes/moto-5.2.5.md),
    so a bug here would pass every sandbox test and fail on launch day."""
    after = {record_key(r): r for r in records}
    for record in deletes:
        if record_key(record) not in after:
            raise CutoverConflict(f"refusing to delete {record['Name']} {record['Type']}: it is not in the zone")
        after.pop(record_key(record))
    for record in upserts:
        after[record_key(record)] = record
    by_name: dict[str, list[dict]] = defaultdict(list)
    for record in after.values():
        by_name[host(record["Name"])].append(record)
    problems = []
    for name, items in by_name.items():
        types = {r["Type"] for r in items}
        if "CNAME" in types and name == host(domain):
            problems.append(f"{name}: a CNAME at the zone apex")
        elif "CNAME" in types and len(types) > 1:
            problems.append(f"{name}: a CNAME beside {', '.join(sorted(types - {'CNAME'}))} records")
        for kind in types:
            same = [r for r in items if r["Type"] == kind]
            weighted = [r for r in same if "Weight" in r]
            if weighted and len(weighted) != len(same):
                problems.append(f"{name} {kind}: weighted and simple records together")
            if len(same) > 1 and not weighted:
                problems.append(f"{name} {kind}: more than one simple record")
            problems += [f"{name} {kind} {r['SetIdentifier']}: weight {r['Weight']} outside 0-255"
                         for r in weighted if not 0 <= r["Weight"] <= 255]
            # Route 53 gives every non-alias record of a weighted group the TTL written last.
            if len({r.get("TTL") for r in weighted if "AliasTarget" not in r}) > 1:
                problems.append(f"{name} {kind}: weighted records with different TTLs")
        for record in items:
            alias = record.get("AliasTarget") or {}
            if alias.get("HostedZoneId") == CLOUDFRONT_ZONE_ID and alias.get("EvaluateTargetHealth"):
                problems.append(f"{name}: an alias to CloudFront cannot evaluate target health")
            if not alias and record["Type"] in ("A", "AAAA", "CNAME") and not record.get("ResourceRecords"):
                problems.append(f"{name} {record['Type']}: neither an alias target nor values")
    if problems:
        raise CutoverConflict("refusing a Route 53 change that AWS would reject: " + "; ".join(problems))


def _wait_insync(run: Run, change_id: str) -> str:
    """Bounded wait until every Route 53 server has the change."""
    delay = 1 if run.target.is_sandbox else 10
    started = time.monotonic()
    try:
        run.client("route53").get_waiter("resource_record_sets_changed").wait(
            Id=change_id, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, INSYNC_WAIT_SECONDS // delay)})
    except Exception as error:  # botocore WaiterError: still PENDING at the bound
        raise CutoverError(f"Route 53 change {change_id} was not INSYNC after {INSYNC_WAIT_SECONDS} s: {error}") from error
    seconds = time.monotonic() - started
    note = " (sandbox: moto reports INSYNC at once)" if run.target.is_sandbox else ""
    return f"{change_id} INSYNC after {seconds:.1f} s{note}"


# ---------------------------------------------------------------------------------------------------
# The new target: the CloudFront distribution (Phase 4) and its Route 53 health check


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
        delay = 1 if run.target.is_sandbox else 30
        run.client("cloudfront").get_waiter("distribution_deployed").wait(
            Id=distribution.id, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, 1800 // delay)})
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
            found.append(Found(id=check["Id"], state=cls._state(check), component=component, raw=check))
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
            CallerReference=f"{self.name}-{int(time.time() * 1000)}",
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


# ---------------------------------------------------------------------------------------------------
# The record model, read from the zone


def _load_balancer_zone(run: Run, name: str) -> str | None:
    """The canonical hosted zone of an ALB/NLB of this account and region with that DNS name."""
    name = name.removeprefix("dualstack.")
    for page in run.client("elbv2").get_paginator("describe_load_balancers").paginate():
        for balancer in page["LoadBalancers"]:
            if host(balancer["DNSName"]) == name:
                return balancer["CanonicalHostedZoneId"]
    return None


def classify_previous(run: Run, zone_id: str | None, records: list[dict]) -> tuple[Answer | None, str]:
    """An alias answer for the previous target when Route 53 can alias it, and how it was classified."""
    target = run.environment.launch.cutover.previous_target
    if target is None:
        return None, "none (first launch)"
    name = host(target)
    if name.endswith(".cloudfront.net"):
        return Answer(type="A", alias_zone=CLOUDFRONT_ZONE_ID, alias_name=name), "a CloudFront distribution (alias)"
    if ".elb." in name and name.endswith(".amazonaws.com"):
        zone = _load_balancer_zone(run, name)
        if zone:
            return Answer(type="A", alias_zone=zone, alias_name=name), "a load balancer of this account (alias)"
        return None, "a load-balancer name not found in this account and region: a plain host name (CNAME)"
    if zone_id and name.endswith("." + host(run.environment.domain)) and any(
            host(r["Name"]) == name and r["Type"] == "A" for r in records):
        return Answer(type="A", alias_zone=zone_id, alias_name=name), "an A record in this zone (alias)"
    return None, "a plain host name (CNAME on subdomains)"


def _same_destination(record: dict, previous: Answer | None) -> bool:
    """A record golive did not write that golive-previous can replace without changing any answer."""
    if previous is None or record.get("SetIdentifier") is not None or record["Type"] not in ("A", "CNAME"):
        return False
    theirs = Answer.of(record)
    if (theirs.type, theirs.destination) == (previous.type, previous.destination):
        return True
    # A CNAME to the host golive-previous aliases: the same destination, now as an alias.
    return record["Type"] == "CNAME" and previous.is_alias and theirs.values == (previous.alias_name,)


def _position(names: list[NameLayout], index: dict) -> int:
    shares = []
    for name in names:
        if name.previous is None:
            continue
        new, previous = index.get((name.name, name.type, NEW)), index.get((name.name, name.type, PREVIOUS))
        if new is None or previous is None:
            return 0
        total = new.get("Weight", 0) + previous.get("Weight", 0)
        shares.append(round(100 * new.get("Weight", 0) / total) if total else 0)
    return min(shares) if shares else 0


@task(**AWS_STEP)
def read_layout(run: Run, distribution: Distribution | None) -> Layout:
    """Decide each name's record type and answers from what the zone holds now (module docstring);
    refuse, before any write, records golive must not overwrite."""
    env = run.environment
    zone_id = find_zone(run)
    if zone_id is None and run.applying:
        raise NoZone(f"no public hosted zone for {env.domain}: Phase 1 (1.6) makes it; run that phase first. "
                     "Nothing was changed.")
    records = zone_records(run, zone_id)
    target = env.launch.cutover.previous_target
    names = env.certificate_names
    if target and host(target) in names:
        raise CutoverConflict(f"launch.cutover.previous_target {target} is one of the names the cutover moves "
                              f"({', '.join(names)}); name the host that served them before the launch")
    alias_previous, kind = classify_previous(run, zone_id, records)
    new_alias = (Answer(type="A", alias_zone=CLOUDFRONT_ZONE_ID, alias_name=distribution.domain_name)
                 if distribution else None)
    index = {record_key(r): r for r in records}
    layouts, conflicts = [], []
    for name in names:
        apex = name == host(env.domain)
        here = [r for r in records if host(r["Name"]) == name and r["Type"] in ("A", "AAAA", "CNAME")]
        ours = [r for r in here if r.get("SetIdentifier") in OURS]
        theirs = [r for r in here if r.get("SetIdentifier") not in OURS]
        note = ""
        if target is None or alias_previous is not None:
            kind_here, previous, new = "A", alias_previous, new_alias
        elif not apex:
            kind_here = "CNAME"
            previous = Answer(type="CNAME", values=(host(target),), ttl=RECORD_TTL)
            new = Answer(type="CNAME", values=(distribution.domain_name,), ttl=RECORD_TTL) if distribution else None
        else:
            # The apex cannot CNAME to the previous host: what it serves now is its previous answer
            # (copied with the group's TTL: a weighted group shares one).
            kind_here, new = "A", new_alias
            source = ([r for r in ours if r["SetIdentifier"] == PREVIOUS and r["Type"] == "A"]
                      or [r for r in theirs if r["Type"] == "A" and r.get("SetIdentifier") is None])
            previous = Answer.of(source[0], ttl=RECORD_TTL) if source else None
            note = (f"apex: previous is the apex's A record ({previous.destination}); a CNAME cannot sit at the apex"
                    if previous else "apex: it served nothing before (no A record) and a CNAME cannot sit there; "
                    "the new target joins it at the 100 % step")
        if previous is None and target is None:
            note = "first launch: no previous target, straight to 100 %"
        replaces = [r for r in ours if r["Type"] != kind_here]  # ours, from a different record model
        for record in theirs:
            if _same_destination(record, previous):
                replaces.append(record)
            else:
                conflicts.append(f"{name} {record['Type']}"
                                 + (f" ({record['SetIdentifier']})" if record.get("SetIdentifier") else "")
                                 + f" -> {Answer.of(record).destination}")
        layouts.append(NameLayout(name=name, type=kind_here, previous=previous, new=new, replaces=replaces, note=note))
    if conflicts:
        raise CutoverConflict(
            f"records golive did not write answer for {env.domain} differently from launch.cutover.previous_target "
            f"({target or 'none'}): {'; '.join(conflicts)}. Set previous_target to what they point at, or remove "
            "them; nothing was changed.")
    return Layout(domain=host(env.domain), zone_id=zone_id, previous_target=target, previous_kind=kind,
                  distribution=distribution, names=layouts, position=_position(layouts, index))


# ---------------------------------------------------------------------------------------------------
# A step: write the weights, wait, check


def _record_change(desired: dict, current: dict | None) -> Change:
    name = f"{host(desired['Name'])} {desired['Type']} {desired['SetIdentifier']}"
    state = record_state(desired)
    if current is None:
        return Change(action=Action.CREATE, kind="dns-record", name=name,
                      fields=tuple(FieldChange(field=k, after=v) for k, v in state.items() if v is not None))
    changes = diff(state, Found(id=name, state=record_state(current)))
    if not changes:
        return Change(action=Action.NOOP, kind="dns-record", name=name, id=name)
    return Change(action=Action.UPDATE, kind="dns-record", name=name, id=name, fields=tuple(changes.values()))


@task(**AWS_STEP)
def shift_weights(run: Run, layout: Layout, percent: int) -> Shift:
    """Write every name's weights for this step in one atomic change batch (plan: only report it), then
    wait until all Route 53 servers have it."""
    records = zone_records(run, layout.zone_id)
    index = {record_key(r): r for r in records}
    deletes, upserts, changes = [], [], []
    for name in layout.names:
        wanted = name.weights(percent)
        if not wanted:
            continue  # this name joins at a later step
        for record in name.replaces:
            if record_key(record) in index:
                deletes.append(index[record_key(record)])
                changes.append(Change(action=Action.DELETE, kind="dns-record",
                                      name=f"{name.name} {record['Type']} {record.get('SetIdentifier') or '(simple)'}",
                                      note=f"replaced by the weighted {name.type} pair, same answer"))
        for set_id, weight in wanted.items():
            desired = name.record(set_id, weight, layout.health_check_id)
            change = _record_change(desired, index.get((name.name, name.type, set_id)))
            if change.is_change:
                upserts.append(desired)
                if not run.applying and percent == 100 and name.previous is not None:
                    change = change.model_copy(update={"note": "in weighted steps, checked at each"})
            changes.append(change)
    change_id, insync = None, "nothing to change"
    if (deletes or upserts) and run.applying:
        validate_batch(layout.domain, records, deletes, upserts)
        info = run.client("route53").change_resource_record_sets(HostedZoneId=layout.zone_id, ChangeBatch={
            "Comment": f"golive {run.env_name} cutover: new target {percent}%",
            "Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in deletes]
            + [{"Action": "UPSERT", "ResourceRecordSet": r} for r in upserts]})["ChangeInfo"]
        change_id = info["Id"]
        insync = _wait_insync(run, change_id)
        records = zone_records(run, layout.zone_id)
    elif deletes or upserts:
        insync = "plan: nothing written"
    for change in changes:
        if change.is_change:
            run.report(change)
    return Shift(percent=percent, changes=changes, change_id=change_id, insync=insync,
                 weights=weights_of(records, [n.name for n in layout.names]))


@task(**AWS_STEP)
def verify_authoritative(run: Run, layout: Layout, percent: int) -> Check:
    """Route 53 holds what this step wrote (read back); in AWS it also answers with it (test_dns_answer)."""
    records = zone_records(run, layout.zone_id)
    index = {record_key(r): r for r in records}
    problems = []
    for name in layout.names:
        for set_id, weight in name.weights(percent).items():
            desired = record_state(name.record(set_id, weight, layout.health_check_id))
            current = index.get((name.name, name.type, set_id))
            if current is None:
                problems.append(f"{name.name} {set_id} missing")
            elif record_state(current) != desired:
                problems.append(f"{name.name} {set_id}: holds {record_state(current)}, expected {desired}")
    evidence = show_weights(weights_of(records, [n.name for n in layout.names]))
    if run.target.is_sandbox:
        evidence += f" (sandbox: read back from Route 53's record sets; {SANDBOX_NO_DNS})"
    else:
        answered, answer_problems = _test_dns_answers(run, layout, percent)
        problems += answer_problems
        evidence += f"; Route 53 answers: {answered}"
    if problems:
        evidence = "; ".join(problems) + f" [{evidence}]"
    return Check(name="authoritative DNS", ok=not problems, evidence=evidence)


def _test_dns_answers(run: Run, layout: Layout, percent: int) -> tuple[str, list[str]]:
    """Ask Route 53 itself what it answers (AWS only). A weighted answer is one of the pair; at 100 %
    it must be the new target (the previous one means the new target's health check is failing)."""
    route53 = run.client("route53")
    answers, problems = [], []
    for name in layout.names:
        if not name.weights(percent):
            continue
        reply = route53.test_dns_answer(HostedZoneId=layout.zone_id, RecordName=name.name, RecordType=name.type)
        data = [host(d) for d in reply.get("RecordData", [])]
        answers.append(f"{name.name} {reply['ResponseCode']} {', '.join(data) or '(empty)'}")
        if reply["ResponseCode"] != "NOERROR" or not data:
            problems.append(f"{name.name}: Route 53 answers {reply['ResponseCode']} with {data or 'no data'}")
        elif name.type == "CNAME" and name.new is not None:
            allowed = set(name.new.values) | (set(name.previous.values) if name.previous and percent < 100 else set())
            if not set(data) <= allowed:
                problems.append(f"{name.name}: Route 53 answers {', '.join(data)}, expected {', '.join(sorted(allowed))}")
    return "; ".join(answers), problems


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a redirect is an answer to report (say, a missing X-Forwarded-Proto), not to follow


_OPENER = urllib.request.build_opener(_NoRedirect)


def http_probe(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> Probe:
    """One timed GET. Redirects are not followed; TLS certificates are verified (an https URL that
    answers at all proves SSL works)."""
    request = urllib.request.Request(url, headers={"User-Agent": "golive-probe", **(headers or {})})
    started = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:  # refused, reset, timed out, TLS failure, name not resolved
        reason = getattr(error, "reason", None) or error
        return Probe(url=url, status=None, ms=(time.perf_counter() - started) * 1000,
                     error=f"{type(error).__name__}: {reason}")
    return Probe(url=url, status=status, ms=(time.perf_counter() - started) * 1000)


def alarms_firing(run: Run) -> list[str]:
    """Names of the environment's CloudWatch alarms (golive-<env>-...) in ALARM."""
    prefix = resource_name(run.env_name, "")
    pages = run.client("cloudwatch").get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    # The state is checked here too: moto ignores the StateValue filter when AlarmTypes is given.
    return sorted(a["AlarmName"] for page in pages for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
                  if a.get("StateValue") == "ALARM")


def health_check_status(run: Run, health_check_id: str | None) -> Check:
    """What Route 53's checkers (in several regions) see of the new target. Route 53 counts a target
    healthy while more than 18 % of them report success; a new check has no observations yet."""
    if health_check_id is None:
        return Check(name="Route 53 health check", ok=None, evidence="no health check (plan)")
    observations = run.client("route53").get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]
    good = sum(1 for o in observations if o.get("StatusReport", {}).get("Status", "").startswith("Success"))
    ok = not observations or good / len(observations) > 0.18
    evidence = f"{health_check_id}: {good} of {len(observations)} checkers report Success"
    if not observations:
        evidence += " (no observations yet)"
    if run.target.is_sandbox:
        evidence += " (sandbox: moto always reports Success)"
    elif not ok:
        failing = [o["StatusReport"]["Status"] for o in observations if not o["StatusReport"]["Status"].startswith("Success")]
        evidence += f"; e.g. {failing[0]}"
    return Check(name="Route 53 health check", ok=ok, evidence=evidence)


@task(**AWS_STEP)
def check_health(run: Run, layout: Layout) -> list[Check]:
    """health_checks_per_step GETs of /health/ spread over step_wait_seconds (all must be 200), no alarm
    of the environment in ALARM, and the Route 53 checkers' view of the new target. Stops at the first
    failure: the rollback should not wait for the rest of the step."""
    settings = run.environment.launch.cutover
    endpoint = dataplane.public_endpoint(run)
    url = f"{endpoint.url}{HEALTH_PATH}"
    spacing = settings.step_wait_seconds / settings.health_checks_per_step
    probes: list[Probe] = []
    firing: list[str] = []
    for _ in range(settings.health_checks_per_step):
        time.sleep(spacing)  # observe the step for a while before each probe: the last one ends the step
        probes.append(http_probe(url, endpoint.headers))
        firing = alarms_firing(run)
        if not probes[-1].ok or firing:
            break
    stopped = len(probes) < settings.health_checks_per_step
    http = Check(
        name="HTTP health", ok=all(p.ok for p in probes),
        evidence=f"{len(probes)} of {settings.health_checks_per_step} GET {url} via {endpoint.via}: "
        + ", ".join(p.show() for p in probes) + (" (stopped at the first failure)" if stopped else ""))
    alarm_note = " (sandbox: moto never evaluates alarms; only states set on them show)" if run.target.is_sandbox else ""
    alarms = Check(name="CloudWatch alarms", ok=not firing,
                   evidence=(f"in ALARM: {', '.join(firing)}" if firing
                             else f"none of {resource_name(run.env_name, '')}* in ALARM") + alarm_note)
    return [http, alarms, health_check_status(run, layout.health_check_id)]


@task(**AWS_STEP)
def check_public_resolvers(run: Run, layout: Layout, percent: int) -> Check:
    """'Test from multiple locations': ask public resolvers for every name. At 100 % each must return the
    new target, waiting (bounded by the TTL) for caches to expire. Evidence, not a rollback gate."""
    if run.target.is_sandbox:
        return Check(name="public resolvers", ok=None, gate=False,
                     evidence=f"not observable in the sandbox: {SANDBOX_NO_DNS}, so no public resolver can ask it")
    try:
        import dns.resolver
    except ImportError:
        return Check(name="public resolvers", ok=None, gate=False,
                     evidence="dnspython is not installed: public resolvers were not asked")
    deadline = time.monotonic() + (2 * RECORD_TTL + 30 if percent == 100 else 0)
    while True:
        seen, problems = _ask_resolvers(dns.resolver, layout, percent)
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(10)
    return Check(name="public resolvers", ok=not problems, gate=False,
                 evidence="; ".join(problems + seen) if problems else "; ".join(seen))


def _ask_resolvers(resolver_module, layout: Layout, percent: int) -> tuple[list[str], list[str]]:
    seen, problems = [], []
    for label, address in PUBLIC_RESOLVERS.items():
        resolver = resolver_module.Resolver(configure=False)
        resolver.nameservers, resolver.lifetime = [address], 5.0
        new_addresses: set[str] | None = None
        for name in layout.names:
            if not name.weights(percent) or name.new is None:
                continue
            try:
                answer = resolver.resolve(name.name, "A")
            except Exception as error:  # NXDOMAIN, NoAnswer, timeout: the name does not resolve there
                problems.append(f"{label} {name.name}: {type(error).__name__}")
                continue
            canonical = host(str(answer.canonical_name))
            addresses = {r.address for r in answer}
            if name.type == "CNAME":
                on_new = canonical in name.new.values
                shown = canonical
            else:
                if new_addresses is None:  # CloudFront's edge addresses as this resolver sees them
                    try:
                        new_addresses = {r.address for r in resolver.resolve(name.new.alias_name, "A")}
                    except Exception:
                        new_addresses = set()
                on_new = bool(addresses & new_addresses)
                shown = ", ".join(sorted(addresses))
            seen.append(f"{label} {name.name} -> {shown} ({'new' if on_new else 'not the new target'})")
            if percent == 100 and not on_new:
                problems.append(f"{label} {name.name} still answers {shown} (cached, TTL {RECORD_TTL} s)")
    return seen, problems


# ---------------------------------------------------------------------------------------------------
# Rollback and the walk


@task(**AWS_STEP)
def rollback_cutover(run: Run) -> Rollback:
    """Send every name back to its previous target: previous = 100, new = 0, one batch, waited for.
    Safe to repeat; needs nothing but the zone (not the distribution, which may be what broke)."""
    zone_id = find_zone(run)
    names = run.environment.certificate_names
    if zone_id is None:
        return Rollback(changes=[], weights={}, kept_on_new=[], insync="nothing to change",
                        note=f"no hosted zone for {run.environment.domain}: nothing to roll back")
    records = zone_records(run, zone_id)
    ours: dict[tuple[str, str], dict[str, dict]] = defaultdict(dict)
    for record in records:
        if host(record["Name"]) in names and record.get("SetIdentifier") in OURS:
            ours[(host(record["Name"]), record["Type"])][record["SetIdentifier"]] = record
    upserts, changes, kept = [], [], []
    for (name, kind), pair in ours.items():
        if PREVIOUS not in pair:
            kept.append(name)
            continue
        for set_id, weight in ((PREVIOUS, 100), (NEW, 0)):
            if set_id not in pair:
                continue
            current = pair[set_id]
            change = _record_change({**current, "Weight": weight}, current)
            changes.append(change.model_copy(update={"note": "rollback"}) if change.is_change else change)
            if change.is_change:
                upserts.append({**current, "Weight": weight})
    change_id, insync = None, "nothing to change"
    if upserts and run.applying:
        validate_batch(run.environment.domain, records, [], upserts)
        info = run.client("route53").change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Comment": f"golive {run.env_name} cutover rollback: previous target 100%",
            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": r} for r in upserts]})["ChangeInfo"]
        change_id = info["Id"]
        insync = _wait_insync(run, change_id)
        records = zone_records(run, zone_id)
    elif upserts:
        insync = "plan: nothing written"
    for change in changes:
        if change.is_change:
            run.report(change)
    weights = weights_of(records, names)
    note = ("nothing to roll back: no golive records" if not ours
            else "already on the previous target" if not upserts else "rolled back to the previous target")
    return Rollback(changes=changes, weights=weights, kept_on_new=sorted(set(kept)), insync=insync, note=note)


def cutover(run: Run) -> CutoverResult:
    """The whole of 8.2. Call it in a flow: its steps are Prefect tasks.

    Plan mode reads everything and reports the change to the final weights, writing nothing. Apply walks
    the steps from where the new target's share is now (a resumed run does not send traffic back to
    10 %), rolls back and raises CutoverFailed on a failed check, and returns the steps' evidence."""
    distribution = locate_new_target(run)
    layout = read_layout(run, distribution)  # refuses conflicting records before any write
    health = ensure_new_target_health_check(run, distribution)
    layout = layout.model_copy(update={"health_check_id": health.id})
    base = dict(environment=run.env_name, domain=layout.domain, mode=run.mode, zone_id=layout.zone_id,
                distribution=distribution, health_check=health, layout=layout)
    names = [n.name for n in layout.names]
    note = "first launch: no previous target, straight to 100 %" if layout.first_launch else ""

    if not run.applying:
        planned = shift_weights(run, layout, 100)
        return CutoverResult(**base, changes=[health.change, *planned.changes],
                             final_weights=weights_of(zone_records(run, layout.zone_id), names),
                             reason=note or f"plan: weights to walk {layout.steps(run.environment.launch.cutover.steps_percent)}")

    walk = [p for p in layout.steps(run.environment.launch.cutover.steps_percent) if p >= layout.position]
    if layout.position:
        logger().info(f"the new target already has {layout.position} %: carrying on from {walk[0]} %")
    steps: list[Step] = []
    changes: list[Change] = [health.change]
    for percent in walk:
        started_at, started = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
        try:
            shift = shift_weights(run, layout, percent)
            changes += shift.changes
            checks = [verify_authoritative(run, layout, percent), *check_health(run, layout)]
            if all(c.ok is not False for c in checks):
                checks.append(check_public_resolvers(run, layout, percent))
        except Exception as error:
            raise _rolled_back(run, base, steps, changes,
                               f"step {percent} % broke off: {type(error).__name__}: {error}") from error
        steps.append(Step(percent=percent, started_at=started_at, seconds=time.monotonic() - started,
                          weights=shift.weights, changed=any(c.is_change for c in shift.changes),
                          insync=shift.insync, checks=checks))
        failed = [c for c in checks if c.gate and c.ok is False]
        if failed:
            raise _rolled_back(run, base, steps, changes, f"step {percent} %: " + "; ".join(
                f"{c.name} check failed: {c.evidence}" for c in failed))
        logger().info(f"step {percent} %: every check passed")
    return CutoverResult(**base, steps=steps, changes=changes, reason=note,
                         final_weights=weights_of(zone_records(run, layout.zone_id), names))


def _rolled_back(run: Run, base: dict, steps: list[Step], changes: list[Change], reason: str) -> CutoverFailed:
    logger().error(f"DNS cutover failed, rolling back: {reason}")
    try:
        back = rollback_cutover(run)
    except Exception as error:
        result = CutoverResult(**base, steps=steps, changes=changes, rolled_back=False, reason=reason)
        return CutoverFailed(
            f"DNS cutover failed ({reason}) and so did the rollback ({type(error).__name__}: {error}). Run "
            "dns_cutover(rollback=True), or set the golive-previous weights to 100 by hand.", result=result)
    result = CutoverResult(**base, steps=steps, changes=changes + [c for c in back.changes if c.is_change],
                           final_weights=back.weights, rolled_back=True, reason=reason)
    return CutoverFailed(f"DNS cutover failed: {reason}. Rollback: {back.note}; {back.summary}", result=result)


TEARDOWN_ORDER: list[type[Resource]] = [NewTargetHealthCheck]
