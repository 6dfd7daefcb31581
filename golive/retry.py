"""The Prefect retry policy for AWS steps, built on golive.transient's classification of AWS errors:
a task is retried only for what AWS documents as transient; anything else fails at once with AWS's message.
"""

from __future__ import annotations

import os

from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from golive.transient import (  # noqa: F401 (the classification, importable from here as before)
    RECENT_CREATES,
    SETTLING_CODES,
    error_code,
    is_not_yet_visible,
    is_transient,
    is_unreachable,
)


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
