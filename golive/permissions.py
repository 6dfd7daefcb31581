"""Least privilege by construction: the deploy role's policy is generated from what the runbook calls.

Three inputs, all checked in:
- golive/iam_recorded.py: the API operations each step of the runbook made (each phase, the launch,
  release, rollback, backup verification, the audit, teardown), recorded from the call log of a sandbox run
  (`python -m golive.permissions record`, which rewrites it and docs/permissions.md);
- golive/iam_actions.py: the reviewed table operation -> IAM actions (AWS's Service Authorization
  Reference: the action of the same name, plus what the call also needs, such as iam:PassRole for ECS
  RunTask or the tagging action of a create that tags);
- AWS's own catalogue of every action's resource types and condition keys, as parliament ships it
  (parliament/iam_definition.json): it says which actions AWS lets be scoped to a resource at all.
From these, each action is scoped in the narrowest way AWS supports (`scope_of`): to this environment's
ARN patterns (names are golive-<env>-...), else to resources tagged golive:environment = <env>
(aws:ResourceTag) or to requests that tag them so (aws:RequestTag), else to its resource type; actions
AWS offers no resource-level permission for go on "*" and are listed in docs/permissions.md.

Proven in tests/test_least_privilege.py: the go-live steps run as the deploy role with the sandbox's IAM
enforcement on (golive/sandbox/iam_emulation.py), every recorded operation is in the table and covered by
the policy, removing an action fails its phase with AccessDenied, and parliament finds nothing above low.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from golive.naming import PREFIX, ENVIRONMENT_TAG

DOCS = Path(__file__).resolve().parent.parent / "docs" / "permissions.md"
RECORDED_MODULE = Path(__file__).resolve().parent / "iam_recorded.py"


@dataclass(frozen=True)
class Step:
    """One thing the deploy role does, as a flow (or function) taking (environment, sandbox, **kwargs)."""

    name: str
    title: str
    path: str  # "module:function"
    kwargs: dict[str, Any] = field(default_factory=dict)
    needs_site: bool = False  # the launch steps probe the app through the sandbox's edge

    def run(self, environment: str) -> Any:
        module, function = self.path.split(":")
        return getattr(importlib.import_module(module), function)(environment=environment, sandbox=True, **self.kwargs)


# In the order a go-live and its life after run them (Phase 5 before 3: golive/phases.py).
STEPS: list[Step] = [
    Step("phase-1", "Phase 1: infrastructure", "flows.infrastructure:infrastructure"),
    Step("phase-2", "Phase 2: containers", "flows.containers:containers"),
    Step("phase-5", "Phase 5: database migration and data", "flows.data:data"),
    Step("phase-3", "Phase 3: ECS", "flows.ecs:ecs"),
    Step("phase-4", "Phase 4: CDN", "flows.cdn:cdn"),
    Step("phase-6", "Phase 6: CI/CD", "flows.cicd:cicd"),
    Step("phase-7", "Phase 7: monitoring and security", "flows.monitoring:monitoring"),
    Step("cutover", "Phase 8.2: DNS cutover", "flows.cutover:dns_cutover", needs_site=True),
    Step("post-launch", "Phase 8.3: post-launch monitoring (with the cost check)",
         "flows.post_launch_monitoring:post_launch_monitoring", {"window_seconds": 1}, needs_site=True),
    Step("release", "Release", "flows.release:release", {"image_tag": "v2"}),
    Step("rollback", "Rollback", "flows.release:rollback"),
    # The RDS path (snapshot, restore to a scratch instance, delete), as against AWS: in the sandbox the
    # default is pg_dump of the local database, which calls no AWS write.
    Step("backup-verification", "Backup verification", "flows.backup_verification:backup_verification",
         {"aws_in_sandbox": True}),
    Step("teardown", "Teardown", "flows.teardown:teardown"),
]


class UnmappedOperation(LookupError):
    pass


def recorded() -> dict[str, list[str]]:
    """step -> the operations ("service.Operation") it made, as last recorded."""
    from golive.iam_recorded import RECORDED

    return RECORDED


def actions_of(operations: list[str] | set[str]) -> set[str]:
    """The IAM actions a set of operations needs; an operation missing from the reviewed table is an
    error that says how to fix it."""
    from golive.iam_actions import OPERATION_ACTIONS

    missing = sorted(set(operations) - set(OPERATION_ACTIONS))
    if missing:
        raise UnmappedOperation(
            f"golive/iam_actions.py has no IAM actions for {', '.join(missing)}: add each with the actions AWS's "
            "Service Authorization Reference lists for it, then run `python -m golive.permissions docs`")
    return {action for operation in operations for action in OPERATION_ACTIONS[operation]}


def step_actions() -> dict[str, list[str]]:
    """step -> the IAM actions it needs (what docs/permissions.md publishes)."""
    return {step: sorted(actions_of(operations)) for step, operations in recorded().items()}


def deploy_actions() -> set[str]:
    """Every IAM action of every step, plus what no sandbox call shows (EXTRA_ACTIONS, each with why),
    less what only an administrator does (ADMINISTRATOR_ONLY: changing the boundary or the deploy role's
    own policies)."""
    from golive.iam_actions import ADMINISTRATOR_ONLY, EXTRA_ACTIONS

    return (set().union(*step_actions().values()) | set(EXTRA_ACTIONS)) - set(ADMINISTRATOR_ONLY)


# ---- AWS's catalogue of actions (parliament's copy of the Service Authorization Reference) ----

@functools.lru_cache(maxsize=1)
def _catalogue() -> dict[str, dict[str, dict]]:
    import parliament

    return {service["prefix"]: {p["privilege"]: p for p in service["privileges"]} for service in parliament.iam_definition}


def privilege(action: str) -> dict:
    prefix, name = action.split(":")
    try:
        return _catalogue()[prefix][name]
    except KeyError:
        raise UnmappedOperation(f"{action} is not an IAM action AWS knows (golive/iam_actions.py)") from None


def resource_types(action: str) -> list[str]:
    """The resource types AWS authorises the action on ("" entries, condition-only, left out)."""
    return [r["resource_type"].rstrip("*") for r in privilege(action)["resource_types"] if r["resource_type"]]


def condition_keys(action: str) -> set[str]:
    return {key for r in privilege(action)["resource_types"] for key in r["condition_keys"]}


def unscoped(action: str) -> bool:
    """AWS offers no resource-level permission for the action: "*" is the only Resource it accepts."""
    return not resource_types(action)


# ---- Scoping ----

@dataclass(frozen=True)
class Scope:
    """How one action is limited: resources, and a condition when the resources cannot say it."""

    resources: tuple[str, ...]
    condition: tuple[tuple[str, str, str], ...] = ()  # (operator, key, value)
    why: str = ""

    def statement(self, actions: list[str]) -> dict:
        statement: dict[str, Any] = {"Effect": "Allow", "Action": sorted(actions),
                                     "Resource": list(self.resources) if len(self.resources) > 1 else self.resources[0]}
        if self.condition:
            condition: dict[str, dict] = {}
            for operator, key, value in self.condition:
                condition.setdefault(operator, {})[key] = list(value) if isinstance(value, tuple) else value
            statement["Condition"] = condition
        return statement


def environment_arns(env: str, region: str, account: str) -> dict[str, list[str]]:
    """IAM prefix -> ARN patterns of what this environment owns, by its deterministic names."""
    name = f"{PREFIX}-{env}-*"
    regional = lambda service: f"arn:aws:{service}:{region}:{account}"  # noqa: E731
    return {
        "secretsmanager": [f"{regional('secretsmanager')}:secret:{PREFIX}/{env}/*"],
        "ssm": [f"{regional('ssm')}:parameter/{PREFIX}/{env}/*"],
        "logs": [f"{regional('logs')}:log-group:/{PREFIX}/{env}/*", f"{regional('logs')}:log-group:/{PREFIX}/{env}/*:*",
                 # WAF logs: AWS requires the aws-waf-logs- prefix; CloudFront's WAF logs live in us-east-1.
                 f"arn:aws:logs:*:{account}:log-group:aws-waf-logs-{name}"],
        "ecr": [f"{regional('ecr')}:repository/{name}"],
        "s3": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
        "iam": [f"arn:aws:iam::{account}:role/{PREFIX}/{env}/*",
                f"arn:aws:iam::{account}:oidc-provider/token.actions.githubusercontent.com"],
        # The default option group (og:default:postgres-NN): an instance made or restored is put in it.
        "rds": [f"{regional('rds')}:{kind}:{name}" for kind in ("db", "subgrp", "pg", "snapshot")] + [
            f"{regional('rds')}:og:default:*"],
        "elasticache": [f"{regional('elasticache')}:{kind}:{name}" for kind in
                        ("replicationgroup", "cluster", "subnetgroup", "parametergroup")],
        "ecs": [f"{regional('ecs')}:cluster/{name}", f"{regional('ecs')}:service/{name}/*",
                f"{regional('ecs')}:task-definition/{name}:*", f"{regional('ecs')}:task/{name}/*"],
        "elasticloadbalancing": [f"{regional('elasticloadbalancing')}:{kind}" for kind in (
            f"loadbalancer/app/{name}/*", f"targetgroup/{name}/*", f"listener/app/{name}/*/*",
            f"listener-rule/app/{name}/*/*/*")],
        "sns": [f"{regional('sns')}:{name}"],
        "cloudwatch": [f"arn:aws:cloudwatch:*:{account}:alarm:{name}", f"arn:aws:cloudwatch::{account}:dashboard/{name}"],
        "wafv2": [f"arn:aws:wafv2:*:{account}:{scope}/webacl/{name}/*" for scope in ("regional", "global")],
        "cloudtrail": [f"arn:aws:cloudtrail:*:{account}:trail/{name}"],
        "budgets": [f"arn:aws:budgets::{account}:budget/{name}"],
    }


@functools.lru_cache(maxsize=None)
def _types_named(pattern: str) -> frozenset[str]:
    """The resource types (of the pattern's own service) an ARN pattern can name."""
    from parliament import get_resource_type_matches_from_arn

    prefix = pattern.split(":")[2]
    return frozenset(m["resource"]["resource"] for m in get_resource_type_matches_from_arn(pattern)
                     if m["service"]["prefix"] == prefix)


def _matching(action: str, patterns: list[str]) -> list[str]:
    """The patterns that name a resource type the action is authorised on."""
    wanted = set(resource_types(action))
    return [p for p in patterns if wanted & _types_named(p)]


def boundary_arn(env: str, account: str) -> str:
    """The permissions boundary every role the runbook creates carries (tasks/security.py)."""
    return f"arn:aws:iam::{account}:policy/{PREFIX}/{env}/{PREFIX}-{env}-boundary"


# Role changes the deploy role may make only to roles that carry the boundary: so no role it makes or edits
# can hold more than the boundary allows, whatever policy it puts on it.
BOUNDARY_BOUND = ("iam:CreateRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:AttachRolePolicy",
                  "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary")

# Services whose service-linked roles the runbook's first use creates in a new account.
SERVICE_LINKED = ["ecs.amazonaws.com", "elasticache.amazonaws.com", "elasticloadbalancing.amazonaws.com",
                  "rds.amazonaws.com", "ecs.application-autoscaling.amazonaws.com", "config.amazonaws.com"]


def _override(action: str, env: str, region: str, account: str) -> Scope | None:
    """Where the catalogue's general rule is wrong for how the runbook uses an action."""
    if action in BOUNDARY_BOUND:
        return Scope((f"arn:aws:iam::{account}:role/{PREFIX}/{env}/*",),
                     (("StringEquals", "iam:PermissionsBoundary", boundary_arn(env, account)),),
                     why="this environment's names")
    if action == "iam:CreateServiceLinkedRole":
        return Scope((f"arn:aws:iam::{account}:role/aws-service-role/*",),
                     (("StringEquals", "iam:AWSServiceName", tuple(SERVICE_LINKED)),), why="this environment's names")
    if action == "iam:PassRole":  # the ECS tasks' roles to ECS; Config's service-linked role to Config
        return Scope((f"arn:aws:iam::{account}:role/{PREFIX}/{env}/*",
                      f"arn:aws:iam::{account}:role/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig"),
                     (("StringEquals", "iam:PassedToService", ("config.amazonaws.com", "ecs-tasks.amazonaws.com")),),
                     why="this environment's names")
    if action == "ce:GetCostAndUsage":  # billing views are account-wide; the runbook asks for the account's cost
        return Scope(("*",), why="no resource-level permission")
    if action == "kms:DescribeKey":  # RDS's managed master secret, with Secrets Manager's default key
        return Scope((f"arn:aws:kms:{region}:{account}:key/*",),
                     (("StringEquals", "kms:ViaService", f"secretsmanager.{region}.amazonaws.com"),),
                     why="this environment's names")
    return None


def scope_of(action: str, env: str, region: str, account: str) -> Scope:
    """The narrowest Resource/Condition AWS supports for this action in this environment."""
    override = _override(action, env, region, account)
    if override:
        return override
    if unscoped(action):
        return Scope(("*",), why="no resource-level permission")
    prefix = action.split(":")[0]
    named = _matching(action, environment_arns(env, region, account).get(prefix, []))
    if named:
        return Scope(tuple(named), why="this environment's names")
    keys = condition_keys(action)
    tag = f"{ENVIRONMENT_TAG}"
    if "aws:RequestTag/${TagKey}" in keys and _creates(action):
        return Scope(("*",), (("StringEquals", f"aws:RequestTag/{tag}", env),), why="created with this environment's tag")
    if "aws:ResourceTag/${TagKey}" in keys:
        return Scope(("*",), (("StringEquals", f"aws:ResourceTag/{tag}", env),), why="tagged as this environment's")
    # A resource type with generated ids and no tag condition (Route 53 zones, CloudFront distributions):
    # limited to that type in this account.
    return Scope(tuple(sorted({_type_wildcard(action, t, region, account) for t in resource_types(action)})),
                 why="resource type only: generated ids, no tag condition in AWS")


def _creates(action: str) -> bool:
    name = action.split(":")[1]
    return name.startswith(("Create", "Allocate", "Request", "Register", "Run", "Put", "Import"))


def _type_wildcard(action: str, resource_type: str, region: str, account: str) -> str:
    """The catalogue's ARN format of a resource type, in this account and region, any id."""
    import parliament

    prefix = action.split(":")[0]
    for service in parliament.iam_definition:
        for resource in service["resources"] if service["prefix"] == prefix else []:
            if resource["resource"] == resource_type:
                arn = resource["arn"].replace("${Partition}", "aws").replace("${Region}", region)
                return re.sub(r"\$\{[^}]+\}", "*", arn.replace("${Account}", account))
    return "*"


def scoped_statements(actions: set[str], env: str, region: str, account: str) -> list[dict]:
    """Allow statements for the actions, one per distinct scope, in a stable order."""
    by_scope: dict[Scope, list[str]] = {}
    for action in sorted(actions):
        by_scope.setdefault(scope_of(action, env, region, account), []).append(action)
    return [scope.statement(grouped) for scope, grouped in sorted(by_scope.items(), key=lambda kv: kv[1][0])]


def deploy_policy(env: str, region: str, account: str) -> dict:
    """The deploy role's policy (see _deploy_policy), computed once per code version and set of actions, and
    kept on disk."""
    actions = deploy_actions()
    return _kept(("deploy-policy", env, region, account, *sorted(actions)),
                 lambda: _deploy_policy(actions, env, region, account))


def _kept(key: tuple[str, ...], compute) -> Any:
    """A JSON value that depends only on golive's code, parliament's catalogue and `key` (which holds the
    inputs that are data, such as the actions), kept across processes in <GOLIVE_STATE_DIR>/cache. The deploy
    policy costs about 0.5 s of CPU (importing parliament's 10 MB catalogue, scoping every action) in every
    process that runs Phase 1 (a plan, an apply, each go-live), for the same answer each time. The file's
    name is a hash of everything it is computed from (any edit to golive/ or another parliament computes it
    again); an unreadable or unwritable cache only means computing it. The state directory is trusted as the
    code is: whoever can write there can change the deploy role's policy, as whoever can edit golive/ can."""
    import hashlib
    import os
    from importlib.metadata import version

    digest = hashlib.sha256(json.dumps([version("parliament"), _code_digest(), *key]).encode())
    from golive.sandbox.services import state_dir

    path = state_dir().parent / "cache" / f"{key[0]}-{digest.hexdigest()[:20]}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(value))
        partial.replace(path)  # whole or not at all, whoever else writes it at the same moment
    except (OSError, TypeError, ValueError):  # not writable, or not JSON: computed again next time
        pass
    return value


@functools.lru_cache(maxsize=1)
def _code_digest() -> str:
    """A hash of golive's own source, read once per process (the audit asks for findings per document)."""
    import hashlib

    digest = hashlib.sha256()
    for source in sorted(Path(__file__).resolve().parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _deploy_policy(actions: set[str], env: str, region: str, account: str) -> dict:
    """The deploy role's policy: every action the runbook needs, scoped; the RDS-managed master secret
    of this environment's instance; and no way to change its own rights or the boundary."""
    own_role = f"arn:aws:iam::{account}:role/{PREFIX}/{env}/{PREFIX}-{env}-deploy"
    master_secrets = f"arn:aws:secretsmanager:{region}:{account}:secret:rds!db-*"
    return {"Version": "2012-10-17", "Statement": [
        *scoped_statements(actions, env, region, account),
        # RDS names the master secret rds!db-<uuid> (outside golive/<env>/) and tags it with the instance's
        # ARN: made through CreateDBInstance, read (Phase 5, integrity checks, backup verification) only
        # for this environment's instance.
        {"Effect": "Allow", "Action": ["secretsmanager:CreateSecret", "secretsmanager:TagResource"],
         "Resource": master_secrets},
        {"Effect": "Allow", "Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
         "Resource": master_secrets, "Condition": {"StringEquals": {
             "secretsmanager:ResourceTag/aws:rds:primaryDBInstanceArn":
                 f"arn:aws:rds:{region}:{account}:db:{PREFIX}-{env}-postgres"}}},
        # The boundary and its own policy parts are read (Phase 1 checks them), never written: only an
        # administrator changes them (ADMINISTRATOR_ONLY in golive/iam_actions.py).
        {"Effect": "Allow", "Action": ["iam:GetPolicy", "iam:GetPolicyVersion"],
         "Resource": f"arn:aws:iam::{account}:policy/{PREFIX}/{env}/*"},
        # Itself excepted from the roles it manages: it cannot widen its own rights or drop itself.
        {"Effect": "Deny", "Resource": own_role, "Action": sorted([
            "iam:AttachRolePolicy", "iam:DeleteRole", "iam:DeleteRolePermissionsBoundary", "iam:DeleteRolePolicy",
            "iam:DetachRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy", "iam:TagRole",
            "iam:UntagRole", "iam:UpdateAssumeRolePolicy", "iam:UpdateRole"])},
    ]}


def role_documents(iam, role_name: str) -> dict[str, dict]:
    """A role's inline and attached customer-managed policies, by name, as IAM holds them (the deploy
    role's generated policy is in managed parts)."""
    documents = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        documents[name] = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
    for attached in iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]:
        if ":aws:policy/" in attached["PolicyArn"]:
            continue  # AWS-managed: judged by name (tasks/security.py BROAD_MANAGED_POLICIES)
        version = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]["DefaultVersionId"]
        documents[attached["PolicyName"]] = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=version)["PolicyVersion"]["Document"]
    return {name: json.loads(d) if isinstance(d, str) else d for name, d in documents.items()}


