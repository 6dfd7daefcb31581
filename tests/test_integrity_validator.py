"""The great-expectations validator (golive/integrity.py) as its own process, against the sandbox's real
PostgreSQL: it answers, a failed request leaves it up for the next, a validator that died is named and
replaced, and it ends with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from golive import integrity
from golive.integrity import Expect
from golive.sandbox import data_plane


@pytest.fixture
def table(sandbox, empty_database):
    dsn = data_plane.status()["postgres_dsn"]
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE validator_check (id integer PRIMARY KEY, name text)")
        connection.execute("INSERT INTO validator_check VALUES (1, 'a'), (2, 'b'), (3, NULL)")
    yield dsn
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP TABLE IF EXISTS validator_check")


def test_it_answers_and_stays_up_after_a_failed_request(table):
    outcomes = integrity.validate(table, [
        Expect("validator_check", "ExpectTableRowCountToEqual", {"value": 3}),
        Expect("validator_check", "ExpectColumnValuesToNotBeNull", {"column": "name"}),
    ])
    assert [(o.expectation.split("(")[0], o.success) for o in outcomes] == [
        ("ExpectTableRowCountToEqual", True), ("ExpectColumnValuesToNotBeNull", False)]
    assert outcomes[1].observed.startswith("1 unexpected")
    validator = integrity.preload()

    with pytest.raises(integrity.ValidatorFailed, match="great-expectations failed: .*NoSuchExpectation"):
        integrity.validate(table, [Expect("validator_check", "NoSuchExpectation", {})])
    assert integrity.preload() is validator  # the same process answers the next request
    assert integrity.validate(table, [Expect("validator_check", "ExpectTableRowCountToEqual", {"value": 3})])[0].success


def test_a_validator_that_died_is_named_then_replaced(table):
    validator = integrity.preload()
    validator.process.kill()
    validator.process.wait()
    with pytest.raises(integrity.ValidatorFailed, match=r"the great-expectations process ended \(exit -9\)"):
        validator.validate(table, [Expect("validator_check", "ExpectTableRowCountToEqual", {"value": 3})])
    # The next caller gets a new one.
    replacement = integrity.preload()
    assert replacement is not validator and replacement.alive()
    assert integrity.validate(table, [Expect("validator_check", "ExpectTableRowCountToEqual", {"value": 3})])[0].success


def test_it_ends_when_the_process_that_started_it_is_killed(sandbox):
    parent = subprocess.Popen([sys.executable, "-c", "import time; from golive import integrity; "
                               "print(integrity.preload().process.pid, flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    child = int(parent.stdout.readline())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        with open(f"/proc/{child}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return  # ended; only its entry is left until init reaps it
        time.sleep(0.2)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the validator outlived the process that started it")
