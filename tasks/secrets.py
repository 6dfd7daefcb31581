"""The application's secrets (Secrets Manager) and plain configuration (SSM Parameter Store), under the
environment's prefix. docs/app-environment.md lists every variable the app receives.

Secret values never leave the task that handles them: not in a log line, a Change, an artifact, a task
parameter or a return value. Changes to a secret show only a digest, marked sensitive.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from prefect import task

from golive.aws_errors import aws_error
from golive import dataplane
from golive.changes import KNOWN_AFTER_APPLY, KnownAfterApply, Record
from golive.generation import is_generation
from golive.naming import ENVIRONMENT_TAG, MANAGED_BY, MANAGED_BY_TAG, parameter_name, secret_name, tag_list
from golive.resource import Found, Resource, ensure, owned_by
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.cache import CacheRecord
from tasks.database import DatabaseRecord
from tasks.storage import BucketRecord


# Characters a generated value never holds: those that need quoting in a shell, a URL or a connection
# string, and '*' and '?', which an ALB condition reads as wildcards (the origin header's value is one:
# tasks/load_balancer.py).
PASSWORD_EXCLUDES = "\"'\\`$/@:?*#%&=+ "


def fingerprint(value: str) -> str:
    """What may be shown of a secret: that it changed, never what it is."""
    return f"(sensitive, sha256 {hashlib.sha256(value.encode()).hexdigest()[:12]})"


class Secret(Resource):
    """A secret whose value is either generated once (kept across runs) or assembled from other facts."""

    kind = "secret"

    def __init__(self, run: Run, component: str, description: str = "",
                 assemble: Callable[[], str | None] | None = None, generate_length: int = 0,
                 wrap: Callable[[str], str] | None = None):
        super().__init__(run, component)
        self.secret_id = secret_name(run.env_name, component)
        self.name = self.secret_id
        self.description, self.assemble, self.generate_length = description, assemble, generate_length
        self.wrap = wrap  # shapes a generated password into the stored value (a JSON login, say)

    @property
    def secretsmanager(self):
        return self.run.client("secretsmanager")

    def _value(self) -> str | None:
        if self.assemble is not None:
            return self.assemble()
        return None  # generated: any value is right once it exists

    def desired(self) -> dict[str, Any]:
        if self.assemble is None:
            return {"generated": True}
        value = self._value()
        return {"value": fingerprint(value) if value is not None else None}

    def discover(self) -> Found | None:
        try:
            described = self.secretsmanager.describe_secret(SecretId=self.secret_id)
        except aws_error("ResourceNotFoundException"):
            return None
        if described.get("DeletedDate"):
            if not self.run.applying:
                return None  # apply would restore it; plan shows it as created
            # Scheduled for deletion by a teardown: bring it back rather than fail to create it.
            self.secretsmanager.restore_secret(SecretId=self.secret_id)
        state: dict[str, Any] = {"generated": True}
        if self.assemble is not None:
            current = self.secretsmanager.get_secret_value(SecretId=self.secret_id)["SecretString"]
            state = {"value": fingerprint(current)}
        return Found(id=described["ARN"], component=self.component, raw={}, state=state)

    def _new_value(self) -> str:
        if self.assemble is not None:
            value = self._value()
            if value is None:
                raise RuntimeError(f"{self.secret_id}: its inputs do not exist yet")
            return value
        password = self.secretsmanager.get_random_password(
            PasswordLength=self.generate_length, ExcludeCharacters=PASSWORD_EXCLUDES)["RandomPassword"]
        return self.wrap(password) if self.wrap else password

    def create(self) -> str:
        return self.secretsmanager.create_secret(
            Name=self.secret_id, Description=self.description, SecretString=self._new_value(),
            Tags=tag_list(self.run.env_name, self.component))["ARN"]

    def update(self, found: Found, changes) -> None:
        self.secretsmanager.put_secret_value(SecretId=found.id, SecretString=self._new_value())

    def delete(self, found: Found) -> None:
        # In AWS a deleted secret stays recoverable for 7 days; the sandbox forgets it at once.
        window = {"ForceDeleteWithoutRecovery": True} if self.run.target.is_sandbox else {"RecoveryWindowInDays": 7}
        self.secretsmanager.delete_secret(SecretId=found.id, **window)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """By the environment's tags (ListSecrets returns them), whatever the name; not those already
        scheduled for deletion."""
        prefix = secret_name(run.env_name, "")
        client = run.client("secretsmanager")
        pages = client.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "tag-key", "Values": [ENVIRONMENT_TAG]}, {"Key": "tag-value", "Values": [run.env_name]}])
        return [Found(id=s["ARN"], state={}, component=s["Name"].removeprefix(prefix))
                for page in pages for s in page["SecretList"]
                if owned_by(s, run.env_name, None) and not s.get("DeletedDate")]


class Parameter(Resource):
    """A plain configuration value in SSM Parameter Store."""

    kind = "ssm-parameter"

    def __init__(self, run: Run, component: str, value: str | None = None):
        super().__init__(run, component)
        self.parameter = parameter_name(run.env_name, component)
        self.name = self.parameter
        self.value = value

    @property
    def ssm(self):
        return self.run.client("ssm")

    def desired(self) -> dict[str, Any]:
        return {"value": self.value, "type": "String"}

    def discover(self) -> Found | None:
        try:
            item = self.ssm.get_parameter(Name=self.parameter)["Parameter"]
        except aws_error("ParameterNotFound"):
            return None
        return Found(id=self.parameter, component=self.component, raw=item,
                     state={"value": item["Value"], "type": item["Type"]})

    def create(self) -> str:
        self.ssm.put_parameter(Name=self.parameter, Value=self.value, Type="String",
                               Tags=tag_list(self.run.env_name, self.component))
        return self.parameter

    def update(self, found: Found, changes) -> None:
        self.ssm.put_parameter(Name=self.parameter, Value=self.value, Type="String", Overwrite=True)

    def delete(self, found: Found) -> None:
        self.ssm.delete_parameter(Name=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """By the environment's tags, under its path (the only one its deploy role may write: IAM scopes
        it there). The generation is forgotten first, on its own (flows/teardown.py)."""
        prefix = parameter_name(run.env_name, "")
        pages = run.client("ssm").get_paginator("get_parameters_by_path").paginate(
            Path=prefix, Recursive=True,
            ParameterFilters=[{"Key": f"tag:{ENVIRONMENT_TAG}", "Values": [run.env_name]},
                              {"Key": f"tag:{MANAGED_BY_TAG}", "Values": [MANAGED_BY]}])
        return [Found(id=p["Name"], state={}, component=p["Name"].removeprefix(prefix))
                for page in pages for p in page["Parameters"] if not is_generation(p["Name"])]


class SecretRecord(Record):
    """Where a secret is (name, ARN): the app's task definition points at it. Never its value."""

    arn: str | None


