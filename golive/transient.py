"""Which AWS errors are worth another try (no Prefect here: the CLI's first check and botocore's per-call
handlers use it before Prefect is imported; golive.retry builds the task retry policy on it).

Transient: throttling, 5xx, a connection dropped mid-request, and a named eventual-consistency error
(`*.NotFound` and the like) for something this process created moments ago. Everything else (validation,
AccessDenied, a NotFound for something the run did not just create, such as a wrong AMI or a missing
certificate) fails at once with AWS's own message: retrying it only hides the cause for minutes. An
endpoint that refuses connections or does not resolve is not retried by the task either: botocore has
already tried each call, and the CLI checks the endpoint once before any flow (golive.aws.check_reachable).
"""

from __future__ import annotations

import os
import re
import threading
import time
from typing import Any, Iterable

from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.retries.standard import ThrottledRetryableChecker

THROTTLING_CODES = frozenset(ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
SERVER_SIDE_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException"}
)
# While a dependent resource is still going away (a NAT gateway's interface, a detaching gateway),
# AWS answers DependencyViolation; during teardown that settles by itself.
SETTLING_CODES = frozenset({"DependencyViolation", "InvalidGroup.InUse", "ResourceInUse", "InvalidIPAddress.InUse"})
# The request reached AWS and the answer was lost: worth another try.
CONNECTION_ERRORS = (ConnectionClosedError, ReadTimeoutError)
# No connection at all (refused, DNS failure, connect timeout, TLS): the endpoint or the network is wrong.
UNREACHABLE_ERRORS = (BotocoreConnectionError,)
# Codes AWS uses for "no such thing". Only worth a retry when the thing was created moments ago by this
# process (AWS documents EC2, IAM, ELB and others as eventually consistent right after a create).
_NOT_FOUND = re.compile(r"(NotFound|NotFoundFault|NotFoundException|NoSuchEntity)$")
# How long after a create a NotFound for it still counts as AWS catching up. AWS gives no figure; IAM's
# propagation is the slowest documented one and settles within seconds to a minute.
EVENTUAL_CONSISTENCY_SECONDS = 120.0
# Per call: attempts and first delay for a not-yet-visible resource (0.5, 1, 2, 4, 8 s: 15.5 s at most).
NOT_YET_VISIBLE_ATTEMPTS = 6
NOT_YET_VISIBLE_FIRST_DELAY = float(os.environ.get("GOLIVE_NOT_YET_VISIBLE_DELAY", "0.5"))
# Operations that make something (their request names and response ids are remembered for the window).
CREATING_PREFIXES = ("Create", "Run", "Allocate", "Register", "Request", "Copy", "Restore", "Import", "Put",
                     "Issue", "Associate", "Attach")
# Operations that remove what they name (forgotten at once).
DELETING_PREFIXES = ("Delete", "Deregister", "Release", "Terminate", "Remove", "Disassociate", "Detach")


# "Not found" codes that do not say which kind of thing is missing: any recent create may be it.
_ANY_KIND = {"", "resource", "entity"}
# What an operation's prefix makes besides its object: AllocateAddress answers with an AllocationId,
# Associate* with an AssociationId.
_PREFIX_KINDS = {"Allocate": "allocation", "Associate": "association"}


def missing_kind(code: str) -> str:
    """The kind a NotFound code is about: 'InvalidVpcID.NotFound' -> 'vpc', 'DBInstanceNotFound' ->
    'dbinstance', 'LifecyclePolicyNotFoundException' -> 'lifecyclepolicy', 'NoSuchEntity' -> 'entity'."""
    kind = re.sub(r"(\.NotFound|NotFoundFault|NotFoundException|NotFound)$", "", code)
    kind = re.sub(r"^(Invalid|NoSuch)", "", kind)
    return re.sub(r"(ID|Id)$", "", kind).lower()


def created_kinds(operation: str) -> set[str]:
    """The kinds an operation makes: 'CreateSecurityGroup' -> {'securitygroup'}, 'RunInstances' ->
    {'instance'}, 'CreateDistributionWithTags' -> {'distribution'}, 'AllocateAddress' -> {'address',
    'allocation'}."""
    prefix = next((p for p in CREATING_PREFIXES if operation.startswith(p)), "")
    kind = operation[len(prefix):].removesuffix("WithTags").lower()
    kind = kind[:-1] if kind.endswith("s") and not kind.endswith("ss") else kind
    return {kind} | ({_PREFIX_KINDS[prefix]} if prefix in _PREFIX_KINDS else set())


def about(code: str, operation: str) -> bool:
    """Whether a NotFound with this code can be about what the operation made (a security group for
    InvalidGroup.NotFound). A NotFound for something else the created thing merely has (a repository's
    lifecycle policy, a replication group's member cluster) is the answer, not AWS catching up: retrying
    it cost 15.5 s per call."""
    wanted = missing_kind(code)
    return wanted in _ANY_KIND or any(made.endswith(wanted) for made in created_kinds(operation))


