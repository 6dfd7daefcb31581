"""Data-integrity validation with great-expectations, against a PostgreSQL database over TCP.

Phase 5 checks the loaded data; backup verification checks a restored copy against facts read from the
source. great-expectations takes ~3 s of CPU to import, so it runs in a process of its own (the validator),
started ahead of need by `preload()`: the go-live starts it with its first phase, so the import runs on the
other core while the phases work, and the flow's process never holds its interpreter lock for it. The
validator serves one request at a time over its stdin and stdout and ends when this process does (it
reads end of file when its stdin closes, whatever way this process ended).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class Expect:
    """One expectation on one table: a great-expectations class name and its arguments."""

    table: str
    expectation: str  # e.g. "ExpectColumnValuesToBeUnique"
    kwargs: dict[str, Any]

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.kwargs.items())
        return f"{self.expectation}({args})"


@dataclass(frozen=True)
class Outcome:
    table: str
    expectation: str
    success: bool
    observed: str


def sqlalchemy_url(database_url: str) -> str:
    """GX speaks SQLAlchemy: postgresql://... -> postgresql+psycopg://... (psycopg 3 is what we ship)."""
    scheme, rest = database_url.split("://", 1)
    return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else database_url


class ValidatorFailed(RuntimeError):
    pass


class Validator:
    """The great-expectations process: `python -m golive.integrity`, one JSON request per line in, one JSON
    answer per line out."""

    def __init__(self):
        import subprocess
        import sys
        import tempfile

        self._errors = tempfile.TemporaryFile()  # its stderr: read back when it fails
        environment = {**os.environ, "GX_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
        self.process = subprocess.Popen([sys.executable, "-m", "golive.integrity"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._errors, env=environment,
                                        text=True, bufsize=1)
        self.lock = threading.Lock()

    def alive(self) -> bool:
        return self.process.poll() is None

    def validate(self, database_url: str, expectations: list[Expect]) -> list[Outcome]:
        import json

        request = {"database_url": database_url, "expectations": [e.__dict__ for e in expectations]}
        with self.lock:
            try:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
                line = self.process.stdout.readline()
            except (BrokenPipeError, OSError):
                line = ""
        if not line:
            raise ValidatorFailed(f"the great-expectations process ended (exit {self.process.wait()}): "
                                  f"{self._stderr_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise ValidatorFailed(f"great-expectations failed: {answer['error']}")
        return [Outcome(**outcome) for outcome in answer["outcomes"]]

    def _stderr_tail(self) -> str:
        self._errors.seek(0)
        lines = self._errors.read().decode(errors="replace").strip().splitlines()
        return " | ".join(lines[-6:]) or "nothing on its stderr"


_validator: Validator | None = None
_validator_lock = threading.Lock()


def preload() -> Validator:
    """The validator, started if it is not running: its ~3 s import overlaps whatever runs meanwhile."""
    global _validator
    with _validator_lock:
        if _validator is None or not _validator.alive():
            _validator = Validator()
        return _validator


def validate(database_url: str, expectations: list[Expect]) -> list[Outcome]:
    """Run the expectations, one suite per table; return every outcome (never stops at the first)."""
    return preload().validate(database_url, expectations)


def _import_gx() -> None:
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # one INFO line per context otherwise
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401


def _validate_here(database_url: str, expectations: list[Expect]) -> list[Outcome]:
    """The validator's work, in its own process."""
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_postgres(name="db", connection_string=sqlalchemy_url(database_url))
    outcomes: list[Outcome] = []
    for table in dict.fromkeys(e.table for e in expectations):
        batch = source.add_table_asset(name=table, table_name=table).add_batch_definition_whole_table("all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{table}-suite"))
        mine = [e for e in expectations if e.table == table]
        for expect in mine:
            suite.add_expectation(getattr(gxe, expect.expectation)(**expect.kwargs))
        result = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{table}-validation", data=batch, suite=suite)).run()
        for expect, item in zip(mine, _in_suite_order(result, mine)):
            outcomes.append(Outcome(table, expect.describe(), bool(item.success), _observed(item.result)))
    return outcomes


def serve() -> None:
    """The validator's loop: a request per line on stdin, an answer per line on stdout, until end of file.
    great-expectations' own output goes to stderr, so stdout carries answers only."""
    import json
    import sys
    import traceback

    answers, sys.stdout = sys.stdout, sys.stderr
    _import_gx()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            outcomes = _validate_here(request["database_url"], [Expect(**e) for e in request["expectations"]])
            answer = {"outcomes": [o.__dict__ for o in outcomes]}
        except Exception as error:  # the caller raises it; the validator stays up for the next request
            traceback.print_exc()
            answer = {"error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer, default=str) + "\n")
        answers.flush()


def _in_suite_order(result, expectations: list[Expect]):
    """Results come back per expectation; match them to ours by type and column, in order."""
    remaining = list(result.results)
    ordered = []
    for expect in expectations:
        wanted_type = "".join(f"_{c.lower()}" if c.isupper() else c for c in expect.expectation).lstrip("_")
        match = next(r for r in remaining if r.expectation_config.type == wanted_type
                     and all(r.expectation_config.kwargs.get(k) == v for k, v in expect.kwargs.items()
                             if k in ("column", "column_list")))
        remaining.remove(match)
        ordered.append(match)
    return ordered


def _observed(result: dict) -> str:
    if "observed_value" in result:
        return _short(result["observed_value"])
    if "unexpected_count" in result:
        examples = result.get("partial_unexpected_list") or []
        return f"{result['unexpected_count']} unexpected" + (f", e.g. {_short(examples[:3])}" if examples else "")
    return ""


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":
    serve()
