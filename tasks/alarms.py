"""Plan 7.1: the alarms on what serves the site, the application-error metric, and the uptime check.

Alarms (thresholds in the file's [alarms], all to the alerts topic of Phase 1, made by the same
MetricAlarm as the database's): ECS CPU and memory per service, the ALB's 5xx rate and p95 latency,
unhealthy targets per target group, Redis memory and evictions per node, CloudFront's 5xx rate, the
backend's error lines (a metric filter on its log group), and the site's uptime (a Route 53 health
check of https://<domain>/health/ with an alarm on it). CloudFront's and Route 53's metrics exist only in
us-east-1, so their alarms live there whatever the region. A composite "site down" alarm fires when the
uptime check fails together with the 5xx rate or the unhealthy hosts.

Every alarm is named golive-<env>-..., which is what the cutover (8.2) and the post-launch monitoring
(8.3) read: one in ALARM rolls the cutover back and fails a monitoring poll.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.changes import Record
from golive.naming import resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.compute import LogGroup, log_group_name
from tasks.cutover import NewTargetHealthCheck
from tasks.dashboard import Targets
from tasks.observability import MetricAlarm, TopicRecord, alarm, owned_alarms, rate_alarm

APP_ERRORS_METRIC = "ApplicationErrors"
# What counts as an application error in the backend's log: Django's and gunicorn's ERROR and CRITICAL
# lines and uncaught tracebacks.
ERROR_PATTERN = '?ERROR ?CRITICAL ?Traceback'


def app_metric_namespace(environment: str) -> str:
    return f"golive/{environment}"


class EdgeMetricAlarm(MetricAlarm):
    """An alarm on a us-east-1-only metric (CloudFront, Route 53 health checks), kept in us-east-1."""

    kind = "cloudwatch-alarm-us-east-1"

    @property
    def cloudwatch(self):
        return self.run.edge_client("cloudwatch")

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        if run.environment.region == "us-east-1":
            return []  # the same alarms MetricAlarm's teardown already finds
        return owned_alarms(run, run.edge_client("cloudwatch"))


class CompositeAlarm(Resource):
    """'Site down': the uptime check failing together with 5xx answers or unhealthy targets."""

    kind = "cloudwatch-composite-alarm"
    sandbox_lacks_create = "put_composite_alarm"  # moto 5.2.5 answers it with HTTP 500

    def __init__(self, run: Run, component: str = "site-down", rule: str = "", topic_arn: str | None = None):
        super().__init__(run, component)
        self.rule, self.topic_arn = rule, topic_arn

    @property
    def cloudwatch(self):
        # Its children must be in its own region: the uptime alarm is in us-east-1, so it is too.
        return self.run.edge_client("cloudwatch")

    def desired(self) -> dict[str, Any]:
        return {"rule": self.rule, "actions": [self.topic_arn]}

    def discover(self) -> Found | None:
        alarms = self.cloudwatch.describe_alarms(AlarmNames=[self.name], AlarmTypes=["CompositeAlarm"])["CompositeAlarms"]
        return Found(id=alarms[0]["AlarmArn"], component=self.component, raw=alarms[0], state={
            "rule": alarms[0]["AlarmRule"], "actions": alarms[0].get("AlarmActions", [])}) if alarms else None

    def _put(self, tags: bool) -> None:
        kwargs = dict(AlarmName=self.name, AlarmRule=self.rule, AlarmActions=[self.topic_arn], OKActions=[self.topic_arn],
                      AlarmDescription=f"{self.run.environment.domain} is down")
        if tags:
            kwargs["Tags"] = tag_list(self.run.env_name, self.component)
        self.cloudwatch.put_composite_alarm(**kwargs)

    def create(self) -> str:
        self._put(tags=True)
        return self.discover().id

    def update(self, found: Found, changes) -> None:
        self._put(tags=False)

    def delete(self, found: Found) -> None:
        self.cloudwatch.delete_alarms(AlarmNames=[found.raw["AlarmName"]])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        prefix = resource_name(run.env_name, "")
        alarms = run.edge_client("cloudwatch").describe_alarms(AlarmNamePrefix=prefix, AlarmTypes=["CompositeAlarm"])
        return [Found(id=a["AlarmArn"], state={}, raw=a, component=a["AlarmName"].removeprefix(prefix))
                for a in alarms.get("CompositeAlarms", [])]


class ErrorMetricFilter(Resource):
    """Counts the backend's error lines as golive/<env> ApplicationErrors (0 when there are none)."""

    kind = "log-metric-filter"

    def __init__(self, run: Run, component: str = "app-errors"):
        super().__init__(run, component)
        self.log_group = log_group_name(run.env_name, "backend")

    @property
    def logs(self):
        return self.run.client("logs")

    def desired(self) -> dict[str, Any]:
        return {"pattern": ERROR_PATTERN, "metric": f"{app_metric_namespace(self.run.env_name)}/{APP_ERRORS_METRIC}"}

    def discover(self) -> Found | None:
        try:
            filters = self.logs.describe_metric_filters(logGroupName=self.log_group, filterNamePrefix=self.name)["metricFilters"]
        except aws_error("ResourceNotFoundException"):
            return None
        mine = next((f for f in filters if f["filterName"] == self.name), None)
        if mine is None:
            return None
        transform = mine["metricTransformations"][0]
        return Found(id=self.name, component=self.component, raw=mine, state={
            "pattern": mine["filterPattern"], "metric": f"{transform['metricNamespace']}/{transform['metricName']}"})

    def create(self) -> str:
        self.logs.put_metric_filter(
            logGroupName=self.log_group, filterName=self.name, filterPattern=ERROR_PATTERN,
            metricTransformations=[{"metricName": APP_ERRORS_METRIC, "metricNamespace": app_metric_namespace(self.run.env_name),
                                    "metricValue": "1", "defaultValue": 0}])
        return self.name

    def update(self, found: Found, changes) -> None:
        self.create()

    def delete(self, found: Found) -> None:
        self.logs.delete_metric_filter(logGroupName=found.raw["logGroupName"], filterName=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class UptimeHealthCheck(NewTargetHealthCheck):
    """Route 53 checkers in several regions GET https://<domain>/health/ every 30 s (the site's uptime)."""

    def __init__(self, run: Run, component: str = "uptime", fqdn: str | None = None):
        super().__init__(run, component, fqdn or run.environment.domain)


def alarm_specs(run: Run, t: Targets, health_check_id: str | None) -> tuple[dict[str, dict], dict[str, dict]]:
    """(regional alarms, us-east-1 alarms): component -> spec, from the file's thresholds."""
    a = run.environment.alarms
    every = {"period": a.period_seconds, "evaluation_periods": a.evaluation_periods}
    regional: dict[str, dict[str, Any]] = {}
    for service in ("backend", "frontend"):
        dims = {"ClusterName": t.cluster, "ServiceName": resource_name(run.env_name, service)}
        regional[f"{service}-cpu"] = alarm("AWS/ECS", "CPUUtilization", dims, "GreaterThanThreshold", a.ecs_cpu_percent, **every)
        regional[f"{service}-memory"] = alarm("AWS/ECS", "MemoryUtilization", dims, "GreaterThanThreshold",
                                              a.ecs_memory_percent, **every)
        regional[f"{service}-unhealthy-hosts"] = alarm(
            "AWS/ApplicationELB", "UnHealthyHostCount",
            {"TargetGroup": t.target_groups.get(service) or "(known after apply)",
             "LoadBalancer": t.load_balancer or "(known after apply)"},
            "GreaterThanThreshold", a.unhealthy_hosts, statistic="Maximum", **every)
    alb = {"LoadBalancer": t.load_balancer or "(known after apply)"}
    regional["alb-5xx-rate"] = rate_alarm("AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "RequestCount", alb,
                                          a.alb_5xx_percent, extra_parts=("HTTPCode_ELB_5XX_Count",), **every)
    regional["alb-p95-latency"] = alarm("AWS/ApplicationELB", "TargetResponseTime", alb, "GreaterThanThreshold",
                                        a.alb_p95_seconds, statistic="p95", **every)
    for node in t.cache_nodes:
        dims = {"CacheClusterId": node}
        regional[f"{node.removeprefix(resource_name(run.env_name, ''))}-memory"] = alarm(
            "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", dims, "GreaterThanThreshold", a.redis_memory_percent, **every)
        regional[f"{node.removeprefix(resource_name(run.env_name, ''))}-evictions"] = alarm(
            "AWS/ElastiCache", "Evictions", dims, "GreaterThanThreshold", a.redis_evictions, statistic="Sum", **every)
    regional["app-errors"] = alarm(app_metric_namespace(run.env_name), APP_ERRORS_METRIC, {}, "GreaterThanThreshold",
                                   a.app_errors, statistic="Sum", **every)
    edge = {
        "cdn-5xx-rate": alarm("AWS/CloudFront", "5xxErrorRate",
                              {"DistributionId": t.distribution or "(known after apply)", "Region": "Global"},
                              "GreaterThanThreshold", a.cloudfront_5xx_percent, **every),
        # HealthCheckStatus is 1 while healthy: below 1 for a minute, twice, is the site unreachable.
        "uptime": alarm("AWS/Route53", "HealthCheckStatus", {"HealthCheckId": health_check_id or "(known after apply)"},
                        "LessThanThreshold", 1, statistic="Minimum", period=60, evaluation_periods=2),
    }
    return regional, edge


class AlarmsRecord(BaseModel):
    """Not a Record: its parts each carry their own change (collect_changes visits them)."""

    alarms: list[Record]
    metric_filter: Record
    health_check: Record
    site_down: Record
    log_groups: dict[str, int | None]  # the app's log groups (Phase 3) and their retention, read back


@task(**AWS_STEP)
def ensure_monitoring_alarms(run: Run, topic: TopicRecord, targets: Targets) -> AlarmsRecord:
    """The error metric filter, the uptime health check, every alarm, and the composite 'site down'."""
    metric_filter = ensure(ErrorMetricFilter(run)) if LogGroup(run, "backend").discover() or not run.applying else None
    if metric_filter is None:
        raise RuntimeError(f"the backend's log group {log_group_name(run.env_name, 'backend')} does not exist; run "
                           f"`golive apply {run.env_name} --phase ecs` first")
    check = UptimeHealthCheck(run)
    health = ensure(check)
    regional, edge = alarm_specs(run, targets, health.id)
    records = []
    for kind, specs in ((MetricAlarm, regional), (EdgeMetricAlarm, edge)):
        for component, spec in specs.items():
            outcome = ensure(kind(run, component, spec, topic.id))
            records.append(Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change))
    n = lambda component: resource_name(run.env_name, component)
    rule = (f"ALARM(\"{n('uptime')}\") AND (ALARM(\"{n('alb-5xx-rate')}\") OR "
            f"ALARM(\"{n('backend-unhealthy-hosts')}\") OR ALARM(\"{n('frontend-unhealthy-hosts')}\"))")
    site_down = ensure(CompositeAlarm(run, rule=rule, topic_arn=topic.id))
    groups = {group.id: group.raw.get("retentionInDays") for group in LogGroup.discover_all(run)}
    return AlarmsRecord(
        alarms=records,
        metric_filter=Record(name=n("app-errors"), id=metric_filter.id, change=metric_filter.change),
        health_check=Record(name=check.name, id=health.id, change=health.change),
        site_down=Record(name=n("site-down"), id=site_down.id, change=site_down.change), log_groups=groups)


# The composite first (AWS refuses to delete an alarm a composite names); the metric alarms themselves
# go with Phase 1's (observability.MetricAlarm finds every golive-<env>-* alarm); the uptime health check
# with the cutover's (NewTargetHealthCheck finds every health check of the environment).
TEARDOWN_ORDER = [CompositeAlarm, EdgeMetricAlarm, ErrorMetricFilter]
