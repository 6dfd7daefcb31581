"""Least privilege, proven: the go-live steps run as the deploy role with the sandbox's IAM enforcement on;
every operation they make is in the reviewed table; a missing action fails its phase with AccessDenied
naming it; parliament finds nothing above low; docs/permissions.md is what the generator writes."""

from __future__ import annotations

import pytest

from golive import permissions
from golive.aws import forget_clients
from golive.iam_actions import OPERATION_ACTIONS
from tasks.security import ensure_iam_roles, role_specs
from tests.conftest import prepare

ACCOUNT = "123456789012"
# Phases 1-7, a release, a rollback, backup verification, teardown. The launch steps (cutover, post-launch)
# need the app and the edge: their operations are recorded and mapped, not run here as the role.
AS_DEPLOY_ROLE = ["phase-1", "phase-2", "phase-5", "phase-3", "phase-4", "phase-6", "phase-7", "release", "rollback",
                  "backup-verification", "teardown"]


def act_as_deploy_role(monkeypatch) -> str:
    """As an administrator (the sandbox's own keys, as `golive bootstrap` would): the boundary, the deploy
    role and its generated policies. Then every client of this process acts as the deploy role."""
    arn = ensure_iam_roles.fn(prepare())["deploy"].arn
    monkeypatch.setenv("GOLIVE_ASSUME_ROLE_ARN", arn)
    forget_clients()
    return arn


