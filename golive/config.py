"""The environment file: what one environment (production, staging, sandbox) should look like.

Every flow takes an environment name or path as its parameter and validates the whole file here
before it makes a single AWS call. Defaults are the deployment plan's figures, so a file only states
what differs from the plan.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

import botocore.session
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENVIRONMENTS_DIR = Path(__file__).resolve().parent.parent / "deployments" / "environments"

# Fargate accepts only these CPU units and, for each, this range and step of memory (MiB).
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html
FARGATE_MEMORY_BY_CPU: dict[int, list[int]] = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4096 + 1, 1024)),
    1024: list(range(2048, 8192 + 1, 1024)),
    2048: list(range(4096, 16384 + 1, 1024)),
    4096: list(range(8192, 30720 + 1, 1024)),
    8192: list(range(16384, 61440 + 1, 4096)),
    16384: list(range(32768, 122880 + 1, 8192)),
}

# Names end up in resource names such as "golive-<env>-frontend" (ALB target groups allow 32), and in
# policy wildcards such as "golive-<env>-*": no '-', or "prod" would also match "golive-prod-eu-*".
ENV_NAME = re.compile(r"^[a-z][a-z0-9]{0,15}$")


class EnvironmentError(Exception):
    """An environment file that cannot be used. The message names the file, the field and the fix."""


def _cidr(value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise ValueError(f"{value!r} is not an IPv4 CIDR block such as 10.20.0.0/16 ({error})") from None


def _minute_of_day(moment: str, example: str) -> int:
    match = re.fullmatch(r"(\d\d):(\d\d)", moment)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{moment!r} is not a time of day (hh24:mi, 00:00 to 23:59, UTC); e.g. {example}")
    return int(match[1]) * 60 + int(match[2])


def daily_window(value: str) -> tuple[int, int]:
    """"hh24:mi-hh24:mi" (UTC) as (start, length) in minutes; a window may run past midnight."""
    start, sep, end = value.partition("-")
    if not sep:
        raise ValueError(f"{value!r} is not a window; write hh24:mi-hh24:mi in UTC, e.g. 03:00-04:00")
    first, last = _minute_of_day(start, "03:00-04:00"), _minute_of_day(end, "03:00-04:00")
    return first, (last - first) % (24 * 60)


WEEK_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekly_window(value: str) -> tuple[int, int]:
    """"ddd:hh24:mi-ddd:hh24:mi" (UTC) as (start, length) in minutes from Monday 00:00."""
    moments = []
    for part in value.split("-") if value.count("-") == 1 else []:
        day, _, moment = part.partition(":")
        if day.lower() not in WEEK_DAYS:
            break
        moments.append(WEEK_DAYS.index(day.lower()) * 24 * 60 + _minute_of_day(moment, "sun:05:00-sun:06:00"))
    if len(moments) != 2:
        raise ValueError(f"{value!r} is not a weekly window; write ddd:hh24:mi-ddd:hh24:mi in UTC with ddd one of "
                         f"{', '.join(WEEK_DAYS)}, e.g. sun:05:00-sun:06:00")
    return moments[0], (moments[1] - moments[0]) % (7 * 24 * 60)


def _require_length(value: str, length: int, minimum: int, service: str) -> None:
    if length < minimum:
        raise ValueError(f"{value} lasts {length} minutes; {service} needs at least {minimum} (e.g. widen it to end "
                         f"{minimum - length} minutes later)")


OFFERINGS_FILE = Path(__file__).resolve().parent / "offerings" / "classes.toml"


def offerings() -> dict[str, frozenset[str]]:
    """The pinned, dated list of RDS instance classes and ElastiCache node types (golive/offerings/)."""
    data = tomllib.loads(OFFERINGS_FILE.read_text())
    return {
        "rds": frozenset(f"db.{family}.{size}" for family, sizes in data["rds"]["classes"].items() for size in sizes),
        "elasticache": frozenset(f"cache.{family}.{size}" for family, sizes in
                                 data["elasticache"]["node_types"].items() for size in sizes),
        "valid_as_of": data["valid_as_of"],
    }


def _offered(value: str, kind: str, example: str) -> str:
    known = offerings()
    if value not in known[kind]:
        family = value.rsplit(".", 1)[0]
        sizes = sorted(c for c in known[kind] if c.rsplit(".", 1)[0] == family)
        hint = (f"{family} comes in {', '.join(sizes)}" if sizes else f"e.g. {example}")
        raise ValueError(f"{value!r} is not a {'DB instance class' if kind == 'rds' else 'cache node type'} AWS offers "
                         f"({hint}; the list, as of {known['valid_as_of']}, is {OFFERINGS_FILE.name} in golive/offerings/)")
    return value


# The only retentionInDays values CloudWatch Logs accepts (PutRetentionPolicy), as of 2025-01-15:
# https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html
LogRetentionDays = Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                           2922, 3288, 3653]


class Strict(BaseModel):
    """Unknown keys are typos until proven otherwise: refuse them."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@functools.lru_cache(maxsize=1)
