"""Plan section 4.2: static files on S3. `collectstatic` with the app's production storage settings
(django-storages' S3ManifestStaticStorage) uploads to the static bucket under static/, where CloudFront's
/static/* behaviour serves them. It copies only what changed, so a converged run uploads nothing.

It runs on this machine (the runner reaches S3 in either target); in the sandbox the files really land in
moto's S3.
"""

from __future__ import annotations

import re

from prefect import task

from golive import dataplane
from golive.changes import Action, Change, Record
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.storage import BucketRecord

SUMMARY = re.compile(r"(\d+) static files? (?:copied|would be copied)[^,]*(?:, (\d+) unmodified)?(?:, (\d+) post-processed)?")


class StaticFilesRecord(Record):
    bucket: str
    copied: int
    unmodified: int
    post_processed: int
    url: str  # where a browser finds them
    media: dict  # where the production settings send uploads, as Django itself reports it


def storage_environment(run: Run, buckets: dict[str, BucketRecord]) -> dict[str, str]:
    """The production settings' storage variables (docs/app-environment.md), pointed at this target."""
    environment = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        # collectstatic needs settings to load, not a database or a real key.
        "SECRET_KEY": "collectstatic-only", "DATABASE_URL": "postgresql://collectstatic@127.0.0.1:1/unused", "REDIS_URL": "redis://127.0.0.1:1/0",
        "ALLOWED_HOSTS": run.environment.domain,
        "AWS_STORAGE_BUCKET_NAME": buckets["static"].name, "AWS_MEDIA_BUCKET_NAME": buckets["media"].name,
        "AWS_S3_REGION_NAME": run.environment.region, "STATIC_DOMAIN": run.environment.domain,
    }
    target = run.target
    if target.is_sandbox:
        # The run's own identity (the sandbox's keys, or the role the run acts as), so the uploads are
        # checked against the same policies as every other call.
        environment.update(AWS_S3_ENDPOINT_URL=target.endpoint_url, **run.aws.credentials())
    elif target.profile:
        environment["AWS_PROFILE"] = target.profile
    return environment


# One Django process for all of it (each start costs a second or two): a dry run that counts what would
# be copied; the real run only when something would be (it re-hashes and re-uploads the manifest and every
# post-processed file even when nothing changed); then where the settings send media uploads. With no
# manifest in the bucket yet (a first publish) everything would be copied: the real run, without the dry
# run's request per file first.
STORAGE_SCRIPT = """
import io, json, re
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.files.storage import storages
from django.core.management import call_command

def collect(dry_run):
    out = io.StringIO()
    call_command("collectstatic", interactive=False, dry_run=dry_run, verbosity=1, stdout=out)
    return out.getvalue().strip().splitlines()[-1]

report = {"published": staticfiles_storage.manifest_storage.exists(staticfiles_storage.manifest_name)}
if report["published"] or not APPLY:
    report["dry_run"] = collect(True)
if APPLY and not (report["published"] and re.match(r"0 static files", report["dry_run"])):
    report["run"] = collect(False)
media = storages["default"]
report["media"] = {"backend": type(media).__module__ + "." + type(media).__name__,
                   "bucket": getattr(media, "bucket_name", None), "location": getattr(media, "location", None)}
print(json.dumps(report))
"""


def _counts(summary: str) -> tuple[int, int, int]:
    match = SUMMARY.search(summary)
    if match is None:
        raise RuntimeError(f"collectstatic said something unexpected: {summary[-300:]}")
    copied, unmodified, post_processed = (int(g or 0) for g in match.groups())
    return copied, unmodified, post_processed


@task(**AWS_STEP)
def publish_static_files(run: Run, buckets: dict[str, BucketRecord]) -> StaticFilesRecord:
    """collectstatic to the static bucket (in plan mode only its dry run), and where media uploads go."""
    import json

    bucket = buckets["static"].name
    name = f"s3://{bucket}/static/"
    url = f"https://{run.environment.domain}/static/"
    if buckets["static"].id is None:  # plan of a fresh environment: no bucket to compare against yet
        change = Change(action=Action.CREATE, kind="static-files", name=name, note="collectstatic after the bucket exists")
        run.report(change)
        return StaticFilesRecord(name=name, change=change, bucket=bucket, copied=0, unmodified=0, post_processed=0,
                                 url=url, media={})
    script = f"APPLY = {run.applying}\n" + STORAGE_SCRIPT
    output = dataplane.run_manage_here(run, "shell", "-c", script, environment=storage_environment(run, buckets))
    report = json.loads(output.strip().splitlines()[-1])
    copied, unmodified, post_processed = _counts(report["run"] if "run" in report else report["dry_run"])
    action = Action.NOOP if copied == 0 else (Action.UPDATE if unmodified else Action.CREATE)
    change = Change(action=action, kind="static-files", name=name, id=bucket if run.applying else None,
                    note=f"{copied} copied, {unmodified} unmodified" if copied else "")
    if change.is_change:
        run.report(change)
    return StaticFilesRecord(name=name, id=bucket, change=change, bucket=bucket, copied=copied, unmodified=unmodified,
                             post_processed=post_processed, url=url, media=report["media"])
