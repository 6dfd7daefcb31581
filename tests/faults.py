"""Fault injection at the wire: botocore 'before-send' handlers that answer in AWS's own error format,
so botocore parses them and its retry logic runs exactly as against AWS."""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from typing import Callable, Iterator
from urllib.parse import parse_qs

from botocore.awsrequest import AWSResponse

BODIES = {
    # EC2's protocol
    "ec2": '<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>'
           '<RequestID>fault-injected</RequestID></Response>',
    # query protocol (IAM, SNS, STS)
    "query": '<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>'
             '<RequestId>fault-injected</RequestId></ErrorResponse>',
    # rest-xml (Route 53, CloudFront; S3 reads the same Error element)
    "rest-xml": '<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>'
                '<RequestId>fault-injected</RequestId></ErrorResponse>',
    # JSON protocols (ECS, SSM, ACM, Secrets Manager, ...)
    "json": '{{"__type": "{code}", "message": "{message}"}}',
    "rest-json": '{{"__type": "{code}", "message": "{message}"}}',
}
# Per protocol, the throttling error AWS answers with, and a server-side one. (CloudWatch's CBOR protocol
# is left alone: its error bodies are binary.)
THROTTLING = {"ec2": (503, "RequestLimitExceeded"), "query": (400, "Throttling"), "rest-xml": (400, "Throttling"),
              "json": (400, "ThrottlingException"), "rest-json": (429, "TooManyRequestsException")}
SERVER_ERROR = {"ec2": (500, "InternalError"), "query": (500, "InternalFailure"), "rest-xml": (500, "InternalError"),
                "json": (500, "InternalFailure"), "rest-json": (500, "InternalFailure")}


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def error_response(protocol: str, status: int, code: str, message: str) -> AWSResponse:
    body = BODIES[protocol].format(code=code, message=message).encode()
    return AWSResponse("https://fault.injected/", status, {}, _Body(body))


class Throttle:
    """Answer every n-th EC2 request with RequestLimitExceeded (a share of all calls)."""

    def __init__(self, every: int):
        self.every, self.injected = every, 0
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **_):
        with self._lock:
            if next(self._counter) % self.every:
                return None
            self.injected += 1
        return error_response("ec2", 503, "RequestLimitExceeded", "Request limit exceeded.")


@contextmanager
def injected(run, event: str, handler: Callable) -> Iterator[Callable]:
    """The handler on the run's clients for the block's duration (event as botocore names it, e.g.
    'before-send.ec2'); removed however the block ends."""
    run.aws.on(event, handler)
    try:
        yield handler
    finally:
        run.aws.off(event, handler)


class _Countdown:
    """Acts on the first n attempts of one operation, whichever thread sends them."""

    def __init__(self, operation: str, times: int):
        self.operation, self.remaining = operation, times
        self._lock = threading.Lock()

    def take(self, event_name: str) -> bool:
        """True when this attempt is one of the first n of the operation."""
        if not event_name.endswith("." + self.operation):
            return False
        with self._lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True


class FailFirst(_Countdown):
    """Answer the first n attempts of one operation with the given error."""

    def __init__(self, operation: str, times: int, protocol: str, status: int, code: str, message: str):
        super().__init__(operation, times)
        self.protocol, self.status, self.code, self.message = protocol, status, code, message

    def __call__(self, event_name: str, **_):
        if not self.take(event_name):
            return None
        return error_response(self.protocol, self.status, self.code, self.message)


class NotYetVisible(_Countdown):
    """Answer the first n attempts of one EC2 operation with `code`, naming the id the request carries in
    `parameter` (say CreateSubnet's VpcId): what AWS says when a resource made moments ago has not yet
    reached every endpoint."""

    def __init__(self, operation: str, parameter: str, code: str, times: int):
        super().__init__(operation, times)
        self.parameter, self.code = parameter, code
        self.named: list[str] = []

    def __call__(self, event_name: str, request=None, **_):
        if not self.take(event_name):
            return None
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        value = parse_qs(body).get(self.parameter, ["?"])[0]
        self.named.append(value)
        return error_response("ec2", 400, self.code, f"The {self.parameter} '{value}' does not exist")


class RandomFaults:
    """Answer a share of all requests, whatever the service, with throttling or a 5xx in the service's own
    protocol (seeded: a soak can be replayed). Register one per client: its protocol picks the body."""

    def __init__(self, share: float, seed: int):
        import random

        self.share, self.injected, self.by_code = share, 0, {}
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def handler(self, protocol: str):
        def inject(event_name: str, **_):
            if protocol not in THROTTLING:
                return None
            with self._lock:
                if self._random.random() >= self.share:
                    return None
                status, code = (THROTTLING if self._random.random() < 0.5 else SERVER_ERROR)[protocol]
                self.injected += 1
                self.by_code[code] = self.by_code.get(code, 0) + 1
            if event_name.startswith("before-send.s3.") and code == "Throttling":
                status, code = 503, "SlowDown"  # S3's own throttling answer
            return error_response(protocol, status, code, "injected by tests/faults.py")
        return inject