def _known_regions() -> frozenset[str]:
    # botocore ships its endpoint data, so this needs no network call; parsing it takes a tenth of a second
    # and every flow loads the file again: once per process.
    return frozenset(botocore.session.get_session().get_available_regions("ec2"))


class AwsSettings(Strict):
    target: Literal["aws", "sandbox"] = Field(
        "aws", description="'sandbox' applies to the local emulator; 'aws' to a real account"
    )
    profile: str | None = Field(None, description="AWS CLI profile; the standard chain when unset")
    credentials_block: str | None = Field(
        None, description="name of a prefect-aws AwsCredentials block to use instead of the profile"
    )
    account_id: str | None = Field(
        None, pattern=r"^\d{12}$", description="refuse to run against any other account"
    )
    max_attempts: int = Field(5, ge=1, le=20, description="botocore attempts per call (standard mode)")


class DeployRoleSettings(Strict):
    """Who may act as the deploy role (its trust policy, desired state: tasks/security.py deploy_trust)."""

    people: list[str] = Field(default_factory=list, description=(
        "IAM user or role ARNs of the people who run the go-live (with MFA); empty: any principal of the "
        "account whose own policy allows it, with MFA"))
    work_pool: bool = Field(True, description="the ECS work pool's tasks (ecs-tasks.amazonaws.com) run the go-live as it")
    ci: bool = Field(False, description="the CI's OIDC role (Phase 6) may assume it; set once Phase 6 has made that role")

    @field_validator("people")
    @classmethod
    def _people(cls, value: list[str]) -> list[str]:
        bad = [arn for arn in value if not re.match(r"^arn:aws:iam::\d{12}:(user|role)/", arn)]
        if bad:
            raise ValueError(f"{', '.join(bad)}: give IAM user or role ARNs (arn:aws:iam::<account>:user/<name>)")
        return value


class NetworkSettings(Strict):
    vpc_cidr: str = "10.20.0.0/16"
    availability_zones: list[str] = ["us-east-1a", "us-east-1b"]
    public_subnets: list[str] = ["10.20.0.0/24", "10.20.1.0/24"]
    private_subnets: list[str] = ["10.20.10.0/24", "10.20.11.0/24"]
    nat_gateways: Literal["single", "per-az"] = Field(
        "single", description="one NAT gateway (the plan's cost figure) or one per AZ (no single point)"
    )
    nat_wait_minutes: float = Field(10, gt=0, le=60, description="bound on waiting for a NAT gateway")

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_cidr(cls, value: str) -> str:
        network = _cidr(value)
        if not 16 <= network.prefixlen <= 28:
            raise ValueError(f"{value} has a /{network.prefixlen} prefix; AWS allows /16 to /28")
        return value

    @field_validator("public_subnets", "private_subnets")
    @classmethod
    def _subnet_cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            network = _cidr(value)
            if not 16 <= network.prefixlen <= 28:
                raise ValueError(f"{value} has a /{network.prefixlen} prefix; AWS allows subnets of /16 to /28 "
                                 "(e.g. /24: 251 usable addresses)")
        return values

    @field_validator("availability_zones")
    @classmethod
    def _two_azs(cls, values: list[str]) -> list[str]:
        if len(set(values)) < 2:
            raise ValueError(
                f"{values} names fewer than 2 distinct availability zones; the ALB and the RDS subnet "
                "group need at least 2 (list two, e.g. [\"us-east-1a\", \"us-east-1b\"])"
            )
        if len(set(values)) != len(values):
            raise ValueError(f"{values} repeats an availability zone")
        return values

    @model_validator(mode="after")
    def _subnets_fit(self) -> "NetworkSettings":
        vpc = _cidr(self.vpc_cidr)
        azs = len(self.availability_zones)
        for tier in ("public_subnets", "private_subnets"):
            cidrs = getattr(self, tier)
            if len(cidrs) != azs:
                raise ValueError(
                    f"{tier} has {len(cidrs)} entries for {azs} availability zones; give one per zone"
                )
            for cidr in cidrs:
                if not _cidr(cidr).subnet_of(vpc):
                    raise ValueError(f"{tier}: {cidr} is not inside vpc_cidr {self.vpc_cidr}")
        all_subnets = [*self.public_subnets, *self.private_subnets]
        for i, a in enumerate(all_subnets):
            for b in all_subnets[i + 1 :]:
                if _cidr(a).overlaps(_cidr(b)):
                    raise ValueError(f"subnets {a} and {b} overlap; give each subnet its own range")
        return self


