"""One go-live, apply or destroy per environment at a time.

Two runs of the same environment would both discover "nothing" and both create: two VPCs, two databases.
So whatever changes an environment holds its lock, and a second one refuses at once, naming the run
that holds it (its command, process, Prefect flow run and start time), instead of racing it.

Two guards, because Prefect's concurrency limits alone do not cover every way golive runs:
- A file lock per environment under the state directory (`<GOLIVE_STATE_DIR>/locks/<env>.lock`, flock).
  It is the cross-process guard on this machine, and the only one when no Prefect server outlives the
  process: each CLI process then starts its own temporary Prefect server, which cannot see another
  process's runs or limits. The kernel releases it when its holder dies, SIGKILL included, so a killed
  run never leaves the environment locked: the next run resumes at once.
- A Prefect global concurrency limit `golive-environment-<env>` (limit 1) whenever a Prefect server
  outlives the process (PREFECT_API_URL, e.g. the sandbox's local server or Prefect Cloud): it is what
  serializes runs on different machines or workers, and the UI shows it. Its slot is held with a lease
  that Prefect renews; a killed holder's lease is recorded in the lock file, and the next holder of the
  file lock (which proves that process is dead) releases it instead of waiting for it to expire.
Plan mode takes neither: it writes nothing.
"""

from __future__ import annotations

import fcntl
import functools
import inspect
import json
import os
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

LIMIT_PREFIX = "golive-environment-"
# How long a run waits for the Prefect slot that a run elsewhere holds before it refuses.
WAIT_SECONDS = float(os.environ.get("GOLIVE_LOCK_WAIT_SECONDS", "5"))
LEASE_SECONDS = 60.0  # renewed by Prefect while held; what a dead holder elsewhere costs at most


class EnvironmentBusy(RuntimeError):
    """Another run holds the environment. The message names it and what to do."""


_held: dict[str, "_Hold"] = {}
_held_lock = threading.Lock()


def lock_path(env_name: str) -> Path:
    from golive.sandbox.services import state_dir

    return state_dir().parent / "locks" / f"{env_name}.lock"


class _Hold:
    """This process's hold on one environment: the open, flocked file and its record."""

    def __init__(self, env_name: str, command: str):
        self.env_name, self.command, self.depth = env_name, command, 0
        self.path = lock_path(env_name)
        self.record: dict[str, Any] = {}
        self.file = None
        self.stack = ExitStack()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(self.file)
            self.file.close()
            raise EnvironmentBusy(_busy_message(self.env_name, holder, self.path)) from None
        stale = _read(self.file)  # what a dead holder left: its Prefect lease, if it took one
        self.record = {"environment": self.env_name, "command": self.command, "pid": os.getpid(),
                       "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                       "flow_run_id": None, "lease_id": None}
        self._write()
        try:
            self._take_prefect_slot(stale.get("lease_id"))
        except BaseException:
            self.release()
            raise

    def _take_prefect_slot(self, stale_lease: str | None) -> None:
        api = _persistent_api_url()
        if not api:
            return  # a temporary server per process: the file lock is the guard
        from prefect.concurrency._leases import maintain_concurrency_lease
        from prefect.concurrency._sync import release_concurrency_slots_with_lease

        name = LIMIT_PREFIX + self.env_name
        _ensure_limit(name)
        if stale_lease:
            try:  # its holder is dead (we hold the file lock it held): free its slot now
                release_concurrency_slots_with_lease(stale_lease)
            except Exception:
                pass  # already expired or revoked
        lease_id = _acquire_slot(name, self.env_name)
        self.record["lease_id"] = str(lease_id)
        self._write()
        self.stack.enter_context(maintain_concurrency_lease(lease_id, LEASE_SECONDS, suppress_warnings=True))
        self.stack.callback(lambda: release_concurrency_slots_with_lease(lease_id))

    def note_flow_run(self, flow_run_id: str, flow_name: str) -> None:
        self.record.update(flow_run_id=flow_run_id, flow=flow_name)
        self._write()

    def _write(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.file.write(json.dumps(self.record))
        self.file.flush()

    def release(self) -> None:
        try:
            self.stack.close()
        finally:
            if self.file is not None and not self.file.closed:
                self.file.seek(0)
                self.file.truncate()  # nothing stale left behind for the next holder
                self.file.flush()
                fcntl.flock(self.file, fcntl.LOCK_UN)
                self.file.close()


def _read(file) -> dict[str, Any]:
    file.seek(0)
    try:
        return json.loads(file.read() or "{}")
    except ValueError:
        return {}


def _busy_message(env_name: str, holder: dict[str, Any], path: Path) -> str:
    if not holder:
        return f"{env_name} is locked by another golive run (see {path}); wait for it to finish"
    run = f", flow run {holder['flow_run_id']} ({holder.get('flow')})" if holder.get("flow_run_id") else ""
    return (f"{env_name} is busy: `{holder.get('command')}` holds it (pid {holder.get('pid')} on {holder.get('host')}"
            f"{run}, since {holder.get('started')}). One go-live, apply or destroy per environment at a time: "
            f"wait for it to finish, or stop it (kill {holder.get('pid')}) and run again; a stopped run resumes")


def _busy_elsewhere_message(env_name: str, limit: str, asking) -> str:
    """Said after the server answered 423 Locked for WAIT_SECONDS: the slot is another run's, so the asking
    run (a flow run too, when a deployment or the CLI's flow asks) is not among the runs named."""
    runs = [r for r in _running_flow_runs(env_name) if asking is None or r.id != asking.id]
    shown = "; ".join(f"flow run {r.id} ({r.name}, {r.state_name})" for r in runs) or "a run this server knows of"
    return (f"{env_name} is busy: Prefect's concurrency limit {limit} is held by {shown} (waited {WAIT_SECONDS:g} s). "
            f"One go-live, apply or destroy per environment at a time: wait for it to finish, or cancel it in the UI")


def _persistent_api_url() -> str | None:
    """The Prefect API when one outlives this process (not the temporary per-process server)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _ensure_limit(name: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:
                pass  # another run made it a moment ago


def _acquire_slot(limit: str, env_name: str):
    """The limit's one slot, asked for until WAIT_SECONDS have passed with the server answering that it is
    held (423 Locked); returns the lease id. A request in flight is never abandoned: Prefect's own timeout
    cancels it, and a busy server that grants it a moment later leaves a slot held by nobody until its lease
    expires, so the run, and the next, refused itself (seen in the suite: 'held by' the asking run)."""
    from uuid import UUID

    import httpx
    from prefect import get_client

    holder = _flow_run_holder()
    deadline = time.monotonic() + WAIT_SECONDS
    with get_client(sync_client=True) as client:
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[limit], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS, holder=holder)
            except httpx.HTTPStatusError as error:
                if error.response.status_code != 423:
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EnvironmentBusy(_busy_elsewhere_message(env_name, limit, holder)) from None
                time.sleep(min(float(error.response.headers.get("Retry-After") or 1), remaining))
                continue
            granted = response.json()
            if not granted.get("limits"):  # deleted between _ensure_limit and now: not a guard at all
                raise RuntimeError(f"Prefect's concurrency limit {limit} vanished while golive took it; run again")
            return UUID(granted["lease_id"])


def _flow_run_holder():
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=context.flow_run.id)


def _running_flow_runs(env_name: str) -> list:
    """Runs of this environment the server shows as running or paused (the holder is among them)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PAUSED]))), limit=200)
    except Exception:
        return []
    return [r for r in runs if _names(r.parameters.get("environment"), env_name)]


