"""Where the ECS work pool's flow runs keep their results: an S3 bucket and the prefect-aws S3Bucket block
that names it (prefect.yaml's PREFECT_DEFAULT_RESULT_STORAGE_BLOCK, `s3-bucket/golive-ENV-results`).

The bucket is Phase 1's bucket (private, versioned, encrypted, TLS-only, old versions expired) without CORS:
no browser reads it. The block is a Prefect object, kept by the same discover/diff/apply contract: found by
name, compared field by field, saved only when it differs. It stores no secret: against AWS its
credentials are the worker's own (the task role); in the sandbox, moto's endpoint and its fixed fake keys.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Record
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.storage import Bucket, BucketNameTaken

RESULTS = "prefect-results"
BLOCK_TYPE = "s3-bucket"


def block_name(environment: str) -> str:
    return f"golive-{environment}-results"


class ResultsBucket(Bucket):
    kind = "results-bucket"  # its own kind in teardown's table (flows/teardown.py keys kinds by name)

    def desired(self) -> dict[str, Any]:
        return {k: v for k, v in super().desired().items() if k != "cors_origins"}

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        bucket = cls(run, RESULTS)
        try:
            return [Found(id=bucket.bucket, state={}, component=RESULTS)] if bucket.discover() else []
        except BucketNameTaken:
            return []  # not ours: never deleted


class ResultsBlock(Resource):
    """The S3Bucket block the deployments' results go to (a Prefect block document, not an AWS resource)."""

    kind = "prefect-block"

    def __init__(self, run: Run, bucket: str | None):
        super().__init__(run, "results")
        self.name = block_name(run.env_name)
        self.bucket = bucket

    def desired(self) -> dict[str, Any]:
        from golive.changes import known_after_apply

        return {"bucket_name": known_after_apply(self.bucket), "region": self.run.environment.region,
                "endpoint_url": self.run.target.endpoint_url}

    def _block(self):
        from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

        credentials = AwsCredentials(region_name=self.run.environment.region, **self.run.target.fixed_keys,
                                     aws_client_parameters=AwsClientParameters(endpoint_url=self.run.target.endpoint_url))
        return S3Bucket(bucket_name=self.bucket, credentials=credentials)

    def discover(self) -> Found | None:
        from prefect_aws import S3Bucket

        try:
            block = S3Bucket.load(self.name, _sync=True)
        except ValueError:  # Prefect's "Unable to find block document named ..."
            return None
        credentials = block.credentials
        return Found(id=str(block._block_document_id), component=self.component, state={
            "bucket_name": block.bucket_name, "region": getattr(credentials, "region_name", None),
            "endpoint_url": credentials.aws_client_parameters.endpoint_url if credentials else None})

    def create(self) -> str:
        return str(self._block().save(self.name, overwrite=True, _sync=True))

    def update(self, found: Found, changes) -> None:
        self._block().save(self.name, overwrite=True, _sync=True)

    def delete(self, found: Found) -> None:
        from prefect_aws import S3Bucket

        S3Bucket.delete(self.name, _sync=True)


class ResultsRecord(Record):
    bucket: str | None
    block: Record
    block_slug: str  # what PREFECT_DEFAULT_RESULT_STORAGE_BLOCK names


@task(**AWS_STEP)
def ensure_results_storage(run: Run) -> ResultsRecord:
    """The results bucket, then the S3Bucket block that points at it."""
    bucket = ResultsBucket(run, RESULTS)
    made = ensure(bucket)
    block = ensure(ResultsBlock(run, made.id))
    return ResultsRecord(name=bucket.bucket, id=made.id, change=made.change, bucket=made.id,
                         block=Record(name=block_name(run.env_name), id=block.id, change=block.change),
                         block_slug=f"{BLOCK_TYPE}/{block_name(run.env_name)}")


TEARDOWN_ORDER: list[type[Resource]] = [ResultsBucket]
