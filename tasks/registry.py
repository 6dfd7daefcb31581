"""Plan section 2.2, the container registry: ECR repositories and the images the services run.

Repositories scan on push, keep tags immutable (a tag names one image forever, so a rollback to a tag is
a rollback to those bytes) and expire untagged images and old releases by lifecycle policy.

Images reach ECR three ways, chosen per run:
- a Docker engine answers: build the app repository's Dockerfiles and push;
- no engine, but the environment file names a prebuilt reference (app.images.backend/frontend): the task
  definitions use that reference as it is;
- the sandbox: moto's ECR gets an image manifest whose layer is the app's source tree packed as a tar.gz.
  Its size is that archive's, not a built image's: the 500 MB check says so.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import Action, Change, Record
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run, logger

IMAGES = ("backend", "frontend")
# Where each image's Dockerfile lives in the app repository (Phase 2.1 renders them).
BUILD_CONTEXTS = {"backend": ".", "frontend": "frontend"}
EXCLUDED_FROM_CONTEXT = {".git", "__pycache__", "node_modules", ".venv", "media", "staticfiles"}
KEEP_RELEASES = 20


def lifecycle_policy() -> dict:
    return {"rules": [
        {"rulePriority": 1, "description": "drop untagged images after 7 days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 7}, "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the last {KEEP_RELEASES} tagged images (rollback targets)",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_RELEASES},
         "action": {"type": "expire"}},
    ]}


class Repository(Resource):
    kind = "ecr-repository"
    sandbox_lacks: dict[str, str] = {}

    @property
    def ecr(self):
        return self.run.client("ecr")

    def desired(self) -> dict[str, Any]:
        return {"scan_on_push": True, "tag_mutability": "IMMUTABLE", "lifecycle_policy": lifecycle_policy()}

    def _lifecycle(self) -> dict | None:
        try:
            return json.loads(self.ecr.get_lifecycle_policy(repositoryName=self.name)["lifecyclePolicyText"])
        except aws_error("LifecyclePolicyNotFoundException"):
            return None

    def discover(self) -> Found | None:
        try:
            repo = self.ecr.describe_repositories(repositoryNames=[self.name])["repositories"][0]
        except aws_error("RepositoryNotFoundException"):
            return None
        return Found(id=repo["repositoryUri"], component=self.component, raw=repo, state={
            "scan_on_push": repo["imageScanningConfiguration"]["scanOnPush"],
            "tag_mutability": repo["imageTagMutability"],
            "lifecycle_policy": self._lifecycle(),
        })

    def create(self) -> str:
        repo = self.ecr.create_repository(
            repositoryName=self.name, imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True}, encryptionConfiguration={"encryptionType": "AES256"},
            tags=tag_list(self.run.env_name, self.component))["repository"]
        self.ecr.put_lifecycle_policy(repositoryName=self.name, lifecyclePolicyText=json.dumps(lifecycle_policy()))
        return repo["repositoryUri"]

    def update(self, found: Found, changes) -> None:
        if "scan_on_push" in changes:
            self.ecr.put_image_scanning_configuration(repositoryName=self.name,
                                                      imageScanningConfiguration={"scanOnPush": True})
        if "tag_mutability" in changes:
            self.ecr.put_image_tag_mutability(repositoryName=self.name, imageTagMutability="IMMUTABLE")
        if "lifecycle_policy" in changes:
            self.ecr.put_lifecycle_policy(repositoryName=self.name, lifecyclePolicyText=json.dumps(lifecycle_policy()))

    def delete(self, found: Found) -> None:
        # force: the images go with it (teardown is the one place that may lose release images).
        self.ecr.delete_repository(repositoryName=found.raw["repositoryName"], force=True)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        ecr = run.client("ecr")
        prefix = resource_name(run.env_name, "")
        found = []
        for page in ecr.get_paginator("describe_repositories").paginate():
            for repo in page["repositories"]:
                if not repo["repositoryName"].startswith(prefix):
                    continue
                tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]
                if {t["Key"]: t["Value"] for t in tags}.get(ENVIRONMENT_TAG) == run.env_name:
                    found.append(Found(id=repo["repositoryUri"], state={}, raw=repo,
                                       component=repo["repositoryName"].removeprefix(prefix)))
        return found


class RepositoryRecord(Record):
    uri: str | None


class ImageRecord(Record):
    component: str
    uri: str  # what the task definition runs: repository:tag, or the file's prebuilt reference
    tag: str
    digest: str | None = None
    size_bytes: int | None = None
    source: str  # "docker build", "prebuilt reference", "sandbox manifest"
    size_note: str = ""


class ImageTooLarge(RuntimeError):
    pass


def docker_available() -> bool:
    """A Docker engine that answers, not merely a docker binary (`docker build` fails without one)."""
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ignored_patterns(context: Path) -> list[str]:
    """The context's .dockerignore, as Docker would read it (comments and blank lines dropped)."""
    ignore = context / ".dockerignore"
    if not ignore.is_file():
        return []
    return [line.strip().rstrip("/") for line in ignore.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#") and not line.strip().startswith("!")]


def _ignored(relative: Path, patterns: list[str]) -> bool:
    from fnmatch import fnmatch

    text = relative.as_posix()
    return any(fnmatch(text, p.removeprefix("**/")) or fnmatch(relative.name, p.removeprefix("**/"))
               or any(fnmatch(part, p) for part in relative.parts) for p in patterns)


def source_layer(context: Path) -> bytes:
    """The build context packed reproducibly (sorted, no timestamps): equal sources give equal digests.
    What .dockerignore leaves out (a local .env, say) stays out, as in a real build."""
    patterns = ignored_patterns(context)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        for path in sorted(context.rglob("*")):
            relative = path.relative_to(context)
            if (path.is_dir() or EXCLUDED_FROM_CONTEXT & set(relative.parts) or path.suffix == ".pyc"
                    or _ignored(relative, patterns)):
                continue
            info = tar.gettarinfo(str(path), arcname=str(relative))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def image_config(dockerfile: Path) -> dict:
    """What `docker build` would write into the image's config from the final stage of the Dockerfile:
    WORKDIR, ENV, ENTRYPOINT and CMD (exec form). The sandbox's ECS runs the image by it."""
    import shlex

    text = dockerfile.read_text().replace("\\\n", " ") if dockerfile.exists() else ""
    config: dict[str, Any] = {"WorkingDir": "/", "Env": [], "Entrypoint": None, "Cmd": None}
    for line in text.splitlines():
        instruction, _, argument = line.strip().partition(" ")
        instruction, argument = instruction.upper(), argument.strip()
        if instruction == "FROM":
            config = {"WorkingDir": "/", "Env": [], "Entrypoint": None, "Cmd": None}
        elif instruction == "WORKDIR":
            config["WorkingDir"] = argument
        elif instruction == "ENV":
            config["Env"] += [pair for pair in shlex.split(argument) if "=" in pair]
        elif instruction in ("ENTRYPOINT", "CMD") and argument.startswith("["):
            config["Entrypoint" if instruction == "ENTRYPOINT" else "Cmd"] = json.loads(argument)
    return config


def sandbox_manifest(context: Path, component: str, tag: str) -> tuple[dict, int, dict[str, bytes]]:
    """An OCI-shaped manifest over the source archive, the size ECR would report (config + layers), and
    the blobs to push by digest (the config and the layer), as `docker push` sends them."""
    layer = source_layer(context)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
        **image_config(context / "Dockerfile"),
        "Labels": {"org.opencontainers.image.title": component, "org.opencontainers.image.version": tag}}},
        sort_keys=True).encode()
    config_digest, layer_digest = ("sha256:" + hashlib.sha256(blob).hexdigest() for blob in (config, layer))
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config),
                   "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer),
                    "digest": layer_digest}],
    }
    return manifest, len(config) + len(layer), {config_digest: config, layer_digest: layer}


