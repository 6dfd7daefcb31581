"""Reports in a terminal: ids shortened, long evidence under its table, nothing wider than the terminal."""

from __future__ import annotations

from rich.console import Console

from golive.report import Deliverable
from golive.terminal import deliverables_table, readable_markdown, shorten_ids

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:golive/sandbox/db-login-AbCdEf"
LONG = ("master: arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234-5678-abcd (managed by RDS, "
        f"rotated by RDS); app's own login: {SECRET} (role created by Phase 5); no password copied anywhere")


def rendered(renderable, width: int = 80) -> list[str]:
    console = Console(width=width, record=True, highlight=False, emoji=False)
    console.print(renderable)
    return console.export_text().splitlines()


def test_arns_show_their_resource_part():
    assert shorten_ids(f"role arn:aws:iam::123456789012:role/golive-sandbox-ecs-task, {SECRET}.") == \
        "role role/golive-sandbox-ecs-task, secret:golive/sandbox/db-login-AbCdEf."


def test_long_evidence_goes_under_the_deliverables_table_and_lines_fit():
    console = Console(width=80)
    rows = [Deliverable(section="1.3", text="Database credentials in AWS Secrets Manager", ok=True, evidence=LONG),
            Deliverable(section="1.4", text="Redis endpoint", ok=None, evidence="cache.local:6379")]
    lines = rendered(deliverables_table("phase-1 deliverables", rows, console))
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "[1] below" in text and "cache.local:6379" in text
    notes = " ".join(lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("[1]")):])
    assert "secret:golive/sandbox/db-login-AbCdEf" in notes and "123456789012" not in notes


def test_the_go_live_report_keeps_its_tables_readable_at_80_columns():
    report = "\n".join(["# Go-live report", "", "| check | result | evidence |", "|---|---|---|",
                        f"| Secrets stored | pass | {LONG} |", "| Redis answers | pass | PONG |", "",
                        "Launch gate: passed."])
    lines = rendered(readable_markdown(report, Console(width=80)))
    text = "\n".join(lines)
    assert all(len(line) <= 80 for line in lines)
    assert "[1] below" in text and "PONG" in text and "Launch gate: passed." in text
    assert "role created by Phase 5" in text and "arn:aws" not in text
