"""The example Precedentum app on the sandbox's real data plane: migrations, the idempotent seed, the
JSON API, and /health/ following the database down and back up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from golive.sandbox import app as sandbox_app
from golive.sandbox import data_plane


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode(), error.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


@pytest.fixture
def app(aws, empty_database):
    """The app under gunicorn, wired through the sandbox's Secrets Manager; stopped afterwards."""
    with data_plane.locked():
        state, _ = sandbox_app.APP.start()
    yield state["url"]
    with data_plane.locked():
        sandbox_app.APP.stop()


def manage(*args: str) -> subprocess.CompletedProcess:
    environment = sandbox_app.wire()
    return subprocess.run([sys.executable, "manage.py", *args], cwd=sandbox_app.APP_DIR, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **environment})


def test_health_follows_the_database_down_and_back(app):
    status, body = get(f"{app}/health/")
    assert (status, body) == (200, {"status": "ok", "database": "ok", "cache": "ok"})
    try:
        data_plane.POSTGRES.stop()
        status, body = get(f"{app}/health/")
        assert status == 503 and body["database"].startswith("down") and body["cache"] == "ok"
    finally:
        with data_plane.locked():
            data_plane.POSTGRES.start()
    deadline = time.monotonic() + 10
    while get(f"{app}/health/")[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert get(f"{app}/health/")[0] == 200


def test_migrate_and_seed_are_idempotent_and_the_api_serves_them(app):
    assert manage("migrate", "--noinput").returncode == 0
    first = manage("seed_ilnd_data", "--cases", "300")
    assert first.returncode == 0, first.stderr
    assert "cases: 300 added, 300 in all" in first.stdout
    again = manage("seed_ilnd_data", "--cases", "300")
    assert "judges: 0 added" in again.stdout and "cases: 0 added, 300 in all" in again.stdout

    status, judges = get(f"{app}/api/judges/?court=ilnd")
    assert status == 200 and len(judges["results"]) >= 40
    assert {"Virginia M. Kendall", "Matthew F. Kennelly"} <= {j["name"] for j in judges["results"]}
    status, cases = get(f"{app}/api/cases/")
    assert status == 200 and cases["count"] == 300 and len(cases["results"]) == 50
    status, one = get(f"{app}/api/cases/{cases['results'][0]['number']}/")
    assert status == 200 and one["court"] == "ilnd"
    assert get(f"{app}/judges/1")[0] == 200, "frontend routes get the single-page app"
    assert get(f"{app}/api/cases/no-such-case/")[0] == 404


def test_static_files_are_collected_again_only_when_something_they_are_made_from_changed(tmp_path):
    """`sandbox up` starts the app with its static files collected (golive/sandbox/app.py): in full the
    first time, skipped while nothing changed, in full again when a source is newer than its copy or the
    last run did not complete (its stamp missing). The manifest's modification time says which."""
    root = tmp_path / "static"
    environment = {"DJANGO_SETTINGS_MODULE": "config.settings.production", "SECRET_KEY": "static-files-only",
                   "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unused", "REDIS_URL": "redis://127.0.0.1:1/0",
                   "ALLOWED_HOSTS": "127.0.0.1", "AWS_STORAGE_BUCKET_NAME": "", "AWS_MEDIA_BUCKET_NAME": "",
                   "SECURE_SSL_REDIRECT": "false", "STATIC_ROOT": str(root)}
    manifest, stamp = root / "staticfiles.json", root / ".golive-collected"

    def collected_in_full() -> bool:
        if manifest.exists():
            os.utime(manifest, ns=(1, 1))  # a full run writes the manifest anew, whatever the clock says
        sandbox_app.collect_static_files(environment)
        return manifest.stat().st_mtime_ns != 1

    assert collected_in_full() and stamp.exists() and list(root.rglob("*.css.br"))
    assert not collected_in_full()  # nothing changed: only the dry run
    # A source newer than its copy (the copy made older here, the repository's file left alone).
    copy = root / "app.css"
    os.utime(copy, (0, 0))
    assert collected_in_full()
    assert not collected_in_full()
    stamp.unlink()  # as a run that failed or was killed half-way leaves it
    assert collected_in_full() and stamp.exists()