def push_blobs(run: Run, repository: str, blobs: dict[str, bytes]) -> None:
    """Upload the blobs ECR does not hold yet through its layer-upload API (what `docker push` does)."""
    ecr = run.client("ecr")
    available = {layer["layerDigest"] for layer in ecr.batch_check_layer_availability(
        repositoryName=repository, layerDigests=list(blobs))["layers"] if layer.get("layerAvailability") == "AVAILABLE"}
    for digest, blob in blobs.items():
        if digest in available:
            continue
        upload = ecr.initiate_layer_upload(repositoryName=repository)
        part = upload.get("partSize") or len(blob)
        for first in range(0, len(blob), part):
            ecr.upload_layer_part(repositoryName=repository, uploadId=upload["uploadId"], partFirstByte=first,
                                  partLastByte=min(first + part, len(blob)) - 1, layerPartBlob=blob[first:first + part])
        ecr.complete_layer_upload(repositoryName=repository, uploadId=upload["uploadId"], layerDigests=[digest])


def manifest_size(manifest: dict) -> int:
    return manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])


def _docker(*args: str, timeout: int = 1800) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise RuntimeError(f"docker {args[0]} failed:\n{tail}")
    return done.stdout


def build_context(run: Run, component: str) -> Path:
    """Where an app image is built from: its directory in the app repository (BUILD_CONTEXTS)."""
    return run.environment.app.directory / BUILD_CONTEXTS[component]


