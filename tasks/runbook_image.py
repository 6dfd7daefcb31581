"""The runbook's own image, for the ECS work pool: its ECR repository (golive-ENV-runbook) and the image.

Published the same three ways as the app's images, by the same code (tasks/registry.py publish_image):
built from this project's Dockerfile and pushed when a Docker engine answers; the file's prebuilt reference
(app.images.runbook) otherwise; in the sandbox, a manifest over the packed source registered in moto's ECR.

The tag is the source's own digest (`src-` and 12 hex digits of the packed build context, .dockerignore
applied): the same source gives the same tag, so a second bootstrap finds its image and pushes nothing, and
a changed runbook gets a new tag (ECR's tags are immutable) that the work pool then points at.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import task

from golive.naming import resource_name
from golive.resource import ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.registry import ImageRecord, Repository, RepositoryRecord, publish_image, source_layer

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


@task(**AWS_STEP)
def ensure_runbook_image(run: Run, repository: RepositoryRecord) -> ImageRecord:
    """The runbook's image under its source tag, published as the app's images are (tasks/registry.py):
    found in ECR, else registered (sandbox), built and pushed (Docker answers), or app.images.runbook."""
    return publish_image(run, RUNBOOK, repository, source_tag(), context=PROJECT)
