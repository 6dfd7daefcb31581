"""Run the `golive` CLI, but SIGKILL the process the moment AWS has answered a chosen operation.

Fault injection for the resume test: the resource exists in AWS, nothing in our process recorded it.
Usage: GOLIVE_TEST_KILL_AFTER=CreateNatGateway python -m tests.kill_after apply sandbox

For the soak (tests/soak.py), two more ways, each optional:
- GOLIVE_TEST_KILL_AFTER_WRITES=K [GOLIVE_TEST_KILL_DELAY=s]: SIGKILL s seconds after AWS answered the
  run's K-th write (so the kill lands in a wait, a read or the next write as often as after a create);
  GOLIVE_TEST_KILL_LOG names a file that gets one line saying where.
- GOLIVE_TEST_KILL_IN_PHASE=N: count writes from the start of phase N only, and GOLIVE_TEST_KILL_PHASE_TIMER=t
  kills t seconds into phase N if the K-th write has not come by then (a phase with little left to do).
- GOLIVE_TEST_FAULT_SHARE=0.05 GOLIVE_TEST_FAULT_SEED=n: that share of all requests answered with
  throttling or a 5xx at the wire (tests/faults.py); GOLIVE_TEST_FAULT_LOG gets one line per fault.
A process that leads its own process group (the soak starts it so) kills the group: nothing it started
(pg_dump, a migration task) outlives it, as under a real SIGKILL of a container.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from unittest import mock

import golive.aws
import golive.phases
from golive.aws import READ_PREFIXES

OPERATION = os.environ.get("GOLIVE_TEST_KILL_AFTER")
AFTER_WRITES = int(os.environ.get("GOLIVE_TEST_KILL_AFTER_WRITES") or 0)
DELAY = float(os.environ.get("GOLIVE_TEST_KILL_DELAY") or 0)
FAULT_SHARE = float(os.environ.get("GOLIVE_TEST_FAULT_SHARE") or 0)
IN_PHASE = int(os.environ.get("GOLIVE_TEST_KILL_IN_PHASE") or 0)
PHASE_TIMER = float(os.environ.get("GOLIVE_TEST_KILL_PHASE_TIMER") or 0)
_armed = not IN_PHASE  # counting writes: from the start, or from the start of phase IN_PHASE
_original_init = golive.aws.Aws.__init__
_original_client = golive.aws.Aws.client
_original_flow = golive.phases.Phase.flow
_writes = 0
_lock = threading.Lock()
_faults = None
if FAULT_SHARE:
    from tests.faults import RandomFaults

    _faults = RandomFaults(FAULT_SHARE, int(os.environ.get("GOLIVE_TEST_FAULT_SEED") or 0))


def _kill() -> None:
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _note(path_variable: str, line: str) -> None:
    path = os.environ.get(path_variable)
    if path:
        with open(path, "a") as log:
            log.write(line + "\n")


def _is_write(operation: str) -> bool:
    return not operation.startswith(READ_PREFIXES) and operation != "GetCallerIdentity"


def _init_with_tripwire(self, target):
    _original_init(self, target)

    def die(event_name: str, **_):
        global _writes
        operation = event_name.rsplit(".", 1)[-1]
        if OPERATION and operation == OPERATION:
            _kill()
        if AFTER_WRITES and _armed and _is_write(operation):
            with _lock:
                _writes += 1
                if _writes != AFTER_WRITES:
                    return
            where = f" of phase {IN_PHASE}" if IN_PHASE else ""
            _note("GOLIVE_TEST_KILL_LOG", f"{DELAY:.1f} s after write {AFTER_WRITES}{where} ({operation})")
            threading.Timer(DELAY, _kill).start() if DELAY else _kill()

    self.on("after-call", die)


def _phase_flow_arming(self):
    """Phase.flow(), called by the CLI as each phase starts: arms the kill when phase IN_PHASE starts."""
    global _armed
    if self.number == IN_PHASE and not _armed:
        _armed = True
        if PHASE_TIMER:
            def kill_late() -> None:
                _note("GOLIVE_TEST_KILL_LOG", f"{PHASE_TIMER:.1f} s after phase {IN_PHASE} started, "
                      f"{_writes} writes since")
                _kill()

            threading.Timer(PHASE_TIMER, kill_late).start()
    return _original_flow(self)


def _client_with_faults(self, service: str, *, retry: bool = True):
    client = _original_client(self, service, retry=retry)
    with _lock:
        if _faults is None or getattr(client, "_golive_faults", False):
            return client
        client._golive_faults = True
        inject = _faults.handler(client.meta.service_model.protocol)

        def logged(event_name: str, **kwargs):
            response = inject(event_name, **kwargs)
            if response is not None:
                _note("GOLIVE_TEST_FAULT_LOG", f"{event_name.rsplit('.', 1)[-1]} {response.status_code}")
            return response

        client.meta.events.register("before-send", logged)
    return client


if __name__ == "__main__":
    with mock.patch.object(golive.aws.Aws, "__init__", _init_with_tripwire), \
            mock.patch.object(golive.aws.Aws, "client", _client_with_faults), \
            mock.patch.object(golive.phases.Phase, "flow", _phase_flow_arming):
        from golive.cli import main

        sys.argv = ["golive", *sys.argv[1:]]
        main()
