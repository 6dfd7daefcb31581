"""IAM enforcement in the sandbox: what moto 5.2.5 checks when it is turned on, and what the sandbox adds.

Turned on by POST /moto-api/reset-auth with the number of requests to let through first (0: check every
request from now), off again with "inf" (golive/permissions.py, `enforce_iam`). Measured in moto 5.2.5
(moto/iam/access_control.py, moto/core/authorization.py):
- moto checks one action per request, named `<signing name>:<operation>`: `monitoring:PutMetricAlarm` where
  IAM says `cloudwatch:PutMetricAlarm`, `cloudfront:CreateDistributionWithTags` where IAM needs
  `cloudfront:CreateDistribution` and `cloudfront:TagResource`, and for S3 a mix of API and IAM names.
  The sandbox checks instead every IAM action the runbook's reviewed table (golive/iam_actions.py) says
  the operation needs, so PassRole, tag-on-create and the other extra actions are checked too.
- Resources are evaluated only for IAM roles (the RoleName's ARN), STS AssumeRole, S3 buckets and
  objects and SQS; every other service passes "*", which moto matches against a statement's Resource
  as a pattern, so an ARN-scoped statement would never allow anything. The sandbox treats a statement
  whose Resource moto cannot compare as applying if it allows (action-level check), and a Deny as applying
  only if its Resource is "*" itself; where moto knows the resource
  (IAM roles, S3), the statement's ARN patterns are checked as moto checks them.
- Conditions are not evaluated in identity policies: moto has no request context to compare with
  (only sts:ExternalId in trust policies), and a condition with no values passes. So an Allow with a
  condition allows, and a Deny with a condition denies unconditionally: the generated policies use no
  conditional Deny (they allow under conditions instead).
- Explicit Deny statements without conditions are evaluated (the deploy role's Deny on changing itself).
- moto's signature check fails every Route 53 call (SignatureDoesNotMatch, measured: it canonicalises the
  REST path differently from botocore): the sandbox does not compare signatures. The access key still
  names the caller (an unknown key is refused), and what the caller may do is still checked. (A Route 53
  AccessDenied reaches botocore without its code: moto answers in the query-API error shape.)
- Requests signed with the sandbox's own keys (SANDBOX_CREDENTIALS) are not checked: they are the
  sandbox's stand-ins for AWS's own machinery (the ECS agent and the containers it starts, the edge, DNS),
  which in AWS act as the service or the task role, not as the deploy role.
"""

from __future__ import annotations

import functools

from golive.aws import SANDBOX_CREDENTIALS


@functools.lru_cache(maxsize=1)
def _required_actions() -> dict[tuple[str, str], tuple[str, ...]]:
    """(signing name, lower-case operation) -> IAM actions, from the reviewed table."""
    import botocore.session

    from golive.iam_actions import OPERATION_ACTIONS

    loader, required = botocore.session.get_session(), {}
    signing: dict[str, str] = {}
    for key, actions in OPERATION_ACTIONS.items():
        service, operation = key.split(".")
        if service not in signing:
            model = loader.get_service_model(service)
            signing[service] = model.signing_name or model.endpoint_prefix
        required[(signing[service], operation.lower())] = actions
    return required


def required_actions(signing_name: str, operation: str) -> tuple[str, ...]:
    """The IAM actions one request needs; an operation the table does not know is checked under its own
    name (so a new call the table misses is denied rather than let through)."""
    found = _required_actions().get((signing_name, operation.lower()))
    if found is not None:
        return found
    prefix = {"monitoring": "cloudwatch"}.get(signing_name, signing_name)
    return (f"{prefix}:{operation}",)


def install() -> None:
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam import access_control

    original_authorize = ActionAuthenticatorMixin._authenticate_and_authorize_action
    original_check = access_control.IAMRequestBase.check_action_permitted
    original_matches = access_control.IAMPolicyStatement._check_element_matches
    sandbox_key = f"Credential={SANDBOX_CREDENTIALS['aws_access_key_id']}/"

    def authorize(self, iam_request_cls, resource="*"):
        if sandbox_key in (self.headers.get("Authorization") or ""):
            return None
        return original_authorize(self, iam_request_cls, resource)

    def check_action_permitted(self, resource):
        service, operation = self._action.split(":", 1)
        for action in required_actions(service, operation):
            self._action = action
            original_check(self, resource)  # raises AccessDenied naming the action

    def check_element_matches(self, statement_element, value):
        if statement_element == "Resource" and value == "*":
            # moto does not know the request's resource: an Allow applies (the check is by action); a Deny
            # aimed at particular ARNs does not (it would deny the action on everything).
            return self._statement.get("Effect") == "Allow" or original_matches(self, statement_element, value)
        return original_matches(self, statement_element, value)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize
    access_control.IAMRequestBase.check_signature = lambda self: None
    access_control.IAMRequestBase.check_action_permitted = check_action_permitted
    access_control.IAMPolicyStatement._check_element_matches = check_element_matches
