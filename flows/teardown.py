"""Teardown: delete everything an environment owns, in an order real AWS accepts.

Resources are found by the environment's tags (not from a state file), so a half-finished or killed
run is cleaned up too. Production is refused unless the caller confirms with the word "production".
"""

from __future__ import annotations

from prefect import flow, task

from golive.changes import Change
from golive.report import PhaseResult, publish
from golive.resource import Resource, remove_all
from golive.retry import TEARDOWN_STEP
from golive.run import Mode, Run
from tasks import network, observability, security

# Each chain is deleted in order; chains do not depend on each other, so they run at once.
CHAINS: dict[str, list[type[Resource]]] = {
    "network": network.TEARDOWN_ORDER,
    "account": observability.TEARDOWN_ORDER + security.TEARDOWN_ORDER,
}
KINDS: dict[str, type[Resource]] = {kind.kind: kind for chain in CHAINS.values() for kind in chain}


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
def teardown(
    environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply", confirm: str | None = None
) -> PhaseResult:
    """Tear the environment down in reverse dependency order."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode)
    check_confirmation(run, confirm)

    def chain(kinds: list[type[Resource]]):
        previous = None
        futures = []
        for kind in kinds:
            previous = delete_all.submit(run, kind.kind, wait_for=[previous] if previous else None)
            futures.append(previous)
        return futures

    futures = [future for kinds in CHAINS.values() for future in chain(kinds)]
    changes = [change for future in futures for change in future.result()]
    result = PhaseResult(phase="teardown", environment=run.env_name, mode=run.mode,
                         target=run.target.describe(), changes=changes)
    publish(result)
    return result