# ---- The linter ----

def lint(document: dict, minimum: str = "LOW") -> list[dict]:
    """parliament's findings on a policy above `minimum` severity (INFO < LOW < MEDIUM < HIGH < CRITICAL);
    kept per document (the audit reads the same documents from IAM every run)."""
    return _kept(("lint", json.dumps(document, sort_keys=True), minimum), lambda: _lint(document, minimum))


def _lint(document: dict, minimum: str) -> list[dict]:
    from parliament import analyze_policy_string

    from parliament import enhance_finding

    order = ["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    policy = analyze_policy_string(json.dumps(document), include_community_auditors=False)
    findings = [enhance_finding(f) for f in policy.findings]
    return [{"issue": f.issue, "severity": f.severity, "detail": f.detail, "location": f.location}
            for f in findings if order.index(f.severity) > order.index(minimum) and not _listener_false_positive(f, document)]


def _listener_false_positive(finding, document: dict) -> bool:
    """parliament 1.6.4 matches no ARN to a resource type whose name holds a "/" (Elastic Load Balancing's
    listener/app, listener/net): RESOURCE_MISMATCH on any listener ARN, even listener/*/*/*. Set aside only
    when every action it names does match a resource of its statement by the catalogue's ARN formats."""
    if finding.issue != "RESOURCE_MISMATCH":
        return False
    actions = {d["action"] for d in finding.detail}
    for statement in document["Statement"]:
        listed = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if actions <= set(listed):
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            return all(any("/" in t for t in resource_types(a)) and _matching(a, resources) for a in actions)
    return False


# ---- Enforcement in the sandbox ----

@contextmanager
def enforce_iam(endpoint_url: str) -> Iterator[None]:
    """Every request to the sandbox's moto is checked against its signer's policies while inside; off after
    (moto keeps the setting process-wide: /moto-api/reset-auth)."""
    _reset_auth(endpoint_url, "0")
    try:
        yield
    finally:
        _reset_auth(endpoint_url, "inf")


def _reset_auth(endpoint_url: str, count: str) -> None:
    # text/plain: moto reads the raw body, which a form content type would hide from it.
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request).close()


