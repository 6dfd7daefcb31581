"""The sandbox's AWS control plane: moto's server on 127.0.0.1, one per state directory."""

from __future__ import annotations

import sys
import urllib.request

from golive.sandbox.services import HOST, Service, locked, state_dir


def _responds(port: int) -> bool:
    try:
        # /moto-api/ is its dashboard page (4 ms); data.json dumps every resource (seconds once IAM is loaded).
        with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


MOTO = Service(
    name="moto",
    marker="golive.sandbox.moto_server",
    argv=lambda port: [sys.executable, "-m", "golive.sandbox.moto_server", "-H", HOST, "-p", str(port)],
    ready=_responds,
    extra=lambda port: {"endpoint_url": f"http://{HOST}:{port}"},
)


# One cheap read per service the runbook calls. moto builds a service's web app, parses its botocore model
# and creates the account's backends on the first request for it: 2-3 s of its CPU in all, which a fresh
# go-live otherwise pays on its first steps (AWS has no such cold start). `up` spends it on a new server.
WARM_UP: list[tuple[str, str, dict]] = [
    ("sts", "get_caller_identity", {}), ("iam", "list_roles", {"MaxItems": 1}), ("ec2", "describe_vpcs", {}),
    ("rds", "describe_db_instances", {}), ("elasticache", "describe_replication_groups", {}),
    ("s3", "list_buckets", {}), ("route53", "list_hosted_zones", {}), ("acm", "list_certificates", {}),
    ("ecr", "describe_repositories", {}), ("ecs", "list_clusters", {}), ("elbv2", "describe_load_balancers", {}),
    ("cloudfront", "list_distributions", {}), ("wafv2", "list_web_acls", {"Scope": "REGIONAL"}),
    ("secretsmanager", "list_secrets", {}), ("ssm", "describe_parameters", {}), ("logs", "describe_log_groups", {}),
    ("cloudwatch", "describe_alarms", {}), ("sns", "list_topics", {}), ("cloudtrail", "describe_trails", {}),
    ("config", "describe_config_rules", {}), ("budgets", "describe_budgets", {"AccountId": "123456789012"}),
    ("application-autoscaling", "describe_scalable_targets", {"ServiceNamespace": "ecs"}),
    ("shield", "list_protections", {}), ("ce", "get_cost_and_usage", {
        "TimePeriod": {"Start": "2026-01-01", "End": "2026-01-02"}, "Granularity": "DAILY", "Metrics": ["UnblendedCost"]}),
]


def warm_up(endpoint: str, region: str = "us-east-1") -> None:
    """Make each service's first request now (see WARM_UP), several at once."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from golive.aws import SANDBOX_CREDENTIALS

    session = boto3.Session(region_name=region, **SANDBOX_CREDENTIALS)  # the account the runs use
    clients = {service: session.client(service, endpoint_url=endpoint) for service, _, _ in WARM_UP}

    def call(service: str, operation: str, arguments: dict) -> None:
        try:
            getattr(clients[service], operation)(**arguments)
        except ClientError:
            pass  # moto answered (an operation it refuses still built its app and model): warm all the same
        except BotoCoreError:
            pass  # not warmed (the server went away?): only slower; the step that needs it says what is wrong

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda item: call(*item), WARM_UP))


def endpoint_url() -> str | None:
    """The running sandbox's AWS endpoint, or None. Cheap: no HTTP call."""
    state = MOTO.read()
    return state["endpoint_url"] if MOTO.alive(state) else None


def status() -> dict:
    state = MOTO.running()
    return {
        "running": state is not None,
        "aws_endpoint_url": state["endpoint_url"] if state else None,
        "pid": state["pid"] if state else None,
        "state_dir": str(state_dir()),
        "log": str(MOTO.log_file),
    }


def up(*, warm: bool = True) -> dict:
    """Start the moto server unless one is already running for this state directory; a new one is warmed
    up (WARM_UP) unless warm=False, for a caller that warms it up beside other work."""
    with locked():
        state, started = MOTO.start()
    if started and warm:
        warm_up(state["endpoint_url"])
    return {**status(), "started": started}


def down() -> dict:
    """Stop the server and forget it. Safe to call when nothing runs."""
    with locked():
        stopped = MOTO.stop()
    return {"running": False, "stopped": stopped, "state_dir": str(state_dir())}