class RecentCreates:
    """The names and ids this process created in the last EVENTUAL_CONSISTENCY_SECONDS, from the requests
    and responses of successful creates, with the operation that made each. A NotFound about that kind of
    thing whose message names one of them is AWS catching up."""

    def __init__(self) -> None:
        # Per name or id, when each create named it. Every operation is kept, not the last: a CreateSubnet
        # names its VPC too, and if it overwrote CreateVpc, a NotFound for that VPC in a parallel
        # CreateSubnet a moment later would no longer look like AWS catching up (it depended on which
        # thread finished first).
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def remember(self, operation: str, *values: Any) -> None:
        now = time.monotonic()
        with self._lock:
            for value in _strings(values):
                self._seen.setdefault(value, {})[operation] = now
            for value, made in list(self._seen.items()):
                for old in [op for op, at in made.items() if now - at > EVENTUAL_CONSISTENCY_SECONDS]:
                    del made[old]
                if not made:
                    del self._seen[value]

    def named_in(self, message: str, code: str) -> bool:
        """Whether the message names something made in the window, by an operation the code can be about."""
        now = time.monotonic()
        with self._lock:
            for token in _tokens(message):
                for operation, at in self._seen.get(token, {}).items():
                    if now - at <= EVENTUAL_CONSISTENCY_SECONDS and about(code, operation):
                        return True
        return False

    def forget(self, *values: Any) -> None:
        """What a delete named is gone: a NotFound for it now is the answer, not AWS catching up (a discover
        right after a destroy must not wait 15 s per call)."""
        with self._lock:
            for value in _strings(values):
                self._seen.pop(value, None)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


# Keys whose values are not identifiers: tags ("sandbox", "golive"), free text and the response's request
# metadata would otherwise make a NotFound that merely mentions the environment look like AWS catching up.
_NOT_IDENTIFIERS = {"Tags", "TagList", "tags", "TagSpecifications", "Description", "description", "Value",
                    "SecretString", "PolicyDocument", "AssumeRolePolicyDocument", "DashboardBody",
                    "ResponseMetadata"}
# Nor is the account a created thing, under whatever key a response names it (registryId, OwnerId,
# AccountId...): ECR's "repository 'x' does not exist in the registry with id '123456789012'" named the
# registryId every CreateRepository returns, so a discover of the second repository waited 15.5 s for
# nothing. (An ARN yields itself and its resource name, never its account field.)
_ACCOUNT_ID = re.compile(r"\d{12}")


def _strings(values: Iterable[Any]) -> Iterable[str]:
    for value in values:
        if isinstance(value, dict):
            yield from _strings(v for k, v in value.items() if k not in _NOT_IDENTIFIERS)
        elif isinstance(value, (list, tuple)):
            yield from _strings(value)
        elif isinstance(value, str) and 4 <= len(value) <= 2048 and " " not in value:
            if _ACCOUNT_ID.fullmatch(value):
                continue
            yield value
            if value.startswith("arn:"):  # messages often name the resource, not its ARN
                yield value.rsplit(":", 1)[-1].rsplit("/", 1)[-1]


def _tokens(message: str) -> set[str]:
    return {token.strip("'\"`.()[]{}<>") for token in re.split(r"[\s,;=]+", message or "")} - {""}


RECENT_CREATES = RecentCreates()


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code")
    return None


def is_transient(error: BaseException) -> bool:
    """Throttling, 5xx, or a connection that dropped mid-request."""
    if isinstance(error, CONNECTION_ERRORS):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error_code(error) in THROTTLING_CODES | SERVER_SIDE_CODES or status >= 500
    return False


def is_unreachable(error: BaseException) -> bool:
    """No connection to the endpoint at all: retrying the task would only repeat botocore's attempts."""
    return isinstance(error, UNREACHABLE_ERRORS)


def not_yet_visible(code: str | None, message: str | None) -> bool:
    """AWS is eventually consistent: a resource created a moment ago can still be 'NotFound' to the next
    call (InvalidVpcID.NotFound naming the VPC this run just made). Only then is it worth a retry; a
    NotFound for anything else (a wrong AMI, a certificate that does not exist) is the answer."""
    return bool(code and _NOT_FOUND.search(code)) and RECENT_CREATES.named_in(message or "", code)


def is_not_yet_visible(error: BaseException) -> bool:
    if not isinstance(error, ClientError):
        return False
    info = error.response.get("Error", {})
    return not_yet_visible(info.get("Code"), info.get("Message"))


def retry_not_yet_visible(response=None, attempts: int = 1, **_: Any) -> float | None:
    """botocore 'needs-retry' handler: resend a call whose answer is a NotFound for something this process
    just created, after 0.5, 1, 2, ... s. Safe for every call: the request was refused, so nothing was
    done. Returns None otherwise, leaving the decision to botocore's standard retries."""
    if response is None or attempts >= NOT_YET_VISIBLE_ATTEMPTS:
        return None
    info = (response[1] or {}).get("Error", {})
    if not not_yet_visible(info.get("Code"), info.get("Message")):
        return None
    return NOT_YET_VISIBLE_FIRST_DELAY * 2 ** (attempts - 1)
