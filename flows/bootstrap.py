"""`golive bootstrap ENV`: once per environment, what `prefect deployment run go-live/ENV` stands on.

1. Phase 1 (network, roles, data stores): run as it is, converged or not; the pool takes its outputs.
2. The results bucket and the prefect-aws S3Bucket block the deployments persist results to.
3. The runbook's image (this project's Dockerfile) in its own ECR repository, golive-ENV-runbook.
4. The runbook cluster, its log group and the ECS work pool golive-ENV-ecs, whose job variables are the
   cluster, the VPC, the private subnets, the backend security group, the deploy role (task role), the
   execution role, the image and the log group.
5. The environment's deployments from prefect.yaml (and any local pool they name).

Every step keeps the discover/diff/apply contract, the Prefect objects included: plan writes nothing, a
converged re-run writes nothing (to AWS or to Prefect). `bootstrap_teardown` removes what 2-5 made;
Phase 1 goes with `golive destroy ENV`.
"""

from __future__ import annotations

from prefect import flow

from golive.changes import Action, Change, collect_changes
from golive.emulator import cannot_observe
from golive.report import PhaseResult, deliverable, finish_phase, publish
from golive.resource import Resource, remove_all
from golive.run import Mode, Run
from flows.infrastructure import infrastructure
from tasks.compute import LogGroup
from tasks.prefect_deployments import Deployment, declared, ensure_deployments
from tasks.registry import Repository
from tasks.results_storage import ResultsBlock, ResultsBucket, ensure_results_storage
from tasks.runbook_image import RUNBOOK, ensure_runbook_image, ensure_runbook_repository
from tasks.work_pool import (RUNBOOK_CLUSTER, RunbookCluster, PoolInputs, WorkPool, ensure_ecs_work_pool,
                             ensure_runbook_cluster, ensure_runbook_logs, ensure_work_pool, job_variables, pool_name,
                             prefect_client)

@flow(name="bootstrap")
def bootstrap(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
              allow_replace: bool = False) -> PhaseResult:
    """Make what the environment's go-live deployment needs to run on its ECS work pool."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    phase_1 = infrastructure(environment=environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    network, roles = phase_1.outputs["network"], phase_1.outputs["roles"]

    results = ensure_results_storage.submit(run)
    cluster = ensure_runbook_cluster.submit(run)
    logs = ensure_runbook_logs.submit(run)
    repository = ensure_runbook_repository(run)
    image = ensure_runbook_image(run, repository)
    inputs = PoolInputs(
        cluster=cluster.result().id, vpc_id=network.vpc.id,
        private_subnets=[s.id for s in network.private_subnets],
        security_group=network.security_groups["backend"].id,
        task_role_arn=roles["deploy"].arn, execution_role_arn=roles["ecs-execution"].arn,
        image=image.uri if image.id else None, log_group=logs.result().id, region=run.environment.region)
    pools = {pool_name(run.env_name): ensure_ecs_work_pool(run, inputs)}
    for other in sorted({d["work_pool"]["name"] for d in declared(run.env_name)} - set(pools)):
        pools[other] = ensure_work_pool(run, other, "process")  # the sandbox's local pool
    deployments = ensure_deployments(run)

    outputs = {"results": results.result(), "cluster": cluster.result(), "logs": logs.result(),
               "repository": repository, "image": image, "pools": pools, "deployments": deployments}
    outputs["commands"] = start_commands(run, pools, deployments)
    changes = phase_1.changes + collect_changes(outputs)
    return finish_phase(run, "bootstrap", {**outputs, "inputs": inputs}, bootstrap_deliverables(run, inputs, outputs),
                        changes)


def start_commands(run: Run, pools: dict, deployments: list) -> dict[str, str]:
    """The one command that starts a worker for the go-live's pool, and the one that starts the go-live."""
    go_live = next((d for d in deployments if d.name == f"go-live/{run.env_name}"), None)
    if go_live is None:
        return {}
    pool = pools[go_live.work_pool]
    return {"worker": f"prefect worker start --pool {pool.name} --type {pool.type}",
            "go_live": f"prefect deployment run {go_live.name}"}


