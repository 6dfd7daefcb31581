"""Phase 1 of the deployment plan: infrastructure setup.

1.1 account: IAM roles, the alerts topic, billing alerts.  1.2 network: VPC, subnets, gateways, routes,
security groups, network ACLs. The account work does not depend on the network, so both proceed at once;
within the network each step waits only for what it needs.
"""

from __future__ import annotations

from prefect import flow

from golive.changes import collect_changes
from golive.report import PhaseResult, deliverable, publish
from golive.run import Mode, Run
from tasks.network import (
    NetworkRecord,
    ensure_internet_gateway,
    ensure_nat_gateway,
    ensure_network_acl,
    ensure_route_table,
    ensure_security_groups,
    ensure_subnet,
    ensure_vpc,
    prune_nat_gateways,
    zone_letter,
)
from tasks.observability import ensure_alerts_topic, ensure_budget
from tasks.security import confirm_account, ensure_iam_roles


@flow(name="phase-1-infrastructure")
def infrastructure(
    environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply", allow_replace: bool = False
) -> PhaseResult:
    """Provision the account basics and the network the rest of the go-live stands on."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    env = run.environment
    identity = confirm_account(run)  # before any write: the right account, or stop

    # 1.1 account: independent of the network.
    roles = ensure_iam_roles.submit(run)
    topic = ensure_alerts_topic.submit(run)
    budget = ensure_budget.submit(run, topic)

    # 1.2 network.
    vpc = ensure_vpc(run)
    public = [ensure_subnet.submit(run, vpc, "public", az, cidr) for az, cidr in env.public_subnets]
    private = [ensure_subnet.submit(run, vpc, "private", az, cidr) for az, cidr in env.private_subnets]
    internet_gateway = ensure_internet_gateway.submit(run, vpc)
    security_groups = ensure_security_groups.submit(run, vpc)
    nat_subnets = public if env.network.nat_gateways == "per-az" else public[:1]
    nats = [ensure_nat_gateway.submit(run, subnet, internet_gateway) for subnet in nat_subnets]
    route_tables = [ensure_route_table.submit(run, "public-rt", vpc, internet_gateway, public)] + [
        # Each private subnet leaves through the NAT gateway in its own zone when there is one per zone.
        ensure_route_table.submit(run, f"private-rt-{zone_letter(az)}", vpc, nats[min(i, len(nats) - 1)], [private[i]])
        for i, (az, _) in enumerate(env.private_subnets)
    ]
    pruned = prune_nat_gateways.submit(run, nats, route_tables)
    acls = [ensure_network_acl.submit(run, "public", vpc, public), ensure_network_acl.submit(run, "private", vpc, private)]

    # Resolve every future: a failed step must fail the phase (notes/prefect-3.9.md).
    network = NetworkRecord(
        name=vpc.name, id=vpc.id, change=vpc.change, vpc=vpc,
        public_subnets=[f.result() for f in public], private_subnets=[f.result() for f in private],
        internet_gateway=internet_gateway.result(), nat_gateways=[f.result() for f in nats],
        route_tables=[f.result() for f in route_tables], security_groups=security_groups.result(),
        network_acls=[f.result() for f in acls],
    )
    account = {"identity": identity, "roles": roles.result(), "alerts_topic": topic.result(),
               "budget": budget.result()}

    result = PhaseResult(
        phase="phase-1-infrastructure", environment=env.name, mode=run.mode, target=run.target.describe(),
        changes=collect_changes(account, pruned.result(), network.vpc, network.public_subnets, network.private_subnets,
                                network.internet_gateway, network.nat_gateways, network.route_tables,
                                network.security_groups, network.network_acls),
        deliverables=phase_1_deliverables(run, network, account),
        outputs={"network": network, **account},
    )
    publish(result)
    if result.failed_deliverables:
        raise RuntimeError("deliverables not met: " + "; ".join(d.text for d in result.failed_deliverables))
    return result


def phase_1_deliverables(run: Run, network: NetworkRecord, account: dict) -> list:
    planned = not run.applying
    env = run.environment
    roles, topic, budget = account["roles"], account["alerts_topic"], account["budget"]
    zones = lambda subnets: sorted({s.availability_zone for s in subnets})
    groups = network.security_groups
    return [
        deliverable("1.1", "IAM roles with least-privilege permissions", all(r.arn for r in roles.values()),
                    ", ".join(f"{k}: {r.arn}" for k, r in roles.items()), planned=planned),
        deliverable("1.1", "AWS access configured for the intended account",
                    not env.aws.account_id or account["identity"].account == env.aws.account_id,
                    f"{account['identity'].arn} via {run.target.describe()}"),
        deliverable("1.1", "Billing alerts active", bool(budget.id and topic.id),
                    f"budget {budget.name} at ${env.budget.monthly_limit_usd:.0f}/month, alerts at "
                    f"{', '.join(f'{t:g}%' for t in env.budget.alert_thresholds_percent)} to {topic.email} "
                    f"(the email must confirm its SNS subscription)", planned=planned),
        deliverable("1.2", "VPC with proper CIDR blocks", bool(network.vpc.id),
                    f"{network.vpc.id} {network.vpc.cidr_block}", planned=planned),
        deliverable("1.2", "2 public subnets (for ALB)",
                    len(network.public_subnets) >= 2 and len(zones(network.public_subnets)) >= 2
                    and all(s.id for s in network.public_subnets),
                    ", ".join(f"{s.id} {s.cidr_block} {s.availability_zone}" for s in network.public_subnets),
                    planned=planned),
        deliverable("1.2", "2 private subnets (for ECS/RDS)",
                    len(network.private_subnets) >= 2 and len(zones(network.private_subnets)) >= 2
                    and all(s.id for s in network.private_subnets),
                    ", ".join(f"{s.id} {s.cidr_block} {s.availability_zone}" for s in network.private_subnets),
                    planned=planned),
        deliverable("1.2", "Internet and NAT gateways route the subnets",
                    bool(network.internet_gateway.id) and all(n.id for n in network.nat_gateways),
                    f"{network.internet_gateway.id}; NAT " + ", ".join(
                        f"{n.id} ({n.availability_zone}, {n.address.id})" for n in network.nat_gateways),
                    planned=planned),
        deliverable("1.2", "Security groups for each service",
                    set(groups) == {"alb", "backend", "frontend", "database", "cache"} and all(g.id for g in groups.values()),
                    ", ".join(f"{k}: {g.id}" for k, g in groups.items()), planned=planned),
    ]
