"""What a phase proves and shows: its resources table and its deliverables, as Prefect artifacts.

Every "Deliverable" of the deployment plan becomes a line that passed, failed, or is pending (plan mode,
where nothing exists yet), with the evidence next to it: an id, an ARN, a count read back from AWS.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from golive.changes import Change, Summary, table_rows


class Deliverable(BaseModel):
    section: str  # "1.2"
    text: str  # the plan's words
    ok: bool | None  # None: pending (plan mode)
    evidence: str = ""

    @property
    def mark(self) -> str:
        return {True: "pass", False: "FAIL", None: "pending"}[self.ok]


class PhaseResult(BaseModel):
    phase: str
    environment: str
    mode: str
    target: str
    changes: list[Change]
    deliverables: list[Deliverable] = []
    outputs: dict[str, Any] = {}
    # Plan mode: earlier phase number -> what this phase stands on that it has not made yet (planned
    # against as known after apply).
    waiting_for: dict[int, list[str]] = {}

    @property
    def summary(self) -> Summary:
        return Summary.of(self.changes)

    @property
    def failed_deliverables(self) -> list[Deliverable]:
        return [d for d in self.deliverables if d.ok is False]

    @property
    def pending_deliverables(self) -> list[Deliverable]:
        return [d for d in self.deliverables if d.ok is None]

    def verdict(self) -> str:
        """'passed', 'FAILED (n)' or 'passed, n pending: ...': pending is never summarised as a pass alone."""
        failed, pending = self.failed_deliverables, self.pending_deliverables
        if failed:
            return f"FAILED ({len(failed)} of {len(self.deliverables)})"
        if pending:
            return f"passed, {len(pending)} pending ({', '.join(d.text for d in pending)})"
        return "passed"


def deliverable(section: str, text: str, ok: bool | None, evidence: str = "", *, planned: bool = False) -> Deliverable:
    """A deliverable; in plan mode it is pending whatever the check says, since nothing was built."""
    return Deliverable(section=section, text=text, ok=None if planned else ok, evidence=evidence)


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lower-case letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def deliverables_markdown(result: PhaseResult) -> str:
    lines = [
        f"# {result.phase}: {result.environment} ({result.mode})",
        f"Target: {result.target}. {result.summary.sentence(planned=result.mode == 'plan')}.",
        "",
        "| section | deliverable | result | evidence |",
        "|---|---|---|---|",
    ]
    for d in result.deliverables:
        lines.append(f"| {d.section} | {d.text} | **{d.mark}** | {d.evidence.replace('|', '/')} |")
    return "\n".join(lines)


def publish(result: PhaseResult) -> None:
    """Publish the phase's resource table and deliverables to the Prefect UI."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    base = artifact_key(result.environment, result.phase)
    create_table_artifact(
        key=artifact_key(base, "resources"),
        table=table_rows(result.changes) or [{"resource": "(none)", "name": "", "id": "", "change": "", "details": ""}],
        description=f"{result.phase} resources for {result.environment} ({result.mode}): "
        f"{result.summary.sentence(planned=result.mode == 'plan')}",
    )
    if result.deliverables:
        create_markdown_artifact(
            key=artifact_key(base, "deliverables"),
            markdown=deliverables_markdown(result),
            description=f"{result.phase} deliverables for {result.environment}",
        )


class DeliverablesNotMet(RuntimeError):
    """A phase ran but what the plan says it delivers is not there: the flow fails, naming each one."""


def finish_phase(run, phase: str, outputs: dict[str, Any], deliverables: list[Deliverable],
                 changes: list[Change] | None = None, waiting_for: dict[int, list[str]] | None = None) -> PhaseResult:
    """Collect the phase's changes from its outputs, publish its artifacts, and fail it on any deliverable
    that is not met (a phase that reports success without them is the worst bug a runbook can have)."""
    from golive.changes import collect_changes

    result = PhaseResult(phase=phase, environment=run.env_name, mode=run.mode, target=run.target.describe(),
                         changes=collect_changes(outputs) if changes is None else changes,
                         deliverables=deliverables, outputs=outputs,
                         waiting_for={n: missing for n, missing in (waiting_for or {}).items() if missing})
    publish(result)
    if result.failed_deliverables:
        raise DeliverablesNotMet(f"{phase}: deliverables not met: "
                                 + "; ".join(f"{d.section} {d.text} ({d.evidence})" for d in result.failed_deliverables))
    return result
