"""The monthly cost of an environment file, line by line in the shape of the plan's cost table.

Pure arithmetic: the file's sizes and counts (golive/config.py), its usage assumptions (`cost.usage`,
defaulting to the plan's figures) and a pinned, dated price table per region (golive/prices/<region>.toml,
each section naming the AWS pricing page it came from). No AWS call and no Prefect import: `golive cost`
answers at once, and the same numbers go into `plan` (how a change moves the estimate), the go-live's
report and its budget gate, and the post-launch comparison with what AWS bills.

What the estimate does not count, it says: free tiers (as the plan does not), Container Insights' metrics
unless `cost.usage.custom_metrics` gives them, taxes and support plans.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from golive.config import Environment, PlannedServices, ScheduleSettings, UsageSettings

PRICES_DIR = Path(__file__).resolve().parent / "prices"
HOURS_PER_WEEK = 168

# The plan's cost table ("Cost Breakdown (Monthly Estimates)"), its totals and its optimized range.
PLAN_LINES: dict[str, float] = {
    "ECS Fargate": 75, "RDS PostgreSQL": 100, "ElastiCache Redis": 15, "Application Load Balancer": 20,
    "NAT Gateway": 35, "S3 Storage": 5, "CloudFront": 10, "Route 53": 1, "Data Transfer": 20,
    "CloudWatch Logs": 15, "Backups": 5, "Secrets Manager": 5, "WAF": 10,
}
PLAN_PRODUCTION_TOTAL = 316.0
PLAN_STAGING_TOTAL = 120.0
PLAN_OPTIMIZED = (200.0, 250.0)
PLAN_LINE_TOLERANCE = 0.15  # the bar: each line within 15% of the plan's

# What the runbook keeps in Secrets Manager: the app's three (tasks/compute.py APP_SECRETS) and the RDS
# master password RDS manages itself (tasks/database.py, ManageMasterUserPassword).
SECRETS_KEPT = 4
# CloudWatch alarms the runbook makes: the database's three (tasks/database.py database_alarms) and the two
# that each target-tracking policy creates (tasks/compute.py: CPU and requests per service, 2 services).
ALARMS_MADE = 3 + 2 * 2 * 2
# The DNS cutover keeps one HTTPS health check on the new stack (tasks/cutover.py).
HEALTH_CHECKS = 1
# The off-hours schedule the optimizations price when the file has none: business hours on weekdays.
DEFAULT_SCHEDULE = ScheduleSettings()


class CostError(ValueError):
    """An estimate that cannot be made: the message names the file or field and the fix."""


# --- prices ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prices:
    """One region's pinned price table."""

    region: str
    valid_as_of: str
    path: Path
    table: dict[str, Any]

    @property
    def hours(self) -> float:
        return float(self.table["hours_per_month"])

    def __call__(self, section: str, key: str) -> float:
        return float(self.table[section][key])

    def source(self, section: str) -> str:
        return self.table[section]["source"]

    def keyed(self, section: str, table: str, key: str, field_name: str) -> float:
        """A price looked up by instance class or node type; a clear error when the table lacks it."""
        known = self.table[section][table]
        if key not in known:
            raise CostError(
                f"{field_name} = {key!r}: {self.path.name} has no price for it (it knows {', '.join(known)}). "
                f"Add its hourly price to [{section}.{table}] in {self.path} from {self.source(section)}, "
                "or choose a listed one")
        return float(known[key])


def load_prices(region: str) -> Prices:
    path = PRICES_DIR / f"{region}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in PRICES_DIR.glob("*.toml"))
        raise CostError(
            f"region = {region!r}: no price table {path} (tables: {', '.join(known)}). Copy {known[0]}.toml to "
            f"{path.name} and enter {region}'s prices from the pages each section names, with their date")
    table = tomllib.loads(path.read_text())
    return Prices(region=table["region"], valid_as_of=table["valid_as_of"], path=path, table=table)


# --- what the estimate reads from the file -----------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceCost(_Frozen):
    cpu: int
    memory: int
    desired_tasks: int
    min_tasks: int


