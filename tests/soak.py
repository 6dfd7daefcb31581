"""The resume soak (`make soak`): `golive apply sandbox` SIGKILLed at 20 random moments across all phases
while a share of AWS requests fail with throttling and 5xx at the wire, then applied to the end; the
emulator must then hold no duplicate and no untagged orphan (an independent boto3 listing,
tests/awsstate.py) and `golive plan sandbox` must exit 0.

The kills go round the phases in the order apply runs them (1, 2, 5, 3, 4, 6, 7), about three each: a
moment is "s seconds after AWS answered the K-th write of phase P" (K 1-15, s 0-2), or t seconds into
phase P (t 0.5-8) if its K-th write has not come by then; so they land in creates, waits and reads of
every phase, and each run finishes the phases before P that the last one left half done.
Its own sandbox (state in .golive/soak, started fresh, stopped at the end) and Prefect server.
SOAK_SEED replays a run; SOAK_KILLS and SOAK_FAULT_SHARE change the figures.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".golive" / "soak"
QUIET = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false"}
os.environ.update(QUIET, GOLIVE_STATE_DIR=str(STATE), PREFECT_HOME=str(STATE / "prefect"))

SEED = int(os.environ.get("SOAK_SEED") or random.SystemRandom().randrange(10**6))
KILLS = int(os.environ.get("SOAK_KILLS") or 20)
FAULT_SHARE = float(os.environ.get("SOAK_FAULT_SHARE") or 0.05)
ENVIRONMENT = "sandbox"
APPLY_ORDER = (1, 2, 5, 3, 4, 6, 7)  # the order `golive apply` runs the phases in (dependency order)


def golive(*args: str, **extra: str) -> subprocess.CompletedProcess:
    """The CLI (through tests.kill_after, which kills and injects faults as the extra settings say), in a
    process group of its own so a kill takes whatever it started with it."""
    # Unbuffered: what a killed run printed (its phase) is read after the kill.
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **extra}
    started = subprocess.Popen([sys.executable, "-m", "tests.kill_after", *args], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    out, _ = started.communicate(timeout=900)
    return subprocess.CompletedProcess(started.args, started.returncode, out, "")


def phase_at_end(output: str) -> str:
    phases = [line.split(" (")[0] for line in output.splitlines() if line.startswith("phase ")]
    return phases[-1] if phases else "before phase 1"


def last_line(path: Path) -> str:
    lines = path.read_text().splitlines() if path.exists() else []
    return lines[-1] if lines else "?"


def main() -> int:
    rng = random.Random(SEED)
    print(f"soak: seed {SEED} (replay with SOAK_SEED={SEED}), {KILLS} kills, {FAULT_SHARE:.0%} of AWS requests "
          "answered with throttling or a 5xx", flush=True)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "golive.cli", "sandbox", "down"], cwd=REPO, capture_output=True)
    shutil.rmtree(STATE, ignore_errors=True)
    STATE.mkdir(parents=True)
    up = subprocess.run([sys.executable, "-m", "golive.cli", "sandbox", "up"], cwd=REPO, capture_output=True, text=True)
    if up.returncode:
        print(up.stdout + up.stderr)
        return 1
    from golive.sandbox import control_plane, orchestrator
    from golive.sandbox.services import locked
    from tests.awsstate import duplicates_and_orphans, inventory

    with locked():
        orchestrator.start_server()
    os.environ["PREFECT_API_URL"] = orchestrator.api_url()
    endpoint = control_plane.endpoint_url()
    baseline = {(i.kind, i.id) for i in inventory(endpoint, "us-east-1")}  # the emulator's own defaults
    faults_log, kill_log = STATE / "faults.log", STATE / "kills.log"
    faults = {"GOLIVE_TEST_FAULT_SHARE": str(FAULT_SHARE), "GOLIVE_TEST_FAULT_LOG": str(faults_log),
              "GOLIVE_RETRY_BASE_DELAY": "0.5"}
    failures: list[str] = []
    try:
        killed, number = 0, 0
        while killed < KILLS and number < 2 * KILLS:  # a run that ends before its moment is not a kill
            number += 1
            phase = APPLY_ORDER[killed % len(APPLY_ORDER)]
            writes, delay = rng.randint(1, 15), round(rng.choice([0.0, rng.uniform(0, 2)]), 1)
            moment = {"GOLIVE_TEST_KILL_IN_PHASE": str(phase), "GOLIVE_TEST_KILL_AFTER_WRITES": str(writes),
                      "GOLIVE_TEST_KILL_DELAY": str(delay),
                      "GOLIVE_TEST_KILL_PHASE_TIMER": str(round(rng.uniform(0.5, 8), 1))}
            began = time.monotonic()
            result = golive("apply", ENVIRONMENT, **faults, GOLIVE_TEST_FAULT_SEED=str(rng.randrange(10**6)),
                            GOLIVE_TEST_KILL_LOG=str(kill_log), **moment)
            seconds = time.monotonic() - began
            if result.returncode == -signal.SIGKILL:
                killed += 1
                print(f"run {number:2}, kill {killed:2}/{KILLS}: {seconds:5.1f} s into the run, in "
                      f"{phase_at_end(result.stdout)}, {last_line(kill_log)}", flush=True)
            elif result.returncode == 0:
                print(f"run {number:2}: not killed, it finished ({seconds:.1f} s) before its moment", flush=True)
            else:
                error = [line for line in result.stdout.splitlines() if line.startswith("error")] or result.stdout.splitlines()[-3:]
                failures.append(f"run {number} failed on its own: {' '.join(error)}")
                print(f"run {number:2}: FAILED by itself ({seconds:.1f} s): {' '.join(error)}", flush=True)

        final = golive("apply", ENVIRONMENT, **faults, GOLIVE_TEST_FAULT_SEED=str(rng.randrange(10**6)))
        summary = [line for line in final.stdout.splitlines() if line.startswith(("Apply complete", "error"))]
        print(f"apply to the end: exit {final.returncode}; {' '.join(summary)}", flush=True)
        if final.returncode:
            failures.append(f"the final apply exited {final.returncode}: {final.stdout[-2000:]}")
        injected = len(faults_log.read_text().splitlines()) if faults_log.exists() else 0
        plan = golive("plan", ENVIRONMENT)
        print(f"plan: exit {plan.returncode} "
              + " ".join(line for line in plan.stdout.splitlines() if line.lower().startswith(("plan", "error"))),
              flush=True)
        if plan.returncode:
            failures.append(f"plan exited {plan.returncode} (2: changes left): {plan.stdout[-2000:]}")
        duplicates, orphans = duplicates_and_orphans(inventory(endpoint, "us-east-1"), baseline, ENVIRONMENT)
        for problem in duplicates:
            print(f"  duplicate: {problem}")
        for problem in orphans:
            print(f"  untagged orphan: {problem}")
        failures += [f"duplicate {d}" for d in duplicates] + [f"orphan {o}" for o in orphans]
        print(f"soak: {killed} kills, {injected} faults injected, {len(duplicates)} duplicates, {len(orphans)} orphans, "
              f"plan exit {plan.returncode}; {time.monotonic() - started:.0f} s in all (seed {SEED})", flush=True)
    finally:
        subprocess.run([sys.executable, "-m", "golive.cli", "sandbox", "down"], cwd=REPO, capture_output=True)
    for failure in failures:
        print(f"FAILED: {failure[:3000]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