def _record(run: Run, resource: Resource, outcome) -> SecretRecord:
    return SecretRecord(name=resource.name, id=outcome.id, arn=outcome.id, change=outcome.change)


@task(**AWS_STEP)
def ensure_django_secret_key(run: Run) -> SecretRecord:
    """Django's SECRET_KEY: generated once by Secrets Manager, then kept across runs."""
    secret = django_secret_key(run)
    return _record(run, secret, ensure(secret))


def database_login_secret(run: Run) -> Secret:
    """The app's own database login, {"username", "password"}: generated once here, made a role with that
    password by Phase 5 (tasks/database_role.py), resolved by each task when it starts (ECS valueFrom with a
    JSON key). Rotating it is a new value plus ALTER ROLE; no task definition holds the password."""
    from golive.dataplane import app_database_role

    role = app_database_role(run)
    return Secret(run, "database-login", f"Database login of the app's role {role}", generate_length=40,
                  wrap=lambda password: json.dumps({"username": role, "password": password}))


def origin_verify_secret(run: Run) -> Secret:
    """The value CloudFront sends the ALB in the origin header (tasks/load_balancer.py ORIGIN_HEADER): only a
    request carrying it is served, so the ALB cannot be used around CloudFront. Rotate it with a new value
    (put-secret-value), then apply Phase 3 (the ALB accepts the current and previous values) and Phase 4."""
    return Secret(run, "cdn-origin-verify", "Origin header value CloudFront adds for the ALB", generate_length=48)


