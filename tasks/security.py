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

from golive.aws_errors import aws_error
from golive import permissions
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


def deploy_trust(run: Run, account_id: str) -> dict:
    """Who may act as the deploy role, as the environment file's [deploy_role] says (desired state: a
    change in the file is applied by the next run, no hand edit): people with MFA; the ECS work pool's
    tasks (the production work pool runs the go-live as this role); the CI's OIDC role once it exists."""
    settings = run.environment.deploy_role
    statements = [{
        "Effect": "Allow", "Action": "sts:AssumeRole",
        "Principal": {"AWS": sorted(settings.people) or f"arn:aws:iam::{account_id}:root"},
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    }]
    if settings.work_pool:
        statements.append(_service_trust("ecs-tasks.amazonaws.com", account_id)["Statement"][0])
    if settings.ci:
        statements.append({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
            "AWS": f"arn:aws:iam::{account_id}:role{role_path(run.env_name)}{resource_name(run.env_name, 'ci')}"}})
    return _document(*statements)


def deploy_policy_parts(run: Run, account_id: str) -> dict[str, dict]:
    """The deploy role's generated policy (golive/permissions.py) in managed policies AWS accepts: a
    managed policy holds 6,144 characters, a role's inline policies 10,240 in all, and the generated
    policy is larger. Statements are packed in order into golive-<env>-deploy-1, -2, ..."""
    document = permissions.deploy_policy(run.env_name, run.environment.region, account_id)
    parts: list[list[dict]] = [[]]
    for statement in document["Statement"]:
        if parts[-1] and _size(parts[-1] + [statement]) > MANAGED_POLICY_LIMIT:
            parts.append([])
        parts[-1].append(statement)
    return {f"deploy-{n}": _document(*statements) for n, statements in enumerate(parts, 1)}


MANAGED_POLICY_LIMIT = 6144 - 200  # characters without whitespace; room for the envelope


def _size(statements: list[dict]) -> int:
    return len(json.dumps(_document(*statements), separators=(",", ":")))


def boundary_policy(run: Run, account_id: str, created: dict[str, dict]) -> dict:
    """The ceiling of every role the runbook creates: the actions their own policies name (each role's
    policy still scopes them to this environment), and nothing else: no IAM writes, no STS."""
    actions = sorted({a for document in created.values() for statement in document["Statement"]
                      if statement["Effect"] == "Allow"
                      for a in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])})
    return _document(_statement(actions))


