"""Plan 8.2: what every step of the cutover must show before traffic moves on (policy), through the
shared probes (golive/probes.py, mechanism).

- authoritative DNS: Route 53 holds what the step wrote (read back) and its name servers answer with it,
  asked over DNS: each name several times, every answer one of the pair, and all of them the new target
  at 100 %. The name servers are the zone's own in AWS; in the sandbox, the sandbox's DNS server, which
  answers from moto's zones the way Route 53's do (golive/sandbox/dns_server.py).
- HTTP health: health_checks_per_step GETs of /health/ at the new stack (CloudFront's domain with the
  site's Host and SNI, certificate verified), all 200; no alarm of the environment in ALARM; the Route 53
  checkers' view of the new target (moto reports them healthy: said so in the sandbox).
- several locations (evidence, not a gate: resolver caches lag behind Route 53): public resolvers in AWS;
  in the sandbox, its DNS server asked over UDP and over TCP (one server: this shows the answers, not
  geography).
"""

from __future__ import annotations

import time

from prefect import task

import golive.probes as probes  # through the module, so a test can swap in a failing probe
from golive.naming import resource_name
from golive.probes import Check, Probe
from golive.retry import AWS_STEP
from golive.emulator import cannot_observe
from golive.probes import authoritative_servers, new_addresses as _new_addresses, resolver_locations, system_addresses as _system_addresses
from golive.run import Run
from tasks.cutover_records import RECORD_TTL, Layout, NameLayout, record_key, record_state, show_weights, weights_of, zone_records
from tasks.cutover_target import HEALTH_PATH

QUERIES_PER_NAME = 12  # a weighted pair answers either side: several questions show both


# ---------------------------------------------------------------------------------------------------
# Asking DNS


def ask(server: tuple[str, int], name: str, tcp: bool = False) -> tuple[list[str], set[str], str]:
    """One A query to one server: (the chain of names answered, CNAMEs first; the addresses; the rcode)."""
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(name, "A")
    send = dns.query.tcp if tcp else dns.query.udp
    reply = send(query, server[0], port=server[1], timeout=5)
    chain, addresses = [name], set()
    for rrset in reply.answer:
        for item in rrset:
            if rrset.rdtype == dns.rdatatype.CNAME:
                chain.append(item.target.to_text().rstrip(".").lower())
            elif rrset.rdtype == dns.rdatatype.A:
                addresses.add(item.address)
    return chain, addresses, dns.rcode.to_text(reply.rcode())


def side(name: NameLayout, chain: list[str], addresses: set[str], new_addresses: set[str]) -> str:
    """Which side of the pair an answer is: 'new', 'previous' or 'elsewhere'. By the names in the answer
    (a CNAME, or the sandbox's alias answer), or by the new target's addresses (Route 53 flattens an
    alias into its target's addresses)."""
    new_names = {name.new.alias_name} if name.new and name.new.is_alias else set(name.new.values if name.new else ())
    if new_names & set(chain[1:]) or (addresses and addresses <= new_addresses):
        return "new"
    if name.previous is not None:
        previous_names = ({name.previous.alias_name} if name.previous.is_alias else set(name.previous.values))
        if previous_names & set(chain[1:]) or (addresses and addresses <= previous_names):
            return "previous"
    return "elsewhere"


def tally(server: tuple[str, int], layout: Layout, percent: int, new_addresses: dict[str, set[str]],
          times: int, tcp: bool = False) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Ask about every name that has records at this step `times` times: name -> {side: count}, problems."""
    counts: dict[str, dict[str, int]] = {}
    problems = []
    for name in layout.names:
        if not name.weights(percent) or name.new is None:
            continue
        seen = counts.setdefault(name.name, {"new": 0, "previous": 0, "elsewhere": 0})
        for _ in range(times):
            try:
                chain, addresses, rcode = ask(server, name.name, tcp)
            except Exception as error:  # timeout, refused: this server does not answer
                problems.append(f"{name.name}: no answer from {server[0]}:{server[1]} ({type(error).__name__})")
                break
            if rcode != "NOERROR":
                problems.append(f"{name.name}: {rcode}")
                break
            seen[side(name, chain, addresses, new_addresses.get(name.name, set()))] += 1
        if seen["elsewhere"]:
            problems.append(f"{name.name}: {seen['elsewhere']} answers point at neither target")
        if percent == 100 and seen["previous"]:
            problems.append(f"{name.name}: {seen['previous']} of {times} answers still the previous target at 100 %")
    return counts, problems


def _show(counts: dict[str, dict[str, int]]) -> str:
    return "; ".join(f"{name} new {c['new']} / previous {c['previous']}" + (f" / elsewhere {c['elsewhere']}" if c["elsewhere"] else "")
                     for name, c in counts.items())


# ---------------------------------------------------------------------------------------------------
# The checks of a step


@task(**AWS_STEP)
def verify_authoritative(run: Run, layout: Layout, percent: int) -> Check:
    """Route 53 holds what this step wrote (read back) and its name servers answer with it over DNS."""
    records = zone_records(run, layout.zone_id)
    index = {record_key(r): r for r in records}
    problems = []
    for name in layout.names:
        for set_id, weight in name.weights(percent).items():
            desired = record_state(name.record(set_id, weight, layout.health_check_id))
            current = index.get((name.name, name.type, set_id))
            if current is None:
                problems.append(f"{name.name} {set_id} missing")
            elif record_state(current) != desired:
                problems.append(f"{name.name} {set_id}: holds {record_state(current)}, expected {desired}")
    evidence = f"held: {show_weights(weights_of(records, [n.name for n in layout.names]))}"
    servers = authoritative_servers(run, layout.zone_id)
    if not servers:
        problems.append("none of the zone's name servers resolves")
    for server in servers:
        counts, answer_problems = tally(server, layout, percent, _new_addresses(run, layout), QUERIES_PER_NAME)
        problems += answer_problems
        evidence += f"; {QUERIES_PER_NAME} A queries per name to {server[0]}:{server[1]}: {_show(counts)}"
    if problems:
        evidence = "; ".join(problems) + f" [{evidence}]"
    return Check(name="authoritative DNS", ok=not problems, evidence=evidence)


def alarms_firing(run: Run) -> list[str]:
    """Names of the environment's CloudWatch alarms (golive-<env>-...) in ALARM."""
    prefix = resource_name(run.env_name, "")
    pages = run.client("cloudwatch").get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    # The state is checked here too: moto ignores the StateValue filter when AlarmTypes is given.
    return sorted(a["AlarmName"] for page in pages for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
                  if a.get("StateValue") == "ALARM")