class CostInputs(_Frozen):
    """Everything in an environment file that moves its cost, named as in the file. Stored (as JSON) when
    Phase 1 is applied, so `plan` can say how a change to the file moves the estimate."""

    name: str
    region: str
    network: dict[str, Any]  # availability_zones (a count), nat_gateways
    database: dict[str, Any]  # instance_class, allocated_storage_gb, multi_az, read_replica, backup_retention_days
    cache: dict[str, Any]  # node_type, multi_az
    services: dict[str, Any]  # backend, frontend (ServiceCost), schedule (or None)
    app: dict[str, Any]  # log_retention_days
    usage: UsageSettings
    planned: PlannedServices

    @classmethod
    def of(cls, env: Environment) -> "CostInputs":
        db, services = env.database, env.services
        return cls(
            name=env.name, region=env.region,
            network={"availability_zones": len(env.network.availability_zones),
                     "nat_gateways": env.network.nat_gateways},
            database={"instance_class": db.instance_class, "allocated_storage_gb": db.allocated_storage_gb,
                      "multi_az": db.multi_az, "read_replica": db.read_replica,
                      "backup_retention_days": db.backup_retention_days},
            cache={"node_type": env.cache.node_type, "multi_az": env.cache.multi_az},
            services={**{s: ServiceCost(cpu=getattr(services, s).cpu, memory=getattr(services, s).memory,
                                        desired_tasks=getattr(services, s).desired_tasks,
                                        min_tasks=getattr(services, s).min_tasks).model_dump()
                         for s in ("backend", "frontend")},
                      "schedule": services.schedule.model_dump() if services.schedule else None},
            app={"log_retention_days": env.app.log_retention_days},
            usage=env.cost.usage, planned=env.cost.planned,
        )

    def service(self, name: str) -> ServiceCost:
        return ServiceCost.model_validate(self.services[name])

    @property
    def schedule(self) -> ScheduleSettings | None:
        value = self.services.get("schedule")
        return ScheduleSettings.model_validate(value) if value else None

    def flat(self) -> dict[str, Any]:
        """Dotted names (as in the file) to values; the schedule stays one value."""
        data = self.model_dump()
        flat: dict[str, Any] = {}
        for section in ("network", "database", "cache", "app"):
            flat.update({f"{section}.{k}": v for k, v in data[section].items()})
        for service in ("backend", "frontend"):
            flat.update({f"services.{service}.{k}": v for k, v in data["services"][service].items()})
        flat["services.schedule"] = data["services"]["schedule"]
        flat.update({f"cost.usage.{k}": v for k, v in data["usage"].items()})
        flat.update({f"cost.planned.{k}": v for k, v in data["planned"].items()})
        return flat

    def with_value(self, key: str, value: Any) -> "CostInputs":
        """A copy with one dotted field changed (to attribute a cost change to it)."""
        data = self.model_dump()
        section, _, rest = key.partition(".")
        if section == "cost":
            section, _, rest = rest.partition(".")
        target = data[section]
        *path, last = rest.split(".")
        for part in path:
            target = target[part]
        target[last] = value
        return CostInputs.model_validate(data)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CostInputs":
        return cls.model_validate_json(text)


# --- the estimate ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    service: str  # the plan's name for the line where it has one
    spec: str  # what is priced, with the arithmetic
    usd: float
    source: str  # the price table section (its page is in the table)
    plan_usd: float | None = None
    note: str = ""  # e.g. "planned: not made by the runbook yet"

    @property
    def plan_delta(self) -> float | None:
        """The line against the plan's figure, as a fraction (0.1 = 10% above)."""
        return None if not self.plan_usd else self.usd / self.plan_usd - 1

    @property
    def within_plan(self) -> bool | None:
        delta = self.plan_delta
        return None if delta is None else abs(delta) <= PLAN_LINE_TOLERANCE


@dataclass(frozen=True)
class Estimate:
    environment: str
    lines: list[Line]
    prices: Prices
    plan_total: float
    plan_label: str

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    def line(self, service: str) -> Line:
        return next(line for line in self.lines if line.service == service)


