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
