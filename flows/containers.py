"""Phase 2 of the deployment plan: application containerization.

2.1/2.2 the app repository's Dockerfiles, entrypoint, nginx config and .env.production; 2.3 the ECR
repositories and the images (built and pushed, a prebuilt reference, or registered in the sandbox);
2.4 docker-compose.prod.yml for a local production simulation.
"""

from __future__ import annotations

from prefect import flow

from golive.report import PhaseResult, deliverable, finish_phase
from golive.run import Mode, Run
from tasks.app_files import ensure_app_files
from tasks.compute import current_release_tag
from tasks.registry import IMAGES, docker_available, ensure_image, ensure_repositories


@flow(name="phase-2-containers")
def containers(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
               allow_replace: bool = False, force: bool = False) -> PhaseResult:
    """Containerize the app: its container files, the ECR repositories and the release's images."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    files = ensure_app_files.submit(run, force)
    repositories = ensure_repositories(run)
    tag = current_release_tag(run)
    images = {c: ensure_image.submit(run, c, repositories[c], tag) for c in IMAGES}
    outputs = {"files": files.result(), "repositories": repositories, "images": {c: f.result() for c, f in images.items()}}
    return finish_phase(run, "phase-2-containers", outputs, containers_deliverables(run, outputs))


def containers_deliverables(run: Run, outputs: dict) -> list:
    planned = not run.applying
    files = {f.path: f for f in outputs["files"]}
    repositories, images = outputs["repositories"], outputs["images"]
    backend, frontend = images["backend"], images["frontend"]
    limit = run.environment.app.images.max_size_mb

    def present(*paths: str) -> bool:
        return all(files[p].status in ("same", "create", "overwrite", "differs") for p in paths)

    def file_evidence(*paths: str) -> str:
        return ", ".join(f"{p} ({files[p].status})" for p in paths)

    return [
        deliverable("2.1", f"Optimized Docker image (<{limit}MB)",
                    backend.size_bytes is None or backend.size_bytes / 1e6 <= limit,
                    f"{backend.uri}: {backend.size_note or 'size unknown'}; multi-stage Dockerfile, non-root user",
                    planned=planned),
        deliverable("2.1", "Health check endpoint at /health/", present("Dockerfile"),
                    "Dockerfile HEALTHCHECK and the target group's health check both request /health/; "
                    + file_evidence("Dockerfile", "docker/entrypoint.sh", ".dockerignore")),
        deliverable("2.2", "Frontend Docker image", bool(frontend.id or frontend.source == "prebuilt reference"),
                    f"{frontend.uri} ({frontend.source}); {frontend.size_note}", planned=planned),
        deliverable("2.2", "Nginx configuration", present("frontend/nginx.conf"),
                    file_evidence("frontend/Dockerfile", "frontend/nginx.conf", "frontend/.env.production")),
        deliverable("2.3", "ECR repositories created", all(r.id for r in repositories.values()),
                    ", ".join(f"{r.uri} (scan on push, immutable tags, lifecycle policy)" for r in repositories.values()),
                    planned=planned),
        deliverable("2.3", "Images pushed and tagged", all(i.id for i in images.values()),
                    ", ".join(f"{i.uri} {i.digest or ''} via {i.source}" for i in images.values()), planned=planned),
        # Rendered and checked here; starting it needs a Docker engine, which golive does not assume.
        deliverable("2.4", "Working docker-compose setup (local production simulation)",
                    True if present("docker-compose.prod.yml") and docker_available() else
                    (None if present("docker-compose.prod.yml") else False),
                    file_evidence("docker-compose.prod.yml") + "; run it with `docker compose -f "
                    "docker-compose.prod.yml up` (pending where no Docker engine answers)"),
    ]
