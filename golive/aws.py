"""One AWS client factory for every step, against a real account or the sandbox's emulator.

A step never builds its own boto3 client: it asks `clients(target)` for one. That keeps a single place
for credentials (standard chain, a named profile, or a prefect-aws AwsCredentials block), retries
(botocore's standard mode: throttling, 5xx and connection errors with exponential backoff and jitter;
plus a NotFound for something this process just created, golive.transient.retry_not_yet_visible), the
sandbox endpoint, the one-call check that the endpoint answers at all (check_reachable), and the call log that lets us prove "a converged re-run writes nothing".
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError
from pydantic import BaseModel, ConfigDict

# Operations that only read. Everything else counts as a write in the call log.
READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup", "Search", "Check", "Query", "Scan", "View", "BatchGet")
SANDBOX_CREDENTIALS = {"aws_access_key_id": "golive-sandbox", "aws_secret_access_key": "golive-sandbox"}


class AwsTarget(BaseModel):
    """Where a run's AWS calls go. Small, serialisable, safe to show as a task parameter."""

    model_config = ConfigDict(frozen=True)

    region: str
    endpoint_url: str | None = None  # set for the sandbox; None means real AWS
    profile: str | None = None
    credentials_block: str | None = None
    max_attempts: int = 5
    # A role every call is made as: the base credentials above only assume it (GOLIVE_ASSUME_ROLE_ARN;
    # the sandbox's IAM-enforced runs act as the deploy role this way, golive/permissions.py).
    role_arn: str | None = None

    @property
    def is_sandbox(self) -> bool:
        return self.endpoint_url is not None

    @property
    def fixed_keys(self) -> dict[str, str]:
        """Keys anyone may write down: the sandbox's well-known fake ones; against AWS none (a block or a
        worker then takes its identity from its environment, never from keys stored by golive)."""
        return dict(SANDBOX_CREDENTIALS) if self.is_sandbox else {}

    def describe(self) -> str:
        acting = f" as {self.role_arn}" if self.role_arn else ""
        if self.is_sandbox:
            return f"sandbox at {self.endpoint_url} ({self.region}){acting}"
        how = f"profile {self.profile}" if self.profile else (
            f"credentials block {self.credentials_block}" if self.credentials_block else "default credentials"
        )
        return f"AWS {self.region} with {how}{acting}"


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    at: float

    @property
    def is_write(self) -> bool:
        return not self.operation.startswith(READ_PREFIXES) and self.operation != "GetCallerIdentity"


@dataclass
class CallLog:
    """Every API call made through the factory, in order (attempts are counted separately)."""

    calls: list[Call] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    shared: int = 0  # calls answered with an identical read's answer, not sent (golive.shared_reads)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, service: str, operation: str, params: dict[str, Any]) -> None:
        with self._lock:
            self.calls.append(Call(service, operation, dict(params), time.monotonic()))

    def count_attempt(self, operation: str) -> None:
        with self._lock:
            self.attempts[operation] = self.attempts.get(operation, 0) + 1

    def count_shared(self) -> None:
        with self._lock:
            self.shared += 1

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.is_write]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.attempts.clear()
            self.shared = 0


