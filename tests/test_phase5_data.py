"""Phase 5 on the sandbox's real PostgreSQL: migrations, initial data, the admin user, and the
great-expectations check that fails loudly, naming table and expectation, when the data is wrong."""

from __future__ import annotations

import psycopg
import pytest

from flows.data import IntegrityFailed, data
from flows.infrastructure import infrastructure
from golive.changes import Summary
from golive.sandbox import data_plane
from tests.conftest import prepare


@pytest.fixture
def phase_1(aws, empty_database):
    """Phase 1 applied (the app's secrets), on an empty database."""
    infrastructure(environment="sandbox", sandbox=True)
    return prepare()


def row_counts() -> dict[str, int]:
    with psycopg.connect(data_plane.status()["postgres_dsn"]) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("courts_court", "courts_judge", "courts_case", "auth_user")}


def test_phase_5_loads_verifies_and_a_second_run_changes_nothing(phase_1):
    result = data(environment="sandbox", sandbox=True, cases=300)
    assert all(d.ok for d in result.deliverables), [(d.text, d.evidence) for d in result.deliverables]
    outcomes = result.outputs["integrity"]["outcomes"]
    assert len(outcomes) == 15 and all(o["success"] for o in outcomes)
    counts = row_counts()
    assert counts == {"courts_court": 1, "courts_judge": 44, "courts_case": 300, "auth_user": 1}
    password = phase_1.client("secretsmanager").get_secret_value(SecretId="golive/sandbox/django-admin-password")
    assert len(password["SecretString"]) == 32

    plan = data(environment="sandbox", sandbox=True, mode="plan", cases=300)
    assert not Summary.of(plan.changes).has_changes, [c.headline() for c in plan.changes if c.is_change]
    again = data(environment="sandbox", sandbox=True, cases=300)
    assert not Summary.of(again.changes).has_changes
    assert row_counts() == counts, "a second run duplicates no row"


def test_wrong_data_fails_the_check_naming_table_and_expectation(phase_1):
    data(environment="sandbox", sandbox=True, cases=100)
    with psycopg.connect(data_plane.status()["postgres_dsn"], autocommit=True) as connection:
        connection.execute("UPDATE courts_case SET status = 'lost' WHERE id IN (SELECT id FROM courts_case LIMIT 3)")
    with pytest.raises(IntegrityFailed) as failed:
        data(environment="sandbox", sandbox=True, cases=100)
    message = str(failed.value)
    assert "courts_case" in message and "ExpectColumnValuesToBeInSet(column=status" in message
    assert "3 unexpected" in message and "lost" in message
