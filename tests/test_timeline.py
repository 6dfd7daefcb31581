"""The predicted AWS timeline (golive/timeline.py): steps read from the flows, durations from the model and the
file, the critical path; the CLI's `plan --timeline`; the sandbox emulator holding transitional states."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import boto3
import pytest

from golive.config import load_environment
from golive.timeline import _Builder, _schedule, emulator_delays, load_model, minutes, predict, step_seconds
from tests.conftest import GOLIVE, REPO


def with_changes(env, section: str, **changes):
    return env.model_copy(update={section: getattr(env, section).model_copy(update=changes)})


def path_tasks(timeline) -> list[str]:
    return [s.task for s in timeline.critical_path]


def test_multi_az_lengthens_the_database_wait_and_the_whole_path():
    production = load_environment("production")
    assert production.database.multi_az is True
    single = with_changes(production, "database", multi_az=False)
    multi_az, single_az = predict(production), predict(single)
    # The RDS create is on the critical path either way; Multi-AZ's standby adds 10 minutes to it.
    assert "ensure_db_instance" in path_tasks(multi_az) and "ensure_db_instance" in path_tasks(single_az)
    assert multi_az.stage("phase 1 infrastructure").end - single_az.stage("phase 1 infrastructure").end == 600
    # After the load test comes the failover test: 2 min on Multi-AZ (AWS's figure), a 2 s "not applicable"
    # step without it (the launch checks run beside the load test, off the path). Everything after Phase 1
    # shifts with the database.
    assert multi_az.total - single_az.total == pytest.approx(600 + 120 - 2)


def test_the_step_graph_is_the_flows_own():
    timeline = predict(load_environment("production"))
    steps = {s.key: s for s in timeline.steps}

    def one(stage: str, task: str):
        found = [s for s in timeline.steps if s.stage == stage and s.task == task]
        assert len(found) == 1, (stage, task, found)
        return found[0]

    database = one("phase 1 infrastructure", "ensure_db_instance")
    cache = one("phase 1 infrastructure", "ensure_cache")
    certificate = one("phase 1 infrastructure", "wait_certificate_issued")
    # flows/infrastructure.py: the instance waits for its subnet group, parameter group and security groups;
    # the cache and the certificate do not wait for the database, so they run beside it.
    assert {steps[k].task for k in database.after} >= {"ensure_db_subnet_group", "ensure_db_parameter_group",
                                                      "ensure_security_groups"}
    assert cache.start < database.end and certificate.start < database.end
    # What the flow had waited for when it submitted it (confirm_account, called directly), and its argument.
    assert {steps[k].task for k in certificate.after} == {"confirm_account", "ensure_certificate"}
    # Phase 3's load balancer runs ahead (phases.py `Ahead`): once Phase 1 is done, beside Phases 2 and 5,
    # not after Phase 5's migrations; Phase 3 is handed it, so its services start after it ends and its own
    # flow does not make it again.
    alb = one("phase 3 ecs (ahead: load balancer)", "ensure_load_balancer")
    service = one("phase 3 ecs", "ensure_service")
    assert service.start >= alb.end and "[each, at once]" in service.label
    assert timeline.stage("phase 1 infrastructure").end <= alb.start < timeline.stage("phase 5 data").end
    assert not [s for s in timeline.steps if s.stage == "phase 3 ecs" and s.task == "ensure_load_balancer"]
    # golive/phases.py: Phase 3 starts after Phases 1, 2 and 5; Phase 2 does not wait for Phase 1.
    assert timeline.stage("phase 3 ecs").start == max(timeline.stage(f"phase {n} {name}").end for n, name in
                                                      ((1, "infrastructure"), (2, "containers"), (5, "data")))
    assert timeline.stage("phase 2 containers").start == 0
    # Phase 4's static files run ahead (phases.py `Ahead`): after Phases 1 and 2, not after Phase 3; Phase 4 is
    # handed them, so its own flow does not publish them again.
    static = one("phase 4 cdn (ahead: static files)", "publish_static_files")
    assert static.start < timeline.stage("phase 3 ecs").start
    # flows/data.py: the migration's check is a one-off task beside the others that follow the migration,
    # not a second task in turn before them.
    migrate, check, seed = (one("phase 5 data", t) for t in ("run_migrations", "check_migrations", "load_initial_data"))
    assert check.start == seed.start == migrate.end
    # flows/pre_launch.py: the launch checks run beside the load test's start; the failover's reboot waits
    # for its end (a failover under load would be judged as the app's failures).
    load_test, checks = one("8.1 launch gate", "load_test"), one("8.1 launch gate", "launch_checks")
    failover = one("8.1 launch gate", "failover_test")
    assert checks.start == load_test.start and failover.start >= load_test.end
    assert not [s for s in timeline.steps if s.stage == "phase 4 cdn" and s.task == "publish_static_files"]
    assert timeline.stage("phase 4 cdn").start >= static.end
    # CloudFront needs Phase 3's load balancer, not its services (phases.py `after_ahead`): it starts once
    # the load balancer is made, before Phase 3's own turn; Phase 7, last, waits for both.
    cdn = timeline.stage("phase 4 cdn")
    assert cdn.start == max(timeline.stage(stage).end for stage in (
        "phase 1 infrastructure", "phase 3 ecs (ahead: load balancer)", "phase 4 cdn (ahead: static files)"))
    assert cdn.start < timeline.stage("phase 3 ecs").start
    assert timeline.stage("phase 7 monitoring").start == max(
        timeline.stage(stage).end for stage in ("phase 4 cdn", "phase 6 cicd", "phase 3 ecs"))


def test_nat_mode_and_the_cutover_steps_come_from_the_file():
    production = load_environment("production")
    per_az = predict(with_changes(production, "network", nat_gateways="per-az"))
    nat = next(s for s in per_az.steps if s.task == "ensure_nat_gateway")
    assert "[each, at once]" in nat.label and nat.seconds == 120  # one per zone, made at once
    assert "ensure_nat_gateway" not in path_tasks(per_az)  # the database is the longer wait

    cutover = production.launch.cutover
    one_step = with_changes(production, "launch", cutover=cutover.model_copy(update={"steps_percent": [100]}))
    saved = predict(production).total - predict(one_step).total
    per_step = 60 + 2 + cutover.step_wait_seconds + 2  # INSYNC, authoritative check, bake, resolvers
    assert saved == pytest.approx(2 * per_step)
    bake = [s for s in predict(production).critical_path if s.task == "check_step_health"]
    assert len(bake) == 3 and all(s.seconds == cutover.step_wait_seconds for s in bake)


def test_a_direct_call_serialises_what_follows_it(tmp_path, monkeypatch):
    """The reader's rule, on a flow of its own: submitted tasks wait only for their arguments; a task called
    directly, or a .result(), makes everything submitted after it wait."""
    package = tmp_path / "timelineprobe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "flows.py").write_text(textwrap.dedent("""
        from prefect import flow, task

        @task
        def slow(run): ...

        @task
        def quick(run, x=None): ...

        @flow
        def parallel(run):
            a = slow.submit(run)
            b = quick.submit(run)
            c = quick.submit(run, a)
            return b.result(), c.result()

        @flow
        def serial(run):
            a = slow(run)
            b = quick.submit(run)
            return b.result()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = {"defaults": {"task_seconds": 1, "what": ""}, "steps": {"slow": {"seconds": 100}}}
    env = load_environment("sandbox")
    for name in ("parallel", "serial"):
        builder = _Builder(model, env)
        builder.read_flow(name, f"timelineprobe.flows:{name}", builder.stage_gate(name, set()))
        _schedule(builder.steps)
        quick = [s for s in builder.steps.values() if s.task == "quick"]
        if name == "parallel":
            assert sorted(s.start for s in quick) == [0, 100]  # b beside a; c after a, its argument
        else:
            assert [s.start for s in quick] == [100]  # b waits for the direct call before it


