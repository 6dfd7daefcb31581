"""prefect.yaml registers every deployment it names against a real Prefect server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO, cli_env

PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_every_deployment_registers(prefect_api):
    env = cli_env(prefect_api, GOLIVE_PROJECT_DIR=str(REPO))
    for pool, kind in (("golive-sandbox", "process"), ("golive-production-ecs", "ecs"), ("golive-staging-ecs", "ecs")):
        created = subprocess.run([PREFECT, "work-pool", "create", pool, "--type", kind], cwd=REPO, env=env,
                                 capture_output=True, text=True, timeout=120)
        assert created.returncode == 0 or "already exists" in created.stdout + created.stderr, created.stderr
    done = subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    from prefect.client.orchestration import get_client

    async def names():
        async with get_client() as client:
            deployments = await client.read_deployments()
            flows = {f.id: f.name for f in await client.read_flows()}
            return {f"{flows[d.flow_id]}/{d.name}" for d in deployments}

    declared = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    expected = set()
    for d in declared:
        module = d["entrypoint"].split(":")[0].removesuffix(".py").replace("/", ".")
        function = d["entrypoint"].split(":")[1]
        flow = getattr(__import__(module, fromlist=[function]), function)
        expected.add(f"{flow.name}/{d['name']}")
    assert expected <= asyncio.run(names())
