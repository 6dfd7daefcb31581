"""Plan section 1.1, IAM: the deploy role and the ECS task-execution and task roles, least privilege.

Roles live under the path /golive/<environment>/ so teardown finds exactly this environment's roles.
Policies are inline and scoped to this environment's resource names: nothing here can touch another
environment's secrets, parameters, buckets, logs or images.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from pydantic import BaseModel

from golive.changes import Record
from golive.naming import PREFIX, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.storage import storage_policy


def role_path(environment: str) -> str:
    return f"/{PREFIX}/{environment}/"


def _statement(actions: list[str], resources: list[str] | str = "*", **condition: dict) -> dict:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": sorted(actions),
                                 "Resource": resources if isinstance(resources, str) else sorted(resources)}
    if condition:
        statement["Condition"] = condition
    return statement


def _document(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def _service_trust(service: str, account_id: str) -> dict:
    return _document({
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole",
        # Only this account's ECS may assume it (the confused-deputy guard AWS recommends).
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
    })


class ArnScope:
    """ARN patterns for what one environment owns, shared by the policies below."""

    def __init__(self, run: Run, account_id: str):
        env, region = run.env_name, run.environment.region
        self.prefix = f"{PREFIX}-{env}-"
        self.secrets = f"arn:aws:secretsmanager:{region}:{account_id}:secret:{PREFIX}/{env}/*"
        self.parameters = f"arn:aws:ssm:{region}:{account_id}:parameter/{PREFIX}/{env}/*"
        self.log_groups = f"arn:aws:logs:{region}:{account_id}:log-group:/{PREFIX}/{env}/*"
        self.repositories = f"arn:aws:ecr:{region}:{account_id}:repository/{PREFIX}-{env}-*"
        self.roles = f"arn:aws:iam::{account_id}:role{role_path(env)}*"
        self.own_role = f"arn:aws:iam::{account_id}:role{role_path(env)}{resource_name(env, 'deploy')}"
        self.buckets = [f"arn:aws:s3:::{PREFIX}-{env}-*", f"arn:aws:s3:::{PREFIX}-{env}-*/*"]
        self.database = f"arn:aws:rds:{region}:{account_id}:db:{resource_name(env, 'postgres')}"

    def master_secret_read(self, region: str, account_id: str) -> dict:
        """Reading the RDS-managed master secret of this environment's instance, and no other: RDS names
        it rds!db-<uuid> and tags it with the instance's ARN, so the tag scopes it."""
        return {**_statement(["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                             [f"arn:aws:secretsmanager:{region}:{account_id}:secret:rds!db-*"]),
                "Condition": {"StringEquals": {"secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn": self.database}}}


def role_specs(run: Run, account_id: str) -> dict[str, tuple[str, dict, dict[str, dict]]]:
    """component -> (description, trust policy, inline policies)."""
    scope = ArnScope(run, account_id)
    region_only = {"StringEquals": {"aws:RequestedRegion": sorted({run.environment.region, "us-east-1"})}}
    deploy_trust = _document({
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}, "Action": "sts:AssumeRole",
        # People assume the deploy role with MFA; automation uses the ECS work pool's task role.
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    })
    deploy_policy = _document(
        # The services the runbook manages, in the environment's region (plus us-east-1 for
        # CloudFront certificates and budgets).
        {**_statement([
            "acm:*", "application-autoscaling:*", "cloudfront:*", "cloudwatch:*", "ec2:*", "ecs:*",
            "elasticache:*", "elasticloadbalancing:*", "rds:*", "route53:*", "sns:*", "wafv2:*",
            "config:*", "shield:*", "budgets:*", "cloudtrail:*", "sts:GetCallerIdentity",
        ]), "Condition": region_only},
        # Names this environment owns, and nothing else.
        _statement(["secretsmanager:*"], [scope.secrets]),
        # The owner's login, for Phase 5's role step, integrity checks and backup verification.
        scope.master_secret_read(run.environment.region, account_id),
        _statement(["ssm:GetParameter*", "ssm:PutParameter", "ssm:DeleteParameter*", "ssm:AddTagsToResource",
                    "ssm:ListTagsForResource"], [scope.parameters]),
        _statement(["logs:*"], [scope.log_groups, scope.log_groups.removesuffix("*") + "*:*"]),
        # Phase 7's WAF logs: AWS requires the aws-waf-logs- prefix, outside /golive/<env>/.
        _statement(["logs:*"], [f"arn:aws:logs:*:{account_id}:log-group:aws-waf-logs-{PREFIX}-{run.env_name}-*"]),
        _statement(["ecr:*"], [scope.repositories]),
        _statement(["ecr:GetAuthorizationToken"]),
        _statement(["s3:*"], scope.buckets),
        _statement(["iam:GetRole", "iam:CreateRole", "iam:DeleteRole", "iam:UpdateAssumeRolePolicy",
                    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy", "iam:TagRole", "iam:PassRole"],
                   [scope.roles]),
        _statement(["iam:ListRoles"]),
        # ECS, the load balancer, RDS and ElastiCache create their service-linked roles on first use.
        {**_statement(["iam:CreateServiceLinkedRole"]), "Condition": {"StringEquals": {"iam:AWSServiceName": [
            "ecs.amazonaws.com", "elasticache.amazonaws.com", "elasticloadbalancing.amazonaws.com",
            "rds.amazonaws.com", "ecs.application-autoscaling.amazonaws.com"]}}},
        # The role manages its environment's roles, itself excepted: it cannot widen its own rights.
        {"Effect": "Deny", "Resource": scope.own_role, "Action": sorted([
            "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy", "iam:DetachRolePolicy",
            "iam:UpdateAssumeRolePolicy", "iam:PutRolePermissionsBoundary", "iam:DeleteRolePermissionsBoundary",
            "iam:DeleteRole"])},
    )
    execution_policy = _document(
        _statement(["ecr:GetAuthorizationToken"]),
        _statement(["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                   [scope.repositories]),
        _statement(["logs:CreateLogStream", "logs:PutLogEvents"], [scope.log_groups.removesuffix("*") + "*:*"]),
        _statement(["secretsmanager:GetSecretValue"], [scope.secrets]),
        # One-off tasks (migrations) log in as the database's owner (tasks/compute.py, `manage`).
        scope.master_secret_read(run.environment.region, account_id),
        _statement(["ssm:GetParameters"], [scope.parameters]),
    )
    return {
        "deploy": ("Runs the go-live runbook for this environment", deploy_trust, {"deploy": deploy_policy}),
        "ecs-execution": ("ECS agent: pulls images, writes logs, reads the app's secrets",
                          _service_trust("ecs-tasks.amazonaws.com", account_id), {"execution": execution_policy}),
        # The application's own permissions: its two buckets and nothing else.
        "ecs-task": ("The Precedentum application's role inside its containers",
                     _service_trust("ecs-tasks.amazonaws.com", account_id),
                     {"app-storage": storage_policy(run.env_name, account_id)}),
    }


class IamRole(Resource):
    kind = "iam-role"

    def __init__(self, run: Run, component: str, description: str = "", trust: dict | None = None,
                 policies: dict[str, dict] | None = None):
        super().__init__(run, component)
        self.description, self.trust, self.policies = description, trust or {}, policies or {}

    @property
    def iam(self):
        return self.run.client("iam")

    def desired(self) -> dict[str, Any]:
        return {"trust_policy": self.trust, "inline_policies": self.policies}

    def discover(self) -> Found | None:
        try:
            role = self.iam.get_role(RoleName=self.name)["Role"]
        except self.iam.exceptions.NoSuchEntityException:
            return None
        names = self.iam.list_role_policies(RoleName=self.name)["PolicyNames"]
        policies = {n: self.iam.get_role_policy(RoleName=self.name, PolicyName=n)["PolicyDocument"] for n in names}
        return Found(id=role["Arn"], component=self.component, raw=role,
                     state={"trust_policy": role["AssumeRolePolicyDocument"], "inline_policies": policies})

    def create(self) -> str:
        arn = self.iam.create_role(
            RoleName=self.name, Path=role_path(self.run.env_name), Description=self.description,
            AssumeRolePolicyDocument=json.dumps(self.trust), Tags=tag_list(self.run.env_name, self.component),
            MaxSessionDuration=3600,
        )["Role"]["Arn"]
        for name, document in self.policies.items():
            self.iam.put_role_policy(RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(document))
        return arn

    def update(self, found: Found, changes) -> None:
        if "trust_policy" in changes:
            self.iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(self.trust))
        if "inline_policies" in changes:
            current = found.state["inline_policies"]
            for name in set(current) - set(self.policies):
                self.iam.delete_role_policy(RoleName=self.name, PolicyName=name)
            for name, document in self.policies.items():
                if current.get(name) != document:
                    self.iam.put_role_policy(RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(document))

    def delete(self, found: Found) -> None:
        name = found.raw["RoleName"]
        # AWS refuses to delete a role that still has policies: inline ones deleted, managed ones detached.
        for policy in self.iam.list_role_policies(RoleName=name)["PolicyNames"]:
            self.iam.delete_role_policy(RoleName=name, PolicyName=policy)
        for attached in self.iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
            self.iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
        self.iam.delete_role(RoleName=name)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")
        found = []
        for page in run.client("iam").get_paginator("list_roles").paginate(PathPrefix=role_path(run.env_name)):
            for role in page["Roles"]:
                found.append(Found(id=role["Arn"], state={}, raw=role,
                                   component=role["RoleName"].removeprefix(prefix)))
        return found


class RoleRecord(Record):
    arn: str | None


class Identity(BaseModel):
    account: str
    arn: str


class WrongAccount(RuntimeError):
    pass


@task(**AWS_STEP)
def confirm_account(run: Run) -> Identity:
    """Who we are, and refuse to go on in any account but the one the environment file names."""
    identity = run.client("sts").get_caller_identity()
    pinned = run.environment.aws.account_id
    if pinned and identity["Account"] != pinned:
        raise WrongAccount(
            f"these credentials are for account {identity['Account']} ({identity['Arn']}), but the "
            f"environment file pins aws.account_id = {pinned}. Switch profile or fix the file; nothing was changed."
        )
    return Identity(account=identity["Account"], arn=identity["Arn"])


@task(**AWS_STEP)
def ensure_iam_roles(run: Run) -> dict[str, RoleRecord]:
    """The deploy role and the ECS task-execution and task roles."""
    records = {}
    for component, (description, trust, policies) in role_specs(run, run.account_id()).items():
        outcome = ensure(IamRole(run, component, description, trust, policies))
        records[component] = RoleRecord(
            name=resource_name(run.env_name, component), id=outcome.id, arn=outcome.id, change=outcome.change
        )
    return records


# No role of ours may hold these, whatever its design says.
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "IAMFullAccess")


def privilege_problems(role: str, documents: dict[str, dict], attached: list[str]) -> list[str]:
    """What makes a role more than least privilege, read from what IAM holds: any action on everything
    ("*" or "iam:*"), a service's every action on every resource without a condition (the deploy role's
    service wildcards are bound to the environment's regions), a broad managed policy."""
    problems = [f"{role}: managed policy {name} attached" for name in attached if name in BROAD_MANAGED_POLICIES]
    for policy, document in documents.items():
        for statement in document.get("Statement", []):
            if statement.get("Effect") != "Allow":
                continue
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            resources = statement.get("Resource", [])
            resources = [resources] if isinstance(resources, str) else resources
            if "*" in actions or "iam:*" in actions:
                problems.append(f"{role}/{policy}: allows {'every action' if '*' in actions else 'iam:*'}")
            elif "*" in resources and not statement.get("Condition") and any(a.endswith(":*") for a in actions):
                problems.append(f"{role}/{policy}: {', '.join(a for a in actions if a.endswith(':*'))} on every "
                                "resource without a condition")
    return problems


@task(**AWS_STEP)
def audit_role_privileges(run: Run, roles: dict[str, RoleRecord]) -> tuple[bool | None, str]:
    """'Least privilege', read back from IAM: each role's inline and attached policies (not only that it
    exists), judged by privilege_problems. (ok, evidence); ok None in a plan before the roles exist."""
    iam = run.client("iam")
    problems, shown = [], []
    for component, record in roles.items():
        if not record.arn:
            return None, f"{record.name} does not exist yet"
        names = iam.list_role_policies(RoleName=record.name)["PolicyNames"]
        documents = {n: iam.get_role_policy(RoleName=record.name, PolicyName=n)["PolicyDocument"] for n in names}
        attached = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=record.name)["AttachedPolicies"]]
        statements = sum(len(d.get("Statement", [])) for d in documents.values())
        shown.append(f"{component}: {statements} statements in {', '.join(names) or 'no inline policy'}"
                     + (f", attached {', '.join(attached)}" if attached else ""))
        problems += privilege_problems(component, documents, attached)
    return not problems, "; ".join(problems + shown)


TEARDOWN_ORDER: list[type[Resource]] = [IamRole]
