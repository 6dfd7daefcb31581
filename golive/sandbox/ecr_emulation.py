"""The sandbox's ECR keeps what is pushed to it: moto 5.2.5 implements the layer-upload API that `docker
push` uses (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload) but keeps only each layer's size.
This module, installed in the sandbox's moto process, also keeps the bytes, content-addressed by digest,
so the sandbox's ECS can run what an image really holds (golive/sandbox/ecs_emulation.py).

Blobs live under the sandbox's state directory and outlive a moto restart; a reset of the emulator
forgets the images that point at them, not the blobs (they are keyed by content, so nothing goes stale).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from golive.sandbox.services import state_dir


def blob_dir() -> Path:
    return state_dir() / "ecr-blobs"


def blob_path(digest: str) -> Path:
    """Where the blob with this digest ("sha256:<hex>") is kept."""
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return blob_dir() / hexdigest


def read_blob(digest: str) -> bytes:
    return blob_path(digest).read_bytes()


def install() -> None:
    """Wrap moto's CompleteLayerUpload so the uploaded bytes are kept under their digest."""
    from moto.ecr.models import ECRBackend

    original = ECRBackend.complete_layer_upload

    def complete_layer_upload(self, repository_name, upload_id, layer_digests, registry_id=None):
        repository = self._get_repository(repository_name, registry_id)
        upload = repository.uploads.get(upload_id)
        data = bytes(upload.layer_parts) if upload is not None else None
        result = original(self, repository_name, upload_id, layer_digests, registry_id=registry_id)
        if data is not None:
            path = blob_path("sha256:" + hashlib.sha256(data).hexdigest())
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.partial")
            partial.write_bytes(data)
            partial.replace(path)  # atomic: a reader never sees half a blob
        return result

    ECRBackend.complete_layer_upload = complete_layer_upload
