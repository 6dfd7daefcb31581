"""Plan 8.3, post-launch monitoring, against moto and the sandbox's real app: a healthy window passes and
keeps its issue log; a failing app is alerted on through SNS and rolls DNS back after N failed polls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from unittest import mock

import pytest
from prefect.artifacts import Artifact

from flows.cutover import dns_cutover
from flows.post_launch_monitoring import MonitoringFailed, post_launch_monitoring
from golive.sandbox import app as sandbox_app
from golive.sandbox import data_plane
from golive.probes import Probe
from tasks.cutover import NEW, PREVIOUS
from tasks.observability import ensure_alerts_topic
from tests.conftest import prepare
from tests.test_cutover import WWW, launch_ready, weights


@pytest.fixture(scope="module")
def app(sandbox, edge):
    """The app under gunicorn (as tests/test_example_app.py starts it), migrated so that the API list the
    synthetic checks read answers; once for the module."""
    with data_plane.locked():
        state, _ = sandbox_app.APP.start()
    migrated = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=sandbox_app.APP_DIR,
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **sandbox_app.wire()})
    assert migrated.returncode == 0, migrated.stderr
    yield state["url"]
    with data_plane.locked():
        sandbox_app.APP.stop()


def alerts_queue(run) -> str:
    """An SQS queue subscribed to the alerts topic: what SNS delivered, read back as a subscriber would."""
    topic = ensure_alerts_topic.fn(run).id
    sqs = run.client("sqs")
    queue = sqs.create_queue(QueueName="golive-test-alerts")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    run.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return queue


def delivered(run, queue: str) -> list[dict]:
    messages = run.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_healthy_window_passes_and_publishes_its_issue_log(aws, app):
    run = prepare()
    queue = alerts_queue(run)
    launch_ready(run)
    dns_cutover(environment="sandbox", sandbox=True)  # the synthetic checks reach the domain through DNS
    result = post_launch_monitoring(environment="sandbox", sandbox=True, window_seconds=2)  # polls at 0 s and 2 s

    polls = result.outputs["polls"]
    assert [p.number for p in polls] == [1, 2] and all(p.ok for p in polls)
    assert all(probe.status == 200 for p in polls for probe in p.probes.values())
    assert all(probe.url.startswith(f"https://{run.environment.domain}/") for p in polls for probe in p.probes.values())
    marks = {d.text: d.ok for d in result.deliverables}
    assert marks["Stable production environment (monitored for the window)"] is True
    assert marks["Error rates checked"] is True
    # What the sandbox cannot observe is said, not faked.
    backups = next(d for d in result.deliverables if d.text == "Backups verified running")
    assert backups.ok is None and "not observable in the sandbox" in backups.evidence
    cost = next(d for d in result.deliverables if d.text == "Costs monitored")
    assert cost.ok is None and cost.evidence.startswith("pending: ") and "estimate $" in cost.evidence
    assert "synthetic checks' own figures" in result.outputs["figures"].source

    log = Artifact.get("sandbox-post-launch-monitoring-issue-log")
    assert "No issues so far." in log.data and "Poll 2 of 2" in log.data
    assert Artifact.get("sandbox-post-launch-monitoring-progress").data == 100.0
    assert delivered(run, queue) == []


def test_a_failing_app_is_alerted_and_rolled_back_after_n_failed_polls(aws, app):
    run = prepare()
    queue = alerts_queue(run)
    zone_id, _ = launch_ready(run)
    dns_cutover(environment="sandbox", sandbox=True)
    assert weights(run, zone_id)[WWW] == {NEW: 100, PREVIOUS: 0}

    broken = lambda endpoint, path="/", **kwargs: Probe(url=f"{endpoint.url}{path}", status=503, ms=4.0)  # the fault
    with mock.patch("golive.probes.probe", side_effect=broken):
        with pytest.raises(MonitoringFailed, match=r"2 consecutive failed polls .*503.*DNS rollback: rolled back to the previous target"):
            post_launch_monitoring(environment="sandbox", sandbox=True, window_seconds=60)

    assert weights(run, zone_id)[WWW] == {NEW: 0, PREVIOUS: 100}
    subjects = [m["Subject"] for m in delivered(run, queue)]
    assert any("GET /health/" in s for s in subjects), subjects
    assert "golive sandbox: launch rolled back" in subjects
    log = Artifact.get("sandbox-post-launch-monitoring-issue-log")
    assert "rolled back after 2 failed polls in a row" in log.data and "503" in log.data


def test_stable_judges_every_poll_and_a_window_without_traffic_has_no_error_rate():
    """One failed poll early in the window is not 'stable', however the last poll went; no request at the
    ALB is no error rate to judge (pending), not 0 %."""
    import datetime

    from flows.post_launch_monitoring import Figures, Finding, Poll, _result
    from golive.probes import Check

    run = prepare()
    now = datetime.datetime.now(datetime.timezone.utc)
    quiet = Figures(requests=0, errors=0, error_rate=None, p95_ms=None, source="CloudWatch AWS/ApplicationELB")
    polls = [Poll(number=1, at=now, probes={}, figures=quiet, alarms=[],
                  findings=[Finding(key="http / 503", summary="GET / (home): 503 in 4 ms")]),
             Poll(number=2, at=now, probes={}, figures=quiet, alarms=[], findings=[])]
    fine = Check(name="backups", ok=True, evidence="a snapshot today")
    result = _result(run, polls, 4.0, quiet, fine, fine, {}, "log")
    marks = {d.text: d for d in result.deliverables}
    stable = marks["Stable production environment (monitored for the window)"]
    assert stable.ok is False and "1 failed (#1)" in stable.evidence
    rates = marks["Error rates checked"]
    assert rates.ok is None and rates.evidence.startswith("no request reached the ALB in the window")
    assert result.verdict().startswith("FAILED")
