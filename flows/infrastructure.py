"""Phase 1 of the deployment plan: infrastructure setup.

1.1 account: IAM roles, the alerts topic, billing alerts.  1.2 network: VPC, subnets, gateways, routes,
security groups, network ACLs.  1.3 RDS PostgreSQL.  1.4 ElastiCache Redis.  1.5 S3.  1.6 Route 53 and ACM.
And the application's secrets and parameters.

Each step waits only for what it needs: the account work does not wait for the network; once the
private subnets and security groups exist, RDS (about 20 minutes in AWS), ElastiCache, S3 and the
certificate proceed at once, and nothing independent of the database waits for it.
"""

from __future__ import annotations

from prefect import flow

from golive.changes import collect_changes
from golive.naming import resource_name
from golive.report import PhaseResult, deliverable, finish_phase
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
from tasks.cache import ensure_cache
from tasks.cost_estimate import ensure_cost_estimate
from tasks.database import database_alarms, ensure_db_instance, ensure_db_parameter_group, ensure_db_subnet_group
from tasks.dns import ensure_certificate, ensure_hosted_zone, wait_certificate_issued
from tasks.observability import ensure_alarms, ensure_alerts_topic, ensure_budget
from tasks.secrets import (ensure_app_parameters, ensure_database_login, ensure_database_parameters,
                           ensure_django_secret_key, ensure_redis_url)
from tasks.security import audit_role_privileges, confirm_account, ensure_iam_roles
from tasks.storage import ensure_buckets


@flow(name="phase-1-infrastructure")
def infrastructure(
    environment: str = "sandbox", sandbox: bool | None = None, mode: Mode = "apply", allow_replace: bool = False
) -> PhaseResult:
    """Provision the account basics and the network the rest of the go-live stands on."""
    run = Run.prepare(environment, sandbox=sandbox, mode=mode, allow_replace=allow_replace)
    env = run.environment
    identity = confirm_account(run)  # before any write: the right account, or stop

    # 1.1 account, 1.5 storage, 1.6 domain and TLS, the secret key: none of them needs the network.
    roles = ensure_iam_roles.submit(run)
    topic = ensure_alerts_topic.submit(run)
    budget = ensure_budget.submit(run, topic)
    cost = ensure_cost_estimate.submit(run)  # beside the budget: what the file should cost, recorded
    buckets = ensure_buckets.submit(run)
    zone = ensure_hosted_zone.submit(run)
    certificate = wait_certificate_issued.submit(run, ensure_certificate.submit(run, zone))
    secret_key = ensure_django_secret_key.submit(run)
    parameters = ensure_app_parameters.submit(run, buckets)

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

    # 1.3 database and 1.4 cache: in the private subnets, behind their security groups.
    db_subnet_group = ensure_db_subnet_group.submit(run, private)
    db_parameter_group = ensure_db_parameter_group.submit(run)
    database = ensure_db_instance.submit(run, db_subnet_group, db_parameter_group, security_groups)
    db_alarms = ensure_alarms.submit(run, topic, database_alarms(run), wait_for=[database])
    cache = ensure_cache.submit(run, private, security_groups)
    database_login = ensure_database_login.submit(run)
    database_parameters = ensure_database_parameters.submit(run, database)
    redis_url = ensure_redis_url.submit(run, cache)

    # Resolve every future: a failed step must fail the phase (notes/prefect-3.9.md).
    network = NetworkRecord(
        name=vpc.name, id=vpc.id, change=vpc.change, vpc=vpc,
        public_subnets=[f.result() for f in public], private_subnets=[f.result() for f in private],
        internet_gateway=internet_gateway.result(), nat_gateways=[f.result() for f in nats],
        route_tables=[f.result() for f in route_tables], security_groups=security_groups.result(),
        network_acls=[f.result() for f in acls],
    )
    account = {"identity": identity, "roles": roles.result(), "alerts_topic": topic.result(),
               "budget": budget.result(), "cost": cost.result(),
               "privileges": audit_role_privileges(run, roles.result())}
    data = {"database": database.result(), "database_alarms": db_alarms.result(), "cache": cache.result(),
            "buckets": buckets.result(), "zone": zone.result(), "certificate": certificate.result()}
    app = {"secrets": {"SECRET_KEY": secret_key.result(), "DB_LOGIN": database_login.result(),
                       "REDIS_URL": redis_url.result()},
           "parameters": parameters.result() + database_parameters.result()}

    changes = collect_changes(account, pruned.result(), network.vpc, network.public_subnets, network.private_subnets,
                              network.internet_gateway, network.nat_gateways, network.route_tables,
                              network.security_groups, network.network_acls, data, app)
    return finish_phase(run, "phase-1-infrastructure", {"network": network, **account, **data, **app},
                        phase_1_deliverables(run, network, account) + data_deliverables(run, data, app), changes)