def test_emulator_delays_are_the_models_scaled():
    sandbox = load_environment("sandbox")
    delays = emulator_delays(sandbox, 1 / 60)
    assert delays["rds-instance"] == pytest.approx(20.0)  # the sandbox file is Multi-AZ, as production
    assert delays["cloudfront-deploy"] == pytest.approx(5.0)
    assert delays["ecs-task-start"] == pytest.approx(1.0)  # a one-off task's start; its command runs for real
    seconds, scaled, _ = step_seconds(load_model(), sandbox, "load_test")
    assert scaled == 0 and seconds == 10 + sandbox.launch.load_test.duration_seconds  # the file's own time


def test_plan_timeline_prints_the_critical_path_and_total_without_aws():
    shown = subprocess.run([*GOLIVE, "plan", "sandbox", "--timeline"], cwd=REPO, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    expected = predict(load_environment("sandbox"))
    assert "Critical path" in out and "ensure_db_instance (database)" in out
    assert f"Total to the end of the DNS cutover: {minutes(expected.total)}" in out
    assert "docs.aws.amazon.com/AmazonRDS" in out and "engineering estimate" in out
    assert "phase 7 monitoring" in out
    bad = subprocess.run([*GOLIVE, "plan", "nosuchfile", "--timeline"], cwd=REPO, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert bad.returncode == 1 and "Traceback" not in bad.stderr + bad.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_sandbox_emulator_holds_transitional_states_when_asked(tmp_path):
    """The sandbox's own moto process (golive/sandbox/moto_server.py) with GOLIVE_EMULATOR_DELAYS: a NAT
    gateway stays 'pending' and a load balancer 'provisioning' for the held time; the waiters then pass."""
    port = _free_port()
    env = {**os.environ, "GOLIVE_EMULATOR_DELAYS": json.dumps({"nat-gateway": 1.5, "alb-provisioning": 1.5}),
           "GOLIVE_STATE_DIR": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-m", "golive.sandbox.moto_server", "-H", "127.0.0.1", "-p", str(port)],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the moto server did not start"
                time.sleep(0.1)
        kwargs = dict(region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing")
        ec2, elb = boto3.client("ec2", **kwargs), boto3.client("elbv2", **kwargs)
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")
                   ["Subnet"]["SubnetId"] for i, z in enumerate("ab")]
        started = time.monotonic()
        nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=ec2.allocate_address(Domain="vpc")["AllocationId"])
        balancer = elb.create_load_balancer(Name="held", Subnets=subnets)["LoadBalancers"][0]
        assert nat["NatGateway"]["State"] == "pending" and balancer["State"]["Code"] == "provisioning"
        ec2.get_waiter("nat_gateway_available").wait(NatGatewayIds=[nat["NatGateway"]["NatGatewayId"]],
                                                     WaiterConfig={"Delay": 0.25, "MaxAttempts": 40})
        elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[balancer["LoadBalancerArn"]],
                                                       WaiterConfig={"Delay": 0.25, "MaxAttempts": 40})
        waited = time.monotonic() - started
        assert 1.4 <= waited < 5, waited
    finally:
        server.terminate()
        server.wait(10)
