"""Plan 2.1, 2.2 and 2.4: the container files of the app repository, rendered where they are missing.

The environment file says where the app repository is (`app.path`) and what the containers need (ports,
CPU share, Python version, domain). From those, golive/templates/app/ renders the backend and frontend
Dockerfiles, the entry point, the nginx configuration, .dockerignore, the frontend's build settings and
a compose file for a local production simulation.

Files the app already has are compared, never silently replaced: identical ones are "same", others are
reported as "differs" with a diff, and only `force=True` overwrites them ("overwrite").
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from golive.config import Environment, EnvironmentError, resolve_path

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "app"

# Path in the app repository -> template. Dot-files get visible template names so that nothing hides them.
TEMPLATES: dict[str, str] = {
    "Dockerfile": "Dockerfile.j2",
    "docker/entrypoint.sh": "docker/entrypoint.sh.j2",
    ".dockerignore": "dockerignore.j2",
    "frontend/Dockerfile": "frontend/Dockerfile.j2",
    "frontend/nginx.conf": "frontend/nginx.conf.j2",
    "frontend/.env.production": "frontend/env.production.j2",
    "docker-compose.prod.yml": "docker-compose.prod.yml.j2",
}
EXECUTABLES = frozenset({"docker/entrypoint.sh"})


@dataclass(frozen=True)
class FileSet:
    """A group of files rendered into the app repository from golive/templates/app/, under one rule."""

    templates: dict[str, str]  # path in the app repository -> template
    executables: frozenset[str] = frozenset()
    # GitHub workflows are full of ${{ ... }}: their templates mark golive's own values <%= ... %> instead.
    variable_delimiters: tuple[str, str] = ("{{", "}}")


CONTAINER_FILES = FileSet(TEMPLATES, EXECUTABLES)
# Plan 6.1 and 6.3: the CI workflows and the scripts around the runbook.
CI_FILES = FileSet(
    templates={
        ".github/workflows/test.yml": "github/workflows/test.yml.j2",
        ".github/workflows/deploy-staging.yml": "github/workflows/deploy-staging.yml.j2",
        ".github/workflows/deploy-production.yml": "github/workflows/deploy-production.yml.j2",
        "scripts/deploy.sh": "scripts/deploy.sh.j2",
        "scripts/rollback.sh": "scripts/rollback.sh.j2",
        "scripts/backup-db.sh": "scripts/backup-db.sh.j2",
    },
    executables=frozenset({"scripts/deploy.sh", "scripts/rollback.sh", "scripts/backup-db.sh"}),
    variable_delimiters=("<%=", "%>"),
)


@dataclass(frozen=True)
class ScaffoldFile:
    path: str  # relative to the app directory, e.g. "frontend/nginx.conf"
    status: str  # "create" (missing), "same" (identical), "differs" (exists, not ours), "overwrite" (differs, force)
    diff: str = ""  # unified diff existing -> ours when it differs ("" otherwise)


def gunicorn_workers(cpu_units: int) -> int:
    """gunicorn.conf.py's rule, 2 x CPUs + 1, for a Fargate CPU share (1024 units = 1 vCPU); at least 2,
    so that one slow request never holds up every other."""
    return max(2, 2 * cpu_units // 1024 + 1)


def template_context(env: Environment) -> dict:
    """What the templates may use; StrictUndefined makes any other name an error, not an empty string."""
    # The frontend calls the API on its own subdomain when the certificate covers one.
    api_url = f"https://api.{env.domain}" if "api" in env.dns.subdomains else f"https://{env.domain}"
    return {
        "name": env.name,
        "domain": env.domain,
        "api_url": api_url,
        "python_version": env.app.python_version,
        "backend": env.services.backend,
        "frontend": env.services.frontend,
        "gunicorn_workers": gunicorn_workers(env.services.backend.cpu),
        "database_name": env.database.database_name,
        "database_user": env.database.master_username,
        "postgres_version": env.database.major,
        "redis_version": env.cache.engine_version.split(".")[0],
    }


def render(env: Environment, files: FileSet = CONTAINER_FILES) -> dict[str, str]:
    """Every file of the set (the container files by default): path -> content."""
    start, end = files.variable_delimiters
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Dockerfiles and configuration, not HTML
        variable_start_string=start,
        variable_end_string=end,
    )
    context = template_context(env)
    return {path: templates.get_template(name).render(context) for path, name in files.templates.items()}


def app_directory(env: Environment, app_dir: Path | None = None) -> Path:
    """The app repository, checked to be a Django project before anything is read or written."""
    directory = Path(app_dir) if app_dir is not None else env.app.directory
    if not (directory / "manage.py").is_file():
        problem = "does not exist" if not directory.is_dir() else "has no manage.py (not a Django project)"
        raise EnvironmentError(
            f"{resolve_path(env.name)}: app.path: the app repository {directory} {problem}. Set app.path "
            "to the directory holding manage.py (relative to this project or absolute), e.g. "
            'path = "examples/precedentum" under [app]'
        )
    return directory


def _target(directory: Path, path: str) -> Path:
    """Where `path` lands; refused if a symlink would take it out of the app repository."""
    target = directory / path
    if not target.resolve().is_relative_to(directory.resolve()):
        raise EnvironmentError(f"{target} resolves to {target.resolve()}, outside the app repository {directory}")
    return target


def _compare(path: str, existing: str | None, ours: str) -> ScaffoldFile:
    if existing is None:
        return ScaffoldFile(path, "create")
    if existing == ours:
        return ScaffoldFile(path, "same")
    diff = difflib.unified_diff(existing.splitlines(), ours.splitlines(),
                                fromfile=f"{path} (existing)", tofile=f"{path} (golive)", lineterm="")
    return ScaffoldFile(path, "differs", "\n".join(diff) + "\n")


def _read(target: Path) -> str | None:
    # Bytes, not read_text(): universal newlines would call a CRLF copy "same".
    return target.read_bytes().decode("utf-8", errors="replace") if target.exists() else None


def _plan(directory: Path, rendered: dict[str, str]) -> list[ScaffoldFile]:
    return [_compare(path, _read(_target(directory, path)), ours) for path, ours in rendered.items()]


def plan_files(env: Environment, app_dir: Path | None = None, files: FileSet = CONTAINER_FILES) -> list[ScaffoldFile]:
    """What write_files would do to each file, without writing anything."""
    return _plan(app_directory(env, app_dir), render(env, files))


def _write_atomically(target: Path, content: str, executable: bool) -> None:
    """Replace in one step, so a run killed mid-write leaves the old file or the new one, never half."""
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    if executable:
        mode |= 0o111
    partial = target.with_name(f".{target.name}.golive-partial")
    partial.write_bytes(content.encode())
    partial.chmod(mode)
    os.replace(partial, target)


def write_files(env: Environment, app_dir: Path | None = None, force: bool = False,
                files: FileSet = CONTAINER_FILES) -> list[ScaffoldFile]:
    """Create the missing files; overwrite differing ones only with force=True, else report their diff."""
    directory = app_directory(env, app_dir)
    rendered = render(env, files)
    results = []
    for planned in _plan(directory, rendered):
        if planned.status == "differs" and force:
            planned = ScaffoldFile(planned.path, "overwrite", planned.diff)
        if planned.status in ("create", "overwrite"):
            _write_atomically(_target(directory, planned.path), rendered[planned.path],
                              executable=planned.path in files.executables)
        results.append(planned)
    return results
