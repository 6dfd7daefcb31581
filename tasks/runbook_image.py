"""The runbook's own image, for the ECS work pool: its ECR repository (golive-ENV-runbook) and the image.

The same three ways as the app's images (tasks/registry.py): built from this project's Dockerfile and
pushed when a Docker engine answers; the file's prebuilt reference (app.images.runbook) otherwise; in the
sandbox, a manifest over the packed source registered in moto's ECR.

The tag is the source's own digest (`src-` and 12 hex digits of the packed build context, .dockerignore
applied): the same source gives the same tag, so a second bootstrap finds its image and pushes nothing, and
a changed runbook gets a new tag (ECR's tags are immutable) that the work pool then points at.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from prefect import task

from golive.changes import Action, Change
from golive.naming import resource_name
from golive.resource import ensure
from golive.retry import AWS_STEP
from golive.run import Run, logger
from tasks.registry import (ImageRecord, NoImageSource, Repository, RepositoryRecord, _docker, docker_available,
                            manifest_size, push_blobs, push_image, sandbox_manifest, source_layer)

RUNBOOK = "runbook"
PROJECT = Path(__file__).resolve().parent.parent  # the build context: this project, with its Dockerfile


def source_tag(context: Path = PROJECT) -> str:
    """The image tag for this source tree: equal sources, equal tags (source_layer packs reproducibly)."""
    return "src-" + hashlib.sha256(source_layer(context)).hexdigest()[:12]


@task(**AWS_STEP)
def ensure_runbook_repository(run: Run) -> RepositoryRecord:
    """golive-ENV-runbook: scanned on push, immutable tags, the same lifecycle as the app's repositories."""
    outcome = ensure(Repository(run, RUNBOOK))
    return RepositoryRecord(name=resource_name(run.env_name, RUNBOOK), id=outcome.id, uri=outcome.id,
                            change=outcome.change)


def _in_ecr(run: Run, repository: RepositoryRecord, tag: str) -> ImageRecord | None:
    if not repository.id:
        return None
    found = run.client("ecr").batch_get_image(repositoryName=repository.name, imageIds=[{"imageTag": tag}])["images"]
    if not found:
        return None
    digest = found[0]["imageId"]["imageDigest"]
    return ImageRecord(name=f"{repository.name}:{tag}", id=digest, component=RUNBOOK, tag=tag,
                       uri=f"{repository.uri}:{tag}", digest=digest, source="in ECR",
                       size_bytes=manifest_size(json.loads(found[0]["imageManifest"])),
                       change=Change(action=Action.NOOP, kind="container-image", name=f"{repository.name}:{tag}",
                                     id=digest))


@task(**AWS_STEP)
def ensure_runbook_image(run: Run, repository: RepositoryRecord) -> ImageRecord:
    """The runbook's image under its source tag: found in ECR (nothing to do); else registered (sandbox),
    built and pushed (Docker answers), or the file's prebuilt reference."""
    tag = source_tag()
    found = _in_ecr(run, repository, tag)
    if found is not None:
        return found
    name = f"{repository.name}:{tag}"
    uri = f"{repository.uri or repository.name}:{tag}"
    if run.target.is_sandbox:
        manifest, size, blobs = sandbox_manifest(PROJECT, RUNBOOK, tag)
        record = ImageRecord(name=name, component=RUNBOOK, tag=tag, uri=uri, size_bytes=size, source="sandbox manifest",
                             size_note=f"{size / 1e6:.1f} MB (the source archive's size, not a built image's)",
                             change=Change(action=Action.CREATE, kind="container-image", name=name,
                                           note="sandbox manifest of this project's Dockerfile and source"))
        if run.applying and repository.id:
            push_blobs(run, repository.name, blobs)
            digest = run.client("ecr").put_image(repositoryName=repository.name, imageManifest=json.dumps(manifest),
                                                 imageTag=tag)["image"]["imageId"]["imageDigest"]
            record = record.model_copy(update={"id": digest, "digest": digest,
                                               "change": record.change.model_copy(update={"id": digest})})
    elif docker_available():
        record = ImageRecord(name=name, component=RUNBOOK, tag=tag, uri=uri, source="docker build",
                             change=Change(action=Action.CREATE, kind="container-image", name=name, note="docker build"))
        if run.applying and repository.id:
            _docker("build", "--pull", "-t", uri, "-f", str(PROJECT / "Dockerfile"), str(PROJECT))
            digest = push_image(run, uri)
            record = record.model_copy(update={"id": digest, "digest": digest,
                                               "change": record.change.model_copy(update={"id": digest})})
    elif run.environment.app.images.runbook:
        prebuilt = run.environment.app.images.runbook
        logger().info(f"runbook: no Docker engine; using the prebuilt image {prebuilt} from the environment file")
        return ImageRecord(name=name, id=prebuilt, component=RUNBOOK, tag=tag, uri=prebuilt, source="prebuilt reference",
                           size_note="a prebuilt reference: its source is not checked against this checkout",
                           change=Change(action=Action.NOOP, kind="container-image", name=name, id=prebuilt,
                                         note="prebuilt reference from app.images.runbook"))
    else:
        raise NoImageSource(
            "no Docker engine answers here and app.images.runbook is not set: build this project's Dockerfile "
            f"elsewhere (`docker build -t IMAGE .` at {PROJECT}), push it, and set app.images.runbook to its "
            "reference, or run the bootstrap where Docker runs.")
    run.report(record.change)
    return record
