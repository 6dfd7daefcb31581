"""Off-hours scaling, the plan's "scale down during off-hours": for each ECS service, two Application Auto
Scaling scheduled actions on the service's scalable target (tasks/compute.py ServiceScaling).

At the end of each business day `<service>-off-hours` lowers the minimum to services.schedule.off_hours_tasks;
at its start `<service>-business-hours` restores the file's min_tasks. The maximum stays the file's, so
the target-tracking policies can still answer a surge at night; with the minimum lowered they scale in
to it when the service is idle, which is what `golive cost` counts. The business days' cron fires only
on those days: a Friday evening's scale-down lasts until Monday morning.

Scheduled actions carry no tags: they are found by their deterministic names on the environment's own
scalable targets. moto keeps them when the target is deregistered (AWS deletes them with it), so
teardown deletes them first, itself.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Action, Change, Record
from golive.naming import resource_name
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from golive.cost import ServiceCost, off_hours_tasks
from tasks.compute import SERVICES, ServiceScaling

ACTIONS = ("off-hours", "business-hours")


class ScalingSchedule(Resource):
    """One service's pair of scheduled actions."""

    kind = "scaling-schedule"

    def __init__(self, run: Run, component: str):
        super().__init__(run, component)
        self.name = resource_name(run.env_name, f"{component}-schedule")
        self.resource_id = ServiceScaling(run, component).resource_id

    @property
    def scaling(self):
        return self.run.client("application-autoscaling")

    def action_name(self, action: str) -> str:
        return f"{resource_name(self.run.env_name, self.component)}-{action}"

    def desired(self) -> dict[str, Any]:
        schedule = self.run.environment.services.schedule
        if schedule is None:
            return {}
        service = getattr(self.run.environment.services, self.component)
        days = ",".join(schedule.business_days)
        (start_h, start_m), (end_h, end_m) = schedule.start, schedule.end
        return {
            "off-hours": {"schedule": f"cron({end_m} {end_h} ? * {days} *)", "timezone": schedule.timezone,
                          "min": off_hours_tasks(ServiceCost(cpu=service.cpu, memory=service.memory,
                                                              desired_tasks=service.desired_tasks,
                                                              min_tasks=service.min_tasks), schedule),
                          "max": service.max_tasks},
            "business-hours": {"schedule": f"cron({start_m} {start_h} ? * {days} *)", "timezone": schedule.timezone,
                               "min": service.min_tasks, "max": service.max_tasks},
        }

    def _actions(self) -> list[dict]:
        actions = self.scaling.describe_scheduled_actions(
            ServiceNamespace=ServiceScaling.namespace, ResourceId=self.resource_id,
            ScalableDimension=ServiceScaling.dimension)["ScheduledActions"]
        names = {self.action_name(a): a for a in ACTIONS}
        return [a for a in actions if a["ScheduledActionName"] in names]

    def discover(self) -> Found | None:
        actions = self._actions()
        if not actions:
            return None
        prefix = f"{resource_name(self.run.env_name, self.component)}-"
        state = {
            a["ScheduledActionName"].removeprefix(prefix): {
                "schedule": a["Schedule"], "timezone": a.get("Timezone") or "UTC",
                "min": a.get("ScalableTargetAction", {}).get("MinCapacity"),
                "max": a.get("ScalableTargetAction", {}).get("MaxCapacity")}
            for a in actions}
        return Found(id=self.name, component=self.component, raw={"actions": actions}, state=state)

    def _put(self, name: str, spec: dict) -> None:
        self.scaling.put_scheduled_action(
            ServiceNamespace=ServiceScaling.namespace, ScheduledActionName=self.action_name(name),
            ResourceId=self.resource_id, ScalableDimension=ServiceScaling.dimension, Schedule=spec["schedule"],
            Timezone=spec["timezone"], ScalableTargetAction={"MinCapacity": spec["min"], "MaxCapacity": spec["max"]})

    def create(self) -> str:
        for name, spec in self.desired().items():
            self._put(name, spec)
        return self.name

    def update(self, found: Found, changes) -> None:
        for name in changes:
            self._put(name, self.desired()[name])

    def delete(self, found: Found) -> None:
        for action in found.raw["actions"]:
            self.scaling.delete_scheduled_action(
                ServiceNamespace=ServiceScaling.namespace, ScheduledActionName=action["ScheduledActionName"],
                ResourceId=self.resource_id, ScalableDimension=ServiceScaling.dimension)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return [found for service in SERVICES if (found := cls(run, service).discover())]


@task(**AWS_STEP)
def ensure_scaling_schedule(run: Run, component: str) -> Record:
    """The service's off-hours schedule as the file says; removed when the file no longer has one."""
    schedule = ScalingSchedule(run, component)
    if run.environment.services.schedule is not None:
        outcome = ensure(schedule)
        return Record(name=schedule.name, id=outcome.id, change=outcome.change)
    found = schedule.discover()
    if found is None:
        return Record(name=schedule.name, change=Change(action=Action.NOOP, kind=schedule.kind, name=schedule.name))
    change = Change(action=Action.DELETE, kind=schedule.kind, name=schedule.name, id=found.id,
                    note="services.schedule is no longer in the environment file")
    if run.applying:
        schedule.delete(found)
    run.report(change)
    return Record(name=schedule.name, change=change)


TEARDOWN_ORDER: list[type[Resource]] = [ScalingSchedule]
