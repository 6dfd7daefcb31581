"""What Phases 2-8 stand on, read back from AWS: the network, security groups, certificate, buckets
and roles Phase 1 made. Each later phase can run on its own (`golive apply ENV --phase ecs`), so it
discovers these by their tags and names rather than taking them from Phase 1's return value.

In plan mode a missing piece is fine (its id is "known after apply"); in apply mode it stops the phase
before anything is created, naming what is missing and the command that makes it.
"""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel

from golive.aws_errors import aws_error
from golive.changes import Action, Change
from golive.naming import bucket_name, resource_name
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.dns import Certificate, CertificateRecord, HostedZone
from tasks.network import SecurityGroup, SecurityGroupRecord, Subnet, SubnetRecord, Vpc, zone_letter
from tasks.security import RoleRecord
from tasks.storage import BUCKET_PURPOSES, BucketRecord

SECURITY_GROUPS = ("alb", "backend", "frontend", "database", "cache")
ROLES = ("ecs-execution", "ecs-task")


class FoundationMissing(RuntimeError):
    pass


class Foundation(BaseModel):
    vpc_id: str | None
    public_subnets: list[SubnetRecord]
    private_subnets: list[SubnetRecord]
    security_groups: dict[str, SecurityGroupRecord]
    certificate: CertificateRecord
    buckets: dict[str, BucketRecord]
    roles: dict[str, RoleRecord]
    zone_id: str | None


def _reference(kind: str, name: str, ident: str | None) -> Change:
    return Change(action=Action.NOOP, kind=kind, name=name, id=ident, note="made by Phase 1")


@task(**AWS_STEP)
def read_foundation(run: Run) -> Foundation:
    """Discover Phase 1's network, groups, certificate, buckets and roles (reads only)."""
    env, name = run.environment, run.env_name
    vpc = Vpc(run, "vpc").discover()
    subnets = {found.component: found for found in Subnet.discover_all(run)}

    def subnet(tier: str, az: str, cidr: str) -> SubnetRecord:
        component = f"{tier}-{zone_letter(az)}"
        found = subnets.get(component)
        return SubnetRecord(name=resource_name(name, component), id=found.id if found else None, tier=tier,
                            availability_zone=az, cidr_block=cidr,
                            change=_reference("subnet", resource_name(name, component), found.id if found else None))

    groups = {found.component: found.id for found in SecurityGroup.discover_all(run)}
    certificate = Certificate(run, "certificate").discover()
    acm_status = certificate.raw["Status"] if certificate else None
    account = run.account_id()
    s3 = run.client("s3")
    buckets = {}
    for purpose in BUCKET_PURPOSES:
        bucket = bucket_name(name, account, purpose)
        try:
            s3.head_bucket(Bucket=bucket)
            exists = True
        except s3.exceptions.ClientError:
            exists = False
        buckets[purpose] = BucketRecord(name=bucket, id=bucket if exists else None, purpose=purpose,
                                        url=f"https://{bucket}.s3.{env.region}.amazonaws.com", arn=f"arn:aws:s3:::{bucket}",
                                        change=_reference("s3-bucket", bucket, bucket if exists else None))
    iam = run.client("iam")
    roles = {}
    for role in ROLES:
        try:
            arn = iam.get_role(RoleName=resource_name(name, role))["Role"]["Arn"]
        except aws_error("NoSuchEntity"):
            arn = None
        roles[role] = RoleRecord(name=resource_name(name, role), id=arn, arn=arn,
                                 change=_reference("iam-role", resource_name(name, role), arn))
    zone = HostedZone(run, "zone").discover()
    foundation = Foundation(
        vpc_id=vpc.id if vpc else None,
        public_subnets=[subnet("public", az, cidr) for az, cidr in env.public_subnets],
        private_subnets=[subnet("private", az, cidr) for az, cidr in env.private_subnets],
        security_groups={g: SecurityGroupRecord(name=resource_name(name, g), id=groups.get(g), component=g,
                                                change=_reference("security-group", resource_name(name, g), groups.get(g)))
                         for g in SECURITY_GROUPS},
        certificate=CertificateRecord(name=resource_name(name, "certificate"), id=certificate.id if certificate else None,
                                      names=env.certificate_names, status=acm_status,
                                      change=_reference("acm-certificate", resource_name(name, "certificate"),
                                                        certificate.id if certificate else None)),
        buckets=buckets, roles=roles, zone_id=zone.id if zone else None,
    )
    missing = missing_pieces(foundation)
    if missing and run.applying:
        raise FoundationMissing(f"Phase 1 has not made everything this phase stands on; missing: {', '.join(missing)}. "
                                f"Run `golive apply {name} --phase infrastructure` first. Nothing was changed.")
    return foundation


def missing_pieces(foundation: Foundation) -> list[str]:
    missing = [] if foundation.vpc_id else ["the VPC"]
    missing += [s.name for s in foundation.public_subnets + foundation.private_subnets if not s.id]
    missing += [g.name for g in foundation.security_groups.values() if not g.id]
    missing += [] if foundation.certificate.id else ["the ACM certificate"]
    missing += [b.name for b in foundation.buckets.values() if not b.id]
    missing += [r.name for r in foundation.roles.values() if not r.arn]
    missing += [] if foundation.zone_id else ["the hosted zone"]
    return missing
