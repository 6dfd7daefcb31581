"""Phase 6 of the deployment plan: the CI/CD pipeline.

6.1 the GitHub Actions workflows rendered into the app repository (test, deploy-staging, deploy-production),
GitHub's OIDC provider and this environment's CI role (tasks/ci_identity.py); 6.2 the secrets and
parameters Phase 1 stored, read back, and docs/app-environment.md checked against the task definition;
6.3 the deploy, rollback and backup scripts. Rendered files follow Phase 2's rule: missing ones are
written, a differing one is shown and kept unless --force.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from golive.config import REPOSITORY_ROOT
from golive.report import PhaseResult, deliverable, finish_phase
from golive.retry import AWS_STEP
from golive.emulator import cannot_observe
from golive.run import Mode, Run
from tasks.app_files import ensure_ci_files
from tasks.ci_identity import ensure_ci_identity, repository_of
from tasks.compute import Service, TaskDefinition, app_secrets, app_settings_names

ENVIRONMENT_DOC = REPOSITORY_ROOT / "docs" / "app-environment.md"
WORKFLOWS = (".github/workflows/test.yml", ".github/workflows/deploy-staging.yml",
             ".github/workflows/deploy-production.yml")
SCRIPTS = ("scripts/deploy.sh", "scripts/rollback.sh", "scripts/backup-db.sh")


@task(**AWS_STEP)
def read_app_environment(run: Run) -> dict:
    """Phase 1's secrets and parameters and Phase 3's backend task definition and service, read back."""
    secrets = app_secrets(run)  # variable -> where the task reads it (None: the secret does not exist)
    definition = TaskDefinition(run, "backend").discover()
    container = definition.raw["containerDefinitions"][0] if definition else {}
    passed = sorted([e["name"] for e in container.get("environment", [])]
                    + [s["name"] for s in container.get("secrets", [])])
    service = Service(run, "backend")
    described = service._describe() or {}
    reported = (described.get("deploymentConfiguration") or {}).get("deploymentCircuitBreaker")
    # moto does not report deploymentConfiguration (tasks/compute.py): there it is what Phase 3 sent.
    breaker = reported or (service._deployment()["deploymentCircuitBreaker"] if described else {})
    return {"secrets": secrets, "parameters": app_settings_names(run), "task_definition": definition.id if definition else None,
            "passed_variables": passed, "circuit_breaker": breaker,
            "circuit_breaker_source": "read from ECS" if reported else "as Phase 3 sent it (not reported here)"}


def documented_variables(passed: list[str], doc: Path = ENVIRONMENT_DOC) -> tuple[list[str], list[str]]:
    """(documented, missing): each variable the task definition passes, looked up as `NAME` in the doc."""
    text = doc.read_text() if doc.is_file() else ""
    documented = [v for v in passed if f"`{v}`" in text]
    return documented, [v for v in passed if v not in documented]


@flow(name="phase-6-cicd")
def cicd(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
         allow_replace: bool = False, force: bool = False) -> PhaseResult:
    """The CI/CD pipeline: workflows and scripts in the app repository, the CI role GitHub assumes."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    repository_of(run)  # ci.repository is required here: refused before any AWS call or file write
    files = ensure_ci_files.submit(run, force)
    identity = ensure_ci_identity.submit(run)
    app_environment = read_app_environment(run)
    outputs = {"files": files.result(), "ci_identity": identity.result(), "app_environment": app_environment}
    return finish_phase(run, "phase-6-cicd", outputs, cicd_deliverables(run, outputs))


def cicd_deliverables(run: Run, outputs: dict) -> list:
    planned = not run.applying
    files = {f.path: f for f in outputs["files"]}
    identity, app_env = outputs["ci_identity"], outputs["app_environment"]

    def present(*paths: str) -> bool:
        return all(files[p].status in ("same", "create", "overwrite", "differs") for p in paths)

    def file_evidence(*paths: str) -> str:
        return ", ".join(f"{p} ({files[p].status})" for p in paths)

    secrets, parameters = app_env["secrets"], app_env["parameters"]
    documented, undocumented = documented_variables(app_env["passed_variables"])
    breaker = app_env["circuit_breaker"]
    limit = cannot_observe(run, "web-identity-trust")
    moto_note = f"; {limit}" if limit else ""
    return [
        deliverable("6.1", "CI/CD pipeline", present(*WORKFLOWS),
                    file_evidence(*WORKFLOWS) + "; OIDC (id-token: write), actions pinned by commit SHA, "
                    "one concurrency group per environment, production promoted by digest"),
        deliverable("6.1", "Automated deployments", bool(identity.id and identity.provider.id) and present(*WORKFLOWS),
                    f"{identity.arn} trusts only sub {identity.subject}, aud sts.amazonaws.com, via "
                    f"{identity.provider.id}; deploys run `golive release ENV --image TAG`, which fails unless the "
                    f"primary deployment is the new revision{moto_note}", planned=planned),
        # Only a workflow run can show GitHub's token being accepted: neither moto nor golive can.
        deliverable("6.1", "CI role assumed from a GitHub workflow", None,
                    "pending: proved by the first deploy-staging run (AssumeRoleWithWebIdentity with GitHub's token)"
                    + moto_note),
        deliverable("6.2", "Secrets in Secrets Manager", all(secrets.values()) and bool(parameters),
                    ", ".join(f"{v}: {arn or 'MISSING'}" for v, arn in secrets.items())
                    + f"; {len(parameters)} parameters under /golive/{run.env_name}/ (stored by Phase 1)",
                    planned=planned),
        deliverable("6.2", "Environment documented",
                    bool(app_env["passed_variables"]) and not undocumented and ENVIRONMENT_DOC.is_file(),
                    f"docs/app-environment.md lists all {len(documented)} variables {app_env['task_definition']} passes"
                    if not undocumented else f"docs/app-environment.md lacks {', '.join(undocumented)}",
                    planned=planned),
        deliverable("6.3", "Automated deployment scripts", present(*SCRIPTS),
                    file_evidence(*SCRIPTS) + "; set -euo pipefail, usage, exit codes 0/1/2/127, shellcheck-clean"),
        deliverable("6.3", "Rollback capability",
                    present("scripts/rollback.sh") and breaker.get("enable") is True and breaker.get("rollback") is True,
                    f"scripts/rollback.sh runs `golive rollback ENV` (previous revision, read back from ECS); "
                    f"the services' circuit breaker {breaker or 'missing'} ({app_env['circuit_breaker_source']}) rolls a failing deployment back, "
                    "and the release then fails", planned=planned),
    ]
