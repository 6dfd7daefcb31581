"""Catch an AWS error by its code: `except aws_error("ParameterNotFound"):`.

boto3 builds the classes in `client.exceptions` per session, so `except ssm.exceptions.ParameterNotFound`
misses the same error raised through a client of another session (a refreshed client, the edge's
us-east-1 factory, a task retried after the factories were rebuilt): the run then fails on an answer it
handles. It happened in the suite, on Phase 1's cost record. Matching the code AWS sent, as amazon.aws's
is_boto3_error_code does, holds whichever client raised it.
"""

from __future__ import annotations

import sys

from botocore.exceptions import ClientError

from golive.transient import error_code


class _OtherError(Exception):
    """Never raised: what aws_error names when the error being handled has another code, so that the
    except clause does not match it."""


def aws_error(*codes: str) -> type[Exception]:
    """For an except clause only: ClientError when the error being handled carries one of these codes
    (ResponseMetadata's Error.Code, e.g. "NoSuchEntity" for IAM's NoSuchEntityException), else a class
    that matches nothing."""
    error = sys.exc_info()[1]
    return ClientError if error is not None and error_code(error) in codes else _OtherError
