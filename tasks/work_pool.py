"""The ECS work pool the production deployments run on, and the cluster its flow runs start in.

A pool of type `ecs` (prefect-aws's ECS worker), `golive-ENV-ecs`, whose base job template is the worker's
own default with the job variables' defaults set from Phase 1 and the bootstrap: the runbook cluster, the
VPC and its private subnets, the backend security group (it reaches RDS and Redis), the deploy role as the
task role, the execution role, and the runbook image. A flow run is then a Fargate task in the private
subnets acting as the deploy role.

The pool is a Prefect object, kept by the same contract as the AWS resources: found by name, each job
variable compared with what the environment has, the template rewritten only when one differs. The
runbook cluster is its own (golive-ENV-runbook), not the app's: a go-live run must not share capacity or
fate with the services it deploys. Its container output goes to the log group /golive/ENV/runbook.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from pydantic import BaseModel, ConfigDict

from golive.changes import Record, known_after_apply
from golive.naming import resource_name
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.compute import Cluster, LogGroup

RUNBOOK_CLUSTER = "runbook"


def pool_name(environment: str) -> str:
    """golive-ENV-ecs: one pool per environment, since each has its own VPC, subnets and roles."""
    return resource_name(environment, "ecs")


class RunbookCluster(Cluster):
    """golive-ENV-runbook: the cluster the pool's flow runs start in (tasks/compute.py's cluster, named apart)."""

    kind = "runbook-cluster"

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run, RUNBOOK_CLUSTER).discover()
        return [found] if found else []


class PoolInputs(BaseModel):
    """What the pool's job variables are made of: Phase 1's outputs and the bootstrap's own."""

    model_config = ConfigDict(frozen=True)

    cluster: str | None
    vpc_id: str | None
    private_subnets: list[str | None]
    security_group: str | None
    task_role_arn: str | None
    execution_role_arn: str | None
    image: str | None
    log_group: str | None
    region: str


def job_variables(inputs: PoolInputs) -> dict[str, Any]:
    """The job variables' defaults, from the inputs (an input not made yet is known after apply)."""
    return {
        "cluster": known_after_apply(inputs.cluster),
        "vpc_id": known_after_apply(inputs.vpc_id),
        # No public address: the private subnets leave through the NAT gateway(s).
        "network_configuration": {"subnets": [known_after_apply(s) for s in inputs.private_subnets],
                                  "securityGroups": [known_after_apply(inputs.security_group)],
                                  "assignPublicIp": "DISABLED"},
        "task_role_arn": known_after_apply(inputs.task_role_arn),
        "execution_role_arn": known_after_apply(inputs.execution_role_arn),
        "image": known_after_apply(inputs.image),
        "launch_type": "FARGATE",
        # The container's output to the runbook's own log group, which the execution role may write to;
        # never a group the worker would have to create (prefect-aws's default asks for CreateLogGroup).
        "configure_cloudwatch_logs": True,
        "cloudwatch_logs_options": {"awslogs-group": known_after_apply(inputs.log_group),
                                    "awslogs-region": inputs.region, "awslogs-stream-prefix": RUNBOOK_CLUSTER,
                                    "awslogs-create-group": "false"},
    }


def default_template(pool_type: str) -> dict:
    """The worker type's own default base job template, from the installed worker (prefect-aws for `ecs`),
    as `prefect work-pool get-default-base-job-template --type TYPE` prints it; never fetched."""
    from copy import deepcopy

    import prefect_aws.workers  # noqa: F401  registers the `ecs` worker type
    from prefect.workers.base import BaseWorker

    worker = BaseWorker.get_worker_class_from_type(pool_type)
    if worker is None:
        raise LookupError(f"no installed Prefect worker has type {pool_type!r}")
    return deepcopy(worker.get_default_base_job_template())


def prefect_client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


class WorkPool(Resource):
    """A Prefect work pool of a type, with its job variables' defaults set in its base job template."""

    kind = "work-pool"
    replace_on = frozenset({"type"})  # a pool's type is fixed when it is made

    def __init__(self, run: Run, name: str, pool_type: str, variables: dict[str, Any] | None = None):
        super().__init__(run, name)
        self.name, self.pool_type, self.variables = name, pool_type, variables or {}

    def desired(self) -> dict[str, Any]:
        return {"type": self.pool_type, **self.variables}

    def discover(self) -> Found | None:
        from prefect.exceptions import ObjectNotFound

        with prefect_client() as client:
            try:
                pool = client.read_work_pool(self.name)
            except ObjectNotFound:
                return None
        properties = pool.base_job_template.get("variables", {}).get("properties", {})
        return Found(id=str(pool.id), component=self.component, raw=pool.model_dump(mode="json"), state={
            "type": pool.type, **{k: properties.get(k, {}).get("default") for k in self.variables}})

    def _template(self, template: dict) -> dict:
        properties = template["variables"]["properties"]
        for key, value in self.variables.items():
            properties[key]["default"] = value
        return template

    def create(self) -> str:
        from prefect.client.schemas.actions import WorkPoolCreate

        template = self._template(default_template(self.pool_type))
        with prefect_client() as client:
            pool = client.create_work_pool(WorkPoolCreate(
                name=self.name, type=self.pool_type, base_job_template=template,
                description=f"golive {self.run.env_name}: made by `golive bootstrap {self.run.env_name}`"))
        return str(pool.id)

    def update(self, found: Found, changes) -> None:
        from prefect.client.schemas.actions import WorkPoolUpdate

        with prefect_client() as client:
            client.update_work_pool(self.name, WorkPoolUpdate(base_job_template=self._template(
                found.raw["base_job_template"])))

    def delete(self, found: Found) -> None:
        with prefect_client() as client:
            client.delete_work_pool(self.name)


class PoolRecord(Record):
    type: str
    job_variables: dict[str, Any]


@task(**AWS_STEP)
def ensure_runbook_cluster(run: Run) -> Record:
    """golive-ENV-runbook, the ECS cluster the pool's flow runs start in."""
    outcome = ensure(RunbookCluster(run, RUNBOOK_CLUSTER))
    return Record(name=resource_name(run.env_name, RUNBOOK_CLUSTER), id=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def ensure_runbook_logs(run: Run) -> Record:
    """/golive/ENV/runbook, where the pool's flow runs write their container output (the file's retention)."""
    group = LogGroup(run, RUNBOOK_CLUSTER)
    outcome = ensure(group)
    return Record(name=group.name, id=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def ensure_ecs_work_pool(run: Run, inputs: PoolInputs) -> PoolRecord:
    """The environment's ECS work pool, its job variables set from the inputs."""
    variables = job_variables(inputs)
    outcome = ensure(WorkPool(run, pool_name(run.env_name), "ecs", variables))
    return PoolRecord(name=pool_name(run.env_name), id=outcome.id, change=outcome.change, type="ecs",
                      job_variables=variables)


@task(**AWS_STEP)
def ensure_work_pool(run: Run, name: str, pool_type: str) -> PoolRecord:
    """A pool some of the environment's deployments name, with its type's default template (the sandbox's
    process pool, which `golive go-live` uses too)."""
    outcome = ensure(WorkPool(run, name, pool_type))
    return PoolRecord(name=name, id=outcome.id, change=outcome.change, type=pool_type, job_variables={})


TEARDOWN_ORDER: list[type[Resource]] = [RunbookCluster]
