"""The cost estimate (golive/cost.py): the plan's table reproduced from list prices, optimizations,
off-hours scheduled actions in the sandbox, plan's cost delta, the budget gate, actual against estimate."""

from __future__ import annotations

import datetime
import json
import subprocess
import urllib.request

import pytest

from golive.config import EnvironmentError, load_environment
from golive.cost import (PLAN_LINES, PLAN_OPTIMIZED, CostError, CostInputs, OverBudget, check_budget, compare,
                         estimate, load_prices, optimizations)
from tests.conftest import GOLIVE, cli_env, prepare, write_environment

PER_AZ = lambda text: text.replace('nat_gateways = "single"', 'nat_gateways = "per-az"')
SCHEDULE = '\n[services.schedule]\ndays = "MON-FRI"\nhours = "07:00-20:00"\ntimezone = "America/Chicago"\noff_hours_tasks = 1\n'


def inputs(ref) -> CostInputs:
    return CostInputs.of(load_environment(ref))


def test_production_reproduces_the_plans_table_from_list_prices():
    result = estimate(inputs("production"))
    assert result.total == pytest.approx(316, rel=0.03)
    prices = load_prices("us-east-1")
    # Fargate from first principles: 2 x (0.5 vCPU, 1 GB) + 2 x (0.25 vCPU, 0.5 GB) for 730 hours.
    assert result.line("ECS Fargate").usd == pytest.approx(
        730 * (1.5 * prices("fargate", "vcpu_hour") + 3 * prices("fargate", "gb_hour")))
    assert {line.service for line in result.lines} >= set(PLAN_LINES)
    # At list price the plan's own specification misses its figure by more than 15% on these lines, and
    # only these (the command says so line by line): the plan rounded them.
    off = {line.service for line in result.lines if line.within_plan is False}
    assert off == {"ECS Fargate", "RDS PostgreSQL", "ElastiCache Redis", "S3 Storage", "Secrets Manager"}


def test_staging_is_near_the_plans_120_and_production_optimizes_near_its_range():
    assert estimate(inputs("staging")).total == pytest.approx(120, rel=0.15)
    optimized = optimizations(inputs("production"))
    low, high = PLAN_OPTIMIZED
    assert low <= optimized.total <= high + 5  # 252.58: 2.58 above, explained line by line by `golive cost`
    by_name = {s.name: s for s in optimized.savings}
    assert not by_name["Single-AZ database"].applied  # production keeps Multi-AZ
    assert all(s.usd > 0 for s in optimized.savings if s.applied)
    assert optimized.total == pytest.approx(optimized.estimate.total - sum(s.usd for s in optimized.savings if s.applied))


def test_the_file_drives_the_lines(tmp_path):
    base = estimate(inputs("production"))
    per_az = estimate(inputs(write_environment(tmp_path, "production", PER_AZ)))
    assert per_az.line("NAT Gateway").usd == pytest.approx(2 * base.line("NAT Gateway").usd - 50 * 0.045)
    scheduled = estimate(inputs(write_environment(tmp_path, "production", lambda t: t + SCHEDULE, name="sched")))
    # 65 business hours of 168 at 2 tasks, the rest at 1: 1.387 tasks on average instead of 2.
    assert scheduled.line("ECS Fargate").usd == pytest.approx(base.line("ECS Fargate").usd * (65 / 168 * 2 + 103 / 168) / 2)
    shield = estimate(inputs(write_environment(tmp_path, "production", lambda t: t + "\n[cost.planned]\nshield_advanced = true\n"
                                               "\n[security]\nshield_advanced = true\n",
                                               name="shield")))
    assert shield.total - base.total == pytest.approx(3000)


def test_bad_cost_settings_name_the_field_and_the_fix(tmp_path):
    for edit, field in [(lambda t: t + SCHEDULE.replace("07:00-20:00", "20:00-07:00"), "services.schedule.hours"),
                        (lambda t: t + SCHEDULE.replace("America/Chicago", "Mars/Olympus"), "services.schedule.timezone"),
                        (lambda t: t + SCHEDULE.replace("MON-FRI", "FRI-MON"), "services.schedule.days"),
                        (lambda t: t + '\n[cost]\naccept_over_budget = "ok"\n', "cost.accept_over_budget"),
                        (lambda t: t + "\n[cost.usage]\ncdn_gigabytes = 5\n", "cost.usage.cdn_gigabytes")]:
        with pytest.raises(EnvironmentError) as error:
            load_environment(write_environment(tmp_path, "production", edit, name="bad"))
        assert field in str(error.value), str(error.value)
    odd = write_environment(tmp_path, "production", lambda t: t.replace("db.t4g.medium", "db.x2g.large"), name="odd")
    with pytest.raises(CostError, match=r"database.instance_class = 'db.x2g.large'.*Add its hourly price"):
        estimate(inputs(odd))
    with pytest.raises(CostError, match=r"no price table .*eu-west-1.toml"):
        load_prices("eu-west-1")


