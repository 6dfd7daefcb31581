"""Static files on S3, with one listing instead of a request per file.

collectstatic asks the storage, for every file, whether it exists and when it last changed; the manifest
storage asks again for every hashed copy. django-storages answers each with its own HEAD request: hundreds
per run (about 140 files here), each a round trip to S3. One paginated listing of the static prefix answers
them all; the files this process writes or deletes keep it current.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from storages.backends.s3 import S3ManifestStaticStorage
from storages.utils import clean_name


class StaticStorage(S3ManifestStaticStorage):
    _listing: dict | None = None

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
        saved = super()._save(name, content)
        self._listed()[self._key(saved)] = timezone.now()
        return saved

    def delete(self, name):
        super().delete(name)
        self._listed().pop(self._key(name), None)
