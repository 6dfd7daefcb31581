"""`golive`: plan, apply, destroy and check an environment; run the sandbox.

Exit codes follow `terraform plan -detailed-exitcode`: 0 success with nothing to do, 2 changes planned,
1 an error (the message names what to fix).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from contextvars import ContextVar, copy_context
from pathlib import Path
from typing import List, Optional

# Before Prefect or great-expectations is imported anywhere: no telemetry leaves this machine.
for _key, _value in {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                     "GX_ANALYTICS_ENABLED": "false"}.items():
    os.environ.setdefault(_key, _value)

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from golive import progress
from golive.changes import Action, Change, Summary
from golive.config import EnvironmentError as BadEnvironment
from golive.cost import PLAN_OPTIMIZED
from golive.phases import PHASES, automated, dependency_order, find_phase

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
sandbox_app = typer.Typer(no_args_is_help=True, help="The local sandbox: moto's AWS emulator on 127.0.0.1.")
app.add_typer(sandbox_app, name="sandbox")
# emoji=False: ARNs such as "...:secret:golive/..." must not turn into pictures.
console = Console(highlight=False, emoji=False)
errors = Console(stderr=True, highlight=False, emoji=False)

EnvArg = typer.Argument(..., help="environment name (deployments/environments/NAME.toml) or a path")
SandboxOpt = typer.Option(None, "--sandbox/--aws", help="force the local sandbox or real AWS (default: the file's aws.target)")
PhaseOpt = typer.Option(None, "--phase", "-p", help="a phase by number or name (repeat for several): "
                        + ", ".join(p.name for p in PHASES))
VerboseOpt = typer.Option(False, "--verbose", "-v", help="also show Prefect's own log lines, and a failure's trace")
PROJECT = Path(__file__).resolve().parent.parent


class Failure(Exception):
    """An error already explained to the user: print it and exit 1."""


# Prefect's temporary server creates its database on its first start; on a fresh machine that migration
# outlasts Prefect's default 20 s start-up timeout (measured: 29 s on an idle 2-core machine).
EPHEMERAL_STARTUP_TIMEOUT_SECONDS = 180


def _prefect_api(run) -> Optional[str]:
    """The Prefect API a command's runs go to: the user's PREFECT_API_URL when set (Prefect Cloud, their own
    server); for a run against the sandbox, the sandbox's own server while it is up (no start-up to wait for,
    the runs stay visible in its UI); None: Prefect's temporary server, for this process only."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if run.target.is_sandbox:
        from golive.sandbox import orchestrator

        return orchestrator.status()["prefect_api_url"]
    return None


def _flow_settings(run):
    """The settings a command's flows run under. Against the user's own server nothing changes. Against
    the sandbox's server or the temporary one, flows skip their heartbeat: it only feeds a zombie-run
    automation, which neither has, and joining its thread costs up to a second per flow."""
    from contextlib import nullcontext

    if os.environ.get("PREFECT_API_URL"):
        return nullcontext()
    from prefect.settings import (PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
                                  PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, temporary_settings)

    updates = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
    api = _prefect_api(run)
    if api:
        updates[PREFECT_API_URL] = api
    elif not os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"):
        updates[PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS] = EPHEMERAL_STARTUP_TIMEOUT_SECONDS
    return temporary_settings(updates=updates)


def _print_target(verb: str, run) -> None:
    """What a command acts on, and where its runs can be watched."""
    api = _prefect_api(run)
    where = (f"runs recorded at PREFECT_API_URL {api}" if os.environ.get("PREFECT_API_URL") else
             f"runs in the sandbox's Prefect UI at {api.removesuffix('/api')}" if api else
             "runs in a temporary Prefect server (set PREFECT_API_URL to keep them)")
    console.print(f"[bold]{verb} {run.env_name}[/] against {run.target.describe()}\n[dim]{where}[/]")


