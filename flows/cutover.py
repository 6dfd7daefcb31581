"""Plan section 8.2 as a flow: the DNS cutover, step by step, with its evidence in the Prefect UI.

Walks the domain from the previous target to the environment's CloudFront distribution in the weighted
steps of launch.cutover (tasks/cutover.py explains the record model), checks DNS and health at every
step, and rolls back to the previous target on the first failed check. `rollback=True` only rolls back.
Publishes the phase's changes and deliverables, and a table of the steps with each check's evidence.
"""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_table_artifact

from golive.report import PhaseResult, artifact_key, deliverable, publish
from golive.retry import AWS_STEP
from golive.run import Mode, Run
from tasks.cutover import (
    NEW,
    PREVIOUS,
    CutoverFailed,
    CutoverResult,
    Rollback,
    cutover,
    rollback_cutover,
    show_weights,
)
from tasks.dns import Certificate

PHASE = "dns-cutover"


class CutoverNotVerified(RuntimeError):
    pass


@task(**AWS_STEP)
def certificate_status(run: Run) -> tuple[str | None, str | None]:
    """The environment's ACM certificate (Phase 1.6) and its status, for the 'SSL working' evidence."""
    found = Certificate(run, "certificate").discover()
    return (found.id, found.raw.get("Status")) if found else (None, None)