def test_a_change_is_priced_alone_and_in_total(tmp_path):
    deployed = inputs("production")
    moved = compare(deployed, inputs(write_environment(tmp_path, "production", PER_AZ)))
    # One more NAT gateway (0.045 x 730) and its public address (0.005 x 730).
    assert moved.delta == pytest.approx(730 * 0.05)
    assert moved.sentence().startswith("+ USD 36.50/month (USD 314.46 -> 350.96): ")
    assert [m.render() for m in moved.moves] == ["+ USD 36.50/month: network.nat_gateways single -> per-az"]
    assert compare(deployed, deployed).moves == []
    assert "no estimate recorded yet" in compare(None, deployed).sentence()


def test_over_budget_needs_an_acknowledgement(tmp_path):
    tight = write_environment(tmp_path, "production", lambda t: t.replace("monthly_limit_usd = 400", "monthly_limit_usd = 300"))
    with pytest.raises(OverBudget, match="exceeds budget.monthly_limit_usd USD 300.00.*cost.accept_over_budget"):
        check_budget(load_environment(tight))
    accepted = write_environment(tmp_path, "production", lambda t: t.replace("monthly_limit_usd = 400", "monthly_limit_usd = 300")
                                 + '\n[cost]\naccept_over_budget = "launch month: load tests at full size"\n', name="accepted")
    assert check_budget(load_environment(accepted)).total > 300


def test_golive_cost_prints_the_table_total_budget_and_plan():
    done = subprocess.run([*GOLIVE, "cost", "production"], capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "200", **cli_env("http://127.0.0.1:9/unused")})
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "314.46" in out and "Budget: USD 400.00/month" in out and "Plan: USD 316/month" in out
    assert "Optimized: USD 252.58/month (USD 2.58 above the plan's 200-250" in out
    assert "https://aws.amazon.com/fargate/pricing/" in out and "valid as of 2025-01-15" in out


def test_the_runbooks_secret_count_is_the_estimates():
    from golive.cost import SECRETS_KEPT
    from tasks.compute import APP_SECRETS

    # The app's distinct secrets (the database login is one secret read by two keys), and the master password.
    assert SECRETS_KEPT == len({name for name, _ in APP_SECRETS.values()}) + 1


# --- against the sandbox -----------------------------------------------------------------------------


