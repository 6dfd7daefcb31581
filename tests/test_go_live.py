"""The go-live parent flow: a load-test threshold it cannot meet stops it before the cutover, naming the
figure; the approval pause waits for a person and resumes with who approved."""

from __future__ import annotations

import threading
import time

import pytest

from flows.go_live import Approval, LaunchNotApproved, approve, go_live
from golive.sandbox import app as sandbox_app
from golive.sandbox import data_plane
from tests.conftest import prepare, write_environment


@pytest.fixture
def live_app(aws, empty_database, edge):
    with data_plane.locked():
        sandbox_app.APP.start()
    yield
    with data_plane.locked():
        sandbox_app.APP.stop()


def run_scheduled(phases, tmp_path) -> dict:
    """The go-live's scheduler (run_phases) over these phases, inside a flow as in the go-live; the phases'
    `environment` is tmp_path, the directory the timed phases leave their marks in."""
    from prefect import flow

    from flows.go_live import Progress, run_phases

    @flow(name="scheduling-test")
    def schedule():
        return run_phases(str(tmp_path), True, Progress(len(phases)), phases=phases)

    return schedule()


def no_cutover_record_written(run) -> None:
    route53 = run.client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=run.environment.domain)["HostedZones"][0]["Id"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert not [r for r in records if r.get("SetIdentifier")], "no weighted cutover record was written"


def test_an_unaccepted_high_finding_then_an_impossible_load_test_stop_the_go_live_before_the_cutover(
        live_app, tmp_path):
    # Port 22 open to the world on a group made by hand in the VPC (Phase 1 would revoke a rule added to
    # one of its own groups). Not accepted, it stops the whole go-live before the load test and the cutover;
    # accepted in the file as a reviewed exception, the go-live goes on to the load test, whose impossible
    # threshold stops it in turn.
    def tightened(text: str) -> str:
        return text.replace("p95_ms = 250", "p95_ms = 0.001").replace("duration_seconds = 10", "duration_seconds = 3")

    (tmp_path / "unaccepted").mkdir()
    unaccepted = write_environment(tmp_path / "unaccepted", edit=tightened)
    tight = write_environment(tmp_path, edit=lambda t: tightened(t) + (
        '\n[[audit.accept]]\nid = "EC2.13:bastion"\nreason = "reviewed: opened by this test"\n'))
    from flows.infrastructure import infrastructure

    infrastructure(environment=str(tight), sandbox=True)
    ec2 = prepare(str(tight)).client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["golive-sandbox-vpc"]}])["Vpcs"][0]["VpcId"]
    bastion = ec2.create_security_group(GroupName="bastion", Description="made by hand", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=bastion, IpPermissions=[{
        "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])

    from prefect.artifacts import Artifact

    def last_load_test():
        found = Artifact.get("sandbox-load-test-report")
        return found and found.id

    before = last_load_test()
    # Phase 7 runs last and its audit is the gate: the error names the finding and the way out.
    with pytest.raises(Exception, match=rf"blocking: EC2\.13:bastion: bastion \({bastion}\) allows tcp port 22.*"
                                        rf"accept each in the environment file with \[\[audit\.accept\]\]"):
        go_live(environment=str(unaccepted), sandbox=True)
    assert last_load_test() == before, "the go-live stopped before the load test"
    no_cutover_record_written(prepare(str(unaccepted)))

    with pytest.raises(Exception, match=r"p95 latency .* above the 0\.001 ms threshold \(launch\.load_test\.p95_ms\)"):
        go_live(environment=str(tight), sandbox=True)
    audit = Artifact.get("sandbox-security-audit-report").data
    assert "| EC2.13:bastion | high | accepted: reviewed: opened by this test | bastion |" in audit
    run = prepare(str(tight))
    route53 = run.client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=run.environment.domain)["HostedZones"][0]["Id"]
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    assert not [r for r in records if r.get("SetIdentifier")], "no weighted cutover record was written"
    assert not [c for c in run.aws.log.writes() if c.service == "route53" and c.operation == "ChangeResourceRecordSets"
                and any(ch["ResourceRecordSet"].get("SetIdentifier") for ch in c.params["ChangeBatch"]["Changes"])]


def _resume_when_paused(approval: dict, found: dict) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            paused = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
        if paused:
            found["id"] = paused[0].id
            resume_flow_run(paused[0].id, run_input=approval)
            return
        time.sleep(0.5)


@pytest.mark.parametrize("approved", [True, False])
def test_production_pauses_for_approval_and_resumes_with_the_approver(aws, tmp_path, approved):
    from prefect import flow

    manual = write_environment(tmp_path, edit=lambda t: t.replace('approval = "auto"', 'approval = "manual"'))

    @flow(name="approval-gate")
    def gate(path: str) -> dict:
        from golive.run import Run

        return approve(Run.prepare(path, sandbox=True))

    found: dict = {}
    answer = {"approved": approved, "approver": "dana@precedentum.test", "note": "change window open"}
    resumer = threading.Thread(target=_resume_when_paused, args=(answer, found))
    resumer.start()
    try:
        if approved:
            result = gate(str(manual))
            assert result["approved_by"] == "dana@precedentum.test" and result["note"] == "change window open"
        else:
            with pytest.raises(LaunchNotApproved, match="not approved by dana@precedentum.test: change window open"):
                gate(str(manual))
    finally:
        resumer.join()
    assert found.get("id"), "the flow paused and waited for the approval"
    assert set(Approval.model_fields) == {"approved", "approver", "note"}  # the form the UI shows


def test_the_sandbox_prefect_server_writes_task_runs_in_batches(prefect_api):
    """golive/sandbox/orchestrator.py hands the server its task-run recorder's batching through the
    environment: the server's own settings (its admin API) must show it took them, or the CPU it saves is
    claimed, not had (a renamed Prefect setting would be ignored silently)."""
    import json
    import urllib.request

    from golive.sandbox.orchestrator import TASK_RUN_RECORDER_FLUSH_SECONDS

    with urllib.request.urlopen(f"{prefect_api}/admin/settings", timeout=10) as response:
        recorder = json.loads(response.read())["server"]["services"]["task_run_recorder"]
    assert recorder["enabled"] is True
    assert (recorder["batch_size"], recorder["flush_interval"]) == (100, TASK_RUN_RECORDER_FLUSH_SECONDS)


def test_a_phase_starts_as_soon_as_its_own_dependencies_are_done(prefect_api, tmp_path):
    """Scheduling on first completion: a phase whose dependency finished does not wait behind an unrelated
    slower phase that started earlier."""
    from golive.phases import Phase

    phases = [Phase(1, "slow", "", "tests.timed_phases:slow"), Phase(2, "fast", "", "tests.timed_phases:fast"),
              Phase(3, "after-fast", "", "tests.timed_phases:after_fast", after=(2,))]

    results = run_scheduled(phases, tmp_path)
    assert results[1].outputs["saw_after_fast_while_running"], "phase 3 waited for phase 1, which it does not depend on"


def test_a_phase_part_that_needs_less_runs_ahead_and_is_handed_to_its_phase(prefect_api, tmp_path):
    """A phase's `ahead` part (Phase 4's static files) starts once its own dependencies are done, while the
    phase still waits on a slower one, and the phase gets its result instead of doing it again."""
    from golive.phases import Ahead, Phase

    phases = [Phase(1, "slow", "", "tests.timed_phases:slow_until_ahead"), Phase(2, "fast", "", "tests.timed_phases:fast"),
              Phase(3, "with-part", "", "tests.timed_phases:with_part", after=(1,),
                    ahead=Ahead("tests.timed_phases:ahead_part", "part", after=(2,)))]

    results = run_scheduled(phases, tmp_path)
    assert results[1].outputs["saw_ahead_while_running"], "the part ran ahead only after phase 1, which it does not need"
    assert results[3].outputs["part"] == "made ahead"
    assert set(results) == {1, 2, 3}  # the part is not a phase of its own in the result


def test_a_phase_that_needs_only_another_phases_part_starts_once_that_part_is_done(prefect_api, tmp_path):
    """`after_ahead` (Phase 4 needs Phase 3's load balancer, not its services): the phase starts once the
    part run ahead is done, not before it, while the phase that part belongs to still waits on a slower one.
    Numbered below the phase it names, so that an order by number alone would be wrong."""
    from golive.phases import Ahead, Phase, dependency_order

    phases = [Phase(1, "slow", "", "tests.timed_phases:slow_until_after_part"),
              Phase(2, "fast", "", "tests.timed_phases:fast"),
              Phase(3, "after-part", "", "tests.timed_phases:after_part", after_ahead=(4,)),
              Phase(4, "with-part", "", "tests.timed_phases:with_part", after=(1,),
                    ahead=Ahead("tests.timed_phases:ahead_part", "part", after=(2,)))]

    results = run_scheduled(phases, tmp_path)
    assert results[3].outputs["saw_part"], "phase 3 started before the part it needs was done"
    assert results[1].outputs["saw_after_part_while_running"], "phase 3 waited for all of phase 4, not its part"
    assert set(results) == {1, 2, 3, 4}
    # One phase at a time (`golive apply`), it comes after the whole phase, which then makes the part itself.
    assert [p.number for p in dependency_order(phases)] == [1, 2, 4, 3]


def test_phase_7_comes_after_every_other_phase():
    """Its closing audit is the go-live's audit gate (flows/go_live.py): it must read every phase."""
    from golive.phases import PHASES

    def before(number: int) -> set[int]:
        phase = next(p for p in PHASES if p.number == number)
        return set(phase.needs).union(*(before(n) for n in phase.needs))

    assert before(7) == {p.number for p in PHASES if p.automated and p.number != 7}
