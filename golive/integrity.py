"""Data-integrity validation with great-expectations, against a PostgreSQL database over TCP.

Phase 5 checks the loaded data; backup verification checks a restored copy against facts read from the
source. great-expectations takes ~3 s to import, so it is imported here, only when a validation runs.
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


_preloading: threading.Thread | None = None


def _import_gx() -> None:
    import logging

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # one INFO line per context otherwise
    import great_expectations  # noqa: F401
    import great_expectations.expectations  # noqa: F401


def preload() -> None:
    """Import great-expectations in the background, once: Phase 5 calls this as it starts, so the ~3 s
    import overlaps the migrations and seeding (ECS tasks, other processes) instead of following them."""
    global _preloading
    if _preloading is None:
        _preloading = threading.Thread(target=_import_gx, name="gx-import", daemon=True)
        _preloading.start()


def validate(database_url: str, expectations: list[Expect]) -> list[Outcome]:
    """Run the expectations, one suite per table; return every outcome (never stops at the first)."""
    if _preloading is not None:
        _preloading.join()
    _import_gx()
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
