"""The environment's generation: a random nonce that lives from an environment's first apply until the
next destroy begins, so that the client tokens of creates are idempotent within a generation and new after
a destroy.

AWS remembers a create's client token after the thing it made is gone: ACM answers a repeated
IdempotencyToken with the certificate it made (for an hour, even once deleted), Route 53 refuses a
CallerReference it has seen (HostedZoneAlreadyExists, HealthCheckAlreadyExists), CloudFront a reused
CallerReference with a different config. A token derived only from names therefore resolves, after
`golive destroy`, to something the destroy removed. A token that includes the generation does not:

- a create killed and retried (same generation) sends the same token, so AWS returns what the first
  attempt made instead of making a second one;
- a create after a destroy sends a new token, because the destroy forgets the generation before it deletes
  anything (a killed destroy included), and the next apply draws a new one.

The nonce is kept in AWS itself (an SSM parameter tagged for the environment), where a resumed run finds
it from any machine; it is written with Overwrite=False, so two runs racing to draw one agree on the first.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from golive.aws_errors import aws_error
from golive.changes import Action, Change
from golive.naming import parameter_name, tag_list
from golive.run import Run

COMPONENT = "generation"


def _parameter(run: Run) -> str:
    # Nested, so it is not one of the app's settings (top-level /golive/ENV/NAME parameters, tasks/compute.py).
    return parameter_name(run.env_name, f"lifecycle/{COMPONENT}")


def current(run: Run) -> str | None:
    """The generation in force, or None before the first apply (or since a destroy began)."""
    ssm = run.client("ssm")
    try:
        return ssm.get_parameter(Name=_parameter(run))["Parameter"]["Value"]
    except aws_error("ParameterNotFound"):
        return None


def generation(run: Run) -> str:
    """The generation in force; in apply mode one is drawn if there is none yet. Plan mode never writes:
    it shows '(next)' where a token would take the generation the apply will draw."""
    found = current(run)
    if found is not None or not run.applying:
        return found or "(next)"
    ssm = run.client("ssm")
    try:
        ssm.put_parameter(Name=_parameter(run), Value=secrets.token_hex(4), Type="String", Overwrite=False,
                          Description="golive: the nonce in this environment's client tokens (golive/generation.py)",
                          Tags=tag_list(run.env_name, COMPONENT))
    except aws_error("ParameterAlreadyExists"):
        pass  # another run (or a killed attempt of this one) drew it first: use theirs
    return ssm.get_parameter(Name=_parameter(run))["Parameter"]["Value"]


def is_generation(parameter: str) -> bool:
    """True for the generation's own parameter (teardown forgets it first, not with the other parameters)."""
    return parameter.endswith(f"/lifecycle/{COMPONENT}")


def forget(run: Run) -> Change | None:
    """Called first by a destroy: later creates draw a new generation, so none of their tokens can resolve
    to something this destroy deletes (a destroy killed half-way included). Plan mode only reports it."""
    found = current(run)
    if found is None:
        return None
    name = _parameter(run)
    if run.applying:
        ssm = run.client("ssm")
        try:
            ssm.delete_parameter(Name=name)
        except aws_error("ParameterNotFound"):
            return None  # another destroy forgot it first
    change = Change(action=Action.DELETE, kind="ssm-parameter", name=name, id=name,
                    note="the generation in client tokens: the next apply draws a new one")
    run.report(change)
    return change


def client_token(run: Run, component: str, max_length: int = 64, pattern: str = r"[^a-zA-Z0-9-]") -> str:
    """A create's client token: the same for every attempt within a generation, new after a destroy.
    Readable (golive-ENV-COMPONENT-GENERATION) when it fits the API's limits, else a digest of that."""
    text = f"golive-{run.env_name}-{component}-{generation(run)}"
    token = re.sub(pattern, "", text)
    if len(token) > max_length:
        token = re.sub(pattern, "", "g" + hashlib.sha256(text.encode()).hexdigest())[:max_length]
    return token