def _quiet_prefect(verbose: bool) -> None:
    # Our progress lines and a failure's one line are the terminal view; Prefect's own lines (its
    # tracebacks included) still reach the run log in the UI, and the terminal with --verbose.
    # The environment reaches Prefect's temporary server too (a subprocess writing to this terminal): its
    # shutdown's "Error flushing 1 events" and CancelledError are handled there, and stay out of the way.
    # Prefect's internal services (the events and log workers) log through a handler of their own ("debug").
    if verbose:
        return
    os.environ["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
    os.environ["PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL"] = "CRITICAL"
    if "prefect.logging.handlers" in sys.modules:  # Prefect configured its logging before the CLI ran
        import logging

        from prefect.logging.handlers import PrefectConsoleHandler

        for logger in [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]:
            for handler in logger.handlers:
                if isinstance(handler, PrefectConsoleHandler) or logger.name == "prefect._internal":
                    handler.setLevel(logging.CRITICAL)


def _prepare(environment: str, sandbox: Optional[bool], mode: str, reach: bool = True):
    """Validate the file and the target before any flow (and before any AWS call); then, unless
    reach=False, one call to check that the endpoint answers and takes the credentials: an unreachable
    endpoint is one line within seconds, not a flow's worth of retries."""
    from golive.aws import Unreachable
    from golive.run import Run, SandboxNotRunning

    try:
        run = Run.prepare(environment, sandbox=sandbox, mode=mode)
        if reach:
            run.aws.check_reachable()
        return run
    except (BadEnvironment, SandboxNotRunning, Unreachable) as error:
        raise Failure(str(error)) from None


def _hold_environment(run, mode: str, command: str):
    """In apply mode, hold the environment for the whole command (golive.lock): a second go-live, apply
    or destroy of it refuses, naming this one. Returns what to close at the end."""
    from contextlib import ExitStack

    from golive.lock import EnvironmentBusy, hold_environment

    held = ExitStack()
    if mode == "apply":
        try:
            held.enter_context(hold_environment(run.env_name, command))
        except EnvironmentBusy as error:
            raise Failure(str(error)) from None
    return held


# Set in a phase planned beside others: its lines wait here and are printed in the phases' order.
_phase_output: ContextVar[Optional[list]] = ContextVar("phase_output", default=None)


def _print_change(change: Change) -> None:
    if change.action is Action.NOOP:
        return
    # One print per change: concurrent tasks must not interleave their lines.
    lines = [f"[{change.action.style}]{escape(change.headline())}[/]"]
    lines += [f"      [dim]{escape(field.render())}[/]" for field in change.fields]
    held = _phase_output.get()
    if held is not None:
        held.append("\n".join(lines))
    else:
        console.print("\n".join(lines))


def _selected_phases(refs: Optional[List[str]]):
    """The phases asked for (all automated ones by default), in dependency order, each once."""
    if not refs:
        return automated()
    selected = []
    for ref in refs:
        try:
            phase = find_phase(ref)
        except LookupError as error:
            raise Failure(str(error)) from None
        if phase.number == 8:
            raise Failure("phase 8 (launch) is the go-live's own ending (the gate, approval, DNS cutover and "
                          "monitoring): run `golive go-live ENV`")
        if not phase.automated:
            raise Failure(f"phase {phase.number} ({phase.name}) is not automated yet; "
                          f"automated: {', '.join(p.name for p in automated())}")
        selected.append(phase)
    return dependency_order(list(set(selected)))


def _run_phases(environment: str, sandbox: Optional[bool], mode: str, phase: Optional[List[str]],
                verbose: bool, allow_replace: bool = False, force: bool = False):
    _quiet_prefect(verbose)
    phases = _selected_phases(phase)  # a wrong --phase is said before anything is asked of AWS
    run = _prepare(environment, sandbox, mode)
    held = _hold_environment(run, mode, f"golive {mode} {environment}")
    verb = "Planning" if mode == "plan" else "Applying"
    _print_target(verb, run)

    def run_phase(selected, output: Optional[list] = None):
        flow = selected.flow()
        if mode == "apply":  # the lock's record names the flow run that is running
            from golive.lock import note_flow_run

            flow = flow.with_options(on_running=[*flow.on_running_hooks, note_flow_run])
        kwargs = dict(environment=str(environment), sandbox=sandbox, mode=mode)
        if mode == "apply":
            kwargs["allow_replace"] = allow_replace
        if force and "force" in flow.parameters.properties:
            kwargs["force"] = force
        if output is not None:  # a plan's phases at once: the settings came with the context of the main thread
            _phase_output.set(output)  # Prefect copies the context into the phase's task threads
            return flow(**kwargs)
        with _flow_settings(run):
            return flow(**kwargs)

    results = []
    progress.subscribe(_print_change)
    started = time.monotonic()
    outputs: dict[int, list] = {}
    pool = None
    reads = ExitStack()
    if mode == "plan":  # it writes nothing: identical reads of its phases go to AWS once (golive/shared_reads.py)
        from golive.shared_reads import shared_reads

        reads.enter_context(shared_reads())
    try:  # from here on the finally below undoes what was set up, however this ends
        if mode == "plan" and len(phases) > 1:
            # A plan writes nothing, so no phase waits for another's resources (each discovers what exists):
            # all phases at once, each one's lines printed in dependency order as if they had run in turn.
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=len(phases), thread_name_prefix="phase")
            outputs = {p.number: [] for p in phases}
            # The settings once (making Prefect's settings object costs about 40 ms of CPU), then one server for
            # every thread (a temporary one is started once, here); each thread starts from this context.
            with _flow_settings(run):
                _start_prefect()
                futures = {p.number: pool.submit(copy_context().run, run_phase, p, outputs[p.number]) for p in phases}
        for index, selected in enumerate(phases, 1):
            console.print(f"[bold cyan]phase {selected.number} {selected.name}[/] ({index} of {len(phases)})")
            try:
                result = futures[selected.number].result() if pool else run_phase(selected)
            except Exception as error:
                for text in outputs.get(selected.number, []):
                    console.print(text)
                if mode == "plan" and results:  # what was planned before the failure still stands
                    _print_plan_by_phase(list(zip(phases, results)))
                raise Failure(_explain(error, f"phase {selected.number} {selected.name}", verbose)) from None
            for text in outputs.get(selected.number, []):
                console.print(text)
            results.append(result)
            _print_waiting(run, selected, result, phases)
    finally:
        progress.unsubscribe(_print_change)
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)
        reads.close()
        held.close()
    return run, list(zip(phases, results)), time.monotonic() - started


