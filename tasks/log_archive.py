"""Plan 7.1 log aggregation and 7.2's audit trails: one logs bucket per environment, and the ALB's and
CloudFront's access logs into it.

The bucket (golive-<env>-<account>-logs) receives the ALB's and CloudFront's access logs, the VPC flow
logs, AWS Config's snapshots and CloudTrail's files, each under its own prefix, and expires them after
security.log_archive_days. Its policy lets exactly those AWS services write there (only for this account)
and refuses plain HTTP, as the app's buckets do. CloudFront's standard logs are written with an ACL, so
this bucket, unlike the others, keeps ACLs enabled (BucketOwnerPreferred).
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Record
from golive.naming import bucket_name
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.cdn import Distribution
from tasks.load_balancer import LoadBalancer
from tasks.storage import Bucket, BucketNameTaken, bucket_policy, own_statements

LOGS = "logs"
# ALB access logs are written by the region's Elastic Load Balancing account (older regions) or by the
# log-delivery service principal (regions since August 2022); both are allowed, for this prefix only.
# https://docs.aws.amazon.com/elasticloadbalancing/latest/application/enable-access-logging.html
ELB_ACCOUNTS = {"us-east-1": "127311923021", "us-east-2": "033677994240", "us-west-1": "027434742980",
                "us-west-2": "797873946194", "eu-west-1": "156460612806", "eu-central-1": "054676820928",
                "eu-west-2": "652711504416", "ap-southeast-1": "114774131450", "ap-southeast-2": "783225319266",
                "ap-northeast-1": "582318560864", "ca-central-1": "985666609251", "sa-east-1": "507241528517"}
PREFIXES = {"alb": "alb", "cloudfront": "cloudfront", "flow-logs": "AWSLogs", "config": "config",
            "cloudtrail": "AWSLogs"}


class LogsBucket(Bucket):
    """The environment's log archive. Everything of the app buckets (private, versioned, encrypted,
    TLS-only) plus: service write access, ACLs for CloudFront, and expiry."""

    kind = "s3-logs-bucket"
    sandbox_lacks = Bucket.sandbox_lacks  # the TLS-only Deny: moto evaluates it without its condition
    OWN = {"TlsOnly", "AlbAccessLogs", "LogDelivery", "LogDeliveryAcl", "CloudTrailAcl", "CloudTrailWrite",
           "ConfigAcl", "ConfigWrite"}

    def __init__(self, run: Run, component: str = LOGS, account: str = ""):
        super().__init__(run, component, account)

    def _cors(self) -> list[dict]:
        return []

    def _policy(self) -> dict:
        arn, account, region = f"arn:aws:s3:::{self.bucket}", self.account, self.run.environment.region
        mine = {"StringEquals": {"aws:SourceAccount": account}}
        alb_writer = ({"AWS": f"arn:aws:iam::{ELB_ACCOUNTS[region]}:root"} if region in ELB_ACCOUNTS
                      else {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"})
        statements = super()._policy()["Statement"] + [
            {"Sid": "AlbAccessLogs", "Effect": "Allow", "Principal": alb_writer, "Action": "s3:PutObject",
             "Resource": f"{arn}/{PREFIXES['alb']}/AWSLogs/{account}/*"},
            {"Sid": "LogDelivery", "Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"{arn}/AWSLogs/{account}/*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account, "s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Sid": "LogDeliveryAcl", "Effect": "Allow", "Principal": {"Service": "delivery.logs.amazonaws.com"},
             "Action": ["s3:GetBucketAcl", "s3:ListBucket"], "Resource": arn, "Condition": mine},
            {"Sid": "CloudTrailAcl", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:GetBucketAcl", "Resource": arn, "Condition": mine},
            {"Sid": "CloudTrailWrite", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"{arn}/AWSLogs/{account}/*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account, "s3:x-amz-acl": "bucket-owner-full-control"}}},
            {"Sid": "ConfigAcl", "Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"},
             "Action": ["s3:GetBucketAcl", "s3:ListBucket"], "Resource": arn, "Condition": mine},
            {"Sid": "ConfigWrite", "Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"},
             "Action": "s3:PutObject", "Resource": f"{arn}/{PREFIXES['config']}/AWSLogs/{account}/Config/*",
             "Condition": {"StringEquals": {"aws:SourceAccount": account, "s3:x-amz-acl": "bucket-owner-full-control"}}},
        ]
        return {"Version": "2012-10-17", "Statement": statements}

    def _lifecycle(self) -> list[dict]:
        return super()._lifecycle() + [{
            "ID": "expire-logs", "Status": "Enabled", "Filter": {"Prefix": ""},
            "Expiration": {"Days": self.run.environment.security.log_archive_days}}]

    def desired(self) -> dict[str, Any]:
        desired = super().desired()
        desired.pop("cors_origins")
        return {**desired, "expire_days": self.run.environment.security.log_archive_days}

    def discover(self) -> Found | None:
        found = super().discover()
        if found is None:
            return None
        lifecycle = self._get(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"],
                              {"NoSuchLifecycleConfiguration"}, [])
        found.state["policy"] = own_statements(bucket_policy(self.s3, self.bucket), self.OWN)
        found.state["expire_days"] = next((r.get("Expiration", {}).get("Days") for r in lifecycle
                                           if r.get("ID") == "expire-logs"), None)
        return found

    def _configure(self, fields: set[str]) -> None:
        if "expire_days" in fields:
            fields = (fields - {"expire_days"}) | {"noncurrent_version_days"}  # one lifecycle call writes both rules
        super()._configure(fields)

    def create(self) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectOwnership": "BucketOwnerPreferred"}
        if self.run.environment.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.run.environment.region}
        self.s3.create_bucket(**kwargs)
        self._configure(self.settable_fields())
        return self.bucket

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        try:
            found = cls(run).discover()
        except BucketNameTaken:
            return []  # not ours: never deleted
        return [Found(id=found.id, state={}, component=LOGS)] if found else []


class AlbAccessLogs(Resource):
    """The ALB's access_logs.* attributes (Phase 3 owns the others): on, into the logs bucket."""

    kind = "alb-access-logs"

    def __init__(self, run: Run, component: str = "alb-access-logs", bucket: str | None = None):
        super().__init__(run, component)
        self.bucket = bucket

    @property
    def elb(self):
        return self.run.client("elbv2")

    def desired(self) -> dict[str, Any]:
        return {"enabled": "true", "bucket": self.bucket, "prefix": PREFIXES["alb"]}

    def discover(self) -> Found | None:
        lb = LoadBalancer(self.run, "alb")._find()
        if lb is None:
            return None
        attributes = {a["Key"]: a["Value"] for a in self.elb.describe_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
        state = {"enabled": attributes.get("access_logs.s3.enabled", "false"),
                 "bucket": attributes.get("access_logs.s3.bucket") or None,
                 "prefix": attributes.get("access_logs.s3.prefix") or None}
        # Logs off means there is nothing of ours yet (create); teardown finds nothing to undo.
        return Found(id=lb["LoadBalancerArn"], component=self.component, raw=lb, state=state) \
            if state["enabled"] == "true" else None

    def _put(self, arn: str, spec: dict) -> None:
        self.elb.modify_load_balancer_attributes(LoadBalancerArn=arn, Attributes=[
            {"Key": "access_logs.s3.enabled", "Value": spec["enabled"]},
            {"Key": "access_logs.s3.bucket", "Value": spec["bucket"] or ""},
            {"Key": "access_logs.s3.prefix", "Value": spec["prefix"] or ""}])

    def create(self) -> str:
        lb = LoadBalancer(self.run, "alb")._find()
        if lb is None:
            raise RuntimeError(f"the ALB does not exist; run `golive apply {self.run.env_name} --phase ecs` first")
        self._put(lb["LoadBalancerArn"], self.desired())
        return lb["LoadBalancerArn"]

    def update(self, found: Found, changes) -> None:
        self._put(found.id, self.desired())

    def delete(self, found: Found) -> None:
        self._put(found.id, {"enabled": "false", "bucket": None, "prefix": None})

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class DistributionSetting(Resource):
    """Fields of Phase 4's distribution that Phase 7 owns (the web ACL, the access logs): read from and
    written into the distribution's config, leaving the rest as Phase 4 made it."""

    fields: tuple[str, ...] = ()

    @property
    def cloudfront(self):
        return self.run.client("cloudfront")

    def _distribution(self) -> tuple[str, dict, str] | None:
        found = Distribution(self.run).discover()
        if found is None:
            return None
        current = self.cloudfront.get_distribution_config(Id=found.id)
        return found.id, current["DistributionConfig"], current["ETag"]

    def observe(self, config: dict) -> dict[str, Any]:
        raise NotImplementedError

    def apply_to(self, config: dict, spec: dict | None) -> dict:
        """The config with this resource's fields set (spec None: removed)."""
        raise NotImplementedError

    def discover(self) -> Found | None:
        current = self._distribution()
        if current is None:
            return None
        distribution_id, config, _ = current
        state = self.observe(config)
        return Found(id=distribution_id, component=self.component, state=state) if any(state.values()) else None

    def _write(self, spec: dict | None) -> str:
        current = self._distribution()
        if current is None:
            raise RuntimeError(f"the CloudFront distribution does not exist; run `golive apply {self.run.env_name} "
                               "--phase cdn` first")
        distribution_id, config, etag = current
        self.cloudfront.update_distribution(Id=distribution_id, IfMatch=etag, DistributionConfig=self.apply_to(config, spec))
        Distribution(self.run).wait_deployed(distribution_id)
        return distribution_id

    def create(self) -> str:
        return self._write(self.desired())

    def update(self, found: Found, changes) -> None:
        self._write(self.desired())

    def delete(self, found: Found) -> None:
        self._write(None)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class CdnAccessLogs(DistributionSetting):
    """CloudFront standard logs into the logs bucket under cloudfront/ (cookies left out: they carry sessions)."""

    kind = "cloudfront-access-logs"

    def __init__(self, run: Run, component: str = "cdn-access-logs", bucket: str | None = None):
        super().__init__(run, component)
        self.bucket = bucket

    def desired(self) -> dict[str, Any]:
        return {"bucket": f"{self.bucket}.s3.amazonaws.com" if self.bucket else None, "prefix": f"{PREFIXES['cloudfront']}/"}

    def observe(self, config: dict) -> dict[str, Any]:
        logging = config.get("Logging") or {}
        enabled = logging.get("Enabled")
        return {"bucket": logging.get("Bucket") if enabled else None, "prefix": logging.get("Prefix") if enabled else None}

    def apply_to(self, config: dict, spec: dict | None) -> dict:
        logging = ({"Enabled": True, "IncludeCookies": False, "Bucket": spec["bucket"], "Prefix": spec["prefix"]}
                   if spec else {"Enabled": False, "IncludeCookies": False, "Bucket": "", "Prefix": ""})
        return {**config, "Logging": logging}


class LogArchiveRecord(Record):
    arn: str
    alb_access_logs: Record
    cdn_access_logs: Record


@task(**AWS_STEP)
def ensure_log_archive(run: Run) -> LogArchiveRecord:
    """The logs bucket, then the ALB's and CloudFront's access logs into it."""
    bucket = LogsBucket(run, LOGS, run.account_id())
    outcome = ensure(bucket)
    alb = AlbAccessLogs(run, bucket=bucket.bucket)
    alb_outcome = ensure(alb)
    cdn = CdnAccessLogs(run, bucket=bucket.bucket)
    cdn_outcome = ensure(cdn)
    return LogArchiveRecord(
        name=bucket.bucket, id=outcome.id, change=outcome.change, arn=f"arn:aws:s3:::{bucket.bucket}",
        alb_access_logs=Record(name=alb.name, id=alb_outcome.id, change=alb_outcome.change),
        cdn_access_logs=Record(name=cdn.name, id=cdn_outcome.id, change=cdn_outcome.change))


def logs_bucket_name(run: Run) -> str:
    return bucket_name(run.env_name, run.account_id(), LOGS)


# The ALB's and CloudFront's access-log settings go with the ALB and the distribution.
TEARDOWN_ORDER = [LogsBucket]