def _task_hours(service: ServiceCost, schedule: ScheduleSettings | None, hours: float) -> tuple[float, float]:
    """Task-hours a month (business hours, off-hours); without a schedule all of them are 'business'."""
    if schedule is None:
        return service.desired_tasks * hours, 0.0
    on = schedule.business_hours_per_week / HOURS_PER_WEEK
    return service.desired_tasks * on * hours, off_hours_tasks(service, schedule) * (1 - on) * hours


def off_hours_tasks(service: ServiceCost, schedule: ScheduleSettings) -> int:
    """The off-hours minimum the scheduled action sets (never above the file's min_tasks), which an idle
    service scales in to (tasks/scaling_schedule.py)."""
    return min(schedule.off_hours_tasks, service.min_tasks)


@dataclass(frozen=True)
class FargateUse:
    on_demand_usd: float
    spot_usd: float
    detail: str

    @property
    def usd(self) -> float:
        return self.on_demand_usd + self.spot_usd


def fargate(inputs: CostInputs, prices: Prices, schedule: ScheduleSettings | None,
            spot_frontend: bool = False) -> FargateUse:
    """Both services' vCPU and memory hours. spot_frontend: every frontend task beyond one on-demand
    task runs on Fargate Spot (a capacity-provider strategy with base 1 on FARGATE)."""
    per_task_hour = lambda s: s.cpu / 1024 * prices("fargate", "vcpu_hour") + s.memory / 1024 * prices("fargate", "gb_hour")
    on_demand = spot = 0.0
    parts = []
    for name in ("backend", "frontend"):
        service = inputs.service(name)
        business, off = _task_hours(service, schedule, prices.hours)
        task_hours = business + off
        spot_hours = 0.0
        if spot_frontend and name == "frontend":
            on = schedule.business_hours_per_week / HOURS_PER_WEEK if schedule else 1.0
            off_tasks = off_hours_tasks(service, schedule) if schedule else 0
            spot_hours = (max(0, service.desired_tasks - 1) * on + max(0, off_tasks - 1) * (1 - on)) * prices.hours
        on_demand += (task_hours - spot_hours) * per_task_hour(service)
        spot += spot_hours * per_task_hour(service) * (1 - prices("fargate", "spot_discount"))
        parts.append(f"{service.desired_tasks} {name} x {service.cpu / 1024:g} vCPU/{service.memory / 1024:g} GB")
    when = (f"{schedule.days} {schedule.hours} {schedule.timezone}, {schedule.off_hours_tasks} task(s) each off-hours"
            if schedule else "24/7")
    return FargateUse(on_demand, spot, f"{' + '.join(parts)}, {when}")


def _rds(inputs: CostInputs, prices: Prices, multi_az: bool | None = None) -> tuple[float, float]:
    """(instance, storage) a month for the primary."""
    db = inputs.database
    multi = db["multi_az"] if multi_az is None else multi_az
    factor = prices("rds", "multi_az_factor") if multi else 1
    hourly = prices.keyed("rds", "instance_hour", db["instance_class"], "database.instance_class")
    return (hourly * factor * prices.hours,
            db["allocated_storage_gb"] * prices("rds", "storage_gb_month") * factor)


def _replica(inputs: CostInputs, prices: Prices) -> tuple[float, float]:
    """A read replica: the same class, single-AZ, its own storage."""
    if not inputs.database["read_replica"]:
        return 0.0, 0.0
    db = inputs.database
    hourly = prices.keyed("rds", "instance_hour", db["instance_class"], "database.instance_class")
    return hourly * prices.hours, db["allocated_storage_gb"] * prices("rds", "storage_gb_month")


def _plan_figure(inputs: CostInputs) -> tuple[float, str]:
    if inputs.name == "staging":
        return PLAN_STAGING_TOTAL, "the plan's staging estimate (~$120)"
    return PLAN_PRODUCTION_TOTAL, "the plan's production table (~$316)"