def test_the_off_hours_schedule_becomes_scheduled_actions(aws, tmp_path):
    from golive.resource import ensure, remove_all
    from tasks.compute import ServiceScaling
    from tasks.scaling_schedule import ScalingSchedule, ensure_scaling_schedule

    path = write_environment(tmp_path, edit=lambda t: t + SCHEDULE)
    run = prepare(str(path))
    # The scalable targets need their ECS services (moto checks): bare ones, not Phase 3's.
    ecs = run.client("ecs")
    ecs.create_cluster(clusterName="golive-sandbox-cluster")
    ecs.register_task_definition(family="bare", containerDefinitions=[{"name": "c", "image": "x", "memory": 128}])
    for service in ("backend", "frontend"):
        ecs.create_service(cluster="golive-sandbox-cluster", serviceName=f"golive-sandbox-{service}",
                           taskDefinition="bare", desiredCount=0)
        ensure(ServiceScaling(run, service))
        assert ensure(ScalingSchedule(run, service)).change.action.value == "create"
    scaling = run.client("application-autoscaling")
    actions = {a["ScheduledActionName"]: a for a in scaling.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"]}
    off = actions["golive-sandbox-backend-off-hours"]
    assert off["Schedule"] == "cron(0 20 ? * MON,TUE,WED,THU,FRI *)" and off["Timezone"] == "America/Chicago"
    assert off["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 10}
    assert actions["golive-sandbox-frontend-business-hours"]["ScalableTargetAction"] == {"MinCapacity": 2, "MaxCapacity": 10}
    assert actions["golive-sandbox-frontend-business-hours"]["Schedule"] == "cron(0 7 ? * MON,TUE,WED,THU,FRI *)"

    run.aws.log.clear()
    assert ensure(ScalingSchedule(run, "backend")).change.action.value == "no-op"
    assert run.aws.log.writes() == [], "a converged schedule makes no writes"

    later = prepare(str(write_environment(tmp_path, edit=lambda t: t + SCHEDULE.replace("20:00", "22:00"), name="later")))
    change = ensure(ScalingSchedule(later, "backend")).change
    assert change.action.value == "update" and [f.field for f in change.fields] == ["off-hours"]

    unscheduled = prepare()  # the shipped sandbox file has no schedule: its actions go
    assert ensure_scaling_schedule(unscheduled, "backend").change.action.value == "delete"
    assert [c.action.value for c in remove_all(ScalingSchedule, run)] == ["delete"]  # teardown: the frontend's
    assert scaling.describe_scheduled_actions(ServiceNamespace="ecs")["ScheduledActions"] == []


def test_plan_reports_how_a_change_moves_the_estimate(aws, tmp_path, prefect_api):
    from flows.infrastructure import infrastructure

    infrastructure(environment="sandbox", sandbox=True)  # records the applied estimate
    run = prepare()
    parameter = run.client("ssm").get_parameter(Name="/golive/sandbox/cost/estimate-inputs")["Parameter"]
    assert CostInputs.from_json(parameter["Value"]) == inputs("sandbox")

    per_az = write_environment(tmp_path, edit=lambda t: PER_AZ(t).replace("monthly_limit_usd = 400", "monthly_limit_usd = 340"))
    run.aws.log.clear()
    plan = infrastructure(environment=str(per_az), sandbox=True, mode="plan")
    assert run.aws.log.writes() == []
    record = plan.outputs["cost"]
    assert record.change_sentence == ("+ USD 36.50/month (USD 314.46 -> 350.96): "
                                      "+ USD 36.50/month: network.nat_gateways single -> per-az")
    assert "exceeds budget.monthly_limit_usd USD 340.00" in record.budget_warning
    change = next(c for c in plan.changes if c.kind == "cost-estimate")
    assert change.action.value == "update"
    assert {f.field: (f.before, f.after) for f in change.fields} == {
        "network.nat_gateways": ("single", "per-az"), "monthly_usd": (314.46, 350.96)}

    done = subprocess.run([*GOLIVE, "plan", str(per_az), "--phase", "infrastructure", "--sandbox"],
                          capture_output=True, text=True, timeout=180, env={"COLUMNS": "250", **cli_env(prefect_api)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Cost: + USD 36.50/month (USD 314.46 -> 350.96): + USD 36.50/month: network.nat_gateways single -> per-az" in done.stdout
    assert "warning: the estimate USD 350.96/month exceeds budget.monthly_limit_usd USD 340.00" in done.stdout


def test_the_go_live_refuses_an_unacknowledged_estimate_above_budget(aws, tmp_path):
    from flows.go_live import go_live

    tight = write_environment(tmp_path, edit=lambda t: t.replace("monthly_limit_usd = 400", "monthly_limit_usd = 300"))
    run = prepare(str(tight))
    with pytest.raises(OverBudget, match="go-live refuses"):
        go_live(environment=str(tight), sandbox=True)
    assert run.aws.log.calls == [], "refused before any AWS call"


def test_actual_cost_against_the_pro_rated_estimate(aws):
    from flows.post_launch_monitoring import cost_so_far

    run = prepare()
    day = datetime.date(2025, 3, 11)  # 10 full days of 31: the estimate pro-rated is 314.46 x 10/31 = 101.44
    pending = cost_so_far(run, today=day)
    assert pending.ok is None and "Cost Explorer returned no billing data" in pending.evidence

    def billed(*amounts: float) -> None:
        results = [{"ResultsByTime": [{"TimePeriod": {"Start": "2025-03-01", "End": "2025-03-11"},
                                       "Total": {"UnblendedCost": {"Amount": str(a), "Unit": "USD"}},
                                       "Groups": [], "Estimated": False}]} for a in amounts]
        request = urllib.request.Request(f"{aws}/moto-api/static/ce/cost-and-usage-results", method="POST",
                                         data=json.dumps({"results": results}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request).close()

    billed(160.0, 150.0)  # the account's, then the environment's (tagged): 48% above the estimate
    gap = cost_so_far(run, today=day)
    assert gap.ok is False and "$150.00 tagged" in gap.evidence and "+48% against the estimate" in gap.evidence
    billed(120.0, 110.0)  # a different period: the next answers in the queue
    near = cost_so_far(run, today=datetime.date(2025, 3, 12))  # 11 days: 111.58 expected
    assert near.ok is True and "-1% against the estimate" in near.evidence


def test_the_go_live_report_has_a_cost_section():
    from flows.go_live import cost_section
    from golive.report import PhaseResult
    from golive.run import Run
    from golive.probes import Check

    run = Run.prepare("production", sandbox=False, mode="plan")  # no AWS call: the section is arithmetic
    monitoring = PhaseResult(phase="post-launch-monitoring", environment="production", mode="apply", target="aws",
                             changes=[], outputs={"cost": Check(name="cost", ok=None, evidence="pending: no data")})
    text = "\n".join(cost_section(run, monitoring))
    assert text.startswith("## Cost estimate\n\n| service |")
    assert "| **Total** | | **314.46** | 316 |" in text and "Budget: USD 400.00/month" in text
    assert "Optimized: USD 252.58/month" in text and "Actual so far (cost: pending): pending: no data" in text
