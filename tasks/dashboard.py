"""Plan 7.1: the environment's CloudWatch dashboard, built from its real resource ids.

Rows: the ALB (requests, 5xx, target response time p95/p99, healthy hosts per target group); ECS (CPU
and memory per service, running tasks); RDS (CPU, connections, free storage, replica lag); Redis (CPU,
memory, evictions); CloudFront (requests, 4xx and 5xx error rates, from us-east-1). The ids are read
from AWS (what Phases 1-4 made), so the dashboard shows those resources and no others.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task
from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.changes import Record
from golive.naming import resource_name
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.cache import ReplicationGroup
from tasks.cdn import Distribution
from tasks.compute import SERVICES
from tasks.load_balancer import LoadBalancer, TargetGroup


class Targets(BaseModel):
    """What the dashboard and the alarms watch: CloudWatch dimension values of the live resources."""

    load_balancer: str | None  # app/<name>/<id>
    target_groups: dict[str, str | None]  # service -> targetgroup/<name>/<id>
    cluster: str
    services: list[str]
    database: str
    replica: str | None
    cache_nodes: list[str]  # the replication group's member clusters (Redis metrics are per node)
    distribution: str | None

    def missing(self) -> list[str]:
        gaps = [] if self.load_balancer else ["the ALB (Phase 3)"]
        gaps += [f"target group {s} (Phase 3)" for s, arn in self.target_groups.items() if not arn]
        gaps += [] if self.cache_nodes else ["the Redis nodes (Phase 1)"]
        gaps += [] if self.distribution else ["the CloudFront distribution (Phase 4)"]
        return gaps


@task(**AWS_STEP)
def read_targets(run: Run) -> Targets:
    """The ids of the ALB, target groups, services, database, cache nodes and distribution (reads only)."""
    name = run.env_name
    lb = LoadBalancer(run, "alb")._find()
    groups = {}
    for service in SERVICES:
        found = TargetGroup(run, service).discover()
        groups[service] = found.id.split(":", 5)[5] if found else None
    cache = ReplicationGroup(run, "redis")._describe_one()
    distribution = Distribution(run).discover()
    targets = Targets(
        load_balancer=lb["LoadBalancerArn"].split(":loadbalancer/", 1)[1] if lb else None, target_groups=groups,
        cluster=resource_name(name, "cluster"), services=[resource_name(name, s) for s in SERVICES],
        database=resource_name(name, "postgres"),
        replica=resource_name(name, "postgres-replica") if run.environment.database.read_replica else None,
        cache_nodes=sorted((cache or {}).get("MemberClusters", [])), distribution=distribution.id if distribution else None)
    if targets.missing() and run.applying:
        raise RuntimeError(f"Phase 7 watches what Phases 1-4 made; missing: {', '.join(targets.missing())}. Run "
                           f"`golive apply {name}` for those phases first. Nothing was changed.")
    return targets


def _widget(title: str, metrics: list[list], *, region: str, stat: str = "Average", y: int, x: int = 0,
            width: int = 8) -> dict[str, Any]:
    return {"type": "metric", "x": x, "y": y, "width": width, "height": 6,
            "properties": {"title": title, "region": region, "stat": stat, "period": 300, "view": "timeSeries",
                           "metrics": metrics}}


def dashboard_body(run: Run, t: Targets) -> dict[str, Any]:
    region = run.environment.region
    alb = ["AWS/ApplicationELB"]
    lb = ["LoadBalancer", t.load_balancer or "(known after apply)"]
    widgets = [
        _widget("ALB requests", [[*alb, "RequestCount", *lb]], region=region, stat="Sum", y=0),
        _widget("ALB 5xx", [[*alb, "HTTPCode_Target_5XX_Count", *lb], [*alb, "HTTPCode_ELB_5XX_Count", *lb]],
                region=region, stat="Sum", y=0, x=8),
        _widget("Target response time p95 / p99", [[*alb, "TargetResponseTime", *lb, {"stat": "p95"}],
                                                    [*alb, "TargetResponseTime", *lb, {"stat": "p99"}]], region=region, y=0, x=16),
        _widget("Healthy hosts", [[*alb, "HealthyHostCount", "TargetGroup", group or "(known after apply)", *lb,
                                   {"label": service}] for service, group in t.target_groups.items()],
                region=region, stat="Minimum", y=6),
        _widget("ECS CPU %", [["AWS/ECS", "CPUUtilization", "ClusterName", t.cluster, "ServiceName", s] for s in t.services],
                region=region, y=6, x=8),
        _widget("ECS memory %", [["AWS/ECS", "MemoryUtilization", "ClusterName", t.cluster, "ServiceName", s]
                                 for s in t.services], region=region, y=6, x=16),
        _widget("ECS running tasks", [["ECS/ContainerInsights", "RunningTaskCount", "ClusterName", t.cluster,
                                       "ServiceName", s] for s in t.services], region=region, y=12),
        _widget("RDS CPU % / connections", [["AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", t.database],
                                            ["AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier", t.database,
                                             {"yAxis": "right"}]], region=region, y=12, x=8),
        _widget("RDS free storage / replica lag",
                [["AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", t.database]]
                + ([["AWS/RDS", "ReplicaLag", "DBInstanceIdentifier", t.replica, {"yAxis": "right"}]] if t.replica else []),
                region=region, y=12, x=16),
        _widget("Redis CPU % / memory %", [m for node in t.cache_nodes for m in (
            ["AWS/ElastiCache", "EngineCPUUtilization", "CacheClusterId", node],
            ["AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "CacheClusterId", node])], region=region, y=18),
        _widget("Redis evictions", [["AWS/ElastiCache", "Evictions", "CacheClusterId", node] for node in t.cache_nodes],
                region=region, stat="Sum", y=18, x=8),
        # CloudFront publishes its metrics in us-east-1 with Region=Global.
        _widget("CloudFront requests / error rates", [
            ["AWS/CloudFront", "Requests", "DistributionId", t.distribution or "(known after apply)", "Region", "Global",
             {"stat": "Sum"}],
            ["AWS/CloudFront", "4xxErrorRate", "DistributionId", t.distribution or "(known after apply)", "Region", "Global",
             {"yAxis": "right"}],
            ["AWS/CloudFront", "5xxErrorRate", "DistributionId", t.distribution or "(known after apply)", "Region", "Global",
             {"yAxis": "right"}]], region="us-east-1", y=18, x=16),
    ]
    return {"widgets": widgets}


class Dashboard(Resource):
    """A CloudWatch dashboard (dashboards take no tags: found by its name golive-<env>-dashboard)."""

    kind = "cloudwatch-dashboard"

    def __init__(self, run: Run, component: str = "dashboard", body: dict | None = None):
        super().__init__(run, component)
        self.body = body or {}

    @property
    def cloudwatch(self):
        return self.run.client("cloudwatch")

    def desired(self) -> dict[str, Any]:
        return {"body": self.body}

    def discover(self) -> Found | None:
        try:
            found = self.cloudwatch.get_dashboard(DashboardName=self.name)
        except aws_error("ResourceNotFound"):  # DashboardNotFoundError
            return None
        return Found(id=found["DashboardArn"], component=self.component, raw={"DashboardName": self.name},
                     state={"body": json.loads(found["DashboardBody"])})

    def create(self) -> str:
        self.cloudwatch.put_dashboard(DashboardName=self.name, DashboardBody=json.dumps(self.body))
        return self.discover().id

    def update(self, found: Found, changes) -> None:
        self.create()

    def delete(self, found: Found) -> None:
        self.cloudwatch.delete_dashboards(DashboardNames=[found.raw["DashboardName"]])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")
        entries = run.client("cloudwatch").list_dashboards(DashboardNamePrefix=prefix)["DashboardEntries"]
        return [Found(id=e["DashboardArn"], component=e["DashboardName"].removeprefix(prefix),
                      raw={"DashboardName": e["DashboardName"]}, state={}) for e in entries]


class DashboardRecord(Record):
    url: str
    widgets: int


@task(**AWS_STEP)
def ensure_dashboard(run: Run, targets: Targets) -> DashboardRecord:
    """The dashboard over the environment's ALB, services, database, cache and distribution."""
    body = dashboard_body(run, targets)
    dashboard = Dashboard(run, body=body)
    outcome = ensure(dashboard)
    region = run.environment.region
    return DashboardRecord(name=dashboard.name, id=outcome.id, change=outcome.change, widgets=len(body["widgets"]),
                           url=f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
                               f"#dashboards/dashboard/{dashboard.name}")


TEARDOWN_ORDER = [Dashboard]