def estimate(inputs: CostInputs, prices: Prices | None = None) -> Estimate:
    """The monthly estimate, line by line."""
    p = prices or load_prices(inputs.region)
    u, planned, hours = inputs.usage, inputs.planned, p.hours
    azs = inputs.network["availability_zones"]
    nats = azs if inputs.network["nat_gateways"] == "per-az" else 1
    plan = PLAN_LINES if inputs.name != "staging" else {}
    lines: list[Line] = []

    def add(service: str, spec: str, usd: float, source: str, note: str = "", plan_key: str | None = None):
        lines.append(Line(service, spec, usd, source, plan.get(plan_key or service), note))

    compute = fargate(inputs, p, inputs.schedule)
    add("ECS Fargate", compute.detail, compute.usd, "fargate")

    db = inputs.database
    instance, storage = _rds(inputs, p)
    add("RDS PostgreSQL", f"{db['instance_class']}, {'Multi-AZ' if db['multi_az'] else 'single-AZ'}, "
        f"{db['allocated_storage_gb']} GB gp3: instance ${instance:.2f} + storage ${storage:.2f}",
        instance + storage, "rds")
    if db["read_replica"]:
        r_instance, r_storage = _replica(inputs, p)
        add("RDS read replica", f"{db['instance_class']}, single-AZ, {db['allocated_storage_gb']} GB",
            r_instance + r_storage, "rds")

    nodes = 2 if inputs.cache["multi_az"] else 1
    node_hour = p.keyed("elasticache", "node_hour", inputs.cache["node_type"], "cache.node_type")
    add("ElastiCache Redis", f"{nodes} x {inputs.cache['node_type']}", nodes * node_hour * hours, "elasticache")

    add("Application Load Balancer", f"1 ALB, {u.alb_lcu:g} LCU average",
        (p("alb", "hour") + u.alb_lcu * p("alb", "lcu_hour")) * hours, "alb")
    add("NAT Gateway", f"{nats} NAT gateway{'s' if nats > 1 else ''}, {u.nat_processed_gb:g} GB processed",
        nats * p("nat", "hour") * hours + u.nat_processed_gb * p("nat", "gb_processed"), "nat")
    addresses = azs + nats  # the ALB holds one public address per zone; each NAT gateway one
    add("Public IPv4 addresses", f"{addresses} ({azs} ALB, {nats} NAT)", addresses * p("public_ipv4", "hour") * hours,
        "public_ipv4", note="not in the plan's table: AWS charges for public IPv4 since February 2024")

    writes = u.s3_requests_thousands * 0.1
    add("S3 Storage", f"{u.s3_storage_gb:g} GB, {u.s3_requests_thousands:g}K requests",
        u.s3_storage_gb * p("s3", "gb_month") + writes * p("s3", "put_per_thousand")
        + (u.s3_requests_thousands - writes) * p("s3", "get_per_thousand"), "s3")
    add("CloudFront", f"{u.cdn_gb:g} GB out, {u.requests_millions:g}M HTTPS requests",
        u.cdn_gb * p("cloudfront", "gb_out") + u.requests_millions * 100 * p("cloudfront", "https_per_10k"),
        "cloudfront")
    add("Route 53", f"1 hosted zone, {u.dns_queries_millions:g}M queries",
        p("route53", "hosted_zone_month") + u.dns_queries_millions * p("route53", "queries_per_million"), "route53")
    add("Route 53 health check", f"{HEALTH_CHECKS} HTTPS check (the DNS cutover's)",
        HEALTH_CHECKS * (p("route53", "health_check_month") + p("route53", "health_check_https_month")), "route53",
        note="not in the plan's table")
    add("Data Transfer", f"{u.data_transfer_out_gb:g} GB out", u.data_transfer_out_gb * p("data_transfer", "gb_out"),
        "data_transfer")

    retention = inputs.app["log_retention_days"]
    stored = u.log_ingest_gb * retention / 30  # a month's logs kept for the retention period
    cloudwatch = (u.log_ingest_gb * p("cloudwatch", "log_ingest_gb") + stored * p("cloudwatch", "log_storage_gb_month")
                  + u.log_insights_scanned_gb * p("cloudwatch", "insights_gb_scanned")
                  + ALARMS_MADE * p("cloudwatch", "alarm_month") + u.custom_metrics * p("cloudwatch", "custom_metric_month"))
    add("CloudWatch Logs", f"{u.log_ingest_gb:g} GB logs ({retention}-day retention), {ALARMS_MADE} alarms, "
        f"{u.log_insights_scanned_gb:g} GB scanned, {u.custom_metrics} custom metrics", cloudwatch, "cloudwatch",
        note="" if u.custom_metrics else "Container Insights' metrics not counted: give cost.usage.custom_metrics")

    data_gb = db["allocated_storage_gb"] if u.database_gb is None else u.database_gb
    kept = data_gb + db["backup_retention_days"] * u.database_changed_gb_per_day
    billed = max(0.0, kept - db["allocated_storage_gb"])
    add("Backups", f"{db['backup_retention_days']} days: {kept:g} GB kept, {billed:g} GB beyond the free "
        f"{db['allocated_storage_gb']} GB", billed * p("rds", "backup_gb_month"), "rds")
    add("Secrets Manager", f"{SECRETS_KEPT} secrets, {u.secret_api_calls_thousands:g}K API calls",
        SECRETS_KEPT * p("secretsmanager", "secret_month")
        + u.secret_api_calls_thousands / 10 * p("secretsmanager", "per_10k_calls"), "secretsmanager",
        note="the runbook keeps 4 secrets; the plan counted 10")
    add("ECR", f"{u.ecr_gb:g} GB of images", u.ecr_gb * p("ecr", "gb_month"), "ecr", note="not in the plan's table")

    by_phase_7 = "made by Phase 7; its size priced from cost.planned"
    if planned.waf_rules:
        add("WAF", f"1 web ACL, {planned.waf_rules} rules, {u.requests_millions:g}M requests",
            p("waf", "web_acl_month") + planned.waf_rules * p("waf", "rule_month")
            + u.requests_millions * p("waf", "per_million_requests"), "waf", note=by_phase_7)
    if planned.shield_advanced:
        add("Shield Advanced", "subscription (one-year commitment)", p("shield", "advanced_month"), "shield",
            note=by_phase_7)
    if planned.flow_logs_gb:
        add("VPC flow logs", f"{planned.flow_logs_gb:g} GB into CloudWatch Logs",
            planned.flow_logs_gb * p("cloudwatch", "vended_log_ingest_gb"), "cloudwatch", note=by_phase_7)
    if planned.config_items or planned.config_rule_evaluations:
        add("AWS Config", f"{planned.config_items} items, {planned.config_rule_evaluations} rule evaluations",
            planned.config_items * p("config", "item") + planned.config_rule_evaluations * p("config", "rule_evaluation"),
            "config", note=by_phase_7)

    total, label = _plan_figure(inputs)
    return Estimate(environment=inputs.name, lines=lines, prices=p, plan_total=total, plan_label=label)