def role_specs(run: Run, account_id: str) -> dict[str, tuple[str, dict, dict[str, dict]]]:
    """component -> (description, trust policy, inline policies), for the roles the runbook creates."""
    scope = ArnScope(run, account_id)
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
                 policies: dict[str, dict] | None = None, attached: list[str] | None = None,
                 boundary: str | None = None):
        super().__init__(run, component)
        self.description, self.trust, self.policies = description, trust or {}, policies or {}
        self.attached = attached or []
        # Every role the runbook creates carries the boundary, unless it is the deploy role itself (made by
        # an administrator, its rights are its own policies, which it cannot change).
        self.boundary = boundary if boundary is not None else (
            None if component == "deploy" else permissions.boundary_arn(run.env_name, run.account_id()))

    @property
    def iam(self):
        return self.run.client("iam")

    def desired(self) -> dict[str, Any]:
        return {"trust_policy": self.trust, "inline_policies": self.policies, "attached": sorted(self.attached),
                "boundary": self.boundary}

    def discover(self) -> Found | None:
        try:
            role = self.iam.get_role(RoleName=self.name)["Role"]
        except aws_error("NoSuchEntity"):
            return None
        names = self.iam.list_role_policies(RoleName=self.name)["PolicyNames"]
        policies = {n: self.iam.get_role_policy(RoleName=self.name, PolicyName=n)["PolicyDocument"] for n in names}
        attached = [p["PolicyArn"] for p in self.iam.list_attached_role_policies(RoleName=self.name)["AttachedPolicies"]]
        return Found(id=role["Arn"], component=self.component, raw=role,
                     state={"trust_policy": role["AssumeRolePolicyDocument"], "inline_policies": policies,
                            "attached": sorted(attached),
                            "boundary": (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")})

    def create(self) -> str:
        extra = {"PermissionsBoundary": self.boundary} if self.boundary else {}
        arn = self.iam.create_role(
            RoleName=self.name, Path=role_path(self.run.env_name), Description=self.description,
            AssumeRolePolicyDocument=json.dumps(self.trust), Tags=tag_list(self.run.env_name, self.component),
            MaxSessionDuration=3600, **extra,
        )["Role"]["Arn"]
        for name, document in self.policies.items():
            self.iam.put_role_policy(RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(document))
        for policy_arn in self.attached:
            self.iam.attach_role_policy(RoleName=self.name, PolicyArn=policy_arn)
        return arn

    def update(self, found: Found, changes) -> None:
        if "boundary" in changes and self.boundary:
            self.iam.put_role_permissions_boundary(RoleName=self.name, PermissionsBoundary=self.boundary)
        if "trust_policy" in changes:
            self.iam.update_assume_role_policy(RoleName=self.name, PolicyDocument=json.dumps(self.trust))
        if "inline_policies" in changes:
            current = found.state["inline_policies"]
            for name in set(current) - set(self.policies):
                self.iam.delete_role_policy(RoleName=self.name, PolicyName=name)
            for name, document in self.policies.items():
                if current.get(name) != document:
                    self.iam.put_role_policy(RoleName=self.name, PolicyName=name, PolicyDocument=json.dumps(document))
        if "attached" in changes:
            for policy_arn in set(self.attached) - set(found.state["attached"]):
                self.iam.attach_role_policy(RoleName=self.name, PolicyArn=policy_arn)
            for policy_arn in set(found.state["attached"]) - set(self.attached):
                self.iam.detach_role_policy(RoleName=self.name, PolicyArn=policy_arn)

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
                # A run acting as the deploy role leaves that role (it cannot delete itself; an
                # administrator removes it with the boundary and its policies).
                if role["Arn"] == run.target.role_arn:
                    continue
                found.append(Found(id=role["Arn"], state={}, raw=role,
                                   component=role["RoleName"].removeprefix(prefix)))
        return found


class ManagedPolicy(Resource):
    """A customer managed policy under /golive/<env>/: the deploy role's generated policy (in parts) and
    the permissions boundary. Only an administrator changes them: the deploy role may read them only."""

    kind = "iam-policy"

    def __init__(self, run: Run, component: str, document: dict | None = None):
        super().__init__(run, component)
        self.document = document or {}

    @property
    def iam(self):
        return self.run.client("iam")

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.run.account_id()}:policy{role_path(self.run.env_name)}{self.name}"

    def desired(self) -> dict[str, Any]:
        return {"document": self.document}

    def discover(self) -> Found | None:
        try:
            policy = self.iam.get_policy(PolicyArn=self.arn)["Policy"]
        except aws_error("NoSuchEntity"):
            return None
        version = self.iam.get_policy_version(PolicyArn=self.arn, VersionId=policy["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        return Found(id=policy["Arn"], component=self.component, raw=policy,
                     state={"document": json.loads(document) if isinstance(document, str) else document})

    def create(self) -> str:
        return self.iam.create_policy(PolicyName=self.name, Path=role_path(self.run.env_name),
                                      PolicyDocument=json.dumps(self.document),
                                      Tags=tag_list(self.run.env_name, self.component))["Policy"]["Arn"]

    def update(self, found: Found, changes) -> None:
        # IAM keeps five versions: drop the oldest non-default one before adding the new default.
        versions = self.iam.list_policy_versions(PolicyArn=found.id)["Versions"]
        old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        if len(versions) >= 5:
            self.iam.delete_policy_version(PolicyArn=found.id, VersionId=old[0]["VersionId"])
        self.iam.create_policy_version(PolicyArn=found.id, PolicyDocument=json.dumps(self.document), SetAsDefault=True)

    def delete(self, found: Found) -> None:
        for version in self.iam.list_policy_versions(PolicyArn=found.id)["Versions"]:
            if not version["IsDefaultVersion"]:
                self.iam.delete_policy_version(PolicyArn=found.id, VersionId=version["VersionId"])
        self.iam.delete_policy(PolicyArn=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        if run.target.role_arn:
            return []  # acting as the deploy role: its policies and the boundary are an administrator's
        prefix = resource_name(run.env_name, "")
        return [Found(id=p["Arn"], state={}, raw=p, component=p["PolicyName"].removeprefix(prefix))
                for page in run.client("iam").get_paginator("list_policies").paginate(
                    Scope="Local", PathPrefix=role_path(run.env_name))
                for p in page["Policies"]]


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


def created_role_policies(run: Run, account_id: str) -> dict[str, dict]:
    """The inline policies of every role the runbook creates (here and Phase 6's CI role): what the
    boundary must leave them."""
    from tasks.ci_identity import ci_policy

    policies = {f"{c}/{n}": d for c, (_, _, inline) in role_specs(run, account_id).items() for n, d in inline.items()}
    return {**policies, "ci/release": ci_policy(run, account_id)}


@task(**AWS_STEP)
def ensure_iam_roles(run: Run) -> dict[str, RoleRecord]:
    """The permissions boundary, the deploy role (its generated policy in managed parts, its trust from
    the file), and the ECS task-execution and task roles under the boundary."""
    account = run.account_id()
    ensure(ManagedPolicy(run, "boundary", boundary_policy(run, account, created_role_policies(run, account))))
    parts = [ensure(ManagedPolicy(run, name, document)) for name, document in deploy_policy_parts(run, account).items()]
    deploy = ("Runs the go-live runbook for this environment", deploy_trust(run, account), {})
    records = {}
    for component, (description, trust, policies) in {"deploy": deploy, **role_specs(run, account)}.items():
        attached = [ManagedPolicy(run, f"deploy-{n}").arn for n in range(1, len(parts) + 1)] if component == "deploy" else []
        outcome = ensure(IamRole(run, component, description, trust, policies, attached=attached))
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
        documents = permissions.role_documents(iam, record.name)  # inline and customer-managed attached
        attached = [p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=record.name)["AttachedPolicies"]]
        statements = sum(len(d.get("Statement", [])) for d in documents.values())
        shown.append(f"{component}: {statements} statements in {', '.join(documents) or 'no policy'}")
        problems += privilege_problems(component, documents, attached)
    return not problems, "; ".join(problems + shown)


TEARDOWN_ORDER: list[type[Resource]] = [IamRole, ManagedPolicy]