POSTGRES_MAJORS = ("13", "14", "15", "16", "17")


class DatabaseSettings(Strict):
    engine_version: str = Field("16", pattern=r"^\d+(\.\d+)?$", description="PostgreSQL major (or major.minor)")
    instance_class: str = Field("db.t4g.medium", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
    allocated_storage_gb: int = Field(100, ge=20, le=65536)
    multi_az: bool = True
    backup_retention_days: int = Field(7, description="automated backups kept, 1-35 days")
    backup_window: str = Field("03:00-04:00", description="daily, hh24:mi-hh24:mi UTC, at least 30 minutes")
    maintenance_window: str = Field("sun:05:00-sun:06:00", description="weekly, ddd:hh24:mi-ddd:hh24:mi UTC, at "
                                    "least 30 minutes, not overlapping the backup window")
    deletion_protection: bool = True
    read_replica: bool = False
    database_name: str = Field("precedentum", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    master_username: str = Field("precedentum", pattern=r"^[a-z][a-z0-9_]{0,15}$")
    slow_statement_ms: int = Field(500, ge=0, description="log statements slower than this")
    final_snapshot: bool = Field(True, description="take a final snapshot when the instance is destroyed")
    wait_minutes: float = Field(40, gt=0, le=180, description="bound on waiting for the instance")

    @field_validator("instance_class")
    @classmethod
    def _instance_class(cls, value: str) -> str:
        return _offered(value, "rds", "db.t4g.medium")

    @field_validator("backup_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 turns RDS's automated backups off, and the plan requires them (point-in-time "
                             "restore, backup verification); use 1 to 35")
        if not 1 <= value <= 35:
            raise ValueError(f"{value} is outside RDS's 1 to 35 days; for longer, keep manual snapshots")
        return value

    @field_validator("backup_window")
    @classmethod
    def _backup_window(cls, value: str) -> str:
        _, length = daily_window(value)
        _require_length(value, length, 30, "RDS's backup window")
        return value

    @field_validator("maintenance_window")
    @classmethod
    def _maintenance_window(cls, value: str) -> str:
        _, length = weekly_window(value)
        _require_length(value, length, 30, "RDS's maintenance window")
        return value.lower()  # RDS reports it in lower case: compare like with like

    @model_validator(mode="after")
    def _windows_apart(self) -> "DatabaseSettings":
        week = 7 * 24 * 60
        start, length = weekly_window(self.maintenance_window)
        backup_start, backup_length = daily_window(self.backup_window)
        for day in range(7):
            begins = day * 24 * 60 + backup_start
            if (begins - start) % week < length or (start - begins) % week < backup_length:
                raise ValueError(f"maintenance_window {self.maintenance_window} overlaps backup_window "
                                 f"{self.backup_window} (on {WEEK_DAYS[day]}); RDS refuses that: move one of them")
        return self

    @field_validator("engine_version")
    @classmethod
    def _supported(cls, value: str) -> str:
        if value.split(".")[0] not in POSTGRES_MAJORS:
            raise ValueError(f"PostgreSQL {value} is not offered by RDS here; use one of {', '.join(POSTGRES_MAJORS)}")
        return value

    @field_validator("read_replica")
    @classmethod
    def _no_replica_with_managed_password(cls, value: bool) -> bool:
        if value:
            # The runbook always lets RDS manage the master password in Secrets Manager (rotated, never
            # copied), and RDS does not offer that together with read replicas; moto would accept it.
            raise ValueError("a read replica cannot be made of an instance whose master password RDS manages in "
                             "Secrets Manager, which the runbook always does; set read_replica = false (scale reads "
                             "with a larger instance class, or add the replica by hand after turning managed "
                             "passwords off)")
        return value

    @property
    def major(self) -> str:
        return self.engine_version.split(".")[0]

    @property
    def parameter_group_family(self) -> str:
        return f"postgres{self.major}"


class CacheSettings(Strict):
    engine_version: Literal["7.0", "7.1"] = Field("7.1", description="Redis OSS 7 as ElastiCache offers it")
    node_type: str = Field("cache.t4g.micro", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
    multi_az: bool = False
    wait_minutes: float = Field(30, gt=0, le=120, description="bound on waiting for the replication group")

    @field_validator("node_type")
    @classmethod
    def _node_type(cls, value: str) -> str:
        return _offered(value, "elasticache", "cache.t4g.micro")


class StorageSettings(Strict):
    noncurrent_version_days: int = Field(30, ge=1, description="how long replaced or deleted versions are kept")


class DnsSettings(Strict):
    # A DNS label: letters, digits and inner hyphens (ACM refuses a name with a label starting or ending in '-').
    subdomains: list[Annotated[str, Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]] = ["www", "api"]
    certificate_wait_minutes: float = Field(45, gt=0, le=4320, description="bound on waiting for ISSUED")


class ServiceSettings(Strict):
    cpu: int = Field(description="Fargate CPU units")
    memory: int = Field(description="Fargate memory in MiB, valid for the cpu")
    port: int = Field(ge=1, le=65535)
    min_tasks: int = Field(2, ge=0)
    max_tasks: int = Field(10, ge=1)
    desired_tasks: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _fargate_and_scaling(self) -> "ServiceSettings":
        allowed = FARGATE_MEMORY_BY_CPU.get(self.cpu)
        if allowed is None:
            raise ValueError(
                f"cpu {self.cpu} is not a Fargate size; use one of {sorted(FARGATE_MEMORY_BY_CPU)}"
            )
        if self.memory not in allowed:
            raise ValueError(
                f"memory {self.memory} MiB is not valid with cpu {self.cpu} on Fargate; "
                f"use one of {allowed}"
            )
        if self.min_tasks > self.max_tasks:
            raise ValueError(f"min_tasks {self.min_tasks} is above max_tasks {self.max_tasks}")
        if not self.min_tasks <= self.desired_tasks <= self.max_tasks:
            raise ValueError(
                f"desired_tasks {self.desired_tasks} is outside min_tasks..max_tasks "
                f"({self.min_tasks}..{self.max_tasks})"
            )
        return self


WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def weekdays(spec: str) -> list[str]:
    """"MON-FRI" or "MON,WED,FRI" (or both: "MON-WED,SAT") as the days it names, in week order."""
    days: set[str] = set()
    for part in spec.upper().replace(" ", "").split(","):
        first, _, last = part.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise ValueError(f"{spec!r} is not a list of days; write e.g. \"MON-FRI\" or \"MON,WED,FRI\"")
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        if end < start:
            raise ValueError(f"{part!r} runs backwards; write the days in week order, e.g. \"MON-FRI\"")
        days.update(WEEKDAYS[start:end + 1])
    return [d for d in WEEKDAYS if d in days]


class ScheduleSettings(Strict):
    """Off-hours scaling (the plan's "scale down during off-hours"): Application Auto Scaling scheduled
    actions lower each service's capacity outside business hours and restore the file's bounds at the
    start of each business day."""

    days: str = Field("MON-FRI", description="the business days, e.g. \"MON-FRI\" or \"MON,WED,FRI\"")
    hours: str = Field("07:00-20:00", pattern=r"^\d\d:\d\d-\d\d:\d\d$", description="business hours, HH:MM-HH:MM")
    timezone: str = Field("UTC", description="an IANA time zone the hours are in, e.g. America/Chicago")
    off_hours_tasks: int = Field(1, ge=1, description="min (and desired) tasks per service outside business hours")

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        weekdays(value)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        start, end = value.split("-")
        for moment in (start, end):
            hour, minute = map(int, moment.split(":"))
            if hour > 23 or minute > 59:
                raise ValueError(f"{moment} is not a time of day; use 00:00 to 23:59")
        if end <= start:
            raise ValueError(f"{value} ends before it starts; business hours are within one day, e.g. 07:00-20:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        import zoneinfo

        if value not in zoneinfo.available_timezones():
            raise ValueError(f"{value!r} is not an IANA time zone; e.g. UTC, America/Chicago, Europe/Dublin")
        return value

    @property
    def business_days(self) -> list[str]:
        return weekdays(self.days)

    @property
    def start(self) -> tuple[int, int]:
        hour, minute = self.hours.split("-")[0].split(":")
        return int(hour), int(minute)

    @property
    def end(self) -> tuple[int, int]:
        hour, minute = self.hours.split("-")[1].split(":")
        return int(hour), int(minute)

    @property
    def business_hours_per_week(self) -> float:
        (h1, m1), (h2, m2) = self.start, self.end
        return len(self.business_days) * ((h2 * 60 + m2) - (h1 * 60 + m1)) / 60


class ServicesSettings(Strict):
    backend: ServiceSettings = ServiceSettings(cpu=512, memory=1024, port=8000)
    frontend: ServiceSettings = ServiceSettings(cpu=256, memory=512, port=8080)
    schedule: ScheduleSettings | None = Field(None, description="off-hours scaling; none: the same capacity around the clock")

    @model_validator(mode="after")
    def _off_hours_below_bounds(self) -> "ServicesSettings":
        if self.schedule is None:
            return self
        for name in ("backend", "frontend"):
            service = getattr(self, name)
            if self.schedule.off_hours_tasks > service.max_tasks:
                raise ValueError(
                    f"schedule.off_hours_tasks {self.schedule.off_hours_tasks} is above {name}.max_tasks "
                    f"{service.max_tasks}; lower it (it is the off-hours capacity, below the daytime one)")
        return self


class BudgetSettings(Strict):
    monthly_limit_usd: float = Field(400, gt=0, description="the plan's upper monthly estimate")
    alert_thresholds_percent: list[Annotated[float, Field(gt=0, le=1000)]] = [50, 80, 100]

    @field_validator("alert_thresholds_percent")
    @classmethod
    def _distinct(cls, values: list[float]) -> list[float]:
        if not values:
            raise ValueError("give at least one threshold, e.g. [80, 100]")
        if len(set(values)) != len(values):
            raise ValueError(f"{values} repeats a threshold")
        return sorted(values)


class UsageSettings(Strict):
    """What the estimate cannot read from the rest of the file: traffic and data volumes. The defaults
    are the plan's figures (its cost table), or what its dollar figure implies at list price."""

    s3_storage_gb: float = Field(50, ge=0, description="static and media files stored (plan: 50 GB)")
    s3_requests_thousands: float = Field(100, ge=0, description="S3 requests a month (plan: 100K), 10% of them writes")
    cdn_gb: float = Field(100, ge=0, description="GB CloudFront serves a month (plan: 100 GB)")
    requests_millions: float = Field(1, ge=0, description="requests a month through CloudFront (and WAF)")
    dns_queries_millions: float = Field(1, ge=0, description="Route 53 queries a month")
    data_transfer_out_gb: float = Field(
        220, ge=0, description="GB leaving AWS other than through CloudFront, cross-AZ included (plan: $20)")
    nat_processed_gb: float = Field(50, ge=0, description="GB through the NAT gateways (image pulls, AWS APIs)")
    alb_lcu: float = Field(0.5, ge=0, description="average load balancer capacity units (plan: $20 for the ALB)")
    log_ingest_gb: float = Field(25, ge=0, description="CloudWatch Logs ingested a month (plan: $15 for logs)")
    log_insights_scanned_gb: float = Field(50, ge=0, description="GB Logs Insights queries scan a month")
    custom_metrics: int = Field(
        0, ge=0, description="CloudWatch custom metrics (Container Insights' are billed as these); not counted unless given")
    database_gb: float | None = Field(None, ge=0, description="data in the database; default: the allocated storage")
    database_changed_gb_per_day: float = Field(
        7.5, ge=0, description="GB the database changes a day, kept by each day's backup (plan: $5 for 7 days)")
    secret_api_calls_thousands: float = Field(100, ge=0, description="Secrets Manager API calls a month")
    ecr_gb: float = Field(2, ge=0, description="image storage in ECR")


class PlannedServices(Strict):
    """The size of what Phase 7 makes, as the estimate prices it (WAF rules, flow-log and Config volumes,
    Shield Advanced, which must agree with security.shield_advanced)."""

    waf_rules: int = Field(5, ge=0, le=100, description="WAF rules on one web ACL (plan: 'basic rules', $10); 0: no WAF")
    shield_advanced: bool = Field(False, description="AWS Shield Advanced ($3,000 a month, one-year commitment)")
    flow_logs_gb: float = Field(0, ge=0, description="VPC flow logs a month into CloudWatch Logs; 0: off")
    config_items: int = Field(0, ge=0, description="AWS Config configuration items recorded a month; 0: off")
    config_rule_evaluations: int = Field(0, ge=0, description="AWS Config rule evaluations a month")


class CostSettings(Strict):
    """The monthly estimate (`golive cost ENV`): usage assumptions, planned services, and the go-live's
    acknowledgement of an estimate above budget.monthly_limit_usd."""

    usage: UsageSettings = UsageSettings()
    planned: PlannedServices = PlannedServices()
    accept_over_budget: str | None = Field(
        None, min_length=10,
        description="why going live above the budget is accepted; without it the go-live refuses such a file")
    gap_percent: float = Field(
        25, gt=0, le=1000, description="post-launch: flag actual cost further than this from the pro-rated estimate")


REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


class ImageSettings(Strict):
    """Plan 2.2: how the backend and frontend images reach ECR."""

    tag: str = Field("initial", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
                     description="the image tag to deploy; `golive release ENV --image TAG` changes it")
    backend: str | None = Field(None, description="a prebuilt backend image reference, used when no Docker engine runs")
    frontend: str | None = Field(None, description="a prebuilt frontend image reference, used when no Docker engine runs")
    max_size_mb: int = Field(500, gt=0, description="the plan's limit on an image's size")
    runbook: str | None = Field(None, description="a prebuilt image of this runbook (its Dockerfile) for the ECS "
                                "work pool, used by `golive bootstrap` when no Docker engine runs")


class AppSettings(Strict):
    """Plan 2.1: the application repository the containers are built from."""

    path: str = Field("examples/precedentum", description="the app repository, relative to this project or absolute")
    python_version: str = Field("3.11", pattern=r"^3\.\d+$")
    log_retention_days: LogRetentionDays = 30
    images: ImageSettings = ImageSettings()

    @property
    def directory(self) -> Path:
        path = Path(self.path)
        return path if path.is_absolute() else REPOSITORY_ROOT / path


class LoadTestSettings(Strict):
    """Plan 8.1: the Locust gate. A run whose figures miss any threshold stops the go-live."""

    users: int = Field(50, ge=1, le=10000, description="concurrent simulated users")
    spawn_rate: float = Field(10, gt=0, description="users started per second; the ramp-up (users / spawn_rate) "
                              "runs before the measured duration and is not judged")
    duration_seconds: float = Field(60, gt=0, le=3600, description="how long the load runs with every user started: "
                                    "the window the figures are of")
    p95_ms: float = Field(500, gt=0, description="95th-percentile latency must stay at or under this")
    max_failure_ratio: float = Field(0.01, ge=0, le=1, description="failed requests / all requests")
    min_rps: float = Field(50, ge=0, description="aggregate requests per second must reach this")


class CutoverSettings(Strict):
    """Plan 8.2: weighted DNS shift to the new stack, checked between steps, rolled back on failure."""

    steps_percent: list[Annotated[int, Field(ge=1, le=100)]] = [10, 50, 100]
    step_wait_seconds: float = Field(300, ge=0, le=86400, description="observe each step this long")
    health_checks_per_step: int = Field(3, ge=1, le=100)
    previous_target: str | None = Field(
        None, description="what the domain served before the launch (a host name); rollback returns to it")

    @field_validator("steps_percent")
    @classmethod
    def _rising_to_100(cls, values: list[int]) -> list[int]:
        if not values or values != sorted(set(values)) or values[-1] != 100:
            raise ValueError(f"{values} must rise strictly and end at 100, e.g. [10, 50, 100]")
        return values


class MonitoringSettings(Strict):
    """Plan 8.3: the post-launch watch."""

    window_seconds: float = Field(86400, gt=0, description="how long to watch (24 hours in production)")
    interval_seconds: float = Field(300, gt=0, description="time between polls")
    failures_before_rollback: int = Field(3, ge=1, description="consecutive failed polls that roll DNS back")
    max_error_rate: float = Field(0.01, ge=0, le=1)
    max_p95_ms: float = Field(1000, gt=0)


class LaunchSettings(Strict):
    approval: Literal["manual", "auto"] = Field(
        "manual", description="'manual' pauses before the DNS cutover until someone approves in the UI")
    approval_timeout_hours: float = Field(24, gt=0, le=168)
    load_test: LoadTestSettings = LoadTestSettings()
    cutover: CutoverSettings = CutoverSettings()
    monitoring: MonitoringSettings = MonitoringSettings()


GITHUB_OWNER = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
GITHUB_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


class CiSettings(Strict):
    """Plan 6: the GitHub repository whose workflows deploy this environment (trusted by its CI role)."""

    repository: str | None = Field(
        None, description="the app's GitHub repository as owner/name; its workflows may assume this environment's "
        "CI role, from the GitHub environment of the same name only")
    promote_from: str | None = Field(
        None, description="the environment whose tested images this one deploys by digest (production: staging); "
        "the CI role may read that environment's image repositories and nothing else of it")

    @field_validator("repository")
    @classmethod
    def _owner_and_name(cls, value: str | None) -> str | None:
        # GitHub's own rules: owners are letters, digits and single '-'; names add '.' and '_'. A '*' or a
        # missing part would widen the role's trust to other repositories.
        if value is None:
            return value
        owner, _, name = value.partition("/")
        if not (GITHUB_OWNER.fullmatch(owner) and GITHUB_NAME.fullmatch(name) and name not in (".", "..")):
            raise ValueError(f"{value!r} is not a GitHub repository; write it as owner/name, e.g. "
                             'repository = "precedentum/precedentum" under [ci]')
        return value

    @field_validator("promote_from")
    @classmethod
    def _environment_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment name (lower-case letters and digits, e.g. \"staging\")")
        return value



class AlarmSettings(Strict):
    """Plan 7.1: thresholds of the Phase 7 alarms; every alarm notifies the alerts topic."""

    ecs_cpu_percent: float = Field(80, gt=0, le=100, description="a service's average CPU over the period")
    ecs_memory_percent: float = Field(80, gt=0, le=100, description="a service's average memory over the period")
    alb_5xx_percent: float = Field(1, gt=0, le=100, description="5xx answers (target and ALB) as a share of requests")
    alb_p95_seconds: float = Field(1.0, gt=0, description="the targets' p95 response time")
    unhealthy_hosts: int = Field(0, ge=0, description="alarm when a target group has more unhealthy targets than this")
    redis_memory_percent: float = Field(80, gt=0, le=100, description="Redis DatabaseMemoryUsagePercentage")
    redis_evictions: int = Field(0, ge=0, description="alarm when more keys than this are evicted in a period")
    cloudfront_5xx_percent: float = Field(1, gt=0, le=100, description="CloudFront's 5xxErrorRate")
    app_errors: int = Field(10, ge=0, description="error lines in the backend's log per period (the metric filter)")
    period_seconds: int = Field(300, ge=60, description="a multiple of 60")
    evaluation_periods: int = Field(2, ge=1, le=100)

    @field_validator("period_seconds")
    @classmethod
    def _minutes(cls, value: int) -> int:
        if value % 60:
            raise ValueError(f"{value} is not a multiple of 60; CloudWatch alarms on AWS metrics use whole minutes")
        return value

    @model_validator(mode="after")
    def _within_a_day(self) -> "AlarmSettings":
        # PutMetricAlarm refuses an alarm that looks back further than a day at periods of a minute or more.
        if self.period_seconds * self.evaluation_periods > 86400:
            raise ValueError(f"period_seconds {self.period_seconds} x evaluation_periods {self.evaluation_periods} is "
                             f"{self.period_seconds * self.evaluation_periods} s; CloudWatch allows at most 86400 "
                             f"(one day): lower evaluation_periods to {86400 // self.period_seconds} or less")
        return self


class SecuritySettings(Strict):
    """Plan 7.2: WAF, Shield, flow logs, AWS Config, CloudTrail."""

    waf_rate_limit: int = Field(2000, ge=10, le=2_000_000_000,
                                description="requests per client IP in any 5 minutes before WAF blocks it")
    shield_advanced: bool = Field(False, description="subscribe to Shield Advanced: USD 3,000/month, 1-year commitment")
    log_archive_days: int = Field(365, ge=1, description="access logs, flow logs, Config and CloudTrail files kept")
    waf_log_retention_days: LogRetentionDays = 90


class AcceptedFinding(Strict):
    """A reviewed exception: the audit still reports the finding, marked accepted, and lets the go-live on."""

    id: str = Field(min_length=3, description="the finding's id as `golive audit` prints it, e.g. EC2.13:golive-prod-backend")
    reason: str = Field(min_length=10, description="why it is accepted, and by whom")


class AuditSettings(Strict):
    accept: list[AcceptedFinding] = []

    @field_validator("accept")
    @classmethod
    def _distinct(cls, values: list[AcceptedFinding]) -> list[AcceptedFinding]:
        ids = [a.id for a in values]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{ids} accepts a finding twice; keep one entry per id")
        return values


class Environment(Strict):
    """One environment file, validated."""

    name: str = Field(description="lower-case letters and digits, at most 16, starting with a letter")
    region: str = "us-east-1"
    domain: str = Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    alerts_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$", description="where alarms and budget alerts go")
    aws: AwsSettings = AwsSettings()
    network: NetworkSettings = NetworkSettings()
    database: DatabaseSettings = DatabaseSettings()
    cache: CacheSettings = CacheSettings()
    services: ServicesSettings = ServicesSettings()
    budget: BudgetSettings = BudgetSettings()
    cost: CostSettings = CostSettings()
    storage: StorageSettings = StorageSettings()
    dns: DnsSettings = DnsSettings()
    app: AppSettings = AppSettings()
    launch: LaunchSettings = LaunchSettings()
    ci: CiSettings = CiSettings()

    alarms: AlarmSettings = AlarmSettings()
    security: SecuritySettings = SecuritySettings()
    audit: AuditSettings = AuditSettings()
    deploy_role: DeployRoleSettings = DeployRoleSettings()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not ENV_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a usable name: lower-case letters and digits only (no '-', so that "
                "one environment's name never prefixes another's), starting with a letter, at most 16 characters"
            )
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        # The apex is the certificate's first name (its common name), which ACM limits to 64 characters.
        if len(value) > 64:
            raise ValueError(f"{value!r} has {len(value)} characters; ACM allows at most 64 for a certificate's first "
                             "name (the apex): use a shorter domain")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if value not in _known_regions():
            raise ValueError(f"{value!r} is not an AWS region; e.g. us-east-1, eu-west-1")
        return value

    @model_validator(mode="after")
    def _zones_in_region(self) -> "Environment":
        for zone in self.network.availability_zones:
            if not re.fullmatch(re.escape(self.region) + r"[a-z]", zone):
                raise ValueError(
                    f"network.availability_zones: {zone!r} is not a zone of region {self.region} "
                    f"(zones look like {self.region}a)"
                )
        return self

    @model_validator(mode="after")
    def _shield_priced_as_made(self) -> "Environment":
        # One decision, two readers: Phase 7 subscribes, the estimate prices it. They must agree.
        if self.security.shield_advanced != self.cost.planned.shield_advanced:
            raise ValueError(
                f"security.shield_advanced is {str(self.security.shield_advanced).lower()} but "
                f"cost.planned.shield_advanced is {str(self.cost.planned.shield_advanced).lower()}; "
                "set both the same (Shield Advanced costs USD 3,000 a month with a one-year commitment)")
        return self

    @property
    def is_production(self) -> bool:
        return self.name == "production"

    @property
    def certificate_names(self) -> list[str]:
        """The apex first, then each subdomain: the names the TLS certificate covers."""
        return [self.domain, *(f"{sub}.{self.domain}" for sub in self.dns.subdomains)]

    @property
    def public_subnets(self) -> list[tuple[str, str]]:
        """(availability zone, CIDR) of each public subnet."""
        return list(zip(self.network.availability_zones, self.network.public_subnets))

    @property
    def private_subnets(self) -> list[tuple[str, str]]:
        return list(zip(self.network.availability_zones, self.network.private_subnets))


def resolve_path(ref: str | Path) -> Path:
    """An environment reference is a name under deployments/environments/ or a path to a file."""
    path = Path(ref)
    if path.suffix == ".toml" or path.exists() or "/" in str(ref):
        return path
    return ENVIRONMENTS_DIR / f"{ref}.toml"


def load_environment(ref: str | Path) -> Environment:
    """Read and validate an environment file, or raise EnvironmentError naming file, field and fix."""
    path = resolve_path(ref)
    if not path.is_file():
        known = sorted(p.stem for p in ENVIRONMENTS_DIR.glob("*.toml"))
        raise EnvironmentError(
            f"{path}: no such environment file. Give a path to a .toml file or one of: {', '.join(known)}"
        )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise EnvironmentError(f"{path}: not valid TOML: {error}") from None
    try:
        return Environment.model_validate(data)
    except ValidationError as error:
        raise EnvironmentError(_explain(path, error)) from None


def _explain(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the environment file"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key; remove it or fix its spelling (see deployments/environments/README.md)"
        elif problem["type"] == "missing":
            message = "required; add it to the file"
        elif problem["type"] == "literal_error":
            message = f"{problem['input']!r} is not allowed: {message}"
        lines.append(f"  {field}: {message}")
    return "\n".join(lines)
