"""Drift in tags: a resource whose ownership tags were removed (or changed) by hand is found by its
name, reported as drift by plan (exit 2) and given its tags back by apply, never made a second time
(golive/resource.py: discover_untagged, tag_drift, restore_tags; like Ansible's purge_tags for the keys
golive owns)."""

from __future__ import annotations

from typer.testing import CliRunner

from flows.infrastructure import infrastructure
from golive.cli import app
from golive.naming import tags
from tests.awsstate import EXPECTED_SINGLE_NAT, by_component, counts, ec2_inventory
from tests.conftest import prepare


def cli(*args: str):
    """The CLI's own entry point in this process, so the call log shows what it wrote."""
    return CliRunner().invoke(app, [*args, "--verbose"])


def test_tags_removed_by_hand_are_reported_by_plan_and_restored_by_apply(aws):
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    ec2, rds = run.client("ec2"), run.client("rds")
    database = by_component(ec2_inventory(run)["security_groups"])["database"]
    # Every tag off a security group (Ec2Resource, found again by its GroupName), the environment's tag
    # off the DB subnet group (NamedResource), and a subnet's Name changed (found by its other tags).
    ec2.delete_tags(Resources=[database["GroupId"]], Tags=[{"Key": t["Key"]} for t in database["Tags"]])
    subnet_group_arn = rds.describe_db_subnet_groups(DBSubnetGroupName="golive-sandbox-db")["DBSubnetGroups"][0]["DBSubnetGroupArn"]
    rds.remove_tags_from_resource(ResourceName=subnet_group_arn, TagKeys=["golive:environment"])
    subnet = by_component(ec2_inventory(run)["subnets"])["private-a"]
    ec2.create_tags(Resources=[subnet["SubnetId"]], Tags=[{"Key": "Name", "Value": "renamed by hand"}])
    # Every tag off the internet gateway and a public subnet: found by their VPC (and CIDR block).
    gateway = ec2_inventory(run)["internet_gateways"][0]
    ec2.delete_tags(Resources=[gateway["InternetGatewayId"]], Tags=[{"Key": t["Key"]} for t in gateway["Tags"]])
    public = by_component(ec2_inventory(run)["subnets"])["public-b"]
    ec2.delete_tags(Resources=[public["SubnetId"]], Tags=[{"Key": t["Key"]} for t in public["Tags"]])
    assert "database" not in by_component(ec2_inventory(run)["security_groups"])  # what discovery by tag sees

    run.aws.log.clear()
    planned = cli("plan", "sandbox", "--phase", "infrastructure")
    assert planned.exit_code == 2, planned.output
    assert run.aws.log.writes() == [], "plan writes nothing"
    said = " ".join(planned.output.split())  # rich wraps long lines at the runner's width
    for line in ("~ security-group golive-sandbox-database", "~ db-subnet-group golive-sandbox-db",
                 "~ subnet golive-sandbox-private-a", "~ internet-gateway golive-sandbox-igw",
                 "~ subnet golive-sandbox-public-b"):
        assert line in said, planned.output
    assert said.count("ownership tags removed or changed by hand: apply restores them") == 5, planned.output
    assert "tags: {'Name': None, 'golive:environment': None" in said
    assert "+ security-group golive-sandbox-database" not in planned.output, "never planned as a new one"

    run.aws.log.clear()
    applied = cli("apply", "sandbox", "--phase", "infrastructure")
    assert applied.exit_code == 0, applied.output
    writes = sorted(c.operation for c in run.aws.log.writes())
    assert writes == ["AddTagsToResource"] + ["CreateTags"] * 4, writes
    # Restored on the very resources found, no duplicate.
    groups = [g for g in ec2.describe_security_groups()["SecurityGroups"] if g["GroupName"] == "golive-sandbox-database"]
    assert [g["GroupId"] for g in groups] == [database["GroupId"]]
    assert {t["Key"]: t["Value"] for t in groups[0]["Tags"]} == tags("sandbox", "database")
    assert {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=subnet_group_arn)["TagList"]
            }["golive:environment"] == "sandbox"
    assert counts(run) == EXPECTED_SINGLE_NAT
    assert by_component(ec2_inventory(run)["subnets"])["public-b"]["SubnetId"] == public["SubnetId"]
    assert ec2_inventory(run)["internet_gateways"][0]["InternetGatewayId"] == gateway["InternetGatewayId"]

    run.aws.log.clear()
    assert cli("plan", "sandbox", "--phase", "infrastructure").exit_code == 0
    assert run.aws.log.writes() == []


def test_a_group_tagged_for_another_environment_is_never_taken_over(aws):
    """Found by name but owned by someone else: not drift. Apply makes its own and leaves that one be."""
    infrastructure(environment="sandbox", sandbox=True)
    run = prepare()
    ec2 = run.client("ec2")
    database = by_component(ec2_inventory(run)["security_groups"])["database"]
    ec2.create_tags(Resources=[database["GroupId"]], Tags=[{"Key": "golive:environment", "Value": "staging"}])
    planned = cli("plan", "sandbox", "--phase", "infrastructure")
    assert planned.exit_code == 2 and "+ security-group golive-sandbox-database" in " ".join(planned.output.split())