def _start_prefect() -> None:
    """Reach the API once before threads do: Prefect's temporary server, when it is the one, starts here."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.api_healthcheck()


def _print_waiting(run, phase, result, planned) -> None:
    """What this phase stands on that an earlier phase, not part of this run, has yet to make: its values
    were planned as known after apply, and that phase is the one to apply first."""
    numbers = {p.number for p in planned}
    for number, missing in sorted(result.waiting_for.items()):
        if number in numbers:
            continue  # planned in this same run: its creates are above
        earlier = find_phase(str(number))
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        console.print(f"[yellow]  phase {earlier.number} ({earlier.name}) is not applied: {escape(shown)} missing, "
                      f"planned as known after apply. Apply it first: golive apply {run.env_name} "
                      f"--phase {earlier.number}[/]")


def _explain(error: Exception, where: str, verbose: bool) -> str:
    """One line for a failed flow: where (the phase or flow), the step (the task it failed in), the error
    and the line of ours that raised it. The whole trace only with --verbose."""
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        message = f"AWS refused {error.operation_name}: {info.get('Code')}: {info.get('Message')}"
    else:
        message = f"{type(error).__name__}: {error}"
    step, origin = _failed_step(error)
    if verbose:
        errors.print("".join(traceback.format_exception(error)), markup=False, soft_wrap=True)
    notes = [f"at {origin}"] if origin else []
    notes += [] if verbose else ["--verbose for the trace"]
    return (f"{where}, {f'step {step}' if step else 'in the flow'}: {' '.join(message.split())}"
            + (f" ({'; '.join(notes)})" if notes else ""))


def _failed_step(error: BaseException) -> tuple[Optional[str], Optional[str]]:
    """The Prefect task the error was raised in (None: the flow itself), and the innermost line of this
    project's code it passed through, read from the traceback (a task's exception keeps its frames)."""
    from prefect import Task

    step = origin = None
    for frame, line in traceback.walk_tb(error.__traceback__):
        code = frame.f_code
        if isinstance(frame.f_globals.get(code.co_name), Task):
            step = code.co_name
        path = Path(code.co_filename).resolve()
        if PROJECT in path.parents and ".venv" not in path.parts:
            origin = f"{path.relative_to(PROJECT)}:{line} in {code.co_name}"
    return step, origin


def _call_counts(run) -> str:
    log = run.aws.log
    shared = f", {log.shared} more answered from this plan's identical reads" if log.shared else ""
    return f"{len(log.calls) - log.shared} AWS calls{shared}, {len(log.writes())} writes"


@app.command()
def plan(environment: str = EnvArg, phase: Optional[List[str]] = PhaseOpt, sandbox: Optional[bool] = SandboxOpt,
         destroy: bool = typer.Option(False, "--destroy", help="plan the teardown instead"),
         verbose: bool = VerboseOpt,
         timeline: bool = typer.Option(False, "--timeline", help="instead, predict how long a go-live of the file "
                                       "from nothing takes against AWS: each step, the critical path, the total "
                                       "(no AWS call; --verbose lists every step)")) -> None:
    """Show what apply would change. Exit 0: nothing to do; 2: changes; 1: error."""
    if timeline:
        _print_timeline(environment, verbose)
        raise typer.Exit(0)
    if destroy:
        run, result, seconds = _teardown(environment, sandbox, "plan", None, verbose)
        changes = result.changes
    else:
        run, results, seconds = _run_phases(environment, sandbox, "plan", phase, verbose)
        changes = [c for _, r in results for c in r.changes]
        _print_plan_by_phase(results)
    summary = Summary.of(changes)
    console.print(f"\n[bold]Plan:[/] {summary.sentence(planned=True)}. ({_call_counts(run)}, {seconds:.1f} s)")
    if not destroy:
        _print_cost(results)
    if not summary.has_changes:
        console.print("No changes. The environment matches its file.")
    raise typer.Exit(summary.exit_code)


def _print_timeline(environment: str, every_step: bool) -> None:
    """The predicted AWS timeline of the file (golive/timeline.py): read from the flows and the model, no AWS."""
    from golive.config import load_environment
    from golive.timeline import predict, render

    try:
        env = load_environment(environment)
    except BadEnvironment as error:
        raise Failure(str(error)) from None
    render(predict(env), env, console, every_step=every_step)


@app.command()
def apply(environment: str = EnvArg, phase: Optional[List[str]] = PhaseOpt, sandbox: Optional[bool] = SandboxOpt,
          allow_replace: bool = typer.Option(False, "--allow-replace",
                                             help="delete and recreate resources whose changed fields force it"),
          force: bool = typer.Option(False, "--force", help="overwrite app container files that differ from golive's"),
          verbose: bool = VerboseOpt) -> None:
    """Run the phase flows: discover, diff, change."""
    run, results, seconds = _run_phases(environment, sandbox, "apply", phase, verbose, allow_replace, force)
    for _, result in results:
        _print_deliverables(result)
    summary = Summary.of(c for _, r in results for c in r.changes)
    console.print(f"\n[bold green]Apply complete:[/] {summary.sentence(planned=False)}. "
                  f"({_call_counts(run)}, {seconds:.1f} s)")


def _print_cost(results) -> None:
    """How the plan moves the monthly estimate (Phase 1 keeps the applied one), and the budget."""
    for _, result in results:
        record = result.outputs.get("cost")
        if record is None or not hasattr(record, "change_sentence"):
            continue
        console.print(f"[bold]Cost:[/] {escape(record.change_sentence)} (`golive cost {result.environment}` itemizes it)")
        if record.budget_warning:
            console.print(f"[yellow]warning:[/] {escape(record.budget_warning)}")


def _print_plan_by_phase(results) -> None:
    """Per phase, what it would create, change and delete (the total follows)."""
    table = Table(title="Plan by phase", title_justify="left")
    for column in ("phase", "create", "update", "replace", "delete", "unchanged", "skipped"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase, result in results:
        s = result.summary
        table.add_row(f"{phase.number} {phase.name}", *(str(n) for n in (s.create, s.update, s.replace, s.delete,
                                                                            s.unchanged, s.skipped)))
    console.print()
    console.print(table)


def _print_deliverables(result) -> None:
    if not result.deliverables:
        return
    from golive.terminal import deliverables_table

    console.print(deliverables_table(f"{result.phase} deliverables ({result.environment})", result.deliverables, console))


def _teardown(environment: str, sandbox: Optional[bool], mode: str, confirm: Optional[str], verbose: bool):
    _quiet_prefect(verbose)
    run = _prepare(environment, sandbox, mode)
    from flows.teardown import TeardownRefused, check_confirmation, teardown

    try:
        check_confirmation(run, confirm)  # refuse before Prefect even starts
    except TeardownRefused as error:
        raise Failure(str(error)) from None
    held = _hold_environment(run, mode, f"golive destroy {environment}")
    _print_target("Planning teardown of" if mode == "plan" else "Destroying", run)
    progress.subscribe(_print_change)
    started = time.monotonic()
    try:
        with _flow_settings(run):
            result = teardown(environment=str(environment), sandbox=sandbox, mode=mode, confirm=confirm)
    except Exception as error:
        raise Failure(_explain(error, "teardown", verbose)) from None
    finally:
        progress.unsubscribe(_print_change)
        held.close()
    return run, result, time.monotonic() - started


@app.command()
def destroy(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt,
            confirm: Optional[str] = typer.Option(None, "--confirm", help="the environment's name; required for production and for any real AWS account"),
            verbose: bool = VerboseOpt) -> None:
    """Delete everything the environment owns, in reverse dependency order."""
    run, result, seconds = _teardown(environment, sandbox, "apply", confirm, verbose)
    deleted = Summary.of(result.changes).delete
    for snapshot in result.outputs.get("final_snapshots", []):
        console.print(f"kept: RDS final snapshot {snapshot} (restore from it, or delete it when no longer needed)")
    if deleted:
        console.print(f"\n[bold]Destroy complete:[/] {deleted} deleted. ({_call_counts(run)}, {seconds:.1f} s)")
    else:
        console.print(f"\nNothing to destroy: no resources are tagged for {run.env_name}. ({_call_counts(run)})")


@app.command("verify-backup")
def verify_backup(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """Take a backup, restore it into a scratch copy, validate it against the source, remove the copy."""
    _quiet_prefect(verbose)
    run = _prepare(environment, sandbox, "apply")
    from flows.backup_verification import backup_verification

    _print_target("Verifying backups of", run)
    try:
        with _flow_settings(run):
            result = backup_verification(environment=str(environment), sandbox=sandbox)
    except Exception as error:
        raise Failure(_explain(error, "backup-verification", verbose)) from None
    _print_deliverables(result)
    outputs = result.outputs
    console.print(f"\n[bold green]Restore verified:[/] recovery time {outputs['recovery_time_seconds']:.2f} s, "
                  f"recovery point {outputs['recovery_point_seconds']:.0f} s")


@app.command()
def release(environment: str = EnvArg, image: str = typer.Option(..., "--image", help="the image tag to release"),
            sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """Release an image tag: one new task-definition revision per service, a rolling update, a CloudFront
    invalidation."""
    from golive.config import ImageSettings

    try:
        ImageSettings(tag=image)
    except Exception:
        raise Failure(f"--image {image!r} is not a valid image tag: letters, digits, '_', '.' and '-', at most 128") from None
    result = _run_flow("flows.release:release", environment, sandbox, verbose, f"Releasing {image} to",
                       environment=str(environment), image_tag=image, sandbox=sandbox)
    _print_deliverables(result)
    console.print(f"\n[bold green]Released {image}[/] (previous: {result.outputs['previous_tag']})")


@app.command()
def rollback(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """Return the services to the task-definition revision before the current one."""
    result = _run_flow("flows.release:rollback", environment, sandbox, verbose, "Rolling back",
                       environment=str(environment), sandbox=sandbox)
    _print_deliverables(result)
    console.print(f"\n[bold green]Rolled back[/] to {result.outputs['tag']}")


@app.command("backup-db")
def backup_db(environment: str = EnvArg,
              name: str = typer.Option("manual", "--name", help="a label for the backup: a-z, 0-9 and '-'"),
              sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """Back the database up now: a named RDS snapshot kept for the file's retention (pg_dump in the sandbox)."""
    from flows.backup_db import BACKUP_NAME

    if not BACKUP_NAME.match(name):
        raise Failure(f"--name {name!r}: lower-case letters, digits and '-', at most 31 characters")
    result = _run_flow("flows.backup_db:backup_db", environment, sandbox, verbose, "Backing up",
                       environment=str(environment), name=name, sandbox=sandbox)
    _print_deliverables(result)
    console.print(f"\n[bold green]Backup taken:[/] {result.outputs['backup']}")


