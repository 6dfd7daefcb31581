"""Files golive renders into the app repository (golive/scaffold.py): plan 2.1, 2.2 and 2.4's container
files, and plan 6's CI workflows and deploy scripts.

A missing file is written; a file that matches ours is left alone; a file that differs is someone's
work: it is shown as a diff and kept, unless the run says --force.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from golive import scaffold
from golive.changes import Action, Change, FieldChange, Record
from golive.run import Run, logger


class AppFileRecord(Record):
    path: str
    status: str  # scaffold's: create, same, differs, overwrite
    diff: str = ""


def _change(run: Run, item: scaffold.ScaffoldFile) -> Change:
    name = f"{run.environment.app.path}/{item.path}"
    if item.status == "same":
        return Change(action=Action.NOOP, kind="app-file", name=name)
    if item.status == "create":
        return Change(action=Action.CREATE, kind="app-file", name=name)
    if item.status == "overwrite":
        return Change(action=Action.UPDATE, kind="app-file", name=name, note="differed from ours; overwritten (--force)")
    changed = sum(1 for line in item.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))
    return Change(action=Action.SKIP, kind="app-file", name=name,
                  fields=(FieldChange(field="lines differing from ours", after=changed),),
                  note="yours differs from ours and is kept; see the diff in the log, or apply with --force")


def render_into_app(run: Run, force: bool, files: scaffold.FileSet) -> list[AppFileRecord]:
    """One set of files, each created, kept (differs: its diff logged) or, with force, overwritten."""
    env = run.environment
    items = (scaffold.write_files(env, force=force, files=files) if run.applying
             else scaffold.plan_files(env, files=files))
    if not run.applying and force:
        items = [scaffold.ScaffoldFile(i.path, "overwrite", i.diff) if i.status == "differs" else i for i in items]
    records = []
    for item in items:
        change = _change(run, item)
        if change.action is not Action.NOOP:
            run.report(change)
        if item.diff:
            logger().info(f"{item.path} differs from golive's template:\n{item.diff}")
        records.append(AppFileRecord(name=item.path, id=item.path, change=change, path=item.path,
                                     status=item.status, diff=item.diff))
    return records


@task(cache_policy=NONE)
def ensure_app_files(run: Run, force: bool = False) -> list[AppFileRecord]:
    """Render the Dockerfiles, entrypoint, nginx config, .dockerignore, .env.production and compose file."""
    return render_into_app(run, force, scaffold.CONTAINER_FILES)


@task(cache_policy=NONE)
def ensure_ci_files(run: Run, force: bool = False) -> list[AppFileRecord]:
    """Render the GitHub Actions workflows and the deploy, rollback and backup scripts."""
    return render_into_app(run, force, scaffold.CI_FILES)
