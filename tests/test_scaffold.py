"""Plan 2.1: the app repository's container files, rendered from the environment file where missing,
compared (never silently replaced) where present."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from golive import scaffold
from golive.config import Environment, EnvironmentError, load_environment

EXAMPLE_APP = Path(__file__).resolve().parent.parent / "examples" / "precedentum"


@pytest.fixture(scope="module")
def env() -> Environment:
    return load_environment("sandbox")


@pytest.fixture
def bare_app(tmp_path: Path) -> Path:
    """A copy of the example app without any of the container files."""
    app = tmp_path / "precedentum"
    shutil.copytree(EXAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__", "staticfiles"))
    for path in scaffold.TEMPLATES:
        (app / path).unlink(missing_ok=True)
    return app


def statuses(files: list[scaffold.ScaffoldFile]) -> dict[str, str]:
    return {f.path: f.status for f in files}


def test_missing_files_are_created_and_a_second_run_changes_nothing(env, bare_app):
    assert set(statuses(scaffold.plan_files(env, bare_app)).values()) == {"create"}
    assert not (bare_app / "Dockerfile").exists(), "planning must not write"

    created = scaffold.write_files(env, bare_app)

    assert statuses(created) == {path: "create" for path in scaffold.TEMPLATES}
    for path, content in scaffold.render(env).items():
        assert (bare_app / path).read_text() == content
    again = scaffold.write_files(env, bare_app)
    assert statuses(again) == {path: "same" for path in scaffold.TEMPLATES}
    assert all(f.diff == "" for f in again)


def test_a_hand_edited_file_is_reported_with_its_diff_and_kept(env, bare_app):
    scaffold.write_files(env, bare_app)
    nginx = bare_app / "frontend" / "nginx.conf"
    edited = nginx.read_text().replace("gzip_min_length 1024;", "gzip_min_length 256;")
    nginx.write_text(edited)

    result = {f.path: f for f in scaffold.write_files(env, bare_app)}

    assert result["frontend/nginx.conf"].status == "differs"
    assert "-    gzip_min_length 256;" in result["frontend/nginx.conf"].diff
    assert "+    gzip_min_length 1024;" in result["frontend/nginx.conf"].diff
    assert nginx.read_text() == edited
    assert {f.status for p, f in result.items() if p != "frontend/nginx.conf"} == {"same"}


def test_force_overwrites_a_differing_file(env, bare_app):
    scaffold.write_files(env, bare_app)
    (bare_app / "Dockerfile").write_text("FROM python:3.11\n")

    result = statuses(scaffold.write_files(env, bare_app, force=True))

    assert result["Dockerfile"] == "overwrite"
    assert (bare_app / "Dockerfile").read_text() == scaffold.render(env)["Dockerfile"]
    assert set(statuses(scaffold.plan_files(env, bare_app)).values()) == {"same"}


def test_the_entrypoint_is_executable_when_created_and_when_overwritten(env, bare_app):
    entrypoint = bare_app / "docker" / "entrypoint.sh"
    scaffold.write_files(env, bare_app)
    assert entrypoint.stat().st_mode & stat.S_IXUSR

    entrypoint.write_text("#!/bin/sh\nexec true\n")
    entrypoint.chmod(0o644)
    scaffold.write_files(env, bare_app, force=True)
    assert entrypoint.stat().st_mode & 0o111 == 0o111
    assert not (bare_app / "Dockerfile").stat().st_mode & stat.S_IXUSR


def test_the_entrypoint_starts_gunicorn_or_runs_a_one_off_command(env, bare_app, tmp_path):
    scaffold.write_files(env, bare_app)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "gunicorn").write_text('#!/bin/sh\necho gunicorn "$@"\n')
    (fake_bin / "gunicorn").chmod(0o755)
    environment = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}"}

    def run(*args: str) -> str:
        return subprocess.run(["docker/entrypoint.sh", *args], cwd=bare_app, env=environment,
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()

    assert run() == "gunicorn config.wsgi:application --config gunicorn.conf.py"
    assert run("--timeout", "60").endswith("gunicorn.conf.py --timeout 60")
    assert run("echo", "migrate") == "migrate"


def test_a_missing_app_directory_names_app_path_and_writes_nothing(env, tmp_path):
    with pytest.raises(EnvironmentError, match=r"app\.path.*does not exist.*manage\.py"):
        scaffold.write_files(env, tmp_path / "nowhere")

    not_django = tmp_path / "not-django"
    not_django.mkdir()
    with pytest.raises(EnvironmentError, match=r"sandbox\.toml: app\.path.*no manage\.py"):
        scaffold.write_files(env, not_django)
    assert list(not_django.iterdir()) == []


def test_nothing_is_written_through_a_symlink_out_of_the_app(env, bare_app, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(bare_app / "frontend", outside / "frontend")
    (bare_app / "frontend").symlink_to(outside / "frontend")

    with pytest.raises(EnvironmentError, match="outside the app repository"):
        scaffold.write_files(env, bare_app)
    assert sorted(p.name for p in (outside / "frontend").iterdir()) == ["dist"]
    assert not (bare_app / "Dockerfile").exists(), "refused before writing anything"


def test_the_committed_example_app_has_every_file_as_rendered(env):
    assert scaffold.plan_files(env) == [scaffold.ScaffoldFile(path, "same") for path in scaffold.TEMPLATES]


def test_the_backend_dockerfile(env):
    dockerfile = scaffold.render(env)["Dockerfile"]

    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms == ["python:3.11-slim", "python:3.11-slim"], "multi-stage, slim runtime"
    assert "COPY --from=builder /opt/venv /opt/venv" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n\s+CMD .*http://127\.0\.0\.1:8000/health/", dockerfile, re.MULTILINE)
    assert "GUNICORN_BIND=0.0.0.0:8000" in dockerfile and "WEB_CONCURRENCY=2" in dockerfile
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.MULTILINE)
    assert 'ENTRYPOINT ["/app/docker/entrypoint.sh"]' in dockerfile
    assert "exec gunicorn config.wsgi:application" in scaffold.render(env)["docker/entrypoint.sh"]


@pytest.mark.parametrize("cpu, workers", [(256, 2), (512, 2), (1024, 3), (2048, 5), (4096, 9)])
def test_gunicorn_workers_follow_the_task_cpu_share(cpu, workers):
    assert scaffold.gunicorn_workers(cpu) == workers


def test_the_frontend_nginx_configuration(env):
    nginx = scaffold.render(env)["frontend/nginx.conf"]

    assert "listen 8080;" in nginx
    assert "try_files $uri $uri/ /index.html;" in nginx
    assert "gzip on;" in nginx
    assert 'Cache-Control "public, max-age=31536000, immutable"' in nginx
    assert re.search(r"location = /index\.html \{\s+add_header Cache-Control \"no-cache\";", nginx)
    assert "location = /health" in nginx
    frontend = scaffold.render(env)["frontend/Dockerfile"]
    assert "nginx-unprivileged" in frontend and "USER 101" in frontend and "EXPOSE 8080" in frontend


def test_the_rendered_files_follow_the_environment_file(env):
    data = env.model_dump()
    data["app"]["python_version"] = "3.12"
    data["services"]["backend"].update(cpu=1024, memory=2048, port=9000)
    data["services"]["frontend"]["port"] = 8081
    data["domain"] = "example.org"
    files = scaffold.render(Environment.model_validate(data))

    assert "FROM python:3.12-slim AS runtime" in files["Dockerfile"]
    assert "EXPOSE 9000" in files["Dockerfile"] and "WEB_CONCURRENCY=3" in files["Dockerfile"]
    assert "listen 8081;" in files["frontend/nginx.conf"]
    assert "VITE_API_URL=https://api.example.org\n" in files["frontend/.env.production"]


def test_the_compose_file_simulates_production_without_inline_secrets(env):
    compose = yaml.safe_load(scaffold.render(env)["docker-compose.prod.yml"])
    services = compose["services"]

    assert services["postgres"]["image"] == "postgres:16" and services["redis"]["image"] == "redis:7"
    for name in ("postgres", "redis", "backend", "frontend"):
        assert services[name]["healthcheck"]["test"], name
    assert services["backend"]["env_file"] == ".env"
    assert services["backend"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "SECRET_KEY" not in services["backend"]["environment"]


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image(env):
    ignored = scaffold.render(env)[".dockerignore"].splitlines()
    assert {"**/.env", "**/.env.*", ".git", ".venv", "staticfiles"} <= set(ignored)
    assert not any(line.startswith("frontend/dist") for line in ignored), "the backend serves the SPA shell"