def test_the_go_live_steps_pass_as_the_deploy_role_with_iam_enforced(aws, empty_database, monkeypatch):
    arn = act_as_deploy_role(monkeypatch)
    steps = [s for s in permissions.STEPS if s.name in AS_DEPLOY_ROLE]
    with permissions.enforce_iam(aws):
        made = permissions.record(steps=steps)
        assert prepare().client("sts").get_caller_identity()["Arn"].startswith(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/golive-sandbox-deploy/"), "the steps ran as the deploy role"
    recorded = permissions.recorded()
    for step, operations in made.items():
        assert operations, step
        unknown = sorted(set(operations) - set(OPERATION_ACTIONS))
        assert not unknown, f"{step} made operations golive/iam_actions.py does not map: {unknown}"
        new = sorted(set(operations) - set(recorded[step]))
        assert not new, f"{step} made {new}, not in golive/iam_recorded.py: run `python -m golive.permissions record`"
    # The role is still there (teardown as the role leaves itself to an administrator), and nothing else is.
    iam = prepare().client("iam")
    assert [r["Arn"] for r in iam.list_roles(PathPrefix="/golive/sandbox/")["Roles"]] == [arn]


def test_a_phase_missing_one_action_fails_with_access_denied_naming_it(aws, monkeypatch):
    from flows.infrastructure import infrastructure

    needed = permissions.deploy_actions()
    monkeypatch.setattr(permissions, "deploy_actions", lambda: needed - {"ec2:CreateVpc"})
    act_as_deploy_role(monkeypatch)
    with permissions.enforce_iam(aws), pytest.raises(Exception, match="not authorized to perform: ec2:CreateVpc"):
        infrastructure(environment="sandbox", sandbox=True)
    assert prepare().client("ec2").describe_vpcs(
        Filters=[{"Name": "tag:golive:environment", "Values": ["sandbox"]}])["Vpcs"] == []


def test_every_recorded_operation_maps_to_actions_aws_knows():
    for step, operations in permissions.recorded().items():
        for action in permissions.actions_of(operations):
            permissions.privilege(action)  # raises for an action AWS does not have


def test_generated_policies_lint_clean_and_use_star_only_where_aws_has_no_resource_level_permission():
    document = permissions.deploy_policy("production", "us-east-1", ACCOUNT)
    assert permissions.lint(document) == [], "parliament: findings above low"
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "*" not in actions and not any(a.endswith(":*") for a in actions), statement
        if statement["Resource"] == "*" and "Condition" not in statement and statement["Effect"] == "Allow":
            scoped = [a for a in actions if not permissions.unscoped(a) and a != "ce:GetCostAndUsage"]
            assert not scoped, f"{scoped} accept a resource ARN but are allowed on every resource"


def test_the_roles_the_runbook_creates_lint_clean_under_the_boundary(aws):
    from tasks.security import boundary_policy, created_role_policies

    run = prepare()
    policies = created_role_policies(run, ACCOUNT)
    assert set(policies) >= {"ecs-execution/execution", "ecs-task/app-storage", "ci/release"}
    for name, document in {**policies, "boundary": boundary_policy(run, ACCOUNT, policies)}.items():
        assert permissions.lint(document) == [], name
    assert "deploy" not in role_specs(run, ACCOUNT)


def test_the_deploy_trust_follows_the_environment_file(aws, tmp_path):
    from tasks.security import deploy_trust
    from tests.conftest import write_environment

    person = f"arn:aws:iam::{ACCOUNT}:user/dana"
    path = write_environment(tmp_path, edit=lambda t: t + f'\n[deploy_role]\npeople = ["{person}"]\nci = true\n')
    trust = deploy_trust(prepare(str(path)), ACCOUNT)["Statement"]
    assert trust[0]["Principal"] == {"AWS": [person]}
    assert trust[0]["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
    assert trust[1]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    assert trust[2]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:role/golive/sandbox/golive-sandbox-ci"}


def test_every_operation_the_source_can_call_is_in_the_policy():
    """Drift repair, tag restore, resume, failover and alerts are paths a recorded run does not take: the
    source is read for every client call, and each joins the policy (step "other-code-paths")."""
    recorded = permissions.recorded()
    assert recorded[permissions.OTHER_CODE_PATHS] == permissions.other_code_paths(recorded), \
        "the source calls operations the policy lacks: run `python -m golive.permissions paths`"
    actions = permissions.deploy_actions()
    for operation in ("elbv2.ModifyListener", "ec2.CreateTags", "sns.Publish", "rds.RebootDBInstance",
                      "secretsmanager.RestoreSecret"):
        assert set(permissions.actions_of([operation])) <= actions, operation


def test_docs_permissions_md_is_up_to_date():
    assert permissions.DOCS.read_text() == permissions.render_docs(), \
        "docs/permissions.md is stale: run `python -m golive.permissions docs`"


def test_what_moto_does_with_conditions_measured(aws, monkeypatch):
    """Measured, not assumed (golive/sandbox/iam_emulation.py documents it): with enforcement on, moto
    5.2.5 lets an Allow whose condition cannot hold through, and applies a Deny whose condition does not
    hold. So the sandbox proves actions; the conditions are the linter's to check."""
    import json

    iam = prepare().client("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                                                     "Action": "sts:AssumeRole"}]}
    arn = iam.create_role(RoleName="conditions", Path="/golive/sandbox/", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    never = {"StringEquals": {"aws:RequestTag/golive:environment": "some-other-environment"}}
    iam.put_role_policy(RoleName="conditions", PolicyName="measure", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ec2:CreateVpc", "ec2:CreateTags"], "Resource": "*", "Condition": never},
            {"Effect": "Allow", "Action": "sns:CreateTopic", "Resource": "*"},
            {"Effect": "Deny", "Action": "sns:CreateTopic", "Resource": "*", "Condition": never}]}))
    monkeypatch.setenv("GOLIVE_ASSUME_ROLE_ARN", arn)
    forget_clients()
    run = prepare()
    with permissions.enforce_iam(aws):
        run.client("ec2").create_vpc(CidrBlock="10.9.0.0/16")  # AWS: denied (no such tag on the request)
        with pytest.raises(Exception, match="not authorized to perform: sns:CreateTopic"):
            run.client("sns").create_topic(Name="measure")  # AWS: allowed (the Deny's condition is false)
        with pytest.raises(Exception, match="not authorized to perform: ec2:DescribeVpcs"):
            run.client("ec2").describe_vpcs()  # the action itself is checked


def test_the_deploy_role_cannot_remove_the_boundary_change_it_or_change_itself(aws, monkeypatch):
    """Checked by moto's enforcement where it knows the resource (IAM roles), by action elsewhere."""
    import json

    arn = act_as_deploy_role(monkeypatch)
    iam = prepare().client("iam")
    boundary = permissions.boundary_arn("sandbox", ACCOUNT)
    admin = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    attempts = {
        "iam:DeleteRolePermissionsBoundary": lambda: iam.delete_role_permissions_boundary(RoleName="golive-sandbox-ecs-task"),
        "iam:CreatePolicyVersion": lambda: iam.create_policy_version(PolicyArn=boundary, PolicyDocument=json.dumps(admin),
                                                                     SetAsDefault=True),
        "iam:PutRolePolicy": lambda: iam.put_role_policy(RoleName="golive-sandbox-deploy", PolicyName="more",
                                                         PolicyDocument=json.dumps(admin)),
        "iam:AttachRolePolicy": lambda: iam.attach_role_policy(RoleName="golive-sandbox-deploy",
                                                               PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess"),
    }
    with permissions.enforce_iam(aws):
        for action, attempt in attempts.items():
            with pytest.raises(Exception, match=f"not authorized to perform: {action}"):
                attempt()
    roles = {r["RoleName"]: r for r in [iam.get_role(RoleName=n)["Role"] for n in ("golive-sandbox-ecs-task", "golive-sandbox-deploy")]}
    assert roles["golive-sandbox-ecs-task"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
    assert "PermissionsBoundary" not in roles["golive-sandbox-deploy"] and roles["golive-sandbox-deploy"]["Arn"] == arn
    document = permissions.deploy_policy("sandbox", "us-east-1", ACCOUNT)
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow" and set(statement["Action"]) & set(permissions.BOUNDARY_BOUND):
            assert statement["Condition"] == {"StringEquals": {"iam:PermissionsBoundary": boundary}}, statement
