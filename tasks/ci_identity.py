"""Plan section 6.1, CI's identity in AWS: GitHub's OIDC provider and one CI role per environment.

GitHub Actions proves who it is with a short-lived OIDC token; no access key is stored anywhere. The role
trusts only tokens for the environment file's repository (`ci.repository`) running in the GitHub
environment of the same name (`repo:OWNER/NAME:environment:production`), for the audience
sts.amazonaws.com. It may do what `golive release ENV --image TAG` and `golive rollback ENV` do, on this
environment's resources, and nothing else. The role is an IamRole (tasks/security.py) under the
environment's path, so teardown removes it with the others; the provider goes after it.

moto 5.2.5 stores the provider and the trust policy but never checks a web-identity token or its `sub`
(notes/moto-5.2.5.md): in the sandbox the trust is read back and compared, not exercised.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Record
from golive.config import EnvironmentError, resolve_path
from golive.naming import ENVIRONMENT_TAG, MANAGED_BY, MANAGED_BY_TAG, parameter_name, resource_name, tag_list, tag_value
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.compute import RELEASE_PARAMETER, ROLLBACK_PARAMETER
from tasks.security import ArnScope, IamRole, _document, _statement, role_path

GITHUB_ISSUER = "token.actions.githubusercontent.com"
AUDIENCE = "sts.amazonaws.com"
# GitHub's published thumbprint. Since 2023 AWS trusts GitHub's certificate authority itself and ignores
# the list, but the API still takes one (and moto requires it).
GITHUB_THUMBPRINT = "6938fd4d98bab03faadb97b34396831e3780aea1"


def subject(repository: str, environment: str) -> str:
    """The token's `sub` for a job that runs in a GitHub environment: the only one the role trusts."""
    return f"repo:{repository}:environment:{environment}"


def repository_of(run: Run) -> str:
    """ci.repository, required by this phase: an error naming the file, the field and the fix."""
    repository = run.environment.ci.repository
    if not repository:
        raise EnvironmentError(
            f"{resolve_path(run.env_name)}: ci.repository: required by Phase 6 (the CI role trusts only that "
            'repository\'s workflows); add [ci] with repository = "owner/name", the app\'s GitHub repository')
    return repository


class OidcProvider(Resource):
    """GitHub's OIDC identity provider. There is one per account and URL: environments in one account
    share it, so teardown removes it only when no other environment's role still trusts it."""

    kind = "iam-oidc-provider"

    @property
    def iam(self):
        return self.run.client("iam")

    def desired(self) -> dict[str, Any]:
        return {"client_ids": [AUDIENCE]}

    @classmethod
    def _find(cls, run: Run) -> tuple[str, dict] | None:
        iam = run.client("iam")
        for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            arn = provider["Arn"]
            if arn.endswith(f":oidc-provider/{GITHUB_ISSUER}"):
                return arn, iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
        return None

    def discover(self) -> Found | None:
        found = self._find(self.run)
        if found is None:
            return None
        arn, provider = found
        # Another audience on a shared provider is someone else's need: only ours must be there.
        client_ids = [AUDIENCE] if AUDIENCE in provider.get("ClientIDList", []) else provider.get("ClientIDList", [])
        return Found(id=arn, component=self.component, raw=provider, state={"client_ids": client_ids})

    def create(self) -> str:
        return self.iam.create_open_id_connect_provider(
            Url=f"https://{GITHUB_ISSUER}", ClientIDList=[AUDIENCE], ThumbprintList=[GITHUB_THUMBPRINT],
            Tags=tag_list(self.run.env_name, self.component))["OpenIDConnectProviderArn"]

    def update(self, found: Found, changes) -> None:
        self.iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=found.id, ClientID=AUDIENCE)

    def delete(self, found: Found) -> None:
        self.iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """The provider, if this environment made it and no other environment's role still trusts it."""
        found = cls._find(run)
        if found is None:
            return []
        arn, provider = found
        tags = provider.get("Tags", [])
        if tag_value(tags, MANAGED_BY_TAG) != MANAGED_BY or tag_value(tags, ENVIRONMENT_TAG) != run.env_name:
            return []
        own_path = role_path(run.env_name)
        for page in run.client("iam").get_paginator("list_roles").paginate():
            for role in page["Roles"]:
                if role["Path"] != own_path and arn in str(role.get("AssumeRolePolicyDocument", "")):
                    return []
        return [Found(id=arn, state={}, raw=provider, component="github-oidc")]


