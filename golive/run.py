"""What one run is: which environment, against which AWS target, in plan or apply mode.

A Run is the first parameter of every task. It is small and serialisable (no clients, no secrets), so it
can be shown in the Prefect UI; the clients it needs come from the shared factory in golive.aws.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict

from golive import progress
from golive.aws import Aws, AwsTarget, clients
from golive.changes import Change
from golive.config import Environment, load_environment

Mode = Literal["apply", "plan"]


class SandboxNotRunning(RuntimeError):
    pass


class Run(BaseModel):
    model_config = ConfigDict(frozen=True)

    environment: Environment
    target: AwsTarget
    mode: Mode = "apply"
    allow_replace: bool = False

    @classmethod
    def prepare(
        cls,
        environment: str | Environment,
        *,
        sandbox: bool | None = None,
        mode: Mode = "apply",
        allow_replace: bool = False,
    ) -> "Run":
        """Load and validate the environment, then decide the target. No AWS call is made here.

        sandbox=None follows the file's aws.target; True forces the local emulator for any file (so the
        production configuration itself can be exercised); False forces real AWS.
        """
        env = environment if isinstance(environment, Environment) else load_environment(environment)
        # Act as a role (the deploy role): every call of the run is then checked against its policies.
        role_arn = os.environ.get("GOLIVE_ASSUME_ROLE_ARN") or None
        use_sandbox = env.aws.target == "sandbox" if sandbox is None else sandbox
        if use_sandbox:
            from golive.sandbox import control_plane

            endpoint = control_plane.endpoint_url()
            if endpoint is None:
                raise SandboxNotRunning(
                    "the sandbox is not running: start it with `golive sandbox up` (or `make go-live`)"
                )
            target = AwsTarget(region=env.region, endpoint_url=endpoint, max_attempts=env.aws.max_attempts,
                               role_arn=role_arn)
        else:
            target = AwsTarget(
                region=env.region,
                profile=env.aws.profile,
                credentials_block=env.aws.credentials_block,
                max_attempts=env.aws.max_attempts,
                role_arn=role_arn,
            )
        return cls(environment=env, target=target, mode=mode, allow_replace=allow_replace)

    @property
    def applying(self) -> bool:
        return self.mode == "apply"

    @property
    def env_name(self) -> str:
        return self.environment.name

    @property
    def aws(self) -> Aws:
        return clients(self.target)

    def client(self, service: str):
        return self.aws.client(service)

    def edge_client(self, service: str):
        """A client in us-east-1, where CloudFront's WAF, its metrics and Route 53's health-check metrics
        (and so their alarms) live, whatever the environment's region."""
        return clients(self.target.model_copy(update={"region": "us-east-1"})).client(service)

    def account_id(self) -> str:
        return self.aws.account_id()

    def waiter(self, delay: float, minutes: float) -> dict:
        """A botocore WaiterConfig bounded at `minutes`, polling every `delay` seconds against AWS and every
        poll_delay in the sandbox (a 15 s AWS delay would otherwise be 15 s of sleeping per waiter)."""
        delay = self.poll_delay(delay)
        return {"Delay": delay, "MaxAttempts": max(1, int(minutes * 60 // delay))}

    def poll_delay(self, aws_seconds: float) -> float:
        """How long to wait between polls of something AWS takes time to finish: `aws_seconds` against AWS;
        0.2 s in the sandbox, whose emulated work (a local process, a record) finishes within a poll."""
        return 0.2 if self.target.is_sandbox else aws_seconds

    def report(self, change: Change) -> None:
        """Tell the Prefect run log and any watching terminal about one resource's change."""
        message = change.headline()
        for field in change.fields:
            message += f"\n      {field.render()}"
        logger().info(message)
        progress.emit(change)


def logger() -> logging.Logger | logging.LoggerAdapter:
    """The Prefect run logger inside a flow or task; a plain logger elsewhere (plain calls, tests)."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("golive")
