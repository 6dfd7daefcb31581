"""Within a plan, identical reads are asked of AWS once.

A plan writes nothing, so identical read requests made during it get the same answer. Yet the phases of
`golive plan` run at once and each discovers what it stands on (Phase 1's network, groups, buckets and
roles, read by Phases 3, 4, 5 and 7), and resources read shared things (the database login's secret, the
VPC's attributes, the distribution's config) through their own helpers: a converged `golive plan sandbox`
made 363 calls, 189 of them distinct (2026-12-03). Against AWS every one is a round trip of 50-100 ms and
counts against the account's API rate limits.

Inside `shared_reads()` (the CLI's plan), the first of identical reads goes to AWS; the others, at the same
moment or later, wait for its answer and get their own copy of it. botocore lets a `before-call` handler
answer a call without a request, and every `after-call` handler still sees it, so the call log, the
error a missing resource raises and the code that reads the answer are the same either way.

What is shared: reads only (golive.aws READ_PREFIXES), keyed by the client's target, the service, the
operation and its parameters; answers and the errors AWS gives for the request itself (NotFound,
AccessDenied). What is not: throttling and server errors (each caller retries for itself, as it would
alone), and anything outside a plan, where a write may come between two reads.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
import threading
from typing import Any, Iterator

from golive.transient import SERVER_SIDE_CODES, THROTTLING_CODES

_LEADER = "golive_shared_read"  # in a call's context: the entry this call answers for the others
_RAW = "golive_shared_raw"  # the answer as AWS gave it, before botocore's after-call handlers rework it
# A waiter asks for itself after this: the first caller is stuck, or failed where no handler of ours saw it
# (an earlier after-call handler raised). Its entry is then dropped, so later reads do not wait for it too.
_WAIT_SECONDS = 30
# Reads by name whose answer is new each time: never shared.
_FRESH_EACH_TIME = frozenset({"GetRandomPassword"})


class _Entry:
    def __init__(self) -> None:
        self.answered = threading.Event()
        self.response: tuple[Any, dict] | None = None  # (the HTTP response, its parsed body); None: ask yourself


class SharedReads:
    """One plan's answers, by request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple, _Entry] = {}

    def claim(self, key: tuple) -> tuple[_Entry, bool]:
        """The entry for this request, and whether this caller is the first (it asks AWS)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry, False
            entry = self._entries[key] = _Entry()
            return entry, True

    def drop(self, key: tuple, entry: _Entry | None = None) -> None:
        """Forget the request's answer (only if it is still `entry`, when given)."""
        with self._lock:
            if entry is None or self._entries.get(key) is entry:
                self._entries.pop(key, None)


_ACTIVE: contextvars.ContextVar[SharedReads | None] = contextvars.ContextVar("golive_shared_reads", default=None)


@contextlib.contextmanager
def shared_reads() -> Iterator[SharedReads]:
    """Share identical reads among everything run in this context (threads started from a copy of it, as
    Prefect's task threads and the plan's phase threads are, included). Only for runs that write nothing."""
    reads = SharedReads()
    token = _ACTIVE.set(reads)
    try:
        yield reads
    finally:
        _ACTIVE.reset(token)


def _key(aws: Any, model: Any, context: dict) -> tuple | None:
    from golive.aws import READ_PREFIXES

    params = context.get("golive_params")
    if (params is None or not model.name.startswith(READ_PREFIXES) or model.name in _FRESH_EACH_TIME
            or model.has_streaming_output):  # a body read as a stream (S3 GetObject) is read once: not shared
        return None
    return (aws.target, model.service_model.service_name, model.name, json.dumps(params, sort_keys=True, default=str))


def _shareable(http_response: Any, parsed: dict) -> bool:
    """An answer about the request itself: a success, or a client error that is not throttling."""
    status = http_response.status_code
    if status < 300:
        return True
    code = (parsed.get("Error") or {}).get("Code")
    return status < 500 and code not in THROTTLING_CODES | SERVER_SIDE_CODES


class Sharing:
    """The botocore handlers of one client factory (golive.aws.Aws registers them on every client)."""

    def __init__(self, aws: Any):
        self.aws = aws

    def before_call(self, model: Any, context: dict | None = None, **_: Any) -> tuple[Any, dict] | None:
        reads = _ACTIVE.get()
        if reads is None or context is None or (key := _key(self.aws, model, context)) is None:
            return None
        entry, first = reads.claim(key)
        if not first and not entry.answered.wait(_WAIT_SECONDS):
            reads.drop(key, entry)  # never answered: this call asks AWS and answers the rest
            entry, first = reads.claim(key)
        if first:
            context[_LEADER] = (reads, key, entry)
            return None
        if not entry.answered.is_set() or entry.response is None:
            return None  # no answer to share: this call asks AWS itself
        self.aws.log.count_shared()
        http_response, parsed = entry.response
        return http_response, copy.deepcopy(parsed)

    def response_received(self, parsed_response: dict | None, context: dict | None = None, **_: Any) -> None:
        """Keep the answer as parsed, each attempt's over the last: botocore's after-call handlers then rework
        it in place (IAM's URL-quoted policy documents become dicts), and a shared copy must be reworked by
        them again, like any answer."""
        if context is not None and _LEADER in context and parsed_response is not None:
            context[_RAW] = copy.deepcopy(parsed_response)

    def after_call(self, http_response: Any, parsed: dict, context: dict | None = None, **_: Any) -> None:
        leader = (context or {}).pop(_LEADER, None)
        if leader is None:
            return
        reads, key, entry = leader
        raw = context.pop(_RAW, None)
        if raw is not None and _shareable(http_response, raw):
            entry.response = (http_response, raw)
        else:
            reads.drop(key)  # throttled or a server error: the next identical read asks again
        entry.answered.set()

    def after_call_error(self, context: dict | None = None, **_: Any) -> None:
        """The request failed without an answer (a connection error): the waiters ask for themselves."""
        leader = (context or {}).pop(_LEADER, None)
        if leader is not None:
            reads, key, entry = leader
            reads.drop(key)
            entry.answered.set()
