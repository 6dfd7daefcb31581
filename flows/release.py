"""Releases: `golive release ENV --image TAG` and `golive rollback ENV`.

A release puts the tag's images in ECR (Phase 2's steps), runs the new image's migrations as a one-off ECS
task (Phase 5's step) and refuses to roll when they fail, registers one new task-definition revision per
service and rolls the services (Phase 3's steps, circuit breaker on), records the tag as the deployed
release (so a later `apply` keeps it), and invalidates CloudFront so no edge serves the old frontend.

Migrations run before the roll, while the previous revision still serves: they must work with both
(expand/contract). Add columns nullable or with defaults, add tables and indexes (concurrently), and
keep what the running code reads; drop or rename only in a later release, once no running revision uses
it (docs/releases.md).

A rollback returns each service to the revision before its current one, deregisters the revision it
leaves (nothing starts it again, and the family's latest ACTIVE revision is the deployed one, so the
next apply registers nothing), records that revision's tag, and invalidates CloudFront.

Killed and started again, both find what they started: a release's revision is found by its content
(the family's newest) and its rollout is waited for, not rolled again; a rollback writes its steps to
Parameter Store before any service moves and a second run finishes those steps instead of stepping back
one revision further.
"""

from __future__ import annotations

import json

from prefect import flow, task
from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.changes import Action, Change, Record
from golive.naming import ENVIRONMENT_TAG, parameter_name, tag_list
from golive.report import PhaseResult, deliverable, publish
from golive.retry import AWS_STEP
from golive.run import Run
from flows.ecs import ecs
from tasks.cdn import Distribution, invalidate_cache
from tasks.app import check_migrations, read_data_state, run_migrations
from tasks.compute import (ROLLBACK_PARAMETER, SERVICES, Service, active_revisions, confirm_primary_deployments,
                           current_release_tag, record_release_tag)
from tasks.registry import ensure_image, ensure_repositories


class NothingToRollBack(RuntimeError):
    pass


def distribution_id(run: Run) -> str | None:
    found = Distribution(run, "cdn").discover()
    return found.id if found else None


@flow(name="release")
def release(environment: str = "sandbox", image_tag: str = "", sandbox: bool | None = None) -> PhaseResult:
    """Ship the images tagged image_tag: new revisions, rolling update, CloudFront invalidation."""
    run = Run.prepare(environment, sandbox=sandbox)
    if not image_tag:
        raise ValueError("image_tag is required: the tag of the images to release, e.g. `--image v1.4.2`")
    previous = current_release_tag(run)
    repositories = ensure_repositories(run)
    images = {s: ensure_image.submit(run, s, repositories[s], image_tag) for s in SERVICES}
    for future in images.values():
        future.result()
    # The new image's migrations, before anything rolls: a failure stops the release here.
    from flows.data import prepare_one_off_tasks

    one_offs = prepare_one_off_tasks(run, image_tag)
    migrations = run_migrations(run, one_offs["placement"], one_offs["image"], read_data_state(run))
    checked = check_migrations(run, one_offs["placement"], one_offs["image"], migrations)  # nothing left unapplied
    deployed = ecs(environment=environment, sandbox=sandbox, image_tag=image_tag)
    # A rolled-back deployment fails the release here, before its tag is recorded as deployed.
    confirm_primary_deployments(run, deployed.outputs["task_definitions"])
    record_release_tag(run, image_tag)
    invalidation = invalidate_cache(run, distribution_id(run), f"release {image_tag}")
    services = deployed.outputs["services"]
    result = PhaseResult(
        phase="release", environment=run.env_name, mode=run.mode, target=run.target.describe(),
        changes=[migrations.change, *deployed.changes, invalidation.change],
        deliverables=[
            deliverable("release", "Migrations of the new image applied before the roll (expand/contract: they "
                        "must work with the revision still serving)", True,
                        f"{migrations.change.note}; migrate --check: {checked.change.note}" if migrations.change.is_change
                        else f"nothing new: {migrations.change.note}"),
            deliverable("release", "New task-definition revisions registered and rolled out",
                        all(s.running == s.desired for s in services.values()),
                        ", ".join(f"{s.name}: revision {s.revision} ({s.image}), {s.running}/{s.desired} running"
                                  for s in services.values())),
            deliverable("release", "CloudFront invalidated",
                        (invalidation.status or "").lower() == "completed" if invalidation.id else None,
                        f"{invalidation.id} {invalidation.status} {invalidation.paths} in {invalidation.seconds} s"
                        if invalidation.id else "pending: no distribution yet (Phase 4 makes it)"),
        ],
        outputs={"previous_tag": previous, "tag": image_tag, "migrations": migrations, "migrations_check": checked,
                 "services": services,
                 "invalidation": invalidation})
    publish(result)
    return result


class RollbackRecord(Record):
    service: str
    from_revision: str
    to_revision: str
    image: str
    confirmed: bool  # the service, read back, runs to_revision


class RollbackStep(BaseModel):
    """One service's part of a rollback, decided before anything moves."""

    from_revision: str
    to_revision: str


# A rollback writes down what it is about to do (ROLLBACK_PARAMETER) before the first service moves, and
# clears it last. A rollback is not idempotent by nature (each one steps back a revision): a run killed
# half-way and started again reads it and finishes the same steps instead of stepping back once more.
def _rollback_parameter(run: Run) -> str:
    return parameter_name(run.env_name, ROLLBACK_PARAMETER)


