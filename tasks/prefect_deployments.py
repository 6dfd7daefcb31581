"""The environment's deployments from prefect.yaml, registered on the Prefect API when they differ.

Each deployment prefect.yaml declares for the environment (its parameters name it) is found by
`flow/name`, compared field by field with the file (entrypoint, pool, parameters, description, schedules,
job variables, pull steps), and registered with `prefect --no-prompt deploy --name flow/name` only when it
is missing or differs: the same CLI call `golive go-live` makes, so the file stays the one definition.

The pull step changes into GOLIVE_PROJECT_DIR, filled in at registration: the runbook image's directory
(/opt/golive, the Dockerfile's WORKDIR) for a deployment on the ECS pool, this checkout for a local pool.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from prefect import task

from golive.changes import Record
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.work_pool import pool_name, prefect_client

PROJECT = Path(__file__).resolve().parent.parent
PREFECT_YAML = PROJECT / "prefect.yaml"
IMAGE_PROJECT_DIR = "/opt/golive"  # the runbook Dockerfile's WORKDIR
PROJECT_DIR_VARIABLE = "{{ $GOLIVE_PROJECT_DIR }}"


def flow_name(entrypoint: str) -> str:
    """The flow's registered name (its @flow(name=...)), read from the flow itself."""
    path, function = entrypoint.split(":")
    module = path.removesuffix(".py").replace("/", ".")
    return getattr(importlib.import_module(module), function).name


def declared(environment: str, path: Path = PREFECT_YAML) -> list[dict]:
    """The deployments prefect.yaml declares for the environment (parameters.environment names it), with the
    file's pull steps."""
    document = yaml.safe_load(path.read_text())
    return [{**d, "pull": d.get("pull", document.get("pull", []))} for d in document["deployments"]
            if (d.get("parameters") or {}).get("environment") == environment]


def project_dir(run: Run, pool: str) -> str:
    return IMAGE_PROJECT_DIR if pool == pool_name(run.env_name) else str(PROJECT)


class Deployment(Resource):
    """One deployment from prefect.yaml, as the Prefect API holds it."""

    kind = "prefect-deployment"

    def __init__(self, run: Run, spec: dict):
        super().__init__(run, spec["name"])
        self.spec = spec
        self.name = f"{flow_name(spec['entrypoint'])}/{spec['name']}"
        self.pool = spec["work_pool"]["name"]

    def desired(self) -> dict[str, Any]:
        spec, directory = self.spec, project_dir(self.run, self.pool)
        pull = json.loads(json.dumps(spec["pull"]).replace(PROJECT_DIR_VARIABLE, directory))
        return {
            "entrypoint": spec["entrypoint"], "work_pool": self.pool, "parameters": spec.get("parameters") or {},
            "description": spec.get("description"),
            "schedules": [{"cron": s["cron"], "timezone": s.get("timezone")} for s in spec.get("schedules") or []],
            "job_variables": spec["work_pool"].get("job_variables") or {}, "pull_steps": pull,
        }

    def discover(self) -> Found | None:
        from prefect.exceptions import ObjectNotFound

        with prefect_client() as client:
            try:
                found = client.read_deployment_by_name(self.name)
            except ObjectNotFound:
                return None
        return Found(id=str(found.id), component=self.component, state={
            "entrypoint": found.entrypoint, "work_pool": found.work_pool_name, "parameters": found.parameters,
            "description": found.description,
            "schedules": [{"cron": getattr(s.schedule, "cron", None), "timezone": getattr(s.schedule, "timezone", None)}
                          for s in found.schedules],
            "job_variables": found.job_variables or {}, "pull_steps": found.pull_steps or []})

    def _register(self) -> str:
        from prefect.settings import PREFECT_API_URL

        env = {**os.environ, "GOLIVE_PROJECT_DIR": project_dir(self.run, self.pool)}
        if PREFECT_API_URL.value():
            env["PREFECT_API_URL"] = PREFECT_API_URL.value()
        done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name", self.name],
                              cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"registering {self.name} from {PREFECT_YAML} failed:\n"
                               f"{(done.stdout + done.stderr)[-1500:]}")
        found = self.discover()
        if found is None:
            raise RuntimeError(f"`prefect deploy --name {self.name}` succeeded but the API does not list it")
        return found.id

    def create(self) -> str:
        return self._register()

    def update(self, found: Found, changes) -> None:
        self._register()

    def delete(self, found: Found) -> None:
        with prefect_client() as client:
            client.delete_deployment(found.id)


class DeploymentRecord(Record):
    work_pool: str


@task(**AWS_STEP)
def ensure_deployments(run: Run) -> list[DeploymentRecord]:
    """Every deployment prefect.yaml declares for the environment, registered as the file says."""
    records = []
    for spec in declared(run.env_name):
        deployment = Deployment(run, spec)
        outcome = ensure(deployment)
        records.append(DeploymentRecord(name=deployment.name, id=outcome.id, change=outcome.change,
                                        work_pool=deployment.pool))
    return records