# ---- Recording and publishing ----

def record(environment: str = "sandbox", steps: list[Step] = STEPS) -> dict[str, list[str]]:
    """Run each step against the running sandbox and return the operations each made (every client
    factory's call log, the edge's us-east-1 clients included)."""
    from golive.aws import call_logs

    operations: dict[str, list[str]] = {}
    for step in steps:
        if step.needs_site:
            _start_site()
        for log in call_logs():
            log.clear()
        step.run(environment)
        operations[step.name] = sorted({f"{c.service}.{c.operation}" for log in call_logs() for c in log.calls})
    return operations


def _start_site() -> None:
    """The app (it reads its secrets, which Phase 1 made) and the edge, for the launch steps."""
    from golive.sandbox import app, data_plane, edge

    edge.up()
    with data_plane.locked():
        app.APP.start()


# ---- What the recorded run does not reach ----
# A recorded run is a fresh apply, a release, a rollback, a verification and a teardown: it never repairs
# drift (Modify*, Set*, Update*), restores tags, resumes a killed step, fails over a Multi-AZ database or
# sends an alert. Those paths are in the source; every operation the source can call joins the policy
# under the step "other-code-paths", found by reading the runbook's code (not the sandbox's emulation).
OTHER_CODE_PATHS = "other-code-paths"
SOURCE_DIRECTORIES = ("tasks", "flows", "golive")
# Left out of the scan, each with why: a method name several services share, read in a file that makes
# clients of more than one of them (the service it is actually called on, checked by hand, is kept), and
# calls the deploy role never makes.
NOT_CALLED_ON = {
    "acm.ListTagsForResource": "tasks/dns.py lists Route 53's tags (route53.ListTagsForResource)",
    "application-autoscaling.ListTagsForResource": "tasks/compute.py lists ECS's and Logs' tags",
    "logs.ListTagsForResource": "tasks/compute.py and tasks/waf.py call list_tags_for_resource on ECS and WAF "
                                "clients; log groups' tags are read with list_tags_log_group",
    "budgets.ListTagsForResource": "tasks/observability.py lists SNS's tags",
    "shield.ListTagsForResource": "tasks/waf.py lists WAF's tags",
    # Called, but not as the deploy role:
    "sts.AssumeRole": "golive/aws.py assumes the deploy role: the caller's permission (a person, the work "
                      "pool's task), not the role's own",
    "rds.CreateDBInstanceReadReplica": "read replicas are refused by the environment file's validation "
                                       "(golive/config.py) until the runbook manages them",
}


