"""How results read in a terminal of any width: ids shortened, long evidence under the table.

The Prefect artifacts keep every word (the UI has room); a terminal of 80 columns folding four columns of
ARNs into a tower of fragments is unreadable. So in the terminal an ARN shows its resource part (the account
and region are the run's own, printed at the top), and evidence longer than its column is numbered in the
table and printed in full beneath it.
"""

from __future__ import annotations

import re

from rich.console import Console, Group
from rich.markdown import Markdown
from rich.markup import escape
from rich.table import Table

# arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE -> RESOURCE (e.g. role/golive-sandbox-ecs-task)
ARN = re.compile(r"\barn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d*:([^\s,;)|]+)")


def shorten_ids(text: str) -> str:
    """ARNs down to their resource part: the account and region are the run's own."""
    return ARN.sub(lambda match: match.group(1), text)


def _evidence_width(console: Console) -> int:
    # What the other columns of a deliverables table leave: section ~7, deliverable ~30, result ~8, borders.
    return max(24, console.width - 52)


def deliverables_table(title: str, deliverables, console: Console) -> Group:
    """A phase's deliverables: evidence that fits stays in its cell, longer evidence is numbered there and
    printed in full under the table, so no cell wraps into a column of fragments."""
    table = Table(title=title, title_justify="left")
    for column in ("section", "deliverable", "result", "evidence"):
        table.add_column(column, overflow="fold", no_wrap=column == "result")
    notes: list[str] = []
    limit = _evidence_width(console)
    for d in deliverables:
        style = {True: "green", False: "red", None: "yellow"}[d.ok]
        evidence = shorten_ids(d.evidence)
        if len(evidence) > limit:
            notes.append(evidence)
            evidence = f"[{len(notes)}] below"
        table.add_row(d.section, d.text, f"[{style}]{d.mark}[/]", escape(evidence))
    return Group(table, *(f"  [dim][{n}][/] {escape(note)}" for n, note in enumerate(notes, 1)))


def readable_markdown(markdown: str, console: Console) -> Markdown:
    """A markdown report for the terminal: ids shortened; in each table with an evidence column, evidence
    longer than the terminal leaves room for goes into numbered notes under that table."""
    limit = _evidence_width(console)
    out: list[str] = []
    lines = shorten_ids(markdown).splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("|"):
            out.append(lines[index])
            index += 1
            continue
        block = []
        while index < len(lines) and lines[index].startswith("|"):
            block.append(lines[index])
            index += 1
        header = [cell.strip() for cell in block[0].strip("|").split("|")]
        if "evidence" not in header or len(block) < 3:
            out += block
            continue
        column = header.index("evidence")
        notes: list[str] = []
        out += block[:2]
        for row in block[2:]:
            cells = row.strip().strip("|").split("|")
            if column < len(cells) and len(cells[column].strip()) > limit:
                notes.append(cells[column].strip())
                cells[column] = f" [{len(notes)}] below "
            out.append("|" + "|".join(cells) + "|")
        if notes:
            out.append("")
            out += [f"{n}. {note}" for n, note in enumerate(notes, 1)]
    return Markdown("\n".join(out))
