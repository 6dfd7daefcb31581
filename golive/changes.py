"""What a run changed (apply) or would change (plan), in the shape of `terraform plan`.

Every step returns its Change; a phase collects them into a table artifact and the CLI prints them.
The plan's exit code follows `terraform plan -detailed-exitcode`: 0 nothing to do, 2 changes, 1 error.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict


class KnownAfterApply(str):
    """A value that exists only once an earlier step is applied (an id, an ARN, an endpoint), as a plan
    shows it. It is a string so a plan can sort and compare it like the real value (a None cannot be
    sorted); its own type so that apply refuses to send it to AWS (golive.resource.ensure)."""

    def __new__(cls, text: str = "(known after apply)"):  # the argument: pickle and copy pass it back
        return super().__new__(cls, text)


KNOWN_AFTER_APPLY = KnownAfterApply()


def known_after_apply(value: Any) -> Any:
    """The value, or KNOWN_AFTER_APPLY where an earlier step has not made it yet (None). Every desired()
    that takes another resource's id goes through this: records carry None, plans compare this."""
    return KNOWN_AFTER_APPLY if value is None else value


def unknown_fields(values: dict[str, Any]) -> list[str]:
    """The fields that hold (anywhere inside them) a value known only after apply."""
    def unknown(value: Any) -> bool:
        if isinstance(value, KnownAfterApply):
            return True
        if isinstance(value, dict):
            return any(unknown(v) for v in value.values())
        if isinstance(value, (list, tuple, set, frozenset)):
            return any(unknown(v) for v in value)
        return False

    return sorted(key for key, value in values.items() if unknown(value))


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"
    SKIP = "skipped"  # the emulator cannot do it; shown, never hidden

    @property
    def symbol(self) -> str:
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": " ", "skipped": "!"}[
            self.value
        ]

    @property
    def style(self) -> str:
        return {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red",
                "no-op": "dim", "skipped": "cyan"}[self.value]


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    before: Any = None
    after: Any = None

    def render(self) -> str:
        if self.before is None:  # a new value, as terraform shows it: field = value
            return f"{self.field} = {_show(self.after)}"
        return f"{self.field}: {_show(self.before)} -> {_show(self.after)}"


class Change(BaseModel):
    """One resource's change. `id` is None when it does not exist yet (known after apply)."""

    model_config = ConfigDict(frozen=True)

    action: Action
    kind: str
    name: str
    id: str | None = None
    fields: tuple[FieldChange, ...] = ()
    note: str = ""

    @property
    def is_change(self) -> bool:
        return self.action not in (Action.NOOP, Action.SKIP)

    def headline(self) -> str:
        ident = f" ({self.id})" if self.id else ""
        note = f"  # {self.note}" if self.note else ""
        return f"{self.action.symbol:>3} {self.kind} {self.name}{ident}{note}"


class Record(BaseModel):
    """The small typed result every step returns; later steps take it as input."""

    model_config = ConfigDict(frozen=True)

    name: str
    id: str | None = None
    change: Change


def collect_changes(*outputs: Any) -> list[Change]:
    """Pull every Change out of step outputs (records, lists of records, nested)."""
    found: list[Change] = []

    def visit(value: Any) -> None:
        if isinstance(value, Change):
            found.append(value)
        elif isinstance(value, Record):
            found.append(value.change)
            for name in type(value).model_fields:
                if name != "change":
                    visit(getattr(value, name))
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)

    for output in outputs:
        visit(output)
    return found


class Summary(BaseModel):
    create: int = 0
    update: int = 0
    replace: int = 0
    delete: int = 0
    unchanged: int = 0
    skipped: int = 0

    @classmethod
    def of(cls, changes: Iterable[Change]) -> "Summary":
        summary = cls()
        for change in changes:
            key = {Action.NOOP: "unchanged", Action.SKIP: "skipped"}.get(change.action, change.action.value)
            setattr(summary, key, getattr(summary, key) + 1)
        return summary

    @property
    def has_changes(self) -> bool:
        return bool(self.create or self.update or self.replace or self.delete)

    @property
    def exit_code(self) -> int:
        """terraform plan -detailed-exitcode: 0 nothing to do, 2 changes present."""
        return 2 if self.has_changes else 0

    def brief(self) -> str:
        """Only the counts that are not zero: '45 created, 3 unchanged, 1 skipped'."""
        parts = [(self.create, "created"), (self.update, "updated"), (self.replace, "replaced"),
                 (self.delete, "deleted"), (self.unchanged, "unchanged"), (self.skipped, "skipped")]
        return ", ".join(f"{n} {word}" for n, word in parts if n) or "no resources"

    def sentence(self, planned: bool) -> str:
        verb = ("to create", "to update", "to replace", "to delete") if planned else (
            "created", "updated", "replaced", "deleted")
        text = (f"{self.create} {verb[0]}, {self.update} {verb[1]}, {self.replace} {verb[2]}, "
                f"{self.delete} {verb[3]}, {self.unchanged} unchanged")
        if self.skipped:
            text += f", {self.skipped} skipped"
        return text


def table_rows(changes: Iterable[Change]) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact: name, id, change, fields."""
    return [
        {
            "resource": change.kind,
            "name": change.name,
            "id": change.id or KNOWN_AFTER_APPLY,
            "change": change.action.value,
            "details": "; ".join(f.render() for f in change.fields) or change.note,
        }
        for change in changes
    ]


def _show(value: Any) -> str:
    if value is None:  # not set (what an earlier step has yet to make is KNOWN_AFTER_APPLY, not None)
        return "null"
    if isinstance(value, dict) and "Statement" in value:
        return _policy_summary(value)
    if isinstance(value, dict) and value and all(isinstance(v, dict) and "Statement" in v for v in value.values()):
        return "{" + ", ".join(f"{k}: {_policy_summary(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        text = str(value)
    if len(text) > 160 and isinstance(value, (dict, list, tuple)):
        # A whole container or distribution spec drowns the plan: its size and a fingerprint say enough.
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]
        return f"<{len(value)} {'fields' if isinstance(value, dict) else 'items'}, sha256 {digest}>"
    return text


def _policy_summary(document: dict) -> str:
    """IAM documents run to pages: show their size and a fingerprint that changes when they do."""
    statements = document.get("Statement", [])
    count = len(statements) if isinstance(statements, list) else 1
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:10]
    return f"<policy: {count} statement{'s' if count != 1 else ''}, sha256 {digest}>"