class Aws:
    """boto3 clients for one target, created once and shared by every task of the process."""

    def __init__(self, target: AwsTarget):
        self.target = target
        self.log = CallLog()
        self._session = self._make_session(target)
        self._clients: dict[tuple[str, bool], Any] = {}
        self._handlers: list[tuple[str, Callable]] = []
        self._account_id: str | None = None
        self._lock = threading.Lock()
        self._config = Config(
            region_name=target.region,
            retries={"mode": "standard", "max_attempts": target.max_attempts},
            connect_timeout=10,
            read_timeout=60,
            user_agent_extra="precedentum-golive",
        )
        self.on("before-parameter-build", self._record_call)
        self.on("before-send", self._record_attempt)
        from golive.transient import retry_not_yet_visible

        self.on("after-call", self._remember_creates)
        self.on("needs-retry", retry_not_yet_visible)
        from golive.shared_reads import Sharing

        sharing = Sharing(self)  # inactive unless a plan asks for it (golive.shared_reads.shared_reads)
        self.on("before-call", sharing.before_call)
        self.on("response-received", sharing.response_received)
        self.on("after-call", sharing.after_call)
        self.on("after-call-error", sharing.after_call_error)

    @classmethod
    def _make_session(cls, target: AwsTarget) -> boto3.Session:
        base = cls._base_session(target)
        if not target.role_arn:
            return base
        # One session for the run: STS credentials last an hour, longer than any phase or the go-live's
        # AWS steps; a run that outlives them fails with ExpiredToken and resumes (it converges).
        credentials = base.client("sts", endpoint_url=target.endpoint_url, region_name=target.region).assume_role(
            RoleArn=target.role_arn, RoleSessionName="golive", DurationSeconds=3600)["Credentials"]
        return boto3.Session(region_name=target.region, aws_access_key_id=credentials["AccessKeyId"],
                             aws_secret_access_key=credentials["SecretAccessKey"],
                             aws_session_token=credentials["SessionToken"])

    @staticmethod
    def _base_session(target: AwsTarget) -> boto3.Session:
        if target.is_sandbox:
            # Explicit fake keys: the sandbox must never pick up (or leak) a real profile.
            return boto3.Session(region_name=target.region, **target.fixed_keys)
        if target.credentials_block:
            from prefect_aws import AwsCredentials

            return AwsCredentials.load(target.credentials_block).get_boto3_session()
        return boto3.Session(region_name=target.region, profile_name=target.profile)

    def client(self, service: str, *, retry: bool = True) -> Any:
        """The shared client for a service. retry=False gives one that makes a single attempt: for
        creates with no idempotency token (CreateVpc, AllocateAddress, ...), where botocore resending a
        request that AWS did carry out would make a duplicate. The task retries instead, after
        rediscovering what exists."""
        key = (service, retry)
        with self._lock:
            if key not in self._clients:
                # total_max_attempts: in a client Config, botocore reads max_attempts as the number of
                # *retries* (max_attempts=1 is two attempts, one of them a resend).
                config = self._config if retry else self._config.merge(
                    Config(retries={"mode": "standard", "total_max_attempts": 1}))
                # Clients copy the session's handlers when made; handlers added later are added here too.
                self._clients[key] = self._session.client(
                    service, endpoint_url=self.target.endpoint_url, config=config)
            return self._clients[key]

    def credentials(self) -> dict[str, str]:
        """The session's credentials as the environment variables a subprocess (collectstatic) reads, so
        it acts as the same identity as the run's own calls."""
        frozen = self._session.get_credentials().get_frozen_credentials()
        values = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
        if frozen.token:
            values["AWS_SESSION_TOKEN"] = frozen.token
        return values

    def account_id(self) -> str:
        """The account these credentials act in (asked once per process)."""
        if self._account_id is None:
            self._account_id = self.client("sts").get_caller_identity()["Account"]
        return self._account_id

    def on(self, event: str, handler: Callable) -> None:
        """Register a botocore event handler on every client, present and future."""
        with self._lock:
            self._handlers.append((event, handler))
            self._session.events.register(event, handler)
            for client in self._clients.values():
                client.meta.events.register(event, handler)

    def off(self, event: str, handler: Callable) -> None:
        with self._lock:
            self._handlers.remove((event, handler))
            self._session.events.unregister(event, handler)
            for client in self._clients.values():
                client.meta.events.unregister(event, handler)

    def _record_call(self, params: dict, model, context: dict | None = None, **_: Any) -> None:
        self.log.record(model.service_model.service_name, model.name, params)
        if context is not None:
            context["golive_params"] = params  # for _remember_creates, once AWS has answered

    def _remember_creates(self, http_response, parsed: dict, model, context: dict | None = None, **_: Any) -> None:
        """What a successful create named and returned: a NotFound for it soon after is AWS catching up."""
        from golive.transient import CREATING_PREFIXES, DELETING_PREFIXES, RECENT_CREATES

        if http_response.status_code >= 300:
            return
        if model.name.startswith(CREATING_PREFIXES):
            RECENT_CREATES.remember(model.name, (context or {}).get("golive_params"), parsed)
        elif model.name.startswith(DELETING_PREFIXES):
            RECENT_CREATES.forget((context or {}).get("golive_params"))

    def check_reachable(self, timeout: float = 3.0, answer_within: float = 20.0) -> str:
        """One call, one attempt, a short connect timeout: does the endpoint answer, and with which
        identity? Raises Unreachable with one line that says what to check. Returns the account id (kept,
        so the run does not ask again). An endpoint that took the connection is there: it gets longer to
        answer (the sandbox's emulator, busy with a go-live on two cores, took more than 3 s once)."""
        sts = self._session.client("sts", endpoint_url=self.target.endpoint_url, config=self._config.merge(
            Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=timeout,
                   read_timeout=answer_within)))
        credentials = self._session.get_credentials()
        source = getattr(credentials, "method", None) or "none found"
        where = f"{sts.meta.endpoint_url} ({self.target.describe()}; credentials from {source})"
        override = os.environ.get("AWS_ENDPOINT_URL_STS") or os.environ.get("AWS_ENDPOINT_URL")
        check = ("is the sandbox running? `golive sandbox status`" if self.target.is_sandbox else
                 f"AWS_ENDPOINT_URL (set to {override}), or unset it" if override else
                 "the network or proxy, the region, and the profile's endpoint_url if it sets one")
        try:
            identity = sts.get_caller_identity()
        except NoCredentialsError:
            raise Unreachable(f"no AWS credentials for {where}: set aws.profile or aws.credentials_block in the "
                              "environment file, or AWS_PROFILE / AWS_ACCESS_KEY_ID") from None
        except ClientError as error:
            info = error.response.get("Error", {})
            raise Unreachable(f"AWS refused the credentials at {where}: {info.get('Code')}: {info.get('Message')}. "
                              "Check the profile or keys") from None
        except Exception as error:
            from golive.transient import is_unreachable

            if not is_unreachable(error):
                raise
            raise Unreachable(f"cannot reach AWS at {where}: {error}. Check {check}") from None
        self._account_id = identity["Account"]
        return self._account_id

    def _record_attempt(self, event_name: str, **_: Any) -> None:
        # event_name is "before-send.<service>.<Operation>"; it fires once per attempt.
        self.log.count_attempt(event_name.rsplit(".", 1)[-1])


class Unreachable(RuntimeError):
    """The endpoint refused, did not resolve, or would not take the credentials: said in one line."""


_factories: dict[AwsTarget, Aws] = {}
_factories_lock = threading.Lock()


def clients(target: AwsTarget) -> Aws:
    """The shared client factory for a target."""
    with _factories_lock:
        if target not in _factories:
            _factories[target] = Aws(target)
        return _factories[target]


def call_logs() -> list[CallLog]:
    """The call logs of every factory in this process (a run's edge clients in us-east-1 are a factory
    of their own)."""
    with _factories_lock:
        return [factory.log for factory in _factories.values()]


def forget_clients() -> None:
    """Drop every cached factory (tests; a sandbox restarted on another port)."""
    with _factories_lock:
        _factories.clear()