def _names(reference: Any, env_name: str) -> bool:
    return isinstance(reference, str) and (reference == env_name or Path(reference).stem == env_name)


@contextmanager
def hold_environment(env_name: str, command: str) -> Iterator[None]:
    """Hold `env_name` for the block, or raise EnvironmentBusy naming the run that holds it. Re-entrant
    within a process (the CLI holds it, and the flows it runs in-process take it again)."""
    with _held_lock:
        hold = _held.get(env_name)
        if hold is None:
            hold = _Hold(env_name, command)
            hold.acquire()
            _held[env_name] = hold
        hold.depth += 1
    try:
        yield
    finally:
        with _held_lock:
            hold.depth -= 1
            if hold.depth == 0:
                del _held[env_name]
                hold.release()


def note_flow_run(flow, flow_run, state) -> None:
    """A Prefect on_running hook: name the flow run in the lock's record, so a refused run can say which
    run holds the environment."""
    environment = (flow_run.parameters or {}).get("environment")
    with _held_lock:
        for name, hold in _held.items():
            if _names(environment, name):
                hold.note_flow_run(str(flow_run.id), flow_run.name + f" of {flow.name}")


def one_at_a_time(command: str) -> Callable:
    """Decorate a flow function (under @flow) so a run in apply mode holds its environment throughout:
    a run started by a deployment on a worker is guarded like one started by the CLI."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def guarded(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            if bound.arguments.get("mode", "apply") == "plan":
                return fn(*args, **kwargs)
            from golive.config import load_environment

            env_name = load_environment(bound.arguments["environment"]).name
            with hold_environment(env_name, f"{command} of {bound.arguments['environment']}"):
                _note_current_flow_run(env_name)
                return fn(*args, **kwargs)

        # Prefect builds the parameters' model from the signature: give it the annotations resolved in the
        # flow's own module (they are strings there, and this module does not know their names).
        guarded.__signature__ = inspect.signature(fn, eval_str=True)
        return guarded

    return decorate


def _note_current_flow_run(env_name: str) -> None:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    hold = _held.get(env_name)
    if context is not None and context.flow_run is not None and hold is not None and not hold.record.get("flow_run_id"):
        hold.note_flow_run(str(context.flow_run.id), f"{context.flow_run.name} of {context.flow.name}")
