"""Environment files: the shipped ones carry the plan's figures; every invalid one stops with a message
that names the file, the field and the fix, before a single AWS client exists."""

from __future__ import annotations

import re
import subprocess

import pytest

import golive.aws
from golive.config import EnvironmentError, load_environment
from tests.conftest import ENVIRONMENTS, GOLIVE, write_environment


def test_shipped_files_are_valid_and_carry_the_plans_figures():
    production = load_environment("production")
    assert production.region == "us-east-1"
    assert production.network.availability_zones == ["us-east-1a", "us-east-1b"]
    assert len(production.network.public_subnets) == 2 and len(production.network.private_subnets) == 2
    assert production.network.nat_gateways == "single"
    db = production.database
    assert (db.engine_version, db.instance_class, db.allocated_storage_gb, db.multi_az, db.backup_retention_days) == (
        "16", "db.t4g.medium", 100, True, 7)
    assert (production.cache.engine_version.split(".")[0], production.cache.node_type) == ("7", "cache.t4g.micro")
    backend, frontend = production.services.backend, production.services.frontend
    assert (backend.cpu, backend.memory, frontend.cpu, frontend.memory) == (512, 1024, 256, 512)
    assert (backend.min_tasks, backend.max_tasks) == (2, 10)
    assert production.budget.alert_thresholds_percent

    staging = load_environment("staging")
    assert staging.database.multi_az is False and staging.database.instance_class != db.instance_class
    assert load_environment("sandbox").aws.target == "sandbox"


INVALID = {
    "bad CIDR": (lambda t: t.replace('vpc_cidr = "10.40.0.0/16"', 'vpc_cidr = "10.40.0.0/33"'),
                 r"network\.vpc_cidr: .*not an IPv4 CIDR"),
    "overlapping subnets": (lambda t: t.replace('"10.40.1.0/24"', '"10.40.0.128/25"'),
                            r"network: .*overlap"),
    "subnet outside the VPC": (lambda t: t.replace('"10.40.11.0/24"', '"10.99.11.0/24"'),
                               r"network: .*10\.99\.11\.0/24 is not inside vpc_cidr 10\.40\.0\.0/16"),
    "fewer than 2 AZs": (lambda t: t.replace('availability_zones = ["us-east-1a", "us-east-1b"]',
                                             'availability_zones = ["us-east-1a"]'),
                         r"network\.availability_zones: .*fewer than 2"),
    "unknown region": (lambda t: t.replace('region = "us-east-1"', 'region = "us-middle-9"'),
                       r"region: 'us-middle-9' is not an AWS region"),
    "min tasks above max": (lambda t: t + "\n[services.backend]\ncpu = 512\nmemory = 1024\nport = 8000\n"
                            "min_tasks = 5\nmax_tasks = 3\ndesired_tasks = 4\n",
                            r"services\.backend: .*min_tasks 5 is above max_tasks 3"),
    "invalid Fargate pair": (lambda t: t + "\n[services.frontend]\ncpu = 256\nmemory = 4096\nport = 8080\n",
                             r"services\.frontend: .*memory 4096 MiB is not valid with cpu 256.*\[512, 1024, 2048\]"),
    "unknown key": (lambda t: t.replace("[network]", "[network]\nvpc_cdir = \"10.0.0.0/16\""),
                    r"network\.vpc_cdir: unknown key"),
    "zone of another region": (lambda t: t.replace('"us-east-1b"]', '"eu-west-1b"]'),
                               r"'eu-west-1b' is not a zone of region us-east-1"),
    "missing domain": (lambda t: re.sub(r'(?m)^domain = .*$', "", t), r"domain: required"),
    "name that could prefix another": (lambda t: t.replace('name = "sandbox"', 'name = "sand-box"'),
                                       r"name: 'sand-box' is not a usable name: .*no '-'"),
    # moto accepts it; AWS does not offer replicas of an instance whose master password RDS manages.
    "read replica with a managed master password": (
        lambda t: t.replace("[database]\n", "[database]\nread_replica = true\n"),
        r"database\.read_replica: .*cannot be made of an instance whose master password RDS manages.*read_replica = false"),
}