def build_image(run: Run, context: Path, image: str) -> int:
    """docker build of the context's Dockerfile; returns the image's size in bytes (checked before the push)."""
    _docker("build", "--pull", "-t", image, "-f", str(context / "Dockerfile"), str(context))
    return int(_docker("image", "inspect", "--format", "{{.Size}}", image).strip())


def push_image(run: Run, image: str) -> str:
    """Log in to ECR with a short-lived token and push; returns the pushed digest."""
    import base64

    token = run.client("ecr").get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)
    done = subprocess.run(["docker", "login", "--username", user, "--password-stdin", token["proxyEndpoint"]],
                          input=password, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"docker login to {token['proxyEndpoint']} failed: {done.stderr.strip()}")
    _docker("push", image)
    digests = _docker("image", "inspect", "--format", "{{join .RepoDigests \"\\n\"}}", image).split()
    return next(d.split("@", 1)[1] for d in digests if d.startswith(image.rsplit(":", 1)[0]))


class NoImageSource(RuntimeError):
    pass


def _record(run: Run, component: str, tag: str, uri: str, source: str, change: Change, digest: str | None = None,
            size: int | None = None) -> ImageRecord:
    ident = uri if source == "prebuilt reference" else digest  # a prebuilt image is known by its reference
    return ImageRecord(name=f"{resource_name(run.env_name, component)}:{tag}", id=ident, component=component, tag=tag,
                       uri=uri, digest=digest, size_bytes=size, source=source, change=change)


def find_image(run: Run, component: str, repository_uri: str | None, tag: str) -> ImageRecord | None:
    """The tag's image as ECR holds it, or (outside the sandbox) the file's prebuilt reference; None when
    neither exists. Reads only: Phase 3 uses it to point task definitions at what Phase 2 published."""
    name = f"{resource_name(run.env_name, component)}:{tag}"
    if repository_uri:
        ecr = run.client("ecr")
        try:
            found = ecr.batch_get_image(repositoryName=resource_name(run.env_name, component),
                                        imageIds=[{"imageTag": tag}])["images"]
        except aws_error("RepositoryNotFoundException"):
            found = []
        if found:
            # The manifest's own figures: what ECR reports as the compressed size (moto reports the config's).
            digest = found[0]["imageId"]["imageDigest"]
            return _record(run, component, tag, f"{repository_uri}:{tag}", "in ECR",
                           Change(action=Action.NOOP, kind="container-image", name=name, id=digest), digest,
                           manifest_size(json.loads(found[0]["imageManifest"])))
    prebuilt = getattr(run.environment.app.images, component)
    if prebuilt and not run.target.is_sandbox:
        return _record(run, component, tag, prebuilt, "prebuilt reference",
                       Change(action=Action.NOOP, kind="container-image", name=name, id=prebuilt,
                              note="prebuilt reference from app.images"))
    return None