def code_operations() -> dict[str, list[str]]:
    """"service.Operation" -> the source files that call it: a method of a service's boto3 client, or its
    paginator, in a file that makes a client of that service (`client("svc")`, or a Resource's
    `service = "svc"`). Over-inclusive where several services share a method name (NOT_CALLED_ON)."""
    import pathlib
    import re

    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    root = pathlib.Path(__file__).resolve().parent.parent
    found: dict[str, set[str]] = {}
    for directory in SOURCE_DIRECTORIES:
        for path in sorted((root / directory).rglob("*.py")):
            if "sandbox" in path.relative_to(root).parts:
                continue  # the sandbox's emulation and processes call moto as themselves, not as the role
            text = path.read_text()
            services = set(re.findall(r'client\(\s*"([a-z0-9-]+)"', text)) | set(
                re.findall(r'^\s*service\s*=\s*"([a-z0-9-]+)"', text, re.M))
            for service in services:
                try:
                    names = session.get_service_model(service).operation_names
                except Exception:  # noqa: BLE001 - a string that is not a service name
                    continue
                for operation in names:
                    method = xform_name(operation)
                    if re.search(rf'\.{method}\(|paginator\("{method}"\)', text):
                        found.setdefault(f"{service}.{operation}", set()).add(str(path.relative_to(root)))
    return {operation: sorted(files) for operation, files in sorted(found.items()) if operation not in NOT_CALLED_ON}