@flow(name="dns-cutover")
def dns_cutover(environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply",
                rollback: bool = False) -> PhaseResult:
    """Move the domain to CloudFront in checked, weighted steps; or, with rollback=True, move it back."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode)
    if rollback:
        back = rollback_cutover(run)
        result = _rollback_result(run, back)
        publish(result)
        if result.failed_deliverables:
            raise CutoverNotVerified(f"rollback did not leave every name on its previous target: {back.summary}")
        return result

    certificate = certificate_status(run)  # read first: nothing can fail between a rollback and its report
    try:
        outcome = cutover(run)
    except CutoverFailed as failure:
        if failure.result is not None:  # show what happened, step by step, before failing the run
            _publish(run, failure.result, certificate)
        raise
    result = _publish(run, outcome, certificate)
    if result.failed_deliverables:
        raise CutoverNotVerified("deliverables not met: " + "; ".join(
            f"{d.text}: {d.evidence}" for d in result.failed_deliverables))
    return result


def _on_new_target(outcome: CutoverResult) -> bool:
    """Every name where the walk leaves it: new 100 (and previous 0 where there is one), read back."""
    return bool(outcome.final_weights) and all(
        outcome.final_weights.get(name.name, {}) == name.weights(100) for name in outcome.layout.names)


def _publish(run: Run, outcome: CutoverResult, certificate: tuple[str | None, str | None]) -> PhaseResult:
    planned = not run.applying
    steps = outcome.steps
    layout = outcome.layout
    checks = lambda name: [(s.percent, c) for s in steps for c in s.checks if c.name == name]
    final = steps[-1] if steps else None
    resolvers = next((c for c in (final.checks if final else []) if c.name == "public resolvers"), None)
    route53_checkers = next((c for c in (final.checks if final else []) if c.name == "Route 53 health check"), None)
    health = [c for s in steps for c in s.checks if c.name in ("HTTP health", "CloudWatch alarms", "Route 53 health check")]
    target = outcome.distribution.domain_name if outcome.distribution else "(known after Phase 4)"
    kinds = ", ".join(f"{n.name} {n.type}" for n in layout.names)
    where = f"{'rolled back: ' + outcome.reason if outcome.rolled_back else outcome.reason}".strip()
    cert_arn, cert_status = certificate
    cert = f"ACM certificate {cert_arn} is {cert_status}" if cert_arn else "no ACM certificate found (Phase 1.6 requests it)"

    # The step's HTTP probes went to the new stack over HTTPS with the site's name (SNI) and verified its
    # certificate (the sandbox's listeners present a mirror of the ACM certificate, verified against its CA).
    https_ok = bool(checks("HTTP health")) and all(c.ok for _, c in checks("HTTP health"))
    via = next((c.evidence.split(" via ", 1)[1].split(":", 1)[0] for _, c in checks("HTTP health") if " via " in c.evidence), "")
    ssl = deliverable("8.2", "SSL working", https_ok and cert_status == "ISSUED",
                      f"HTTPS probes of https://{outcome.domain}" + (f" via {via}" if via else "")
                      + f" passed with certificate verification at every step; {cert}", planned=planned)

    result = PhaseResult(
        phase=PHASE, environment=run.env_name, mode=run.mode, target=run.target.describe(),
        changes=outcome.changes,
        deliverables=[
            deliverable("8.2", "Route 53 DNS records updated (weighted golive-new / golive-previous)",
                        _on_new_target(outcome) and not outcome.rolled_back,
                        f"zone {outcome.zone_id}: {show_weights(outcome.final_weights) or 'no golive records'}; "
                        f"previous target {layout.previous_target or 'none'}: {layout.previous_kind}; "
                        f"health check {outcome.health_check.id} on golive-new", planned=planned),
            deliverable("8.2", "Live domain pointing to AWS (CloudFront)",
                        _on_new_target(outcome) and not outcome.rolled_back,
                        f"{kinds} -> {target}" + (f"; {where}" if where else ""), planned=planned),
            deliverable("8.2", "DNS propagation verified (Route 53 authoritative at every step)",
                        bool(steps) and all(c.ok for _, c in checks("authoritative DNS")),
                        "; ".join(f"{p} %: {c.evidence}" for p, c in checks("authoritative DNS")) or "no step ran",
                        planned=planned),
            deliverable("8.2", "Tested from multiple locations",
                        resolvers.ok if resolvers else (None if planned else False),
                        (resolvers.evidence if resolvers else "no final step ran")
                        + (f"; Route 53 checkers: {route53_checkers.evidence}" if route53_checkers else ""),
                        planned=planned),
            deliverable("8.2", "Health checks pass at every step", bool(steps) and all(c.ok is not False for c in health),
                        "; ".join(f"{s.percent} %: " + ", ".join(f"{c.name} {c.evidence}" for c in s.checks
                                                                 if c.name in ("HTTP health", "CloudWatch alarms"))
                                  for s in steps) or "no step ran", planned=planned),
            ssl,
        ],
        outputs={"cutover": outcome},
    )
    publish(result)
    columns = ("authoritative DNS", "HTTP health", "CloudWatch alarms", "Route 53 health check", "public resolvers")
    rows = []
    for s in steps:
        by_name = {c.name: f"{_mark(c.ok)}: {c.evidence}" for c in s.checks}
        rows.append({"step": f"{s.percent} %", "started (UTC)": s.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                     "seconds": f"{s.seconds:.1f}", "weights (read back)": show_weights(s.weights),
                     "written": "yes" if s.changed else "no (already so)", "in sync": s.insync,
                     **{column: by_name.get(column, "not run") for column in columns}})
    if outcome.rolled_back:
        rows.append({"step": "rollback", "started (UTC)": "", "seconds": "",
                     "weights (read back)": show_weights(outcome.final_weights), "written": "yes", "in sync": "",
                     **{column: "" for column in columns}})
    if rows:
        create_table_artifact(
            key=artifact_key(run.env_name, PHASE, "steps"), table=rows,
            description=f"DNS cutover of {outcome.domain}: "
            + (f"ROLLED BACK ({outcome.reason})" if outcome.rolled_back
               else f"{' -> '.join(f'{s.percent} %' for s in steps)}, every check passed"))
    return result


def _mark(ok: bool | None) -> str:
    return {True: "pass", False: "FAIL", None: "n/a"}[ok]


def _rollback_result(run: Run, back: Rollback) -> PhaseResult:
    planned = not run.applying
    returned = all(w.get(PREVIOUS) == 100 and w.get(NEW, 0) == 0 for w in back.weights.values() if PREVIOUS in w)
    return PhaseResult(
        phase=PHASE, environment=run.env_name, mode=run.mode, target=run.target.describe(), changes=back.changes,
        deliverables=[deliverable("8.2", "Domain back on the previous target (rollback)", returned,
                                  f"{back.note}; {back.summary}; {back.insync}", planned=planned)],
        outputs={"rollback": back},
    )