def phase_1_deliverables(run: Run, network: NetworkRecord, account: dict) -> list:
    planned = not run.applying
    env = run.environment
    roles, topic, budget = account["roles"], account["alerts_topic"], account["budget"]
    zones = lambda subnets: sorted({s.availability_zone for s in subnets})
    groups = network.security_groups
    return [
        deliverable("1.1", "IAM roles with least-privilege permissions", account["privileges"][0],
                    f"read back from IAM: {account['privileges'][1]}", planned=planned),
        # Without aws.account_id the run cannot tell the intended account: pending, never a pass.
        deliverable("1.1", "AWS access configured for the intended account",
                    account["identity"].account == env.aws.account_id if env.aws.account_id else None,
                    f"{account['identity'].arn} via {run.target.describe()}"
                    + (f"; aws.account_id = {env.aws.account_id}" if env.aws.account_id else
                       "; aws.account_id is not set in the file, so the intended account is unknown: set it")),
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


def storage_access_granted(run: Run, buckets: dict) -> bool:
    """Read the app role's storage policy back from IAM: exactly the two buckets, nothing more."""
    document = run.client("iam").get_role_policy(
        RoleName=resource_name(run.env_name, "ecs-task"), PolicyName="app-storage")["PolicyDocument"]
    granted = {r for statement in document["Statement"] for r in statement["Resource"]}
    expected = {b.arn for b in buckets.values()} | {f"{b.arn}/*" for b in buckets.values()}
    return granted == expected


def data_deliverables(run: Run, data: dict, app: dict) -> list:
    planned = not run.applying
    env = run.environment
    db, cache, buckets = data["database"], data["cache"], data["buckets"]
    zone, certificate = data["zone"], data["certificate"]
    settings = db.settings
    secrets = app["secrets"]
    wanted_db = {"multi_az": env.database.multi_az, "instance_class": env.database.instance_class,
                 "allocated_storage_gb": env.database.allocated_storage_gb,
                 "backup_retention_days": env.database.backup_retention_days,
                 "storage_encrypted": True, "publicly_accessible": False}
    registrar = (f"; set these name servers at the registrar: {', '.join(zone.name_servers)}" if zone.created else "")
    return [
        deliverable("1.3", "RDS instance endpoint", bool(db.endpoint), f"{db.endpoint}:{db.port} ({db.id})",
                    planned=planned),
        deliverable("1.3", "Database credentials in AWS Secrets Manager",
                    bool(db.master_secret_arn and secrets["DB_LOGIN"].arn),
                    f"master: {db.master_secret_arn} (managed by RDS, rotated by RDS); app's own login: "
                    f"{secrets['DB_LOGIN'].name} (role created by Phase 5); no password copied anywhere",
                    planned=planned),
        deliverable("1.3", "Backup policy configured, as the file asks",
                    all(settings.get(k) == v for k, v in wanted_db.items()),
                    ", ".join(f"{k}={settings.get(k)}" for k in wanted_db) + f", window {settings.get('backup_window')}",
                    planned=planned),
        deliverable("1.4", "Redis endpoint", bool(cache.primary_endpoint), f"{cache.primary_endpoint}:{cache.port}",
                    planned=planned),
        deliverable("1.4", "Connection details", bool(secrets["REDIS_URL"].arn),
                    f"{secrets['REDIS_URL'].name} (rediss://, TLS)", planned=planned),
        deliverable("1.5", "S3 bucket URLs", all(b.id for b in buckets.values()),
                    ", ".join(b.url for b in buckets.values()), planned=planned),
        deliverable("1.5", "IAM policies for access", not planned and storage_access_granted(run, buckets),
                    f"{resource_name(env.name, 'ecs-task')}: app-storage, read back from IAM: "
                    f"{', '.join(buckets)} buckets only", planned=planned),
        deliverable("1.6", "Domain configured", bool(zone.id), f"{zone.domain} zone {zone.id}{registrar}",
                    planned=planned),
        deliverable("1.6", "SSL certificate validated", certificate.status == "ISSUED",
                    f"{certificate.id} {certificate.status} for {', '.join(certificate.names)}", planned=planned),
        deliverable("1.6", "Application secrets and parameters stored",
                    all(s.arn for s in secrets.values()) and all(p.id for p in app["parameters"]),
                    ", ".join(s.name for s in secrets.values()) + f"; {len(app['parameters'])} parameters under "
                    f"/golive/{env.name}/", planned=planned),
    ]
