"""Teardown: delete everything an environment owns, in an order real AWS accepts.

Resources are found by the environment's tags (not from a state file), so a half-finished or killed
run is cleaned up too. Production is refused unless the caller confirms with the word "production".
"""

from __future__ import annotations

from prefect import flow, task

from golive.changes import Change
from golive.generation import forget as forget_generation
from golive.lock import one_at_a_time
from golive.report import PhaseResult, publish
from golive.resource import Resource, remove_all
from golive.retry import TEARDOWN_STEP
from golive.run import Mode, Run
from tasks import (alarms, cache, cdn, ci_identity, cloudtrail, compute, config_rules, cutover, dashboard, database,
                   dns, flow_logs, load_balancer, log_archive, network, observability, registry, scaling_schedule,
                   secrets, security, storage, waf)
from tasks import results_storage, work_pool

# Each chain is deleted in order, after the chains it names (whose resources hold interfaces in its
# subnets and security groups); otherwise chains run at once.
CHAINS: dict[str, tuple[list[type[Resource]], list[str]]] = {
    # The cutover's weighted records first: in a zone golive did not make, each name is handed back to
    # what served it before while the distribution still answers; then the new target's health check.
    "cutover": (cutover.TEARDOWN_ORDER, []),
    # CloudFront next: it holds the certificate and fronts the ALB and the static bucket.
    "cdn": (cdn.TEARDOWN_ORDER, ["cutover"]),
    # Scheduled actions before their scalable targets (moto keeps them after a target goes; AWS does not).
    "scaling_schedule": (scaling_schedule.TEARDOWN_ORDER, []),
    # Services scaled to 0 and gone before the cluster; listeners before target groups.
    "compute": (compute.TEARDOWN_ORDER, ["scaling_schedule"]),
    "load_balancer": (load_balancer.TEARDOWN_ORDER, ["compute", "cdn"]),
    "registry": (registry.TEARDOWN_ORDER, ["compute"]),
    "database": (database.TEARDOWN_ORDER, []),
    "cache": (cache.TEARDOWN_ORDER, []),
    "storage": (storage.TEARDOWN_ORDER, ["cdn"]),
    "dns": (dns.TEARDOWN_ORDER, ["cdn", "load_balancer", "cutover"]),  # the certificate is in use until both are gone
    "secrets": (secrets.TEARDOWN_ORDER, ["database"]),
    # Phase 7. The WAF after CloudFront (a web ACL in use cannot be deleted); the composite alarm before
    # the alarms it names (account); the logs bucket once nothing writes to it any more.
    "monitoring": (dashboard.TEARDOWN_ORDER + alarms.TEARDOWN_ORDER + config_rules.TEARDOWN_ORDER
                   + cloudtrail.TEARDOWN_ORDER, []),
    "waf": (waf.TEARDOWN_ORDER, ["cdn"]),
    "flow_logs": (flow_logs.TEARDOWN_ORDER, []),
    "log_archive": (log_archive.TEARDOWN_ORDER, ["monitoring", "flow_logs", "cdn", "load_balancer"]),
    "network": (network.TEARDOWN_ORDER, ["database", "cache", "compute", "load_balancer", "flow_logs"]),
    # What `golive bootstrap` made in AWS: the results bucket and the runbook cluster (its ECR repository
    # is one of the environment's repositories, above).
    "bootstrap": (results_storage.TEARDOWN_ORDER + work_pool.TEARDOWN_ORDER, []),
    # The CI role is an IamRole under the environment's path; GitHub's OIDC provider goes after it.
    "account": (observability.TEARDOWN_ORDER + security.TEARDOWN_ORDER + ci_identity.TEARDOWN_ORDER, ["monitoring"]),
}
KINDS: dict[str, type[Resource]] = {kind.kind: kind for chain, _ in CHAINS.values() for kind in chain}


class TeardownRefused(RuntimeError):
    pass


def check_confirmation(run: Run, confirm: str | None) -> None:
    """Production, and anything in a real AWS account, goes only with a confirmation naming it.
    Only the sandbox's own emulator state can be thrown away without one."""
    needs_confirmation = run.environment.is_production or not run.target.is_sandbox
    if needs_confirmation and run.applying and confirm != run.env_name:
        where = "the live environment" if run.environment.is_production else "real AWS resources"
        raise TeardownRefused(
            f"refusing to destroy {run.env_name}: this deletes {where}. "
            f"Confirm with --confirm {run.env_name} (Prefect parameter confirm=\"{run.env_name}\")."
        )


@task(**TEARDOWN_STEP)
def delete_all(run: Run, kind: str) -> list[Change]:
    """Delete every resource of one kind the environment owns (retried while dependents settle)."""
    return remove_all(KINDS[kind], run)


@flow(name="teardown")
@one_at_a_time("teardown flow")  # golive.lock: one run per environment at a time
def teardown(
    environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply", confirm: str | None = None
) -> PhaseResult:
    """Tear the environment down in reverse dependency order."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode)
    check_confirmation(run, confirm)
    # Before anything is deleted, even if this run is killed later: the next apply draws a new
    # generation, so no client token of its creates resolves to something deleted here.
    forgotten = forget_generation(run)

    submitted: dict[str, list] = {}
    for name, (kinds, after) in CHAINS.items():  # declared after what they wait for
        previous = [submitted[other][-1] for other in after if submitted[other]]
        futures = []
        for kind in kinds:
            future = delete_all.submit(run, kind.kind, wait_for=previous or None)
            futures.append(future)
            previous = [future]
        submitted[name] = futures
    # Resolve every future: a failed deletion must fail the teardown.
    changes = [change for futures in submitted.values() for future in futures for change in future.result()]
    changes = [forgotten, *changes] if forgotten else changes
    # What a destroy keeps on purpose, named so a person can find (and one day delete) it.
    kept = [s["DBSnapshotIdentifier"] for s in database.final_snapshots(run)]
    result = PhaseResult(phase="teardown", environment=run.env_name, mode=run.mode,
                         target=run.target.describe(), changes=changes, outputs={"final_snapshots": kept})
    publish(result)
    return result
