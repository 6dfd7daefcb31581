"""What the sandbox's emulator cannot observe, in one table: a step that cannot see something says
`pending` with the reason from here (never a pass), and against AWS nothing is missing. Flows and tasks
ask this module instead of branching on the target themselves (DESIGN.md, "One code path")."""

from __future__ import annotations

from golive.run import Run

MOTO = "sandbox: moto 5.2.5"
LIMITS = {
    "ecs-worker": "sandbox: the ECS work pool is made and its job variables checked, but no ECS worker is run "
                  "against it (the sandbox's go-live runs on its local process pool), so no flow has run on it",
    "web-identity-trust": f"{MOTO} stores the trust policy but never checks a web-identity token",
    "alarm-evaluation": f"{MOTO} never evaluates alarms (the wiring is proven by setting an alarm's state: "
                        "the cutover and post-launch monitoring react)",
    "composite-alarm": f"{MOTO} has no put_composite_alarm (made against AWS)",
    "health-check-results": f"{MOTO} always reports Success",
    "log-metrics": f"{MOTO} never turns log events into metrics",
    "config-compliance": f"{MOTO} has no compliance queries (describe_compliance_by_config_rule)",
    "route53-propagation": f"{MOTO} reports INSYNC at once",
    "dns-caches": "the sandbox's DNS server has no caches to expire",
}


def cannot_observe(run: Run, what: str) -> str | None:
    """Why this run's target cannot show `what` (a key of LIMITS), or None where it can."""
    return LIMITS[what] if run.target.is_sandbox else None
