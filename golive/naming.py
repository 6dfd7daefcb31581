"""Deterministic names and tags: how every step finds what it made, and how teardown finds all of it."""

from __future__ import annotations

PREFIX = "golive"
ENVIRONMENT_TAG = "golive:environment"
COMPONENT_TAG = "golive:component"
MANAGED_BY_TAG = "ManagedBy"
MANAGED_BY = "golive"


def resource_name(environment: str, component: str) -> str:
    """golive-<environment>-<component>, the Name of every resource this project owns."""
    return f"{PREFIX}-{environment}-{component}"


def tags(environment: str, component: str) -> dict[str, str]:
    return {
        "Name": resource_name(environment, component),
        ENVIRONMENT_TAG: environment,
        COMPONENT_TAG: component,
        MANAGED_BY_TAG: MANAGED_BY,
    }


def tag_list(environment: str, component: str) -> list[dict[str, str]]:
    """Tags in the [{'Key': k, 'Value': v}] form most AWS APIs take."""
    return [{"Key": k, "Value": v} for k, v in tags(environment, component).items()]


def ec2_filters(environment: str, component: str | None = None) -> list[dict]:
    """EC2 describe filters for what the environment owns (one component, or all of them)."""
    filters = [
        {"Name": f"tag:{ENVIRONMENT_TAG}", "Values": [environment]},
        {"Name": f"tag:{MANAGED_BY_TAG}", "Values": [MANAGED_BY]},
    ]
    if component is not None:
        filters.append({"Name": f"tag:{COMPONENT_TAG}", "Values": [component]})
    return filters


def bucket_name(environment: str, account_id: str, purpose: str) -> str:
    """S3 names are global: the account id makes ours unique without a random suffix (which would
    break rediscovery)."""
    return f"{PREFIX}-{environment}-{account_id}-{purpose}"


def secret_name(environment: str, name: str) -> str:
    """Secrets Manager names under the environment's prefix, which the IAM policies are scoped to."""
    return f"{PREFIX}/{environment}/{name}"


def parameter_name(environment: str, name: str) -> str:
    return f"/{PREFIX}/{environment}/{name}"


def tag_value(tag_items: list[dict] | None, key: str) -> str | None:
    for item in tag_items or []:
        if item.get("Key") == key:
            return item.get("Value")
    return None
