"""One go-live, apply or destroy per environment at a time (golive/lock.py): a second one refuses at
once naming the run that holds the environment; a killed holder never leaves it locked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from golive.lock import EnvironmentBusy, LIMIT_PREFIX, hold_environment, lock_path
from tests.awsstate import EXPECTED_SINGLE_NAT, counts
from tests.conftest import GOLIVE, REPO, cli_env, prepare

HOLD = ("import sys, time\nfrom golive.lock import hold_environment\n"
        "with hold_environment(sys.argv[1], 'a test holder'):\n"
        "    print('held', flush=True)\n    time.sleep(120)\n")


def _holder(env_name: str, env: dict) -> subprocess.Popen:
    """Another process that holds the environment until killed."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, env_name], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held", child.stderr.read()
    return child


def test_a_second_holder_refuses_naming_the_first_and_a_killed_holder_frees_it_at_once(prefect_api):
    child = _holder("locktest", cli_env(prefect_api))
    try:
        with pytest.raises(EnvironmentBusy, match=rf"locktest is busy: `a test holder` holds it \(pid {child.pid} "):
            with hold_environment("locktest", "a second holder"):
                pass
        record = json.loads(lock_path("locktest").read_text())
        assert record["lease_id"], "with a Prefect server that outlives processes, the Prefect slot is held too"
    finally:
        child.send_signal(signal.SIGKILL)  # no clean-up: its flock goes with it, its lease stays behind
        child.wait()
    started = time.monotonic()
    with hold_environment("locktest", "after the kill"):  # releases the dead holder's lease, no waiting
        assert json.loads(lock_path("locktest").read_text())["command"] == "after the kill"
    assert time.monotonic() - started < 5


def test_a_run_elsewhere_holding_the_prefect_limit_is_named(prefect_api, monkeypatch):
    """Another machine has no file lock here: Prefect's limit is what stops us, and the refusal names the
    flow run that holds it, not the run that asked (both are running runs of the environment)."""
    import threading

    import golive.lock
    from prefect import flow
    from prefect.concurrency.sync import concurrency
    from prefect.context import FlowRunContext

    monkeypatch.setattr(golive.lock, "WAIT_SECONDS", 1.0)
    with hold_environment("elsewhere", "create the limit"):
        pass
    holding, done, refused, runs = threading.Event(), threading.Event(), {}, {}

    @flow(name="go-live")
    def remote(environment: str = "elsewhere"):  # holds the slot through Prefect only, as on another machine
        runs["remote"] = str(FlowRunContext.get().flow_run.id)
        with concurrency(LIMIT_PREFIX + "elsewhere", occupy=1, strict=True):
            holding.set()
            done.wait(60)

    @flow(name="go-live")
    def local(environment: str = "elsewhere"):
        runs["local"] = str(FlowRunContext.get().flow_run.id)
        with pytest.raises(EnvironmentBusy) as busy:
            with hold_environment("elsewhere", "a local apply"):
                pass
        refused["message"] = str(busy.value)

    elsewhere = threading.Thread(target=remote)  # a thread of its own: a run of its own, not a child run
    elsewhere.start()
    try:
        assert holding.wait(60)
        local()
    finally:
        done.set()
        elsewhere.join(60)
    assert f"concurrency limit {LIMIT_PREFIX}elsewhere is held by flow run {runs['remote']} " in refused["message"]
    assert runs["local"] not in refused["message"], refused


def test_a_slot_granted_after_the_wait_is_kept_and_released_not_left_held_by_nobody(prefect_api, monkeypatch):
    """A busy server answers the slot's request after WAIT_SECONDS: the run takes the slot it was granted
    (the wait is for a slot someone holds, not for a slow answer) and frees it at the end, so the next run
    gets it at once. Abandoning the request instead left the slot held until its lease expired."""
    import asyncio
    from unittest import mock

    import httpx
    from prefect import get_client

    import golive.lock

    monkeypatch.setattr(golive.lock, "WAIT_SECONDS", 0.5)
    with hold_environment("slowserver", "create the limit"):
        pass
    send, send_async = httpx.Client.send, httpx.AsyncClient.send
    slow = lambda request: request.url.path.endswith("/increment-with-lease")  # noqa: E731

    def slow_send(self, request, **kwargs):  # the server is busy: the grant comes after the wait is over
        response = send(self, request, **kwargs)
        time.sleep(1.5 if slow(request) else 0)
        return response

    async def slow_send_async(self, request, **kwargs):
        response = await send_async(self, request, **kwargs)
        await asyncio.sleep(1.5 if slow(request) else 0)
        return response

    with mock.patch.object(httpx.Client, "send", slow_send), \
            mock.patch.object(httpx.AsyncClient, "send", slow_send_async):
        with hold_environment("slowserver", "a run on a busy server"):
            with get_client(sync_client=True) as client:
                assert client.read_global_concurrency_limit_by_name(LIMIT_PREFIX + "slowserver").active_slots == 1
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(LIMIT_PREFIX + "slowserver").active_slots == 0
    started = time.monotonic()
    with hold_environment("slowserver", "the next run"):
        pass
    assert time.monotonic() - started < 3


def test_two_concurrent_applies_one_refuses_naming_the_other_and_one_of_each_resource_exists(aws, prefect_api):
    env = cli_env(prefect_api)
    first = subprocess.Popen([*GOLIVE, "apply", "sandbox", "--phase", "infrastructure"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    path = lock_path("sandbox")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the first holds the lock, and its first flow runs
        record = json.loads(path.read_text() or "{}") if path.exists() else {}
        if record.get("pid") == first.pid and record.get("flow_run_id"):
            break
        assert first.poll() is None, first.communicate()
        time.sleep(0.1)
    second = subprocess.run([*GOLIVE, "apply", "sandbox", "--phase", "infrastructure"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, out + err
    assert second.returncode == 1
    assert "Traceback" not in second.stderr
    line = second.stderr.strip()
    assert line.startswith("error: sandbox is busy: `golive apply sandbox` holds it "), line
    assert f"(pid {first.pid} " in line and f"flow run {record['flow_run_id']} (" in line
    print(line)
    assert counts(prepare()) == EXPECTED_SINGLE_NAT  # one of each: the second run created nothing
    assert not path.read_text(), "the lock is released (and its record cleared) when the run ends"
