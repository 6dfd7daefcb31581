"""One-off ECS tasks: a command run where the app runs, as plan section 5 says ("run migrations via ECS
task"), in AWS and in the sandbox alike (the sandbox's ECS really runs it: golive/sandbox/ecs_emulation.py).

A one-off task is the backend's image on the `manage` task definition (tasks/compute.py), started with a
command override in the private subnets with the backend's security group, waited for (bounded) until
STOPPED, and judged by its exit code. Its log lines are read back from CloudWatch Logs; a failure names
the command, the task ARN, the exit code or stop reason, and the last lines.

Resuming: each command is started with `startedBy=golive-<purpose>`. Before starting one, a run looks
for a task of the same purpose that is still RUNNING (a run killed while it waited) and waits for that
one instead: two migrations never run at once. RunTask carries a client token, so a request botocore
resends is not carried out twice.
"""

from __future__ import annotations

import time
import uuid

from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.run import Run, logger

TIMEOUT_MINUTES = 30
TAIL_LINES = 12


class OneOffFailed(RuntimeError):
    """The command ran and failed, or its task could not start or finish in time."""


class Placement(BaseModel):
    """Where one-off tasks run: the cluster, the task definition, and the backend's network."""

    cluster: str
    task_definition: str | None  # None in plan mode before Phase 5 registered it
    container: str
    subnets: list[str]
    security_group: str | None


class OneOffTask(BaseModel):
    command: list[str]
    task_arn: str
    exit_code: int | None
    stopped_reason: str
    seconds: float
    output: list[str]  # the task's log lines, in order
    reused: bool = False  # an earlier run's task, still running, was waited for instead of starting another

    @property
    def text(self) -> str:
        return "\n".join(self.output)

    def headline(self) -> str:
        return f"`{' '.join(self.command)}` exit {self.exit_code} in {self.seconds:.1f} s (ECS task {self.task_arn.rsplit('/', 1)[-1]})"


def started_by(purpose: str) -> str:
    return f"golive-{purpose}"[:36]  # ECS's limit for startedBy


def _running_task(run: Run, placement: Placement, purpose: str) -> str | None:
    ecs = run.client("ecs")
    arns = ecs.list_tasks(cluster=placement.cluster, startedBy=started_by(purpose), desiredStatus="RUNNING")["taskArns"]
    return arns[0] if arns else None


def _wait_stopped(run: Run, cluster: str, task_arn: str, command: list[str]) -> dict:
    """Poll until STOPPED: every 6 s against AWS (a Fargate task takes ~30-60 s to start), 0.2 s in the
    sandbox, where the task is a local process."""
    ecs = run.client("ecs")
    delay = run.poll_delay(6)
    deadline = time.monotonic() + TIMEOUT_MINUTES * 60
    while True:
        tasks = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
        if tasks and tasks[0]["lastStatus"] == "STOPPED":
            return tasks[0]
        if time.monotonic() > deadline:
            raise OneOffFailed(f"`{' '.join(command)}` (ECS task {task_arn}) did not stop within {TIMEOUT_MINUTES} "
                               "minutes. It was left running: a re-run waits for it; stop it with "
                               f"`aws ecs stop-task --cluster {cluster} --task {task_arn}` to give up on it.")
        time.sleep(delay)


def task_log(run: Run, task_definition: dict, task_arn: str) -> list[str]:
    """The task's log lines from its awslogs stream (prefix/container/task-id)."""
    container = task_definition["containerDefinitions"][0]
    options = (container.get("logConfiguration") or {}).get("options") or {}
    if not options.get("awslogs-group"):
        return []
    task_id = task_arn.rsplit("/", 1)[-1]
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{container['name']}/{task_id}" if prefix else task_id
    logs = run.client("logs")
    lines: list[str] = []
    token = None
    while True:
        try:
            page = logs.get_log_events(logGroupName=options["awslogs-group"], logStreamName=stream, startFromHead=True,
                                       **({"nextToken": token} if token else {}))
        except aws_error("ResourceNotFoundException"):
            return lines  # the task never started, so it never logged
        lines += [event["message"] for event in page["events"]]
        if not page["events"] or page.get("nextForwardToken") == token:
            return lines
        token = page.get("nextForwardToken")


