"""Plan section 1.5, S3: the static and media buckets.

Private (public access blocked; static files reach users through CloudFront later), versioned,
encrypted by default, TLS-only, CORS for the frontend's origins, old versions expired by a lifecycle
rule. The app's task role gets access to exactly these two buckets (tasks/security.py).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError
from prefect import task

from golive.changes import Record
from golive.naming import ENVIRONMENT_TAG, bucket_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP, error_code
from golive.run import Run

BUCKET_PURPOSES = ("static", "media")


class BucketNameTaken(RuntimeError):
    pass


class Bucket(Resource):
    kind = "s3-bucket"
    # moto evaluates bucket policies without their conditions: the TLS-only Deny would refuse every object
    # request the sandbox makes (collectstatic, backups). Shown as skipped there; applied against AWS.
    sandbox_lacks = {"policy": "bucket-policy conditions (its TLS-only Deny would refuse every request)"}

    def __init__(self, run: Run, component: str, account: str = ""):
        super().__init__(run, component)
        self.account = account or run.account_id()
        self.bucket = bucket_name(run.env_name, self.account, component)
        self.name = self.bucket

    @property
    def s3(self):
        return self.run.client("s3")

    def _origins(self) -> list[str]:
        return [f"https://{name}" for name in self.run.environment.certificate_names]

    def _policy(self) -> dict:
        arn = f"arn:aws:s3:::{self.bucket}"
        return {"Version": "2012-10-17", "Statement": [{
            "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]}

    def _cors(self) -> list[dict]:
        # Media takes uploads from the browser; static files are only read.
        methods = ["GET", "HEAD", "PUT", "POST"] if self.component == "media" else ["GET", "HEAD"]
        return [{"AllowedOrigins": self._origins(), "AllowedMethods": methods, "AllowedHeaders": ["*"],
                 "MaxAgeSeconds": 3600}]

    def _lifecycle(self) -> list[dict]:
        days = self.run.environment.storage.noncurrent_version_days
        return [{"ID": "expire-old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
                 "NoncurrentVersionExpiration": {"NoncurrentDays": days},
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]

    def desired(self) -> dict[str, Any]:
        return {
            "tagged": True, "versioning": "Enabled", "public_access_blocked": True, "encryption": "AES256",
            "policy": self._policy(), "cors_origins": self._origins(),
            "noncurrent_version_days": self.run.environment.storage.noncurrent_version_days,
        }

    def _get(self, call, missing: set[str], default=None):
        try:
            return call()
        except ClientError as error:
            if error_code(error) in missing:
                return default
            raise

    def discover(self) -> Found | None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error_code(error) in ("404", "NoSuchBucket", "NotFound"):
                return None
            if error_code(error) in ("403", "AccessDenied"):
                raise BucketNameTaken(f"bucket {self.bucket} exists in another account; S3 names are global. "
                                      "Nothing was created.") from None
            raise
        tags = self._get(lambda: self.s3.get_bucket_tagging(Bucket=self.bucket)["TagSet"], {"NoSuchTagSet"}, [])
        owner = {t["Key"]: t["Value"] for t in tags}.get(ENVIRONMENT_TAG)
        if owner not in (None, self.run.env_name):
            raise BucketNameTaken(f"bucket {self.bucket} is tagged {ENVIRONMENT_TAG}={owner}, not "
                                  f"{self.run.env_name}; golive will not take it over. Nothing was changed.")
        block = self._get(lambda: self.s3.get_public_access_block(Bucket=self.bucket)["PublicAccessBlockConfiguration"],
                          {"NoSuchPublicAccessBlockConfiguration"}, {})
        encryption = self._get(
            lambda: self.s3.get_bucket_encryption(Bucket=self.bucket)["ServerSideEncryptionConfiguration"]["Rules"],
            {"ServerSideEncryptionConfigurationNotFoundError"}, [])
        policy = bucket_policy(self.s3, self.bucket)
        cors = self._get(lambda: self.s3.get_bucket_cors(Bucket=self.bucket)["CORSRules"], {"NoSuchCORSConfiguration"}, [])
        lifecycle = self._get(lambda: self.s3.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"],
                              {"NoSuchLifecycleConfiguration"}, [])
        return Found(id=self.bucket, component=self.component, raw={}, state={
            # Untagged: our own bucket (our account, our name) from a run killed before it tagged it.
            "tagged": owner == self.run.env_name,
            "versioning": self.s3.get_bucket_versioning(Bucket=self.bucket).get("Status"),
            "public_access_blocked": bool(block) and all(block.get(k) for k in (
                "BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")),
            "encryption": next((r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in encryption), None),
            "policy": own_statements(policy, {"TlsOnly"}),
            "cors_origins": sorted({o for rule in cors for o in rule.get("AllowedOrigins", [])}),
            "noncurrent_version_days": next((r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
                                             for r in lifecycle if r.get("ID") == "expire-old-versions"), None),
        })

    def _configure(self, fields: set[str]) -> None:
        b = self.bucket
        if "tagged" in fields:
            self.s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": tag_list(self.run.env_name, self.component)})
        if "public_access_blocked" in fields:
            self.s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
        if "versioning" in fields:
            self.s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        if "encryption" in fields:
            self.s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [
                {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}]})
        if "policy" in fields:
            put_statements(self.s3, b, self._policy()["Statement"])
        if "cors_origins" in fields:
            self.s3.put_bucket_cors(Bucket=b, CORSConfiguration={"CORSRules": self._cors()})
        if "noncurrent_version_days" in fields:
            self.s3.put_bucket_lifecycle_configuration(Bucket=b, LifecycleConfiguration={"Rules": self._lifecycle()})

    def create(self) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "ObjectOwnership": "BucketOwnerEnforced"}
        if self.run.environment.region != "us-east-1":  # us-east-1 refuses an explicit constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.run.environment.region}
        self.s3.create_bucket(**kwargs)
        # S3 cannot tag in the create call. Tags go first; a run killed before them finds the bucket
        # untagged next time and finishes it (see discover).
        fields = set(self.desired()) - (set(self.sandbox_lacks) if self.run.target.is_sandbox else set())
        self._configure(fields)
        return self.bucket

    def update(self, found: Found, changes) -> None:
        self._configure(set(changes))

    def delete(self, found: Found) -> None:
        # Every version and delete marker first: a versioned bucket is only empty when both are gone.
        # List afresh after each batch: paging on while deleting skips keys (the markers move).
        while True:
            page = self.s3.list_object_versions(Bucket=found.id, MaxKeys=1000)
            objects = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                       for v in page.get("Versions", []) + page.get("DeleteMarkers", [])][:1000]
            if not objects:
                break
            self.s3.delete_objects(Bucket=found.id, Delete={"Objects": objects, "Quiet": True})
        self.s3.delete_bucket(Bucket=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        account = run.account_id()
        found = []
        for purpose in BUCKET_PURPOSES:
            bucket = cls(run, purpose, account)
            try:
                if bucket.discover():
                    found.append(Found(id=bucket.bucket, state={}, component=purpose))
            except BucketNameTaken:
                continue  # not ours: never deleted
        return found


class BucketRecord(Record):
    purpose: str
    url: str
    arn: str


@task(**AWS_STEP)
def ensure_buckets(run: Run) -> dict[str, BucketRecord]:
    """The static and media buckets, private and versioned."""
    account = run.account_id()
    records = {}
    for purpose in BUCKET_PURPOSES:
        bucket = Bucket(run, purpose, account)
        outcome = ensure(bucket)
        records[purpose] = BucketRecord(
            name=bucket.bucket, id=outcome.id, change=outcome.change, purpose=purpose,
            url=f"https://{bucket.bucket}.s3.{run.environment.region}.amazonaws.com", arn=f"arn:aws:s3:::{bucket.bucket}")
    return records


def own_statements(policy: dict | None, sids: set[str]) -> dict | None:
    """The part of a bucket policy one step manages (its statement ids). Phase 1 owns TlsOnly; Phase 4
    owns CloudFront's read access: each compares and writes only its own statements."""
    if policy is None:
        return None
    mine = [s for s in policy.get("Statement", []) if s.get("Sid") in sids]
    return {"Version": policy.get("Version", "2012-10-17"), "Statement": mine} if mine else None


def bucket_policy(s3, bucket: str) -> dict | None:
    try:
        return json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as error:
        if error_code(error) == "NoSuchBucketPolicy":
            return None
        raise


def put_statements(s3, bucket: str, statements: list[dict]) -> None:
    """Write these statements into the bucket policy, keeping the other steps' statements as they are."""
    replaced = {s["Sid"] for s in statements}
    current = bucket_policy(s3, bucket) or {"Statement": []}
    kept = [s for s in current.get("Statement", []) if s.get("Sid") not in replaced]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": kept + statements}))


def storage_policy(environment: str, account: str) -> dict:
    """The app's access: read and write objects in its two buckets, list them, nothing else."""
    buckets = [f"arn:aws:s3:::{bucket_name(environment, account, p)}" for p in BUCKET_PURPOSES]
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": buckets},
        {"Effect": "Allow", "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
         "Resource": [f"{b}/*" for b in buckets]},
    ]}


TEARDOWN_ORDER: list[type[Resource]] = [Bucket]