def _database(extra: str):
    return lambda t: t.replace("[database]\n", "[database]\n" + extra + "\n")


def _section(name: str, body: str):
    return lambda t: t + f"\n[{name}]\n{body}\n"


# Values moto would take and AWS refuses: each stops in validation, naming the field and the fix.
INVALID.update({
    "VPC larger than /16": (lambda t: t.replace('vpc_cidr = "10.40.0.0/16"', 'vpc_cidr = "10.32.0.0/12"'),
                            r"network\.vpc_cidr: 10\.32\.0\.0/12 has a /12 prefix; AWS allows /16 to /28"),
    "subnet smaller than /28": (lambda t: t.replace('"10.40.1.0/24"', '"10.40.1.0/29"'),
                                r"network\.public_subnets: 10\.40\.1\.0/29 has a /29 prefix; AWS allows subnets of "
                                r"/16 to /28"),
    "backup window not a time": (_database('backup_window = "25:00-26:00"'),
                                 r"database\.backup_window: '25:00' is not a time of day.*e\.g\. 03:00-04:00"),
    "backup window shorter than 30 minutes": (_database('backup_window = "03:00-03:15"'),
                                              r"database\.backup_window: 03:00-03:15 lasts 15 minutes; RDS's backup "
                                              r"window needs at least 30"),
    "maintenance window not ddd:hh24:mi": (_database('maintenance_window = "sunday 05:00-06:00"'),
                                           r"database\.maintenance_window: .*not a weekly window; write "
                                           r"ddd:hh24:mi-ddd:hh24:mi.*sun:05:00-sun:06:00"),
    "maintenance window shorter than 30 minutes": (_database('maintenance_window = "sun:05:00-sun:05:20"'),
                                                   r"database\.maintenance_window: .*lasts 20 minutes; RDS's "
                                                   r"maintenance window needs at least 30"),
    "maintenance window overlapping the backup window": (
        _database('backup_window = "05:30-06:30"'),
        r"database: maintenance_window sun:05:00-sun:06:00 overlaps backup_window 05:30-06:30 \(on sun\)"),
    "backup window past midnight overlapping the maintenance window": (
        _database('backup_window = "23:30-00:30"\nmaintenance_window = "Mon:00:00-Mon:00:30"'),
        r"database: maintenance_window mon:00:00-mon:00:30 overlaps backup_window 23:30-00:30 \(on sun\)"),
    "DB instance class that does not exist": (_database('instance_class = "db.t4g.huge"'),
                                              r"database\.instance_class: 'db\.t4g\.huge' is not a DB instance class "
                                              r"AWS offers \(db\.t4g comes in .*db\.t4g\.medium.*as of 2025-01-15"),
    "DB instance family that does not exist": (_database('instance_class = "db.q9.large"'),
                                               r"database\.instance_class: 'db\.q9\.large' is not .*e\.g\. "
                                               r"db\.t4g\.medium"),
    "cache node type that does not exist": (_section("cache", 'node_type = "cache.t4g.large"'),
                                            r"cache\.node_type: 'cache\.t4g\.large' is not a cache node type AWS "
                                            r"offers \(cache\.t4g comes in cache\.t4g\.medium, cache\.t4g\.micro"),
    "cache engine version that does not exist": (_section("cache", 'engine_version = "7.9"'),
                                                 r"cache\.engine_version: '7\.9' is not allowed.*'7\.0' or '7\.1'"),
    "backup retention 0 (backups off)": (_database("backup_retention_days = 0"),
                                         r"database\.backup_retention_days: 0 turns RDS's automated backups off.*"
                                         r"use 1 to 35"),
    "backup retention above 35": (_database("backup_retention_days = 36"),
                                  r"database\.backup_retention_days: 36 is outside RDS's 1 to 35 days"),
    "storage below RDS's minimum": (_database("allocated_storage_gb = 10"),
                                    r"database\.allocated_storage_gb: .*greater than or equal to 20"),
    "log retention CloudWatch does not accept": (_section("app", "log_retention_days = 10"),
                                                 r"app\.log_retention_days: 10 is not allowed.*1096"),
    "alarm looking back more than a day": (_section("alarms", "period_seconds = 3600\nevaluation_periods = 25"),
                                           r"alarms: period_seconds 3600 x evaluation_periods 25 is 90000 s; "
                                           r"CloudWatch allows at most 86400 .*evaluation_periods to 24 or less"),
    "subdomain starting with a hyphen": (_section("dns", 'subdomains = ["www", "-api"]'),
                                         r"dns\.subdomains\.1: .*should match pattern"),
    "apex longer than a certificate's first name": (
        lambda t: t.replace('domain = "sandbox.precedentum.test"', f'domain = "{"a" * 60}.precedentum.test"'),
        r"domain: .* has 77 characters; ACM allows at most 64"),
    "service port out of range": (_section("services.backend", "cpu = 512\nmemory = 1024\nport = 70000"),
                                  r"services\.backend\.port: .*less than or equal to 65535"),
})


