"""Plan section 8.2, DNS cutover: move the domain from what served it before the launch to the
environment's CloudFront distribution in weighted steps (10 % -> 50 % -> 100 % by default), proving at
every step that Route 53 holds and answers what was intended and that the new stack is healthy, and
sending every name back to the previous target the moment a check fails.

By concern: tasks/cutover_records.py (the record model, read from the zone, and the rules Route 53
enforces), tasks/cutover_target.py (the distribution and its Route 53 health check),
tasks/cutover_checks.py (what each step must show), golive/probes.py (how a probe reaches the site);
this module writes the steps, walks them and rolls back.

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

In the sandbox every check runs for real against its edge (golive/sandbox/edge.py, dns_server.py): DNS
queries answered from moto's zones, HTTPS probes of its CloudFront listener. moto reports every change
INSYNC at once and every Route 53 health check healthy; the evidence says so.
"""

from __future__ import annotations

import datetime
import time
from collections import defaultdict

from prefect import task
from pydantic import BaseModel

from golive.changes import Action, Change
from golive.probes import Check
from golive.resource import Resource
from golive.retry import AWS_STEP
from golive.run import Run, logger
from tasks.cutover_checks import check_public_resolvers, check_step_health, verify_authoritative
from tasks.cutover_records import (NEW, OURS, PREVIOUS, CutoverError, CutoverFailed, Distribution, Layout, _record_change,
                                   _wait_insync, find_zone, host, read_layout, record_key, show_weights, validate_batch,
                                   weights_of, zone_records)
from tasks.cutover_records import WeightedRecords
from tasks.cutover_target import HealthCheckRecord, NewTargetHealthCheck, ensure_new_target_health_check, locate_new_target

__all__ = ["NEW", "PREVIOUS", "CutoverError", "CutoverFailed", "CutoverResult", "Rollback", "cutover",
           "rollback_cutover", "show_weights"]


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
            checks = [verify_authoritative(run, layout, percent), *check_step_health(run, layout)]
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


# The weighted records before the health check golive-new names (Route 53 refuses HealthCheckInUse).
TEARDOWN_ORDER: list[type[Resource]] = [WeightedRecords, NewTargetHealthCheck]
