"""The sandbox's ECS runs tasks for real (DESIGN.md, "ECS tasks run"). Installed in the sandbox's moto
process before its server starts, it fixes what moto 5.2.5 gets wrong and executes RunTask:

- RunTask on Fargate no longer crashes (moto sums container-level memory, which Fargate definitions
  leave out, and reads a DNS name its network interfaces lack).
- A task runs the image it names: the image's config and layers, as pushed to the sandbox's ECR
  (golive/sandbox/ecr_emulation.py), are unpacked once per image; the container's entrypoint and command
  (the task's override first) run as a local process in that tree, with the image's environment, the
  definition's `environment`, its `secrets` resolved from the sandbox's Secrets Manager and Parameter
  Store as ECS resolves them (whole secret, a JSON key, a version stage; a parameter by name or ARN),
  and the override's environment. `python` is this machine's Python with the runbook's packages.
- Its output goes to the awslogs log group and stream the definition names (prefix/container/task-id).
- describe_tasks shows PENDING, RUNNING, then STOPPED with the process's exit code and ECS's stop code
  and reason; a secret or image that cannot be had stops it as TaskFailedToStart, as ECS does.
  StopTask stops the process (SIGTERM, then SIGKILL after the stop timeout).
- UpdateService finishes its rollout: one PRIMARY deployment on the new task definition (moto leaves the
  deployments on the old one, so services_stable never saw the release).

It does not emulate: Fargate's resource limits, the container's filesystem isolation and user, the task
role's credentials (tasks reach the sandbox's AWS with its fixed keys), health checks, and the tasks of
services (a service's rollout completes at once; the sandbox's app is the local gunicorn).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from golive.sandbox.services import state_dir

log = logging.getLogger("golive.sandbox.ecs")
STOP_TIMEOUT_SECONDS = 30  # ECS's default stopTimeout for Fargate
_extract_lock = threading.Lock()
# A task's state changes (RUNNING, STOPPED with its exit code) and DescribeTasks' reading of it are atomic to
# each other. moto serialises a task field by field after describe_tasks returns: without a snapshot taken
# under this lock, a caller once saw lastStatus STOPPED with the container's exitCode still unset (read
# before the thread stopped the task) and reported a task that had run as one that never started.
_state_lock = threading.Lock()
_processes: dict[str, subprocess.Popen] = {}


class TaskCannotStart(RuntimeError):
    """What ECS reports as ResourceInitializationError or CannotPullContainerError."""


# ---- the image -------------------------------------------------------------------------------------

@dataclass
class ImageContent:
    root: Path  # the unpacked layers, standing for the image's working directory
    working_dir: str
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def local_path(self, path: str) -> str:
        """An absolute path inside the image, on this machine (only the working directory is unpacked)."""
        prefix = self.working_dir.rstrip("/") + "/"
        return str(self.root / path.removeprefix(prefix)) if path.startswith(prefix) else path


def _parse_image(uri: str) -> tuple[str, str, str, dict]:
    """ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO[:TAG|@DIGEST] -> account, region, repository, image id."""
    host, _, rest = uri.partition("/")
    parts = host.split(".")
    if len(parts) < 4 or parts[1:3] != ["dkr", "ecr"] or not rest:
        raise TaskCannotStart(f"CannotPullContainerError: {uri} is not an image in the sandbox's ECR")
    if "@" in rest:
        repository, digest = rest.split("@", 1)
        return parts[0], parts[3], repository, {"imageDigest": digest}
    repository, _, tag = rest.partition(":")
    return parts[0], parts[3], repository, {"imageTag": tag or "latest"}


def _image(uri: str) -> ImageContent:
    from moto.backends import get_backend

    from golive.sandbox.ecr_emulation import read_blob

    account, region, repository_name, image_id = _parse_image(uri)
    try:
        repository = get_backend("ecr")[account][region]._get_repository(repository_name, None)
    except Exception as error:  # moto's RepositoryNotFoundException
        raise TaskCannotStart(f"CannotPullContainerError: {uri}: {error}") from error
    try:
        image = repository._get_image(image_id.get("imageTag"), image_id.get("imageDigest"))
    except Exception as error:  # moto's ImageNotFoundException
        raise TaskCannotStart(f"CannotPullContainerError: {uri}: not found in repository {repository_name}") from error
    manifest = json.loads(image.image_manifest)
    try:
        config = json.loads(read_blob(manifest["config"]["digest"])).get("config", {})
        layers = [(layer["digest"], read_blob(layer["digest"])) for layer in manifest.get("layers", [])]
    except (FileNotFoundError, KeyError, ValueError) as error:
        raise TaskCannotStart(f"CannotPullContainerError: {uri}: a blob of this image was never pushed to the "
                              f"sandbox's ECR ({error}); publish it again (golive apply ENV --phase containers)") from error
    root = state_dir() / "ecs" / "images" / image.get_image_digest().replace(":", "-")
    with _extract_lock:
        if not root.exists():
            partial = root.with_name(root.name + ".partial")
            import io
            import shutil

            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            for _, data in layers:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                    tar.extractall(partial, filter="data")
            partial.rename(root)
    # The image's PATH names its own virtualenv, which is not unpacked: `python` stays this machine's.
    env = {k: v for k, v in (item.split("=", 1) for item in config.get("Env") or [] if "=" in item) if k != "PATH"}
    return ImageContent(root=root, working_dir=config.get("WorkingDir") or "/", entrypoint=config.get("Entrypoint") or [],
                        cmd=config.get("Cmd") or [], env=env)


# ---- secrets, as ECS resolves them -------------------------------------------------------------------

def resolve_secret(account: str, region: str, value_from: str) -> str:
    """A container secret's value: Secrets Manager (ARN[:json-key[:version-stage[:version-id]]]) or an SSM
    parameter (ARN or name)."""
    from moto.backends import get_backend

    if ":secretsmanager:" in value_from:
        parts = value_from.split(":")
        secret_id = ":".join(parts[:7])
        json_key, stage, version = (parts[7:] + ["", "", ""])[:3]
        backend = get_backend("secretsmanager")[account][region]
        try:
            try:
                value = backend.get_secret_value(secret_id, version or None, stage or None)
            except Exception:
                value = backend.get_secret_value(parts[6], version or None, stage or None)  # a partial ARN
        except Exception as error:
            raise TaskCannotStart(f"ResourceInitializationError: unable to retrieve secret {secret_id} from "
                                  f"Secrets Manager: {error}") from error
        text = value.get("SecretString")
        if not json_key:
            return text
        try:
            return str(json.loads(text)[json_key])
        except (ValueError, KeyError, TypeError) as error:
            raise TaskCannotStart(f"ResourceInitializationError: secret {secret_id} has no JSON key {json_key}") from error
    name = value_from.split(":parameter", 1)[1] if value_from.startswith("arn:") else value_from
    parameter = get_backend("ssm")[account][region].get_parameter(name)
    if parameter is None:
        raise TaskCannotStart(f"ResourceInitializationError: unable to retrieve parameter {name} from SSM: not found")
    return parameter.value


# ---- logs --------------------------------------------------------------------------------------------

class AwsLogs:
    """The awslogs driver: one stream per container, prefix/container/task-id."""

    def __init__(self, account: str, region: str, log_configuration: dict | None, container: str, task_id: str):
        from moto.backends import get_backend

        self.backend = None
        if not log_configuration or log_configuration.get("logDriver") != "awslogs":
            return
        options = log_configuration.get("options", {})
        self.group = options["awslogs-group"]
        prefix = options.get("awslogs-stream-prefix")
        self.stream = f"{prefix}/{container}/{task_id}" if prefix else task_id
        self.backend = get_backend("logs")[account][options.get("awslogs-region", region)]
        try:
            self.backend.create_log_stream(self.group, self.stream)
        except Exception as error:  # the group does not exist: ECS cannot start the task either
            raise TaskCannotStart(f"ResourceInitializationError: failed to create log stream {self.stream} in "
                                  f"log group {self.group}: {error}") from error

    def put(self, line: str) -> None:
        if self.backend is not None:
            self.backend.put_log_events(self.group, self.stream,
                                        [{"timestamp": int(time.time() * 1000), "message": line.rstrip("\n")}])


# ---- the task's life ---------------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(timezone.utc)


def _stopped(task, *, stop_code: str, reason: str, exit_code: int | None) -> None:
    with _state_lock:
        container = task.containers[0]
        container.exitCode = exit_code
        container.last_status = "STOPPED"
        if exit_code is None:
            container.reason = reason
        task.stop_code, task.stopped_reason = stop_code, reason
        task.stopped_at = task.execution_stopped_at = _now()
        task.desired_status = "STOPPED"
        task.last_status = "STOPPED"


def _snapshot(task):
    """A copy of the task and its containers as they are now, for moto to serialise at leisure."""
    frozen = copy.copy(task)
    frozen.containers = [copy.copy(container) for container in task.containers]
    return frozen


def _environment(task, definition: dict, container: dict, override: dict, image: ImageContent) -> dict[str, str]:
    account, region = task._account_id, task.region_name
    base = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(image.root), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        # No telemetry from anything a task runs (the sandbox never sends traffic off this machine).
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false",
        # What the task role's credentials stand for: the sandbox's AWS, with its fixed keys.
        "AWS_REGION": region, "AWS_DEFAULT_REGION": region, "AWS_ACCESS_KEY_ID": "golive-sandbox",
        "AWS_SECRET_ACCESS_KEY": "golive-sandbox", "AWS_ENDPOINT_URL": os.environ.get("GOLIVE_SANDBOX_ENDPOINT", ""),
        "ECS_TASK_ARN": task.task_arn,
    }
    values = {**base, **image.env}
    values.update({e["name"]: e["value"] for e in container.get("environment") or []})
    for secret in container.get("secrets") or []:
        values[secret["name"]] = resolve_secret(account, region, secret["valueFrom"])
    values.update({e["name"]: e["value"] for e in override.get("environment") or []})
    return values


def _argv(container: dict, override: dict, image: ImageContent) -> list[str]:
    entrypoint = container.get("entryPoint") or image.entrypoint
    command = override.get("command") or container.get("command") or image.cmd
    argv = [image.local_path(part) for part in entrypoint[:1]] + list(entrypoint[1:]) + list(command)
    if not argv:
        raise TaskCannotStart("CannotStartContainerError: the image has no entrypoint or command and none was given")
    first = Path(argv[0])
    if first.is_file() and first.read_bytes()[:2] == b"#!":
        argv = ["/bin/sh", *argv] if b"sh" in first.read_bytes().splitlines()[0] else argv
    return argv


def execute(backend, task) -> None:
    """Run one task to the end (a thread per task, in the moto process)."""
    from golive.sandbox.transitions import task_start_delay

    time.sleep(task_start_delay())  # PENDING while Fargate would provision and pull (0 unless asked)
    try:
        definition = backend.describe_task_definition(task.task_definition_arn)
        container = definition.container_definitions[0]
        override = next((o for o in (task.overrides or {}).get("containerOverrides", [])
                         if o.get("name") in (None, container["name"])), {})
        image = _image(container["image"])
        environment = _environment(task, definition, container, override, image)
        logs = AwsLogs(task._account_id, task.region_name, container.get("logConfiguration"), container["name"], task.id)
        argv = _argv(container, override, image)
        cwd = image.local_path(container.get("workingDirectory") or image.working_dir)
        process = subprocess.Popen(argv, cwd=cwd if Path(cwd).is_dir() else image.root, env=environment,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   # In moto's process group: `sandbox down` stops running tasks with it.
                                   text=True, errors="replace")
    except TaskCannotStart as error:
        _stopped(task, stop_code="TaskFailedToStart", reason=str(error), exit_code=None)
        return
    except Exception as error:  # anything else is the emulator's fault: say so rather than hang the caller
        log.exception("sandbox ECS could not start task %s", task.task_arn)
        _stopped(task, stop_code="TaskFailedToStart", reason=f"sandbox ECS error: {error!r}", exit_code=None)
        return
    _processes[task.task_arn] = process
    with _state_lock:
        task.started_at = task.pull_stopped_at = _now()
        task.containers[0].last_status = "RUNNING"
        task.last_status = "RUNNING"
    for line in process.stdout:
        logs.put(line)
    code = process.wait()
    _processes.pop(task.task_arn, None)
    if getattr(task, "_golive_stop_requested", None) is not None:
        _stopped(task, stop_code="UserInitiated", reason=task._golive_stop_requested, exit_code=code)
    else:
        _stopped(task, stop_code="EssentialContainerExited", reason="Essential container in task exited",
                 exit_code=code)


def _stop_process(task_arn: str) -> None:
    process = _processes.get(task_arn)
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)  # the entrypoint execs the command: one process to signal
    try:
        process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()


# ---- installing it into moto -------------------------------------------------------------------------

class _DrivenLifecycle:
    """Put first in a task's classes: its status is what the process does, not moto's invented one."""

    @property
    def last_status(self) -> str:
        return self.__dict__.get("_golive_status", "PROVISIONING")

    @last_status.setter
    def last_status(self, value: str) -> None:
        self.__dict__["_golive_status"] = value


def install() -> None:
    from moto.ec2.models.elastic_network_interfaces import NetworkInterface
    from moto.ecs import models as ecs

    if not hasattr(NetworkInterface, "private_dns_name"):
        # Some interfaces get one assigned by moto (an instance's); the rest are named as EC2 names them.
        NetworkInterface.private_dns_name = property(
            lambda self: self.__dict__.get("_private_dns_name")
            or f"ip-{self.private_ip_address.replace('.', '-')}.ec2.internal",
            lambda self, value: self.__dict__.__setitem__("_private_dns_name", value))

    backend_class = ecs.EC2ContainerServiceBackend
    original_requirements = backend_class._calculate_task_resource_requirements

    def _calculate_task_resource_requirements(task_definition):
        # Fargate sizes the task, not its containers: count a container without memory as 0.
        from types import SimpleNamespace

        containers = [{**c, "memory": c.get("memory") or c.get("memoryReservation") or 0}
                      for c in task_definition.container_definitions]
        return original_requirements(SimpleNamespace(container_definitions=containers))

    backend_class._calculate_task_resource_requirements = staticmethod(_calculate_task_resource_requirements)

    executed_task = type("ExecutedTask", (_DrivenLifecycle, ecs.Task), {})
    original_run_task = backend_class.run_task

    def run_task(self, *args, **kwargs):
        tasks = original_run_task(self, *args, **kwargs)
        for task in tasks:
            task.__class__ = executed_task
            task.last_status = "PENDING"
            task.containers[0].last_status = "PENDING"
            task.containers[0].exitCode = None
            task.created_at = _now()
            threading.Thread(target=execute, args=(self, task), name=f"ecs-task-{task.id}", daemon=True).start()
        return tasks

    backend_class.run_task = run_task

    original_describe_tasks = backend_class.describe_tasks

    def describe_tasks(self, cluster_str, tasks):
        with _state_lock:
            return [_snapshot(task) for task in original_describe_tasks(self, cluster_str, tasks)]

    backend_class.describe_tasks = describe_tasks

    original_stop_task = backend_class.stop_task

    def stop_task(self, cluster_str, task_str, reason):
        task = next((t for tasks in self.tasks.values() for arn, t in tasks.items()
                     if arn == task_str or arn.endswith(f"/{task_str}")), None)
        if task is not None and task.task_arn in _processes:
            task._golive_stop_requested = reason or "Task stopped by user"
            task.desired_status = "STOPPED"
            threading.Thread(target=_stop_process, args=(task.task_arn,), daemon=True).start()
            return task
        return original_stop_task(self, cluster_str, task_str, reason)

    backend_class.stop_task = stop_task

    original_update_service = backend_class.update_service

    def update_service(self, service_properties):
        changes_rollout = bool(service_properties.get("task_definition") or service_properties.get("force_new_deployment"))
        service = original_update_service(self, service_properties)
        if service.deployments and (changes_rollout or service.deployments[0].get("taskDefinition") != service.task_definition):
            from moto.moto_api._internal import mock_random

            now = _now()
            deployment_id = f"ecs-svc/{mock_random.randint(0, 32**12)}"
            service.deployments = [{
                **service.deployments[0], "id": deployment_id, "status": "PRIMARY",
                "taskDefinition": service.task_definition, "desiredCount": service.desired_count,
                "runningCount": service.desired_count, "pendingCount": 0, "failedTasks": 0,
                "rolloutState": "COMPLETED", "rolloutStateReason": f"ECS deployment {deployment_id} completed.",
                "createdAt": now, "updatedAt": now}]
            service.running_count, service.pending_count = service.desired_count, 0
        return service

    backend_class.update_service = update_service
