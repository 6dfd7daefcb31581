"""Which AWS errors are worth another try, and the Prefect retry policy built on that.

Transient: throttling, 5xx, dropped connections. Everything else (validation, AccessDenied, a missing
resource) fails at once with AWS's own message: retrying it only hides the cause for minutes.
"""

from __future__ import annotations

import os

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.retries.standard import ThrottledRetryableChecker
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

THROTTLING_CODES = frozenset(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
SERVER_SIDE_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException"}
)
# While a dependent resource is still going away (a NAT gateway's interface, a detaching gateway),
# AWS answers DependencyViolation; during teardown that settles by itself.
SETTLING_CODES = frozenset({"DependencyViolation", "InvalidGroup.InUse", "ResourceInUse", "InvalidIPAddress.InUse"})
CONNECTION_ERRORS = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, CONNECTION_ERRORS):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(error) in THROTTLING_CODES | SERVER_SIDE_CODES or status >= 500
    return False


def is_not_yet_visible(error: BaseException) -> bool:
    """EC2 is eventually consistent: a resource created a moment ago can still be 'NotFound' to the
    next call (InvalidVpcID.NotFound, InvalidGroup.NotFound, ...). Retrying the task is safe, because
    every step rediscovers before it creates."""
    code = error_code(error) or ""
    return code.endswith(".NotFound")


def _failure(state) -> BaseException | None:
    try:
        state.result()
    except BaseException as error:  # the task's own exception, re-raised by Prefect
        return error
    return None


def retry_if_transient(task, task_run, state) -> bool:
    """Prefect retry_condition_fn: retry a task only when AWS said it was a passing fault."""
    error = _failure(state)
    return error is not None and (is_transient(error) or is_not_yet_visible(error))


def retry_if_transient_or_settling(task, task_run, state) -> bool:
    """For teardown: also retry while a dependency is still being deleted."""
    error = _failure(state)
    return error is not None and (
        is_transient(error) or is_not_yet_visible(error) or error_code(error) in SETTLING_CODES
    )


# Seconds before the first task-level retry; tests shorten it. botocore already retried each call
# max_attempts times, so a task retry means AWS was unwell for a while: back off properly.
_BASE_DELAY = float(os.environ.get("GOLIVE_RETRY_BASE_DELAY", "2"))

# Task options for every AWS step. No cache: a step must look at AWS every time (idempotency comes
# from discovery), or a retried flow run could reuse a record of something deleted since.
AWS_STEP = dict(
    cache_policy=NONE,
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=_BASE_DELAY),
    retry_jitter_factor=0.2,
    retry_condition_fn=retry_if_transient,
)
TEARDOWN_STEP = {**AWS_STEP, "retries": 6, "retry_condition_fn": retry_if_transient_or_settling}
