"""Plan 8.2's record model: what each of the domain's names holds in Route 53 while traffic moves from
the previous target to the new one, read from the zone before the first write, and the rules Route 53
enforces on it (tasks/cutover.py walks the steps; tasks/cutover_checks.py checks each step).

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
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from prefect import task
from pydantic import BaseModel, ConfigDict

from golive.changes import Action, Change, FieldChange
from golive.resource import Found, Resource, diff
from golive.retry import AWS_STEP
from golive.emulator import cannot_observe
from golive.run import Run
from tasks.dns import HostedZone

NEW, PREVIOUS = "golive-new", "golive-previous"
OURS = (NEW, PREVIOUS)
CLOUDFRONT_ZONE_ID = "Z2FDTNDATAQYW2"  # the hosted zone of every CloudFront alias target
RECORD_TTL = 60  # seconds; short while traffic moves so that a step or a rollback takes effect quickly
INSYNC_WAIT_SECONDS = 600  # Route 53 usually propagates a change to all its servers within 60 s


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
    delay = run.poll_delay(10)
    started = time.monotonic()
    try:
        run.client("route53").get_waiter("resource_record_sets_changed").wait(
            Id=change_id, WaiterConfig={"Delay": delay, "MaxAttempts": max(1, int(INSYNC_WAIT_SECONDS // delay))})
    except Exception as error:  # botocore WaiterError: still PENDING at the bound
        raise CutoverError(f"Route 53 change {change_id} was not INSYNC after {INSYNC_WAIT_SECONDS} s: {error}") from error
    seconds = time.monotonic() - started
    limit = cannot_observe(run, "route53-propagation")
    return f"{change_id} INSYNC after {seconds:.1f} s" + (f" ({limit})" if limit else "")



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



class WeightedRecords(Resource):
    """Teardown of the cutover's records at one name: its golive-new and golive-previous record sets.
    A zone golive made goes whole with the destroy (tasks/dns.py); in a zone it did not make (the domain's
    own, kept), the name is handed back to what served it before: the weighted pair is replaced, in one
    batch, by a simple record with golive-previous's answer, so the name is never without one and no
    record points at the deleted distribution. A name that had no previous answer loses golive-new."""

    kind = "cutover-records"

    def __init__(self, run: Run, component: str):
        super().__init__(run, component)
        self.name = component  # "www.example.com A": the name and type the pair shares

    def desired(self) -> dict[str, Any]:
        return {}

    def discover(self) -> Found | None:
        return next((f for f in self.discover_all(self.run) if f.component == self.component), None)

    def create(self) -> str:
        raise NotImplementedError("the cutover writes these records (tasks/cutover.py)")

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        zone_id = find_zone(run)
        pairs: dict[str, list[dict]] = defaultdict(list)
        for record in zone_records(run, zone_id):
            if record.get("SetIdentifier") in OURS:
                pairs[f"{host(record['Name'])} {record['Type']}"].append(record)
        return [Found(id=key, component=key, state={}, raw={"zone": zone_id, "records": records})
                for key, records in sorted(pairs.items())]

    def delete(self, found: Found) -> str:
        records = found.raw["records"]
        changes = [{"Action": "DELETE", "ResourceRecordSet": r} for r in records]
        previous = next((r for r in records if r["SetIdentifier"] == PREVIOUS), None)
        if previous is not None:
            simple = {k: v for k, v in previous.items() if k not in ("SetIdentifier", "Weight", "HealthCheckId")}
            changes.append({"Action": "CREATE", "ResourceRecordSet": simple})
        self.run.client("route53").change_resource_record_sets(HostedZoneId=found.raw["zone"], ChangeBatch={
            "Comment": f"golive destroy {self.run.env_name}: the cutover's records at {found.id}", "Changes": changes})
        return "the name answers what it answered before the cutover" if previous else "no previous answer to restore"