def estimate_environment(env: Environment) -> Estimate:
    return estimate(CostInputs.of(env))


# --- optimizations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Saving:
    name: str
    usd: float  # a month, against the estimate with the savings listed before it applied
    applied: bool  # counted in the optimized total
    how: str
    plan_says: str = ""


@dataclass(frozen=True)
class Optimized:
    estimate: Estimate
    savings: list[Saving] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.estimate.total - sum(s.usd for s in self.savings if s.applied)


def optimizations(inputs: CostInputs, prices: Prices | None = None) -> Optimized:
    """What each of the plan's options would save for this file, taken in turn (each on what the ones
    before it left), and the optimized total of those that apply."""
    p = prices or load_prices(inputs.region)
    base = estimate(inputs, p)
    savings: list[Saving] = []
    hours = p.hours

    # Off-hours scaling first: it lowers the task-hours the other compute options then apply to.
    around_the_clock = fargate(inputs, p, None)
    if inputs.schedule:
        schedule = inputs.schedule
        saved = around_the_clock.usd - fargate(inputs, p, schedule).usd
        savings.append(Saving("Scale down during off-hours", saved, False,
                              f"in the estimate already (services.schedule: {schedule.days} {schedule.hours}); "
                              f"${saved:.2f} against around the clock", "save 30-50%"))
    else:
        schedule = DEFAULT_SCHEDULE
        saved = around_the_clock.usd - fargate(inputs, p, schedule).usd
        savings.append(Saving("Scale down during off-hours", saved, saved > 0,
                              f"with [services.schedule] (default {schedule.days} {schedule.hours} "
                              f"{schedule.timezone}, {schedule.off_hours_tasks} task each off-hours): "
                              f"{saved / around_the_clock.usd:.0%} of Fargate" if saved > 0 else
                              f"nothing to save: each service already runs {schedule.off_hours_tasks} task",
                              "save 30-50%"))
    scheduled = fargate(inputs, p, schedule)

    # The frontend (nginx serving the built SPA) holds no state and runs 2+ tasks: every task beyond an
    # on-demand base of 1 can be interrupted safely. The backend is not moved: migrations and requests in
    # flight would be cut off two minutes after a Spot notice.
    spot = fargate(inputs, p, schedule, spot_frontend=True)
    saved = scheduled.usd - spot.usd
    savings.append(Saving("Fargate Spot for the frontend", saved, saved > 0,
                          "frontend tasks beyond 1 on FARGATE_SPOT (base 1 on FARGATE); backend stays on-demand"
                          if saved > 0 else "nothing to move: the frontend runs a single task, kept on-demand",
                          "(not in the plan)"))

    discount = p("fargate", "savings_plan_discount")
    savings.append(Saving("Compute Savings Plans", spot.on_demand_usd * discount, True,
                          f"{discount:.0%} of the remaining on-demand Fargate (1 year, no upfront)", "save 20-30%"))

    multi_az = inputs.database["multi_az"]
    instance, storage = _rds(inputs, p)
    single_instance, single_storage = _rds(inputs, p, multi_az=False)
    if multi_az:
        saved = instance + storage - single_instance - single_storage
        production = inputs.name == "production"
        savings.append(Saving("Single-AZ database", saved, not production,
                              "not applied to production: Multi-AZ is the plan's high availability" if production
                              else "database.multi_az = false halves the instance and storage",
                              "single AZ for staging: cut costs in half"))
        if not production:
            instance = single_instance
    else:
        savings.append(Saving("Single-AZ database", 0.0, False, "already single-AZ", "single AZ for staging: cut costs in half"))

    replica_instance, _ = _replica(inputs, p)
    reserved = p("rds", "reserved_discount")
    savings.append(Saving("RDS reserved instances", (instance + replica_instance) * reserved, True,
                          f"{reserved:.0%} of the instance hours (1 year, all upfront); storage is not reserved",
                          "save 40%"))
    return Optimized(estimate=base, savings=savings)