def ci_trust(provider_arn: str, repository: str, environment: str) -> dict:
    return _document({
        "Effect": "Allow", "Principal": {"Federated": provider_arn}, "Action": "sts:AssumeRoleWithWebIdentity",
        # StringEquals, never StringLike: no other repository, branch, pull request or environment.
        "Condition": {"StringEquals": {f"{GITHUB_ISSUER}:aud": AUDIENCE,
                                       f"{GITHUB_ISSUER}:sub": subject(repository, environment)}},
    })


def ci_policy(run: Run, account_id: str) -> dict:
    """What a release and a rollback of this environment call, on this environment's resources."""
    env, region = run.env_name, run.environment.region
    scope = ArnScope(run, account_id)
    cluster = f"arn:aws:ecs:{region}:{account_id}:cluster/{resource_name(env, 'cluster')}"
    services = f"arn:aws:ecs:{region}:{account_id}:service/{resource_name(env, 'cluster')}/{scope.prefix}*"
    task_definitions = f"arn:aws:ecs:{region}:{account_id}:task-definition/{scope.prefix}*:*"
    ecs_roles = [f"arn:aws:iam::{account_id}:role{role_path(env)}{resource_name(env, r)}"
                 for r in ("ecs-execution", "ecs-task")]
    release_parameter = f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_name(env, RELEASE_PARAMETER)}"
    rollback_parameter = f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_name(env, ROLLBACK_PARAMETER)}"
    # What the release's migration step records (tasks/app.py): the image that migrated, and seeded.
    data_parameters = f"arn:aws:ssm:{region}:{account_id}:parameter{parameter_name(env, 'data')}/*"
    one_off_definitions = f"arn:aws:ecs:{region}:{account_id}:task-definition/{resource_name(env, 'manage')}:*"
    tasks = f"arn:aws:ecs:{region}:{account_id}:task/{resource_name(env, 'cluster')}/*"
    pull = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:DescribeImages",
            "ecr:GetDownloadUrlForLayer"]
    statements = [
        # Push the release's images to this environment's repositories (docker push), and read them back.
        _statement([*pull, "ecr:CompleteLayerUpload", "ecr:DescribeRepositories", "ecr:GetLifecyclePolicy",
                    "ecr:InitiateLayerUpload", "ecr:ListImages", "ecr:ListTagsForResource", "ecr:PutImage",
                    "ecr:UploadLayerPart"], [scope.repositories]),
        _statement(["ecs:DescribeClusters"], [cluster]),
        _statement(["ecs:DescribeServices", "ecs:UpdateService"], [services]),
        # Registering a revision tags it: allowed on this environment's families only, and only then.
        {**_statement(["ecs:TagResource"], [task_definitions]),
         "Condition": {"StringEquals": {"ecs:CreateAction": "RegisterTaskDefinition"}}},
        # The new revision runs as the environment's two ECS roles, handed to ECS and nothing else.
        {**_statement(["iam:PassRole"], ecs_roles),
         "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}},
        _statement(["iam:GetRole"], [scope.roles]),
        _statement(["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
                   [scope.parameters, scope.parameters.removesuffix("/*")]),
        # The deployed tag is the one parameter a release writes; a rollback also writes its steps and
        # deletes them when done (so a killed rollback is finished, not repeated).
        _statement(["ssm:AddTagsToResource", "ssm:ListTagsForResource", "ssm:PutParameter"],
                   [release_parameter, rollback_parameter, data_parameters]),
        _statement(["ssm:DeleteParameter"], [rollback_parameter]),
        # The new image's migrations, as one-off tasks of the manage family in this cluster (tasks/one_off.py),
        # read back with their log lines; the owner's login is read to see what the database holds.
        {**_statement(["ecs:RunTask"], [one_off_definitions]),
         "Condition": {"ArnEquals": {"ecs:cluster": cluster}}},
        {**_statement(["ecs:TagResource"], [tasks]), "Condition": {"StringEquals": {"ecs:CreateAction": "RunTask"}}},
        _statement(["ecs:DescribeTasks"], [tasks]),
        _statement(["logs:GetLogEvents"], [f"arn:aws:logs:{region}:{account_id}:log-group:"
                                           f"/golive/{env}/backend:log-stream:manage/*"]),
        _statement(["rds:DescribeDBInstances", "rds:ListTagsForResource"], [scope.database]),
        scope.master_secret_read(region, account_id),
        # The task definition names the secrets; their values stay with ECS (no GetSecretValue).
        _statement(["secretsmanager:DescribeSecret"], [scope.secrets]),
        _statement(["s3:ListBucket"], [b for b in scope.buckets if not b.endswith("/*")]),
        _statement(["acm:DescribeCertificate", "acm:ListTagsForCertificate"],
                   [f"arn:aws:acm:*:{account_id}:certificate/*"]),
        # The distribution is made by Phase 4 (its id unknown here): any distribution tagged as this
        # environment's, which CloudFront evaluates through aws:ResourceTag.
        {**_statement(["cloudfront:CreateInvalidation", "cloudfront:GetDistributionConfig",
                       "cloudfront:GetInvalidation", "cloudfront:ListTagsForResource"],
                      [f"arn:aws:cloudfront::{account_id}:distribution/*"]),
         "Condition": {"StringEquals": {"aws:ResourceTag/golive:environment": env}}},
        # These actions have no resource-level permissions in AWS: "*" is the only Resource they accept.
        # Each only reads, except RegisterTaskDefinition/DeregisterTaskDefinition (ECS authorises
        # revisions by family only through the tag statement above and the PassRole limit).
        _statement(["acm:ListCertificates", "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                    "application-autoscaling:DescribeScheduledActions", "cloudfront:ListDistributions",
                    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcAttribute", "ec2:DescribeVpcs",
                    "ecr:GetAuthorizationToken", "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition",
                    "ecs:ListTaskDefinitions", "ecs:ListTasks", "ecs:RegisterTaskDefinition",
                    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancerAttributes",
                    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeRules",
                    "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetGroups",
                    "logs:DescribeLogGroups", "route53:ListHostedZonesByName"]),
    ]
    promote_from = run.environment.ci.promote_from
    if promote_from:
        # Production deploys the image staging tested, copied by digest: read-only on those repositories.
        statements.append(_statement(pull, [f"arn:aws:ecr:{region}:{account_id}:repository/{resource_name(promote_from, '*')}"]))
    return _document(*statements)


class CiIdentityRecord(Record):
    """The CI role (this record's name, id and change) and the provider it trusts."""

    arn: str | None
    provider: Record
    subject: str
    trust: dict
    policy: dict


@task(**AWS_STEP)
def ensure_ci_identity(run: Run) -> CiIdentityRecord:
    """GitHub's OIDC provider and this environment's CI role, trusted for the file's repository only."""
    repository = repository_of(run)
    account = run.account_id()
    provider = ensure(OidcProvider(run, "github-oidc"))
    provider_arn = provider.id or f"arn:aws:iam::{account}:oidc-provider/{GITHUB_ISSUER}"
    trust, policy = ci_trust(provider_arn, repository, run.env_name), ci_policy(run, account)
    role = ensure(IamRole(run, "ci", f"GitHub Actions of {repository} deploying {run.env_name}", trust,
                          {"release": policy}))
    return CiIdentityRecord(
        name=resource_name(run.env_name, "ci"), id=role.id, arn=role.id, change=role.change,
        provider=Record(name=GITHUB_ISSUER, id=provider.id, change=provider.change),
        subject=subject(repository, run.env_name), trust=trust, policy=policy)


TEARDOWN_ORDER: list[type[Resource]] = [OidcProvider]