def test_windows_across_midnight_and_the_week_and_every_cloudwatch_retention_are_accepted(tmp_path):
    path = write_environment(tmp_path, edit=lambda t: t.replace("[database]\n", (
        '[database]\nbackup_window = "23:30-00:30"\nmaintenance_window = "wed:05:00-wed:05:30"\n'))
        + "\n[app]\nlog_retention_days = 1096\n")
    env = load_environment(path)
    assert (env.database.backup_window, env.app.log_retention_days) == ("23:30-00:30", 1096)
    path = write_environment(tmp_path, edit=lambda t: t.replace("[database]\n", (
        '[database]\nmaintenance_window = "Sun:23:45-MON:00:30"\n')), name="weekwrap")
    assert load_environment(path).database.maintenance_window == "sun:23:45-mon:00:30"  # as RDS reports it


def test_the_offerings_list_holds_the_classes_the_shipped_files_and_prices_use():
    import tomllib

    from golive.config import offerings
    from golive.cost import PRICES_DIR

    known = offerings()
    for name in ("production", "staging", "sandbox"):
        env = load_environment(name)
        assert env.database.instance_class in known["rds"] and env.cache.node_type in known["elasticache"]
    prices = tomllib.loads((PRICES_DIR / "us-east-1.toml").read_text())
    assert set(prices["rds"]["instance_hour"]) <= known["rds"]
    assert set(prices["elasticache"]["node_hour"]) <= known["elasticache"]
    assert known["valid_as_of"] == "2025-01-15"


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_file_names_file_field_and_fix_without_touching_aws(case, tmp_path):
    edit, expected = INVALID[case]
    path = write_environment(tmp_path, edit=edit)
    golive.aws.forget_clients()
    with pytest.raises(EnvironmentError) as raised:
        load_environment(path)
    message = str(raised.value)
    assert message.startswith(str(path)), message
    assert re.search(expected, message), message
    assert golive.aws._factories == {}, "validation must not create an AWS client"


def test_flow_refuses_an_invalid_file_before_any_aws_client_exists(tmp_path, prefect_api):
    from flows.infrastructure import infrastructure

    path = write_environment(tmp_path, edit=INVALID["bad CIDR"][0])
    golive.aws.forget_clients()
    with pytest.raises(EnvironmentError, match="vpc_cidr"):
        infrastructure(environment=str(path), sandbox=True)
    assert golive.aws._factories == {}


def test_cli_reports_an_invalid_file_with_exit_code_1(tmp_path):
    path = write_environment(tmp_path, edit=INVALID["unknown key"][0])
    done = subprocess.run([*GOLIVE, "plan", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "network.vpc_cdir: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_environment_name_lists_the_known_ones():
    with pytest.raises(EnvironmentError, match="production, sandbox, staging"):
        load_environment("prodution")


def test_every_shipped_file_validates():
    for path in ENVIRONMENTS.glob("*.toml"):
        assert load_environment(path).name == path.stem