def health_check_status(run: Run, health_check_id: str | None) -> Check:
    """What Route 53's checkers (in several regions) see of the new target. Route 53 counts a target
    healthy while more than 18 % of them report success; a new check has no observations yet."""
    if health_check_id is None:
        return Check(name="Route 53 health check", ok=None, evidence="no health check (plan)")
    observations = run.client("route53").get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]
    good = sum(1 for o in observations if o.get("StatusReport", {}).get("Status", "").startswith("Success"))
    ok = not observations or good / len(observations) > 0.18
    evidence = f"{health_check_id}: {good} of {len(observations)} checkers report Success"
    if not observations:
        evidence += " (no observations yet)"
    limit = cannot_observe(run, "health-check-results")
    if limit:  # fake observations prove nothing: pending, never a pass
        return Check(name="Route 53 health check", ok=None, evidence=f"{evidence}; pending: {limit}")
    if not ok:
        failing = [o["StatusReport"]["Status"] for o in observations if not o["StatusReport"]["Status"].startswith("Success")]
        evidence += f"; e.g. {failing[0]}"
    return Check(name="Route 53 health check", ok=ok, evidence=evidence)




@task(**AWS_STEP)
def check_step_health(run: Run, layout: Layout) -> list[Check]:
    """health_checks_per_step GETs of /health/ at the new stack spread over step_wait_seconds (all must be
    200), no alarm of the environment in ALARM, and the Route 53 checkers' view of the new target. Stops
    at the first failure: the rollback should not wait for the rest of the step."""
    settings = run.environment.launch.cutover
    endpoint = probes.new_stack_endpoint(run)
    spacing = settings.step_wait_seconds / settings.health_checks_per_step
    answers: list[Probe] = []
    firing: list[str] = []
    for _ in range(settings.health_checks_per_step):
        time.sleep(spacing)  # observe the step for a while before each probe: the last one ends the step
        answers.append(probes.probe(endpoint, HEALTH_PATH))
        firing = alarms_firing(run)
        if not answers[-1].ok or firing:
            break
    stopped = len(answers) < settings.health_checks_per_step
    http = Check(
        name="HTTP health", ok=all(p.ok for p in answers),
        evidence=f"{len(answers)} of {settings.health_checks_per_step} GET {endpoint.url}{HEALTH_PATH} via {endpoint.via}: "
        + ", ".join(p.show() for p in answers) + (" (stopped at the first failure)" if stopped else ""))
    limit = cannot_observe(run, "alarm-evaluation")
    alarm_note = f" ({limit}; only states set on them show)" if limit else ""
    alarms = Check(name="CloudWatch alarms", ok=not firing,
                   evidence=(f"in ALARM: {', '.join(firing)}" if firing
                             else f"none of {resource_name(run.env_name, '')}* in ALARM") + alarm_note)
    return [http, alarms, health_check_status(run, layout.health_check_id)]


@task(**AWS_STEP)
def check_public_resolvers(run: Run, layout: Layout, percent: int) -> Check:
    """'Test from multiple locations': ask each resolver location about every name. At 100 % each must
    return the new target, waiting (bounded by the TTL) for caches to expire. Evidence, not a gate."""
    caches_expire = percent == 100 and not cannot_observe(run, "dns-caches")
    deadline = time.monotonic() + (2 * RECORD_TTL + 30 if caches_expire else 0)
    new_addresses = _new_addresses(run, layout)
    while True:
        seen, problems = [], []
        for label, (server, tcp) in resolver_locations(run).items():
            counts, found = tally(server, layout, percent, new_addresses, 3, tcp)
            seen.append(f"{label}: {_show(counts)}")
            problems += [f"{label} {p}" for p in found]
        if not problems or time.monotonic() >= deadline:
            break
        time.sleep(10)
    return Check(name="public resolvers", ok=not problems, gate=False,
                 evidence="; ".join(problems + seen) if problems else "; ".join(seen))