@app.command()
def cutover(environment: str = EnvArg, rollback: bool = typer.Option(False, "--rollback", help="send every name back to the previous target"),
            sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """The DNS cutover (weighted steps, health-checked), or with --rollback its undoing."""
    result = _run_flow("flows.cutover:dns_cutover", environment, sandbox, verbose,
                       "Rolling DNS back for" if rollback else "Cutting DNS over for",
                       environment=str(environment), sandbox=sandbox, rollback=rollback)
    _print_deliverables(result)


def _run_flow(path: str, ref: str, target: Optional[bool], verbose: bool, verb: str, **parameters):
    """Validate first, then run one flow with its changes streamed to the terminal."""
    import importlib

    _quiet_prefect(verbose)
    run = _prepare(ref, target, "apply")
    module, name = path.split(":")
    flow = getattr(importlib.import_module(module), name)
    _print_target(verb, run)
    progress.subscribe(_print_change)
    try:
        with _flow_settings(run):
            return flow(**parameters)
    except Exception as error:
        raise Failure(_explain(error, flow.name, verbose)) from None
    finally:
        progress.unsubscribe(_print_change)


@app.command("go-live")
def go_live(environment: str = EnvArg,
            timeout_minutes: float = typer.Option(60, "--timeout-minutes", help="stop waiting after this long")) -> None:
    """The go-live as production runs it: a local Prefect server and worker, the deployment registered,
    `go-live/ENV` run and watched, then its report. (The sandbox must be up: `golive sandbox up`.)"""
    import subprocess

    from golive.sandbox import orchestrator

    run = _prepare(environment, None, "apply")
    prefect = orchestrator.up()
    api = prefect["api_url"]
    console.print(f"Prefect server {prefect['ui_url']} ({'started' if prefect['server_started'] else 'running'}), "
                  f"worker on pool {orchestrator.POOL}")
    env = {**os.environ, "PREFECT_API_URL": api, "GOLIVE_PROJECT_DIR": str(orchestrator.PROJECT_DIR)}
    prefect_cli = [sys.executable, "-m", "prefect"]
    subprocess.run([*prefect_cli, "work-pool", "create", orchestrator.POOL, "--type", "process"], env=env,
                   capture_output=True, timeout=120)  # "already exists" on later runs: fine
    deployed = subprocess.run([*prefect_cli, "--no-prompt", "deploy", "--name", f"go-live/{run.env_name}"],
                              cwd=orchestrator.PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300)
    if deployed.returncode != 0:
        raise Failure(f"registering go-live/{run.env_name} failed:\n{(deployed.stdout + deployed.stderr)[-1500:]}")
    os.environ["PREFECT_API_URL"] = api
    from golive.watch import run_and_watch

    outcome = run_and_watch(f"go-live/{run.env_name}", {"environment": environment}, timeout_minutes * 60, console)
    console.print(f"\nPrefect UI: {prefect['ui_url']}/runs/flow-run/{outcome.flow_run_id}")
    if not outcome.completed:
        raise Failure(f"go-live/{run.env_name} ended {outcome.state}: {outcome.message}")


def _prefect_api_for(run) -> str:
    """The Prefect API the bootstrap registers with: PREFECT_API_URL (Prefect Cloud or your server); for the
    sandbox without one, the sandbox's own local server (started if need be, as `golive go-live` does). Set
    in the environment too: the bootstrap's `prefect deploy` subprocess registers there."""
    api = _prefect_api(run)
    if not api and not run.target.is_sandbox:
        raise Failure("set PREFECT_API_URL to the Prefect API production runs on (and PREFECT_API_KEY for Prefect "
                      "Cloud): the bootstrap registers the work pool, block and deployments there")
    if not api:
        from golive.sandbox import orchestrator
        from golive.sandbox.services import locked

        with locked():
            orchestrator.start_server()
        api = orchestrator.api_url()
    os.environ["PREFECT_API_URL"] = api
    return api


@app.command()
def bootstrap(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt,
              plan_only: bool = typer.Option(False, "--plan", help="show what it would make or change; writes nothing"),
              destroy: bool = typer.Option(False, "--destroy", help="remove what the bootstrap made (Phase 1 stays)"),
              confirm: Optional[str] = typer.Option(None, "--confirm", help="with --destroy: the environment's name "
                                                    "(production and real AWS)"),
              allow_replace: bool = typer.Option(False, "--allow-replace", help="as for apply"),
              verbose: bool = VerboseOpt) -> None:
    """Once per environment: Phase 1, the results bucket and block, the runbook image, the ECS work pool
    and the deployments; then the command to start a worker and the one to start the go-live.
    Exit codes as plan's with --plan (0 nothing to do, 2 changes)."""
    _quiet_prefect(verbose)
    mode = "plan" if plan_only else "apply"
    run = _prepare(environment, sandbox, mode, reach=False)
    api = _prefect_api_for(run)  # a missing Prefect API is said before any AWS call
    _prepare(environment, sandbox, mode)
    from flows.bootstrap import bootstrap as bootstrap_flow, bootstrap_teardown

    verb = ("Planning the removal of" if plan_only else "Removing") if destroy else (
        "Planning the bootstrap of" if plan_only else "Bootstrapping")
    console.print(f"[bold]{verb} {run.env_name}[/] against {run.target.describe()} and the Prefect API at {api}")
    progress.subscribe(_print_change)
    started = time.monotonic()
    try:
        with _flow_settings(run):
            if destroy:
                from flows.teardown import TeardownRefused, check_confirmation

                try:
                    check_confirmation(run, confirm)
                except TeardownRefused as error:
                    raise Failure(str(error)) from None
                result = bootstrap_teardown(environment=str(environment), sandbox=sandbox, mode=mode, confirm=confirm)
            else:
                result = bootstrap_flow(environment=str(environment), sandbox=sandbox, mode=mode,
                                        allow_replace=allow_replace)
    except Failure:
        raise
    except Exception as error:
        raise Failure(_explain(error, "bootstrap", verbose)) from None
    finally:
        progress.unsubscribe(_print_change)
    seconds = time.monotonic() - started
    summary = Summary.of(result.changes)
    if not destroy and not plan_only:
        _print_deliverables(result)
    console.print(f"\n[bold]{'Plan' if plan_only else 'Done'}:[/] {summary.sentence(planned=plan_only)}. "
                  f"({_call_counts(run)}, {seconds:.1f} s)")
    commands = result.outputs.get("commands") or {}
    if commands and not plan_only:
        console.print(f"\nStart a worker:   {commands['worker']}\nStart the go-live: {commands['go_live']}")
    if plan_only:
        raise typer.Exit(summary.exit_code)


@app.command()
def cost(environment: str = EnvArg) -> None:
    """The monthly estimate of the file, line by line against the plan's table; the budget; what each of
    the plan's optimizations would save. Pure arithmetic on pinned, dated prices: no AWS call."""
    from golive.config import load_environment
    from golive.cost import CostError, CostInputs, budget_problem, estimate, optimizations

    try:
        env = load_environment(environment)
        inputs = CostInputs.of(env)
        result, optimized = estimate(inputs), optimizations(inputs)
    except (BadEnvironment, CostError) as error:
        raise Failure(str(error)) from None
    table = Table(title=f"{env.name}: monthly estimate, USD ({env.region})", title_justify="left")
    for column, justify in (("service", "left"), ("specification", "left"), ("USD/month", "right"),
                            ("plan", "right"), ("vs plan", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    for line in result.lines:
        delta = line.plan_delta
        mark = "" if delta is None else f"[{'green' if line.within_plan else 'yellow'}]{delta:+.0%}[/]"
        spec = escape(line.spec) + (f" [dim]({escape(line.note)})[/]" if line.note else "")
        table.add_row(line.service, spec, f"{line.usd:.2f}", f"{line.plan_usd:.0f}" if line.plan_usd else "", mark)
    table.add_section()
    table.add_row("[bold]Total[/]", "", f"[bold]{result.total:.2f}[/]", f"{result.plan_total:.0f}",
                  f"{result.total / result.plan_total - 1:+.0%}")
    console.print(table)
    console.print(f"Budget: USD {env.budget.monthly_limit_usd:.2f}/month (budget.monthly_limit_usd). "
                  f"Plan: USD {result.plan_total:.0f}/month ({result.plan_label}).")
    off = [line for line in result.lines if line.within_plan is False]
    if off:
        console.print(f"[yellow]{len(off)} line(s) more than 15% from the plan's figure[/] (list prices for the "
                      "plan's own specification; the plan rounded): " + "; ".join(
                          f"{line.service} {line.usd:.2f} vs {line.plan_usd:.0f}" for line in off))

    savings = Table(title="Optimizations (each on what the ones above it leave)", title_justify="left")
    for column in ("option", "saves USD/month", "in the optimized total", "how", "the plan says"):
        savings.add_column(column, overflow="fold")
    for saving in optimized.savings:
        savings.add_row(saving.name, f"{saving.usd:.2f}", "yes" if saving.applied else "no", escape(saving.how),
                        saving.plan_says)
    console.print(savings)
    low, high = PLAN_OPTIMIZED
    where = ("within" if low <= optimized.total <= high else
             f"USD {optimized.total - high:.2f} above" if optimized.total > high else f"USD {low - optimized.total:.2f} below")
    against = (f"{where} the plan's {low:.0f}-{high:.0f} for production; " if env.name != "staging"
               else "the plan gives no optimized figure for staging; ")
    console.print(f"Optimized: USD {optimized.total:.2f}/month ({against}each line above says what it saves)")
    prices = result.prices
    console.print(f"\nPrices: {prices.path} (list prices believed valid as of {prices.valid_as_of}, written from "
                  "AWS's public pricing pages, not fetched by this command; the Price List API is not consulted). Pages:")
    for section in sorted({line.source for line in result.lines}):
        console.print(f"  {section}: {prices.source(section)}")
    problem = budget_problem(env, result.total)
    if problem:
        (console if env.cost.accept_over_budget else errors).print(f"[yellow]warning:[/] {problem}")


@app.command()
def audit(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt, verbose: bool = VerboseOpt) -> None:
    """Read the live environment and list security findings (severity, resource, evidence, fix, control).
    Exit 1 when a critical or high finding is not accepted in the file (its audit.accept entries)."""
    _quiet_prefect(verbose)
    run = _prepare(environment, sandbox, "plan")
    from flows.monitoring import security_audit

    _print_target("Auditing", run)
    try:
        with _flow_settings(run):
            result = security_audit(environment=str(environment), sandbox=sandbox, gate=False)
    except Exception as error:
        raise Failure(_explain(error, "security-audit", verbose)) from None
    table = Table(title=f"security audit: {run.env_name}", title_justify="left")
    for column in ("id", "severity", "status", "resource", "evidence", "fix", "control"):
        table.add_column(column, overflow="fold")
    for row in result.rows():
        style = {"BLOCKS": "red", "accepted": "yellow", "open": "dim"}[row["status"]]
        status = row["status"] + (f": {row['accepted because']}" if row["accepted because"] else "")
        table.add_row(row["id"], row["severity"], f"[{style}]{escape(status)}[/]", row["resource"],
                      escape(row["evidence"]), escape(row["fix"]), row["control"])
    console.print(table)
    for pending in result.pending:
        console.print(f"[yellow]pending:[/] {pending.check}: {escape(pending.why)}")
    for stale in result.unused_acceptances:
        console.print(f"[yellow]accepted in the file but not found:[/] {stale}")
    console.print(f"\n{result.summary()}")
    if result.blocking:
        errors.print(escape(f"{len(result.blocking)} blocking finding(s): {', '.join(f.id for f in result.blocking)}. "
                            "Fix them, or accept each in the file: [[audit.accept]] id = \"...\", reason = \"...\""))
        raise typer.Exit(1)


@app.command()
def doctor(environment: str = EnvArg, sandbox: Optional[bool] = SandboxOpt) -> None:
    """Check the environment file, credentials and region; list what a person must set up by hand."""
    from golive.doctor import diagnose

    run = _prepare(environment, sandbox, "plan", reach=False)  # doctor reports an unreachable endpoint itself
    checks, manual = diagnose(run)
    table = Table(title=f"doctor: {run.env_name} against {run.target.describe()}", title_justify="left")
    for column in ("check", "result", "detail"):
        table.add_column(column, overflow="fold")
    for check in checks:
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]FAIL[/]", check.detail)
    console.print(table)
    console.print("\n[bold]Set up by hand (golive cannot do these for you):[/]")
    for item in manual:
        console.print(f"  - {item}")
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@sandbox_app.command("up")
def sandbox_up(prefect: bool = typer.Option(True, "--prefect/--no-prefect",
                                            help="also the local Prefect server and worker (about 400 MB); "
                                                 "without them each command starts Prefect's temporary server")) -> None:
    """Start the sandbox in the background: moto (AWS), PostgreSQL, Redis, the app, the edge and a Prefect
    server and worker, on 127.0.0.1. A second `up` leaves running services alone and restarts any that died."""
    try:
        _sandbox_up(prefect)
    except RuntimeError as error:  # a service that did not start: its log says why
        raise Failure(f"{error}. Stop what did start with `golive sandbox down`, then `golive sandbox up` again") from None


def _sandbox_up(prefect: bool) -> None:
    from golive.sandbox import control_plane, data_plane

    state = control_plane.up(warm=False)
    word = "started" if state["started"] else "already running"
    console.print(f"sandbox {word}: AWS endpoint {state['aws_endpoint_url']} (state in {state['state_dir']})")
    # A new emulator's cold start (moto's first request per service), while the other services start.
    warming = threading.Thread(target=control_plane.warm_up, args=(state["aws_endpoint_url"],), name="warm-up")
    if state["started"]:
        warming.start()  # joined below
    data = data_plane.up()
    console.print(f"data plane: PostgreSQL {data['postgres_dsn']}, Redis {data['redis_url']}")
    from golive.sandbox import edge

    served = edge.up()
    console.print(f"edge: DNS {served['dns_server']}, ALB {served['edge']['alb']} (HTTP {served['edge']['alb-http']}), "
                  f"CloudFront {served['edge']['cloudfront']}, previous site {served['edge']['previous']}; "
                  f"CA {served['ca_file']}")
    if prefect:
        from golive.sandbox import orchestrator

        started = orchestrator.up()
        console.print(f"Prefect: UI {started['ui_url']}, worker on pool {orchestrator.POOL}; every golive command "
                      "against the sandbox records its runs there (unless PREFECT_API_URL says otherwise)")
    if state["started"]:
        warming.join()


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop every sandbox service; leaves no process behind."""
    from golive.sandbox import control_plane, data_plane, edge, orchestrator

    stopped = {**orchestrator.down(), **edge.down(), **data_plane.down(), "moto": control_plane.down()["stopped"]}
    names = [name for name, was in stopped.items() if was]
    console.print(f"sandbox stopped ({', '.join(names)})" if names else "sandbox was not running")


@sandbox_app.command("status")
def sandbox_status(as_json: bool = typer.Option(False, "--json", help="machine-readable")) -> None:
    """Is the sandbox running, and where."""
    from golive.sandbox import control_plane, data_plane, edge, orchestrator

    state = {**control_plane.status(), **data_plane.status(), **edge.status(), **orchestrator.status()}
    if as_json:
        print(json.dumps(state))
    elif state["running"]:
        console.print(f"running: AWS endpoint {state['aws_endpoint_url']} (pid {state['pid']})\n"
                      f"PostgreSQL: {state['postgres_dsn'] or 'not running'}\nRedis: {state['redis_url'] or 'not running'}\n"
                      f"Prefect UI: {state['prefect_ui_url'] or 'not running'}")
    else:
        console.print("not running: start it with `golive sandbox up`")
    if not state["running"] and not as_json:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
        code: int | str | None = 0
    except SystemExit as done:  # how every command ends (typer's standalone mode)
        code = done.code
    except Failure as error:
        errors.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)  # one line, however narrow the terminal
        code = 1
    except Exception as error:  # not foreseen by the command: still one line, the trace with --verbose
        if {"--verbose", "-v"} & set(sys.argv):
            errors.print("".join(traceback.format_exception(error)), markup=False, soft_wrap=True)
        hint = "" if {"--verbose", "-v"} & set(sys.argv) else " (--verbose for the trace)"
        errors.print(f"[red]error:[/] {escape(f'{type(error).__name__}: {error}')}{hint}", soft_wrap=True)
        code = 1
    _leave(code)


def _leave(code: int | str | None) -> None:
    """Exit as Python would, less its teardown of every module (Prefect's, botocore's, pydantic's): measured
    at 0.7-0.9 s at the end of every command. What a normal exit does that matters is done first: the threads
    still working finish (a plan's other phases after one failed: their runs end in the UI, not left
    running), the exit handlers run (Prefect sends its last logs and events to the API there), the terminal
    is flushed."""
    import atexit
    import threading

    if isinstance(code, str):
        errors.print(code, markup=False, soft_wrap=True)
        code = 1
    # The interpreter's own first steps of an exit, in its order: wait for non-daemon threads (an idle
    # executor's workers are told to stop, as concurrent.futures registers), then the atexit handlers.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away (`golive plan ENV | head`), a closed stream
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    main()
