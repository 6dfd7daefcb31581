"""Phase 6 (CI/CD): the rendered workflows pass GitHub's workflow schema and zizmor's offline audit, the
scripts pass shellcheck; the example app's test suite passes as test.yml runs it; the OIDC provider and
CI role in the sandbox (trust read back, every call of a release allowed by the role, nothing more than
named actions); a release the circuit breaker rolled back fails; the scripts deploy, roll back and back up
the sandbox end to end; teardown removes the role and the provider."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from flows.backup_db import backup_db
from flows.cicd import cicd
from flows.containers import containers
from flows.data import data
from flows.ecs import ecs
from flows.infrastructure import infrastructure
from flows.release import release
from flows.teardown import teardown
from golive import scaffold
from golive.backups import take_on_demand
from golive.changes import Summary
from golive.config import EnvironmentError as BadEnvironment
from golive.config import load_environment
from golive.naming import resource_name
from golive.sandbox.services import state_dir
from tasks.ci_identity import OidcProvider
from tasks.compute import RolledBack, Service, current_release_tag
from tests.conftest import REPO, cli_env, prepare, write_environment

BIN = Path(sys.executable).parent
APP = REPO / "examples" / "precedentum"
WORKFLOWS = [".github/workflows/test.yml", ".github/workflows/deploy-staging.yml",
             ".github/workflows/deploy-production.yml"]
SCRIPTS = ["scripts/deploy.sh", "scripts/rollback.sh", "scripts/backup-db.sh"]


def _rendered(tmp_path: Path) -> Path:
    for path, content in scaffold.render(load_environment("production"), scaffold.CI_FILES).items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return tmp_path


def _tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _zizmor(directory: Path) -> subprocess.CompletedProcess:
    return _tool("zizmor", "--offline", "--no-progress", "--min-severity", "medium", ".github/workflows", cwd=directory)


def test_workflows_pass_the_schema_and_zizmor_and_the_scripts_pass_shellcheck(tmp_path):
    directory = _rendered(tmp_path)
    schema = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS, cwd=directory)
    assert schema.returncode == 0, schema.stdout + schema.stderr
    audit = _zizmor(directory)
    assert audit.returncode == 0 and "No findings" in audit.stdout, audit.stdout + audit.stderr
    shellcheck = _tool("shellcheck", "--severity=style", *SCRIPTS, cwd=directory)
    assert shellcheck.returncode == 0, shellcheck.stdout + shellcheck.stderr

    workflows = {path: yaml.safe_load((directory / path).read_text()) for path in WORKFLOWS}
    text = "\n".join((directory / path).read_text() for path in WORKFLOWS)
    # Every action pinned to a full commit SHA, its version beside it.
    uses = re.findall(r"uses: (\S+)(.*)", text)
    external = [(ref, rest) for ref, rest in uses if not ref.startswith("./")]
    assert external and all(re.fullmatch(r"[\w-]+/[\w-]+@[0-9a-f]{40}", ref) and re.match(r" # v\d", rest)
                            for ref, rest in external), external
    for name in ("deploy-staging", "deploy-production"):
        workflow = workflows[f".github/workflows/{name}.yml"]
        assert workflow["concurrency"] == {"group": name, "cancel-in-progress": False}
        assert workflow["permissions"] == {}
        for job in workflow["jobs"].values():
            steps = job.get("steps", [])
            if any("configure-aws-credentials" in s.get("uses", "") for s in steps):
                assert job["permissions"]["id-token"] == "write" and job["environment"] in ("staging", "production")
    production = workflows[".github/workflows/deploy-production.yml"]
    deploy = "\n".join(s.get("run", "") for s in production["jobs"]["deploy"]["steps"])
    assert "docker build" not in deploy and "--preserve-digests" in deploy  # promoted, not rebuilt
    assert 'golive release production --aws --image "$TAG"' in deploy
    assert production["jobs"]["deploy"]["environment"] == "production"


def test_zizmor_fails_an_attacker_controlled_expression_in_a_run_line(tmp_path):
    directory = _rendered(tmp_path)
    workflow = directory / ".github/workflows/test.yml"
    workflow.write_text(workflow.read_text().replace(
        "run: python manage.py test --noinput --verbosity 2", 'run: echo "${{ github.event.issue.title }}"'))
    audit = _zizmor(directory)
    assert audit.returncode != 0 and "template-injection" in audit.stdout, audit.stdout + audit.stderr


def test_the_app_repository_holds_what_golive_renders():
    assert {f.path: f.status for f in scaffold.plan_files(load_environment("sandbox"), files=scaffold.CI_FILES)} \
        == {p: "same" for p in WORKFLOWS + SCRIPTS}
    assert all(os.access(APP / s, os.X_OK) for s in SCRIPTS)


def test_ci_repository_is_validated_naming_the_field(tmp_path, aws):
    for bad in ("precedentum", "owner/*", "-owner/app", "owner/app/extra"):
        path = write_environment(tmp_path, edit=lambda t, bad=bad: t.replace(
            'repository = "precedentum/precedentum"', f'repository = "{bad}"'))
        with pytest.raises(BadEnvironment, match=r"ci\.repository: .* is not a GitHub repository; write it as owner/name"):
            load_environment(path)
    missing = write_environment(tmp_path, name="nocirepo", edit=lambda t: t.replace(
        'repository = "precedentum/precedentum"', ""))
    run = prepare(str(missing))
    run.aws.log.clear()
    with pytest.raises(BadEnvironment, match=r"ci\.repository: required by Phase 6"):
        cicd.fn(environment=str(missing), sandbox=True)
    assert run.aws.log.calls == []


def test_the_example_apps_tests_pass_as_test_yml_runs_them(sandbox, empty_database):
    """test.yml's own steps (all but the dependency install), against the sandbox's PostgreSQL and Redis."""
    from golive.sandbox import data_plane

    job = yaml.safe_load((APP / ".github/workflows/test.yml").read_text())["jobs"]["test"]
    local = data_plane.status()
    env = {**os.environ, **job["env"], "DATABASE_URL": local["postgres_dsn"], "REDIS_URL": local["redis_url"],
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    steps = [s for s in job["steps"] if "run" in s and not s["name"].startswith("Install")]
    assert [s["name"] for s in steps] == ["Lint", "Test"]
    for step in steps:
        done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=APP, env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{step['name']}:\n{done.stdout}\n{done.stderr}"
    assert re.search(r"Ran (\d+) tests", done.stderr) and "OK" in done.stderr
    assert int(re.search(r"Ran (\d+) tests", done.stderr)[1]) >= 13


IAM_PREFIX = {"elbv2": "elasticloadbalancing"}
# boto3 operations whose IAM action has another name.
IAM_ACTION = {("s3", "HeadBucket"): "s3:ListBucket"}


def _allowed(policy: dict, action: str) -> bool:
    return any(statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(action, a) for a in statement["Action"])
               for statement in policy["Statement"])


def _script(name: str, *args: str, prefect_api: str) -> subprocess.CompletedProcess:
    env = cli_env(prefect_api, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
                  PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING")
    return subprocess.run(["bash", str(APP / "scripts" / name), *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=180)


def test_phase_6_in_the_sandbox_release_checks_and_scripts(aws, empty_database, prefect_api):
    infrastructure(environment="sandbox", sandbox=True)
    containers(environment="sandbox", sandbox=True)
    data(environment="sandbox", sandbox=True, cases=20)  # a release migrates: the schema and the admin exist
    ecs(environment="sandbox", sandbox=True)
    result = cicd(environment="sandbox", sandbox=True)
    marks = {d.text: d.ok for d in result.deliverables}
    assert marks == {"CI/CD pipeline": True, "Automated deployments": True, "CI role assumed from a GitHub workflow": None,
                     "Secrets in Secrets Manager": True, "Environment documented": True,
                     "Automated deployment scripts": True, "Rollback capability": True}, result.deliverables
    run = prepare()
    iam = run.client("iam")

    # The trust names exactly the file's repository and environment, for GitHub's audience.
    role = iam.get_role(RoleName=resource_name("sandbox", "ci"))["Role"]
    provider = OidcProvider(run, "github-oidc").discover()
    assert role["AssumeRolePolicyDocument"]["Statement"] == [{
        "Effect": "Allow", "Principal": {"Federated": provider.id}, "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                                       "token.actions.githubusercontent.com:sub": "repo:precedentum/precedentum:environment:sandbox"}}}]
    assert provider.state == {"client_ids": ["sts.amazonaws.com"]}
    policy = iam.get_role_policy(RoleName=role["RoleName"], PolicyName="release")["PolicyDocument"]
    # Named actions only: no service-wide wildcard anywhere.
    assert all("*" not in action for s in policy["Statement"] for action in s["Action"])
    passed = next(s for s in policy["Statement"] if s["Action"] == ["iam:PassRole"])
    assert [r.rsplit("/", 1)[1] for r in passed["Resource"]] == ["golive-sandbox-ecs-execution", "golive-sandbox-ecs-task"]

    # Converged: plan shows nothing and a second apply writes nothing.
    assert not Summary.of(cicd(environment="sandbox", sandbox=True, mode="plan").changes).has_changes
    run.aws.log.clear()
    cicd(environment="sandbox", sandbox=True)
    assert [c.operation for c in run.aws.log.writes()] == []

    # A release makes no call the CI role does not allow, and confirms the new revision is PRIMARY.
    run.aws.log.clear()
    released = release(environment="sandbox", image_tag="v2", sandbox=True)
    actions = {IAM_ACTION.get((c.service, c.operation), f"{IAM_PREFIX.get(c.service, c.service)}:{c.operation}")
               for c in run.aws.log.calls if c.operation != "GetCallerIdentity"}
    missing = sorted(a for a in actions if not _allowed(policy, a))
    assert actions and missing == [], " ".join(missing)
    backend = Service(run, "backend")._describe()
    assert [d["taskDefinition"] for d in backend["deployments"] if d["status"] == "PRIMARY"] == [
        released.outputs["services"]["backend"].task_definition]

    # The circuit breaker rolls v3 back (ECS points the service at the old revision again, then it is
    # stable): the release fails and v3 is not recorded as deployed.
    wait_stable = Service.wait_stable

    def rolled_back(self):
        wait_stable(self)
        previous = self.ecs.describe_services(cluster=self.cluster, services=[self.name])["services"][0]
        old = previous["taskDefinition"].rsplit(":", 1)[0] + f":{int(previous['taskDefinition'].rsplit(':', 1)[1]) - 1}"
        self.ecs.update_service(cluster=self.cluster, service=self.name, taskDefinition=old)

    with mock.patch.object(Service, "wait_stable", rolled_back), pytest.raises(RolledBack, match=r"not running.*golive-sandbox-backend runs .*:2 \(COMPLETED"):
        release(environment="sandbox", image_tag="v3", sandbox=True)
    assert current_release_tag(run) == "v2"

    # The scripts, end to end through the CLI: usage, a release, a rollback, a named backup.
    assert _script("deploy.sh", "sandbox", prefect_api=prefect_api).returncode == 2
    deployed = _script("deploy.sh", "sandbox", "v4", prefect_api=prefect_api)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert current_release_tag(run) == "v4"
    rolled = _script("rollback.sh", "sandbox", prefect_api=prefect_api)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    assert current_release_tag(run) == "v2"  # not v3: its revision was retired when ECS rolled it back
    # backup-db.sh refuses a bad name itself; the flow behind `golive backup-db` runs here in process.
    assert _script("backup-db.sh", "sandbox", "Not A Name", prefect_api=prefect_api).returncode == 2
    backup = backup_db(environment="sandbox", name="before-v5", sandbox=True)
    dumps = list((state_dir() / "backups").glob("sandbox-ondemand-before-v5-*.dump"))
    assert [str(d) for d in dumps] == [backup.outputs["backup"]] and dumps[0].stat().st_size > 0
    # On-demand backups older than the retention (database.backup_retention_days) go with the next one.
    month_ago = dumps[0].stat().st_mtime - 30 * 86400
    os.utime(dumps[0], (month_ago, month_ago))
    newer, pruned = take_on_demand(run, "after-v5")
    assert pruned == [str(dumps[0])] and not dumps[0].exists()
    Path(newer.id).unlink()
    # In AWS the same command takes a named, tagged, manual RDS snapshot (here in moto's RDS).
    snapshot, _ = take_on_demand(run, "before-v6", aws_in_sandbox=True)
    rds = run.client("rds")
    described = rds.describe_db_snapshots(DBSnapshotIdentifier=snapshot.id)["DBSnapshots"][0]
    assert snapshot.id.startswith("golive-sandbox-postgres-ondemand-before-v6-") and described["SnapshotType"] == "manual"
    tags = rds.list_tags_for_resource(ResourceName=described["DBSnapshotArn"])["TagList"]
    assert {"Key": "golive:component", "Value": "on-demand-backup"} in tags

    # Teardown removes the CI role and then the provider.
    run.aws.log.clear()
    teardown(environment="sandbox", sandbox=True)
    operations = [c.operation for c in run.aws.log.writes()]
    assert operations.index("DeleteOpenIDConnectProvider") > max(
        i for i, c in enumerate(run.aws.log.writes()) if c.operation == "DeleteRole" and c.params["RoleName"].endswith("-ci"))
    assert OidcProvider(run, "github-oidc").discover() is None