def other_code_paths(operations: dict[str, list[str]]) -> list[str]:
    """What the source can call that no recorded step made."""
    made = {op for step, ops in operations.items() if step != OTHER_CODE_PATHS for op in ops}
    return sorted(set(code_operations()) - made)


def write_recorded(operations: dict[str, list[str]]) -> None:
    operations = {**{k: v for k, v in operations.items() if k != OTHER_CODE_PATHS},
                  OTHER_CODE_PATHS: other_code_paths(operations)}
    lines = ['"""Generated by `python -m golive.permissions record` from a sandbox run: the API operations each step',
             'of the runbook made. Do not edit by hand; golive/iam_actions.py maps them to IAM actions."""', "",
             "RECORDED: dict[str, list[str]] = {"]
    for step, ops in operations.items():
        lines.append(f"    {step!r}: [")
        lines += [f"        {op!r}," for op in ops]
        lines.append("    ],")
    lines.append("}")
    RECORDED_MODULE.write_text("\n".join(lines) + "\n")


def render_docs() -> str:
    """docs/permissions.md: per step, the actions it needs; the actions on "*" and why; how it is proven."""
    from golive.iam_actions import ADMINISTRATOR_ONLY, EXTRA_ACTIONS

    env, region, account = "<env>", "<region>", "<account>"
    titles = {s.name: s.title for s in STEPS}
    titles[OTHER_CODE_PATHS] = ("Paths the recorded run does not take (drift repair, tag restore, resume, "
                                "failover, alerts), read from the source")
    out = ["# Permissions: what the deploy role may do, and why", "",
           "Generated by `python -m golive.permissions docs` from golive/iam_recorded.py (the operations each step",
           "made in a recorded sandbox run) and golive/iam_actions.py (the reviewed operation -> IAM action table);",
           "tests/test_least_privilege.py fails when this file is out of date. How the policies are built and",
           "proven: golive/permissions.py; what the sandbox's IAM enforcement checks: golive/sandbox/iam_emulation.py.", "",
           "## Actions AWS offers no resource-level permission for", "",
           "These are the only statements with `Resource: \"*\"` and no condition narrowing them: AWS's Service",
           "Authorization Reference lists no resource type for them, so no ARN can scope them. Most only read",
           "(Describe/List/Get); the writes among them are noted.", "", "| action | access | why the runbook needs it |",
           "|---|---|---|"]
    needed_by: dict[str, list[str]] = {}
    for step, actions in step_actions().items():
        for action in actions:
            needed_by.setdefault(action, []).append(step)
    for action, why in EXTRA_ACTIONS.items():
        needed_by.setdefault(action, []).append(why)
    for action in sorted(a for a in deploy_actions() if unscoped(a) and not _scope_has_condition(a)):
        out.append(f"| `{action}` | {privilege(action)['access_level']} | {', '.join(needed_by[action])} |")
    out += ["", "## Actions per step", "",
            "Scope: `names` = this environment's ARN patterns (golive-<env>-...); `tag` = resources tagged",
            f"`{ENVIRONMENT_TAG}` = <env> (aws:ResourceTag) or created with that tag (aws:RequestTag); `type` = the",
            "resource type only (generated ids, no tag condition in AWS); `*` = no resource-level permission.", ""]
    short = {"this environment's names": "names", "created with this environment's tag": "tag (request)",
             "tagged as this environment's": "tag", "no resource-level permission": "*",
             "resource type only: generated ids, no tag condition in AWS": "type"}
    for step, actions in step_actions().items():
        out += [f"### {titles.get(step, step)} (`{step}`): {len(actions)} actions", ""]
        out.append(", ".join(f"`{a}` (" + ("administrator only: not granted" if a in ADMINISTRATOR_ONLY else
                                            short[scope_of(a, env, region, account).why]) + ")" for a in actions))
        out.append("")
    out += ["## Needed but not seen in a sandbox call", "", "| action | why |", "|---|---|"]
    out += [f"| `{action}` | {why} |" for action, why in EXTRA_ACTIONS.items()]
    return "\n".join(out) + "\n"


def _scope_has_condition(action: str) -> bool:
    return bool(scope_of(action, "e", "r", "000000000000").condition)


def main(argv: list[str]) -> None:
    """`record`: run every step against the sandbox (started if it is not running; `golive sandbox down`
    after; on a busy machine set PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=120) and rewrite
    golive/iam_recorded.py; `docs`: rewrite docs/permissions.md from what is checked in."""
    if argv[:1] == ["record"]:
        from golive.sandbox import control_plane, data_plane, edge

        control_plane.up()
        data_plane.up(app=False)
        edge.up()  # before Phase 1, as `make go-live` starts it
        write_recorded(record())
        importlib.reload(importlib.import_module("golive.iam_recorded"))
    if argv[:1] == ["paths"]:  # the source changed, not what the steps do: refresh the scan only
        write_recorded(dict(recorded()))
        importlib.reload(importlib.import_module("golive.iam_recorded"))
    if argv[:1] in (["record"], ["docs"], ["paths"]):
        DOCS.write_text(render_docs())
        print(f"wrote {DOCS}")
        return
    sys.exit("usage: python -m golive.permissions record|paths|docs")


if __name__ == "__main__":
    main(sys.argv[1:])
