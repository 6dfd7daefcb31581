"""Phase 5 on the sandbox's real PostgreSQL: migrations, initial data, the admin user, and the
great-expectations check that fails loudly, naming table and expectation, when the data is wrong."""

from __future__ import annotations

import psycopg
import pytest

from flows.containers import containers
from flows.data import IntegrityFailed, data
from flows.infrastructure import infrastructure
from golive.changes import Summary
from golive.sandbox import data_plane
from tests.conftest import prepare


@pytest.fixture
def phase_1(aws, empty_database):
    """Phases 1 and 2 applied (the database, the app's secrets, the backend's image), on an empty database."""
    infrastructure(environment="sandbox", sandbox=True)
    containers(environment="sandbox", sandbox=True)
    return prepare()


def row_counts() -> dict[str, int]:
    with psycopg.connect(data_plane.status()["postgres_dsn"]) as connection:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in ("courts_court", "courts_judge", "courts_case", "auth_user")}


def one_off_tasks(run) -> list[dict]:
    """Every task the sandbox's ECS ran in the environment's cluster, as describe_tasks reports them."""
    ecs = run.client("ecs")
    if not ecs.describe_clusters(clusters=["golive-sandbox-cluster"])["clusters"]:
        return []
    arns = ecs.list_tasks(cluster="golive-sandbox-cluster", desiredStatus="STOPPED")["taskArns"]
    return ecs.describe_tasks(cluster="golive-sandbox-cluster", tasks=arns)["tasks"] if arns else []


def test_phase_5_runs_each_command_as_an_ecs_task_and_a_second_run_changes_nothing(phase_1):
    plan_first = data(environment="sandbox", sandbox=True, mode="plan", cases=300)
    planned = {c.name: c.note for c in plan_first.changes if c.is_change}
    assert "would run `manage.py migrate`" in planned["migrate"], planned
    assert one_off_tasks(phase_1) == [], "plan starts no task"

    result = data(environment="sandbox", sandbox=True, cases=300)
    assert all(d.ok for d in result.deliverables), [(d.text, d.evidence) for d in result.deliverables]
    outcomes = result.outputs["integrity"].outcomes
    assert len(outcomes) == 15 and all(o["success"] for o in outcomes)
    counts = row_counts()
    assert counts == {"courts_court": 1, "courts_judge": 44, "courts_case": 300, "auth_user": 1}
    password = phase_1.client("secretsmanager").get_secret_value(SecretId="golive/sandbox/django-admin-password")
    assert len(password["SecretString"]) == 32

    # Every manage.py step ran as an ECS task of the manage task definition, in the private subnets with the
    # backend's group, and exited 0; its output is in the task's CloudWatch Logs stream.
    tasks = one_off_tasks(phase_1)
    commands = sorted(" ".join(t["overrides"]["containerOverrides"][0]["command"][2:]) for t in tasks)
    assert commands == ["createcachetable", "ensure_admin --username admin --email ops@precedentum.test",
                        "migrate --check", "migrate --noinput", "seed_ilnd_data --cases 300"], commands
    assert {(t["lastStatus"], t["containers"][0]["exitCode"], t["stopCode"]) for t in tasks} == {
        ("STOPPED", 0, "EssentialContainerExited")}
    assert {t["taskDefinitionArn"].rsplit("/", 1)[1].split(":")[0] for t in tasks} == {"golive-sandbox-manage"}
    migrate = next(t for t in tasks if t["startedBy"] == "golive-migrate")
    stream = f"manage/manage/{migrate['taskArn'].rsplit('/', 1)[1]}"
    events = phase_1.client("logs").get_log_events(logGroupName="/golive/sandbox/backend", logStreamName=stream)["events"]
    assert any("Applying courts.0001_initial... OK" in e["message"] for e in events), [e["message"] for e in events]
    evidence = {d.text: d.evidence for d in result.deliverables}
    assert "ran as ECS tasks" in evidence["Database schema created, all migrations applied"]

    run = prepare()
    run.aws.log.clear()
    plan = data(environment="sandbox", sandbox=True, mode="plan", cases=300)
    assert not Summary.of(plan.changes).has_changes, [c.headline() for c in plan.changes if c.is_change]
    again = data(environment="sandbox", sandbox=True, cases=300)
    assert not Summary.of(again.changes).has_changes
    assert run.aws.log.writes() == [], [c.operation for c in run.aws.log.writes()]
    assert len(one_off_tasks(phase_1)) == len(tasks), "a converged run starts no task"
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
