"""The example app's static storage (examples/precedentum/config/storage.py) against moto's S3: its
overlapping uploads leave exactly what one-at-a-time uploads would, and a failed upload fails collectstatic
before the manifest is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import boto3

from golive.sandbox.app import APP_DIR

# collectstatic with the production settings' storage, to BUCKET; FAIL names a file whose upload fails
# (a fault injected in django-storages' own upload, which the pool calls).
SCRIPT = """
import os
from unittest import mock
from django.core.management import call_command
from storages.backends.s3 import S3ManifestStaticStorage

import json
calls = {"uploads": 0, "deletes": 0}
real_save, real_delete = S3ManifestStaticStorage._save, S3ManifestStaticStorage.delete
def save(self, name, content):
    if os.environ.get("FAIL") and name.endswith(os.environ["FAIL"]):
        raise OSError("injected: the upload of " + name + " failed")
    calls["uploads"] += 1
    return real_save(self, name, content)
def delete(self, name):
    calls["deletes"] += 1
    return real_delete(self, name)

with mock.patch.object(S3ManifestStaticStorage, "_save", save), \
        mock.patch.object(S3ManifestStaticStorage, "delete", delete):
    call_command("collectstatic", interactive=False, verbosity=0)
print(json.dumps(calls))
"""


def collectstatic(endpoint: str, bucket: str, **extra: str) -> subprocess.CompletedProcess:
    environment = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "test-only",
        "DATABASE_URL": "postgresql://unused@127.0.0.1:1/unused", "REDIS_URL": "redis://127.0.0.1:1/0",
        "ALLOWED_HOSTS": "example.test", "AWS_STORAGE_BUCKET_NAME": bucket, "AWS_MEDIA_BUCKET_NAME": bucket,
        "AWS_S3_REGION_NAME": "us-east-1", "AWS_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", **extra}
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=APP_DIR, env=environment,
                          capture_output=True, text=True, timeout=300)


def objects(s3, bucket: str) -> dict[str, str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="static/")
    return {item["Key"]: item["ETag"] for page in pages for item in page.get("Contents", [])}


def test_overlapping_uploads_leave_every_file_the_manifest_names(aws):
    s3 = boto3.client("s3", endpoint_url=aws, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="static-storage")
    done = collectstatic(aws, "static-storage")
    assert done.returncode == 0, done.stderr[-2000:]
    calls = json.loads(done.stdout.strip().splitlines()[-1])
    stored = objects(s3, "static-storage")
    manifest = json.loads(s3.get_object(Bucket="static-storage", Key="static/staticfiles.json")["Body"].read())
    assert len(manifest["paths"]) > 100
    # Every original and its hashed copy, and nothing else but the manifest.
    expected = {f"static/{name}" for pair in manifest["paths"].items() for name in pair} | {"static/staticfiles.json"}
    assert set(stored) == expected
    # The CSS rewritten over several passes (deleted and uploaded again each time) is the last version:
    # its hashed name is the MD5 of what S3 holds.
    css = manifest["paths"]["admin/css/base.css"]
    body = s3.get_object(Bucket="static-storage", Key=f"static/{css}")["Body"].read()
    import hashlib

    assert hashlib.md5(body).hexdigest()[:12] == css.rsplit(".", 2)[1]

    # Each object went up once: Django's passes delete and save the CSS and JS again with the same bytes,
    # and those requests were not sent (before, 471 uploads and 207 deletes). What else went up was an
    # intermediate copy a later pass renamed, and was deleted.
    assert calls["uploads"] - calls["deletes"] == len(expected)
    assert calls["deletes"] <= 5

    # A second run finds everything in place and uploads nothing.
    again = collectstatic(aws, "static-storage")
    assert again.returncode == 0, again.stderr[-2000:]
    assert objects(s3, "static-storage") == stored


def test_a_failed_upload_fails_collectstatic_before_the_manifest(aws):
    s3 = boto3.client("s3", endpoint_url=aws, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="static-storage-fault")
    done = collectstatic(aws, "static-storage-fault", FAIL="admin/js/core.js")
    assert done.returncode != 0
    assert "injected: the upload of admin/js/core.js failed" in done.stderr
    assert "static/staticfiles.json" not in objects(s3, "static-storage-fault")