def origin_verify_values(run: Run) -> list[str]:
    """The secret's AWSCURRENT value first, then AWSPREVIOUS when there is one (a rotation in progress)."""
    secrets = run.client("secretsmanager")
    name = origin_verify_secret(run).name
    values = []
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        try:
            values.append(secrets.get_secret_value(SecretId=name, VersionStage=stage)["SecretString"])
        except aws_error("ResourceNotFoundException"):
            continue
    return list(dict.fromkeys(values))


@task(**AWS_STEP)
def ensure_origin_verify(run: Run) -> list[str]:
    """The origin header's secret, generated once; returns its values for the ALB's rules and CloudFront.
    In a plan before it exists, a placeholder of its own type (the diff shows the rules will require the
    header): a generated value may start with any character, so no text could mark "not yet" safely."""
    secret = origin_verify_secret(run)
    ensure(secret)
    return origin_verify_values(run) or [KnownAfterApply("(generated on apply)")]


def redis_url_secret(run: Run, url: Callable[[], str | None]) -> Secret:
    return Secret(run, "redis-url", "REDIS_URL for Precedentum", assemble=url)


@task(**AWS_STEP)
def ensure_database_login(run: Run) -> SecretRecord:
    """The app's database login (role name and generated password) in Secrets Manager."""
    secret = database_login_secret(run)
    return _record(run, secret, ensure(secret))


@task(**AWS_STEP)
def ensure_database_parameters(run: Run, database: DatabaseRecord) -> list[Record]:
    """DB_HOST, DB_PORT, DB_NAME and DB_SSLMODE in Parameter Store: where the database is, which is no secret. The app
    composes its connection from them and its login at start-up (docs/app-environment.md)."""
    location = dataplane.database_location(run, database.endpoint, database.port)
    values = {"DB_HOST": location.host, "DB_PORT": str(location.port) if location.port else None,
              "DB_NAME": database.database_name, "DB_SSLMODE": location.sslmode}
    records = []
    for key, value in values.items():
        parameter = Parameter(run, key, value or KNOWN_AFTER_APPLY)
        outcome = ensure(parameter)
        records.append(Record(name=parameter.name, id=outcome.id, change=outcome.change))
    return records


@task(**AWS_STEP)
def ensure_redis_url(run: Run, cache: CacheRecord) -> SecretRecord:
    """REDIS_URL for the app: TLS (rediss://) to the primary endpoint; the local Redis in the sandbox."""
    secret = redis_url_secret(run, lambda: dataplane.redis_url(run, cache.primary_endpoint, cache.port))
    return _record(run, secret, ensure(secret))


def django_secret_key(run: Run) -> Secret:
    return Secret(run, "django-secret-key", "Django SECRET_KEY for Precedentum", generate_length=64)


def app_parameters(run: Run, buckets: dict[str, BucketRecord]) -> dict[str, str]:
    """Plain settings the app reads (docs/app-environment.md)."""
    env = run.environment
    names = env.certificate_names
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "ALLOWED_HOSTS": ",".join(names),
        "CSRF_TRUSTED_ORIGINS": ",".join(f"https://{n}" for n in names),
        "AWS_STORAGE_BUCKET_NAME": buckets["static"].name,
        "AWS_MEDIA_BUCKET_NAME": buckets["media"].name,
        "AWS_S3_REGION_NAME": env.region,
        "STATIC_DOMAIN": env.domain,  # CloudFront serves /static/* from the static bucket
    }


@task(**AWS_STEP)
def ensure_app_parameters(run: Run, buckets: dict[str, BucketRecord]) -> list[Record]:
    """The app's plain configuration in Parameter Store."""
    records = []
    for key, value in app_parameters(run, buckets).items():
        parameter = Parameter(run, key, value)
        outcome = ensure(parameter)
        records.append(Record(name=parameter.name, id=outcome.id, change=outcome.change))
    return records


TEARDOWN_ORDER: list[type[Resource]] = [Secret, Parameter]