@task(**AWS_STEP)
def rollback_in_progress(run: Run) -> dict[str, RollbackStep] | None:
    """The steps of a rollback a killed run started and did not finish, else None."""
    ssm = run.client("ssm")
    try:
        value = ssm.get_parameter(Name=_rollback_parameter(run))["Parameter"]["Value"]
    except aws_error("ParameterNotFound"):
        return None
    return {service: RollbackStep(**step) for service, step in json.loads(value).items()}


def plan_service_rollback(run: Run, component: str) -> RollbackStep:
    """The revision before the one the service runs now (the family's ACTIVE ones only)."""
    ecs_client = run.client("ecs")
    service = Service(run, component)
    current = service._describe()
    if current is None:
        raise NothingToRollBack(f"{service.name} does not exist; nothing to roll back")
    current_arn = current["taskDefinition"]
    family, revision = current_arn.rsplit("/", 1)[1].rsplit(":", 1)
    earlier = [arn for arn in active_revisions(ecs_client, family) if int(arn.rsplit(":", 1)[1]) < int(revision)]
    if not earlier:
        raise NothingToRollBack(f"{service.name} runs revision {revision}, the first ACTIVE one of {family}: "
                                "there is no earlier release to return to")
    return RollbackStep(from_revision=current_arn, to_revision=earlier[0])


@task(**AWS_STEP)
def start_rollback(run: Run) -> dict[str, RollbackStep]:
    """Decide every service's step, then write them down (tagged) before any service moves."""
    steps = {component: plan_service_rollback(run, component) for component in SERVICES}
    ssm = run.client("ssm")
    name = _rollback_parameter(run)
    ssm.put_parameter(Name=name, Type="String", Overwrite=True,
                      Value=json.dumps({c: step.model_dump() for c, step in steps.items()}))
    if ENVIRONMENT_TAG not in {t["Key"] for t in ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=name)["TagList"]}:
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=name, Tags=tag_list(run.env_name, "rollback"))
    return steps


@task(**AWS_STEP)
def finish_rollback(run: Run) -> None:
    """The rollback is complete (services moved, tag recorded, CloudFront invalidated): forget its steps."""
    ssm = run.client("ssm")
    try:
        ssm.delete_parameter(Name=_rollback_parameter(run))
    except aws_error("ParameterNotFound"):
        pass


@task(**AWS_STEP)
def roll_back_service(run: Run, component: str, step: RollbackStep) -> RollbackRecord:
    """Point the service at step.to_revision (unless a killed run already did), wait until stable, retire
    step.from_revision. Every part is safe to repeat."""
    ecs_client = run.client("ecs")
    service = Service(run, component)
    current = service._describe()
    if current is None:
        raise NothingToRollBack(f"{service.name} does not exist; nothing to roll back")
    target = step.to_revision
    image = ecs_client.describe_task_definition(taskDefinition=target)["taskDefinition"]["containerDefinitions"][0]["image"]
    if current["taskDefinition"] != target:
        ecs_client.update_service(cluster=service.cluster, service=service.name, taskDefinition=target)
    service.wait_stable()
    confirmed = (service._describe() or {}).get("taskDefinition") == target
    if step.from_revision in active_revisions(ecs_client, step.from_revision.rsplit("/", 1)[1].rsplit(":", 1)[0]):
        ecs_client.deregister_task_definition(taskDefinition=step.from_revision)
    change = Change(action=Action.UPDATE, kind="ecs-service", name=service.name, id=current["serviceArn"],
                    note=f"rolled back from revision {step.from_revision.rsplit(':', 1)[1]} to "
                         f"{target.rsplit(':', 1)[1]} ({image})")
    run.report(change)
    return RollbackRecord(name=service.name, id=current["serviceArn"], change=change, service=component,
                          from_revision=step.from_revision, to_revision=target, image=image, confirmed=confirmed)


@flow(name="rollback")
def rollback(environment: str = "sandbox", sandbox: bool | None = None) -> PhaseResult:
    """Return every service to its previous task-definition revision and invalidate CloudFront. A rollback
    a killed run left unfinished is finished, not repeated."""
    run = Run.prepare(environment, sandbox=sandbox)
    unfinished = rollback_in_progress(run)
    steps = unfinished or start_rollback(run)
    futures = {s: roll_back_service.submit(run, s, steps[s]) for s in SERVICES}
    records = {s: f.result() for s, f in futures.items()}
    tag = records["backend"].image.rsplit(":", 1)[-1]
    record_release_tag(run, tag)
    invalidation = invalidate_cache(run, distribution_id(run), f"rollback to {tag}")
    finish_rollback(run)
    result = PhaseResult(
        phase="rollback", environment=run.env_name, mode=run.mode, target=run.target.describe(),
        changes=[r.change for r in records.values()] + [invalidation.change],
        deliverables=[deliverable("rollback", "Services back on the previous revision (read back from ECS)",
                                  all(r.confirmed for r in records.values()),
                                  "; ".join(f"{r.name}: {r.change.note}" for r in records.values())
                                  + ("; finished the rollback an interrupted run started" if unfinished else ""))],
        outputs={"services": records, "tag": tag, "invalidation": invalidation, "resumed": unfinished is not None})
    publish(result)
    return result