# --- what a change to the file does to the estimate --------------------------------------------------


@dataclass(frozen=True)
class Move:
    field: str
    before: Any
    after: Any
    usd: float | None  # this change alone, on the deployed inputs; None when it cannot be priced alone

    def render(self) -> str:
        money = "" if self.usd is None else f"{'+' if self.usd >= 0 else '-'} USD {abs(self.usd):.2f}/month: "
        return f"{money}{self.field} {_short(self.before)} -> {_short(self.after)}"


@dataclass(frozen=True)
class CostChange:
    before_usd: float | None  # None: nothing recorded (never applied)
    after_usd: float
    moves: list[Move]

    @property
    def delta(self) -> float | None:
        return None if self.before_usd is None else self.after_usd - self.before_usd

    def sentence(self) -> str:
        if self.before_usd is None:
            return f"USD {self.after_usd:.2f}/month (no estimate recorded yet: Phase 1 records it when applied)"
        if not self.moves:
            return f"USD {self.after_usd:.2f}/month, unchanged"
        sign = "+" if self.delta >= 0 else "-"
        return (f"{sign} USD {abs(self.delta):.2f}/month (USD {self.before_usd:.2f} -> {self.after_usd:.2f}): "
                + "; ".join(m.render() for m in self.moves))


def compare(deployed: CostInputs | None, wanted: CostInputs, prices: Prices | None = None) -> CostChange:
    """How the file moves the estimate of what was last applied, each changed field priced alone."""
    p = prices or load_prices(wanted.region)
    after = estimate(wanted, p).total
    if deployed is None:
        return CostChange(None, after, [])
    if deployed.region != wanted.region:
        p_before = load_prices(deployed.region)
    else:
        p_before = p
    before = estimate(deployed, p_before).total
    old, new = deployed.flat(), wanted.flat()
    moves = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        try:
            alone = estimate(deployed.with_value(key, new.get(key)), p_before).total - before
        except (CostError, ValidationError, KeyError, TypeError):
            alone = None
        moves.append(Move(key, old.get(key), new.get(key), alone))
    if deployed.region != wanted.region:
        moves.append(Move("region", deployed.region, wanted.region, None))
    return CostChange(before, after, moves)


