"""Static files on S3: one listing instead of a request per file, and uploads that overlap.

collectstatic asks the storage, for every file, whether it exists and when it last changed; the manifest
storage asks again for every hashed copy. django-storages answers each with its own HEAD request: hundreds
per run (about 140 files here), each a round trip to S3. One paginated listing of the static prefix answers
them all; the files this process writes or deletes keep it current.

collectstatic then writes one file at a time, and each write waits for its round trip: about 470 uploads
for 133 files on a first run (the original, its hashed copy, the CSS and JS rewritten on each post-process
pass). Here each write is handed to a small pool of threads and collectstatic goes on to the next file.
The writes stay correct: two operations on the same key run in the order they were asked for; the manifest
is written only once every file it names is in S3; a failed upload fails collectstatic.

And about 200 of those uploads, with as many deletes, change nothing: on each pass Django deletes a CSS or
JS file's hashed copy and saves it again, mostly with the same bytes (its name is the hash of its content).
A delete of a file this process uploaded waits to see whether a save of the same name follows: if one
does, the upload replaces the object anyway (and is skipped when the bytes are the ones already there);
if none does, the delete is made before the manifest is written.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from storages.backends.s3 import S3ManifestStaticStorage
from storages.utils import clean_name

# Uploads in flight at once: enough to hide S3's round trip, few enough to stay under its request rates.
UPLOADS_AT_ONCE = 8


class StaticStorage(S3ManifestStaticStorage):
    _listing: dict | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool: ThreadPoolExecutor | None = None
        # collectstatic calls the storage from one thread; only the uploads themselves run in the pool.
        self._pending: dict[str, Future] = {}  # key -> its latest upload not yet known to be done
        self._uploaded: dict[str, str] = {}  # key -> MD5 of what this process uploaded there
        self._deleting: dict[str, str] = {}  # key -> name: deletes of keys in _uploaded, not made yet

    def _listed(self) -> dict:
        """Key -> LastModified of everything under the static prefix, read once per process."""
        if self._listing is None:
            prefix = f"{self.location.strip('/')}/" if self.location else ""
            pages = self.connection.meta.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket_name, Prefix=prefix)
            self._listing = {item["Key"]: item["LastModified"] for page in pages for item in page.get("Contents", [])}
        return self._listing

    def _key(self, name: str) -> str:
        return self._normalize_name(clean_name(name))

    def exists(self, name):
        return self._key(name) in self._listed()

    def get_modified_time(self, name):
        modified = self._listed().get(self._key(name))
        if modified is None:
            return super().get_modified_time(name)  # raises as django-storages does for a missing file
        return modified if settings.USE_TZ else timezone.make_naive(modified)

    def _save(self, name, content):
        """Read the content now (the caller closes its file when this returns) and upload it in the pool,
        after any earlier operation on the same key."""
        key = self._key(name)
        if hasattr(content, "seek"):
            content.seek(0)
        data = content.read()
        data = data.encode() if isinstance(data, str) else data
        digest = hashlib.md5(data).hexdigest()
        if self._deleting.pop(key, None) is not None and self._uploaded.get(key) == digest:
            self._listed()[key] = timezone.now()
            return clean_name(name)  # deleted, then saved with the very bytes this process put there
        copy = ContentFile(data, name=name)
        if getattr(content, "content_type", None):
            copy.content_type = content.content_type  # django-storages prefers it to the guessed type
        self._uploaded[key] = digest
        earlier = self._pending.pop(key, None)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=UPLOADS_AT_ONCE, thread_name_prefix="static-upload")
            atexit.register(self._finish_or_fail)  # collectstatic --no-post-process never reaches wait_for_uploads
        self._pending[key] = self._pool.submit(self._upload_after, earlier, name, copy)
        self._listed()[key] = timezone.now()
        return clean_name(name)

    def _upload_after(self, earlier: Future | None, name, content) -> None:
        if earlier is not None:
            earlier.result()  # raises its failure: this one must not land in its place
        S3ManifestStaticStorage._save(self, name, content)

    def delete(self, name):
        key = self._key(name)
        self._listed().pop(key, None)
        if key in self._uploaded:
            self._deleting[key] = name  # made by wait_for_uploads, unless a save of the same name comes first
            return
        self._delete_now(key, name)

    def _delete_now(self, key: str, name) -> None:
        earlier = self._pending.pop(key, None)
        if earlier is not None:
            earlier.result()  # the upload must not land after the delete
        super().delete(name)
        self._uploaded.pop(key, None)

    def wait_for_uploads(self) -> None:
        """Block until every upload asked for so far is in S3 and every delete is made; raise the first
        failure."""
        pending, self._pending = self._pending, {}
        for upload in pending.values():
            upload.result()
        deleting, self._deleting = self._deleting, {}
        for key, name in deleting.items():
            self._delete_now(key, name)

    def save_manifest(self):
        self.wait_for_uploads()  # the manifest names only files that are already there
        super().save_manifest()

    def post_process(self, *args, **kwargs):
        yield from super().post_process(*args, **kwargs)
        self.wait_for_uploads()  # the manifest itself

    def _finish_or_fail(self) -> None:
        try:
            self.wait_for_uploads()
        except Exception as error:  # at exit, an exception would only be printed: the command must fail
            print(f"collectstatic: an upload to S3 failed: {type(error).__name__}: {error}", file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)