def run_one_off(run: Run, placement: Placement, command: list[str], purpose: str) -> OneOffTask:
    """Run `command` as a one-off task and wait for it; raise OneOffFailed unless it exits 0."""
    if placement.task_definition is None or placement.security_group is None:
        raise OneOffFailed(f"`{' '.join(command)}` needs the manage task definition and the backend's security group; "
                           "apply Phase 1 and Phase 5's task definition first")
    ecs = run.client("ecs")
    started = time.monotonic()
    task_arn = _running_task(run, placement, purpose)
    reused = task_arn is not None
    if reused:
        logger().info(f"{purpose}: ECS task {task_arn} from an earlier run is still running; waiting for it "
                      "instead of starting another")
    else:
        from tasks.compute import ecs_tags

        response = ecs.run_task(
            cluster=placement.cluster, taskDefinition=placement.task_definition, launchType="FARGATE", count=1,
            startedBy=started_by(purpose), clientToken=uuid.uuid4().hex,
            networkConfiguration={"awsvpcConfiguration": {"subnets": placement.subnets,
                                                          "securityGroups": [placement.security_group],
                                                          "assignPublicIp": "DISABLED"}},
            overrides={"containerOverrides": [{"name": placement.container, "command": command}]},
            tags=ecs_tags(run, purpose), enableECSManagedTags=True)
        if response.get("failures") or not response.get("tasks"):
            raise OneOffFailed(f"`{' '.join(command)}`: ECS did not start the task: {response.get('failures')}")
        task_arn = response["tasks"][0]["taskArn"]
        logger().info(f"{purpose}: started ECS task {task_arn}: {' '.join(command)}")
    stopped = _wait_stopped(run, placement.cluster, task_arn, command)
    definition = ecs.describe_task_definition(taskDefinition=stopped["taskDefinitionArn"])["taskDefinition"]
    container = next((c for c in stopped.get("containers", []) if c.get("name") == placement.container),
                     (stopped.get("containers") or [{}])[0])
    result = OneOffTask(command=command, task_arn=task_arn, exit_code=container.get("exitCode"),
                        stopped_reason=stopped.get("stoppedReason") or container.get("reason") or "",
                        seconds=time.monotonic() - started, output=task_log(run, definition, task_arn), reused=reused)
    if result.exit_code != 0:
        tail = "\n".join(f"    {line}" for line in result.output[-TAIL_LINES:]) or "    (no log lines)"
        how = f"exit {result.exit_code}" if result.exit_code is not None else "it did not start"
        raise OneOffFailed(f"`{' '.join(command)}` failed in ECS task {task_arn}: {how} ({result.stopped_reason}); "
                           f"last log lines:\n{tail}")
    tail = "\n".join(f"    {line}" for line in result.output[-TAIL_LINES // 2:])
    logger().info(f"{purpose}: {result.headline()}" + (f"; last log lines:\n{tail}" if tail else ""))
    return result


def tasks_in(value) -> list[OneOffTask]:
    """Every one-off task recorded anywhere in a phase's outputs (records, lists, dicts, nested)."""
    if isinstance(value, OneOffTask):
        return [value]
    if isinstance(value, BaseModel):
        return [t for name in type(value).model_fields for t in tasks_in(getattr(value, name))]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in tasks_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in tasks_in(item)]
    return []


def describe_tasks_run(value) -> str:
    """For reports: which commands ran as ECS tasks, or that none was needed."""
    ran = tasks_in(value)
    if not ran:
        return ""
    return f"{len(ran)} ran as ECS tasks: " + ", ".join(" ".join(t.command[2:4]) for t in ran)