def read_job_variables(name: str) -> dict:
    """The pool's job variables as the Prefect API holds them (each variable's default in its template)."""
    with prefect_client() as client:
        properties = client.read_work_pool(name).base_job_template["variables"]["properties"]
    return {key: spec.get("default") for key, spec in properties.items()}


def bootstrap_deliverables(run: Run, inputs: PoolInputs, outputs: dict) -> list:
    planned = not run.applying
    pool = pool_name(run.env_name)
    held = read_job_variables(pool) if run.applying else {}
    wanted = job_variables(inputs)
    off = sorted(k for k, v in wanted.items() if held.get(k) != v)
    image, results, deployments = outputs["image"], outputs["results"], outputs["deployments"]
    commands = outputs["commands"]
    cannot_run = cannot_observe(run, "ecs-worker")
    return [
        deliverable("bootstrap", "ECS work pool's job variables are Phase 1's outputs", not planned and not off,
                    f"{pool}: read back from the Prefect API: " + (f"differs in {', '.join(off)}" if off else
                    f"cluster {held.get('cluster')}, subnets {held.get('network_configuration', {}).get('subnets')}, "
                    f"security group {held.get('network_configuration', {}).get('securityGroups')}, task role "
                    f"{held.get('task_role_arn')}, execution role {held.get('execution_role_arn')}, image "
                    f"{held.get('image')}") if not planned else f"{pool}: planned", planned=planned),
        deliverable("bootstrap", "Runbook image in its own repository", bool(image.id),
                    f"{image.uri} via {image.source}; {image.size_note}", planned=planned),
        deliverable("bootstrap", "Results bucket and its S3Bucket block", bool(results.id and results.block.id),
                    f"{results.block_slug} -> s3://{results.bucket}", planned=planned),
        deliverable("bootstrap", "Deployments registered from prefect.yaml", all(d.id for d in deployments),
                    ", ".join(f"{d.name} on {d.work_pool}" for d in deployments), planned=planned),
        deliverable("bootstrap", "A worker can run the go-live", None if cannot_run else bool(commands),
                    (f"{cannot_run}: " if cannot_run else "") + (commands.get("worker") or "no go-live deployment declared"),
                    planned=planned),
    ]


def withdraw(run: Run, resource: Resource) -> list[Change]:
    """Delete (apply) or plan deleting one resource the bootstrap made, found as ensure finds it."""
    found = resource.discover()
    if found is None:
        return []
    change = Change(action=Action.DELETE, kind=resource.kind, name=resource.name, id=found.id)
    if run.applying:
        resource.delete(found)
    run.report(change)
    return [change]


@flow(name="bootstrap-teardown")
def bootstrap_teardown(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
                       confirm: str | None = None) -> PhaseResult:
    """Remove what the bootstrap made, Phase 1 aside: deployments, the ECS pool, the results block and
    bucket, the runbook's repository, cluster and log group. (The sandbox's process pool stays: `golive go-live` uses
    it too. Phase 1 goes with `golive destroy ENV`, which removes the bucket, repository and cluster too.)"""
    from flows.teardown import check_confirmation

    run = Run.prepare(environment, sandbox=sandbox, mode=mode)
    check_confirmation(run, confirm)
    changes: list[Change] = []
    for spec in declared(run.env_name):
        changes += withdraw(run, Deployment(run, spec))
    changes += withdraw(run, WorkPool(run, pool_name(run.env_name), "ecs"))
    changes += withdraw(run, ResultsBlock(run, None))
    changes += remove_all(ResultsBucket, run)
    changes += withdraw(run, Repository(run, RUNBOOK))
    changes += remove_all(RunbookCluster, run)
    changes += withdraw(run, LogGroup(run, RUNBOOK_CLUSTER))
    result = PhaseResult(phase="bootstrap-teardown", environment=run.env_name, mode=run.mode,
                         target=run.target.describe(), changes=changes)
    publish(result)
    return result