def publish_image(run: Run, component: str, repository: RepositoryRecord, tag: str,
                  context: Path | None = None) -> ImageRecord:
    """The image for `tag`: found in ECR (nothing to do); else registered (sandbox), built and pushed (a
    Docker engine answers), or the file's prebuilt reference (app.images.<component>). The plan's size limit
    is checked before anything is sent, wherever the size can be known. context: where the image is built
    from (default: the app's, build_context)."""
    context = context or build_context(run, component)
    in_ecr = find_image(run, component, repository.uri, tag) if repository.id else None
    if in_ecr is not None and in_ecr.source == "in ECR":
        return _checked_size(run, in_ecr)
    name = f"{resource_name(run.env_name, component)}:{tag}"
    uri = f"{repository.uri}:{tag}"
    if run.target.is_sandbox:
        manifest, size, blobs = sandbox_manifest(context, component, tag)
        record = _checked_size(run, _record(run, component, tag, uri, "sandbox manifest",
                                            Change(action=Action.CREATE, kind="container-image", name=name,
                                                   note="sandbox manifest"), size=size))
        if run.applying and repository.id:
            push_blobs(run, resource_name(run.env_name, component), blobs)
            digest = run.client("ecr").put_image(repositoryName=resource_name(run.env_name, component),
                                                 imageManifest=json.dumps(manifest), imageTag=tag)["image"]["imageId"]["imageDigest"]
            record = record.model_copy(update={"id": digest, "digest": digest,
                                               "change": record.change.model_copy(update={"id": digest})})
    elif docker_available():
        record = _record(run, component, tag, uri, "docker build",
                         Change(action=Action.CREATE, kind="container-image", name=name, note="docker build"))
        if run.applying and repository.id:
            size = build_image(run, context, uri)
            record = _checked_size(run, record.model_copy(update={"size_bytes": size}))  # before the push
            digest = push_image(run, uri)
            record = record.model_copy(update={"id": digest, "digest": digest,
                                               "change": record.change.model_copy(update={"id": digest})})
    elif in_ecr is not None:  # the prebuilt reference
        logger().info(f"{component}: no Docker engine; using the prebuilt image {in_ecr.uri} from the environment file")
        return in_ecr.model_copy(update={"size_note": "size unknown: a prebuilt reference outside this environment's ECR"})
    else:
        raise NoImageSource(
            f"no Docker engine answers here and app.images.{component} is not set: build and push the {component} "
            f"image elsewhere and set app.images.{component} to its reference, or run where Docker runs.")
    run.report(record.change)
    return record


def _checked_size(run: Run, record: ImageRecord) -> ImageRecord:
    limit = run.environment.app.images.max_size_mb
    if record.size_bytes is None:
        return record.model_copy(update={"size_note": "size unknown"})
    megabytes = record.size_bytes / 1e6
    note = f"{megabytes:.1f} MB of {limit} MB"
    if run.target.is_sandbox:
        note += " (sandbox: the source archive's size, not a built image's)"
    if megabytes > limit:
        raise ImageTooLarge(f"{record.uri} is {megabytes:.0f} MB, above the plan's {limit} MB "
                            "(app.images.max_size_mb): slim the image (multi-stage build, .dockerignore) and release again")
    return record.model_copy(update={"size_note": note})


@task(**AWS_STEP)
def ensure_repositories(run: Run) -> dict[str, RepositoryRecord]:
    """The backend and frontend ECR repositories, scanned on push, with lifecycle policies."""
    records = {}
    for component in IMAGES:
        outcome = ensure(Repository(run, component))
        records[component] = RepositoryRecord(name=resource_name(run.env_name, component), id=outcome.id,
                                              uri=outcome.id, change=outcome.change)
    return records


class ImageMissing(RuntimeError):
    pass


@task(**AWS_STEP)
def read_image(run: Run, component: str, tag: str) -> ImageRecord:
    """The image Phase 2 (or a release) published for the tag, for the task definitions (reads only)."""
    repository = Repository(run, component).discover()
    found = find_image(run, component, repository.id if repository else None, tag)
    if found is not None:
        return _checked_size(run, found)
    if run.applying:
        raise ImageMissing(f"no {component} image tagged {tag} in {resource_name(run.env_name, component)} (and no "
                           f"app.images.{component}): run `golive apply {run.env_name} --phase containers` first, or "
                           f"`golive release {run.env_name} --image TAG` for another tag. Nothing was changed.")
    uri = f"{repository.id if repository else resource_name(run.env_name, component)}:{tag}"
    return _record(run, component, tag, uri, "not published yet",
                   Change(action=Action.NOOP, kind="container-image", name=f"{resource_name(run.env_name, component)}:{tag}",
                          note="published by Phase 2"))


@task(**AWS_STEP)
def ensure_image(run: Run, component: str, repository: RepositoryRecord, tag: str) -> ImageRecord:
    """One image, present in ECR under its tag (or the file's prebuilt reference)."""
    return publish_image(run, component, repository, tag)


TEARDOWN_ORDER: list[type[Resource]] = [Repository]
