"""An AWS error caught by its code holds whichever client raised it: boto3's per-session exception
classes do not (a refreshed client's ParameterNotFound once failed Phase 1's cost record)."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from golive.aws_errors import aws_error


def _ssm(endpoint: str):
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    return session.client("ssm", endpoint_url=endpoint)


def test_an_error_is_caught_by_its_code_whichever_session_raised_it(sandbox):
    raising, other = _ssm(sandbox), _ssm(sandbox)

    # The hazard: another session's class of the same name does not match.
    with pytest.raises(ClientError):
        try:
            raising.get_parameter(Name="/golive/tests/missing")
        except other.exceptions.ParameterNotFound:
            pytest.fail("another session's class matched; the hazard this module exists for is gone")

    try:
        raising.get_parameter(Name="/golive/tests/missing")
    except aws_error("ParameterAlreadyExists", "ParameterNotFound") as error:
        assert error.response["Error"]["Code"] == "ParameterNotFound"
    else:
        pytest.fail("a missing parameter was found")

    # Another code goes through untouched, with AWS's own message.
    raising.put_parameter(Name="/golive/tests/present", Value="1", Type="String", Overwrite=True)
    with pytest.raises(ClientError, match="ParameterAlreadyExists"):
        try:
            raising.put_parameter(Name="/golive/tests/present", Value="2", Type="String")
        except aws_error("ParameterNotFound"):
            pytest.fail("an existing parameter was taken for a missing one")