def _short(value: Any) -> str:
    if isinstance(value, dict):  # a schedule
        return f"{value['days']} {value['hours']} {value['timezone']} ({value['off_hours_tasks']} off-hours)"
    return "(none)" if value is None else str(value)


# --- budget ------------------------------------------------------------------------------------------


class OverBudget(RuntimeError):
    """The estimate exceeds the budget and the file does not acknowledge it."""


def budget_problem(env: Environment, total: float) -> str | None:
    """A sentence when the estimate is above budget.monthly_limit_usd (acknowledged or not), else None."""
    limit = env.budget.monthly_limit_usd
    if total <= limit:
        return None
    over = f"the estimate USD {total:.2f}/month exceeds budget.monthly_limit_usd USD {limit:.2f}"
    if env.cost.accept_over_budget:
        return f"{over}; accepted in the file (cost.accept_over_budget: {env.cost.accept_over_budget!r})"
    return (f"{over}; the go-live refuses this file until it is brought under budget or "
            f"cost.accept_over_budget = \"<why>\" states why it may go live above it")


def check_budget(env: Environment) -> Estimate:
    """The go-live's gate: refuse an over-budget file that does not acknowledge it."""
    result = estimate_environment(env)
    problem = budget_problem(env, result.total)
    if problem and not env.cost.accept_over_budget:
        raise OverBudget(f"{env.name}: {problem}")
    return result


# --- actual against estimate -------------------------------------------------------------------------


def pro_rated(total: float, elapsed_days: float, days_in_month: int) -> float:
    """The share of the monthly estimate that should have been spent after elapsed_days."""
    return total * min(elapsed_days, days_in_month) / days_in_month


def markdown(result: Estimate, optimized: Optimized | None = None, budget_usd: float | None = None) -> str:
    """The estimate as a markdown table (the go-live report's cost section)."""
    lines = ["| service | specification | USD/month | plan |", "|---|---|---:|---:|"]
    for line in result.lines:
        plan = f"{line.plan_usd:.0f}" if line.plan_usd else ""
        note = f" ({line.note})" if line.note else ""
        lines.append(f"| {line.service} | {line.spec.replace('|', '/')}{note} | {line.usd:.2f} | {plan} |")
    lines.append(f"| **Total** | | **{result.total:.2f}** | {result.plan_total:.0f} |")
    text = "\n".join(lines)
    if budget_usd is not None:
        text += f"\n\nBudget: USD {budget_usd:.2f}/month."
    if optimized is not None:
        applied = [s for s in optimized.savings if s.applied and s.usd > 0]
        text += (f" Optimized: USD {optimized.total:.2f}/month with "
                 + ", ".join(f"{s.name} (-{s.usd:.2f})" for s in applied) + ".")
    text += (f"\n\nPrices: {result.prices.path.name}, list prices believed valid as of {result.prices.valid_as_of} "
             "(from AWS's public pricing pages; not fetched by this run).")
    return text
