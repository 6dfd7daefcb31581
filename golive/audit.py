"""The security audit: read the live environment and report what a reviewer would flag.

Each finding has a severity, the resource, the evidence read from AWS, the fix, and the control it maps
to (AWS Foundational Security Best Practices id, and the CIS AWS Foundations Benchmark v3.0 item where
there is one). Its id, `<control>:<resource>`, is stable across runs, so a reviewed exception can be
written in the environment file:

    [[audit.accept]]
    id = "EC2.13:golive-prod-bastion"
    reason = "break-glass bastion, port 22 open to the VPN's range only while ticket OPS-42 is open"

A critical or high finding that is not accepted fails the go-live before the cutover (flows/go_live.py).
What the audit cannot read (Config's rule compliance in the sandbox, where moto lacks the call) is
listed as pending with why, never as passed. No third-party scanner runs here: Prowler would have to be
kept in its own virtualenv (it pins an older boto3) and was not added.
"""

from __future__ import annotations

import json
from typing import Callable, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel

from golive.naming import bucket_name, resource_name
from golive.run import Run

Severity = Literal["critical", "high", "medium", "low"]
BLOCKING = ("critical", "high")
WORLD = ("0.0.0.0/0", "::/0")
# Ports the public may reach: the ALB's HTTP (redirected) and HTTPS listeners.
PUBLIC_PORTS = {80, 443}
SANDBOX_LACKS_COMPLIANCE = "describe_compliance_by_config_rule"


class Finding(BaseModel):
    control: str  # "EC2.13" (AWS FSBP)
    cis: str = ""  # "5.2" (CIS AWS Foundations v3.0), when the benchmark has the item
    severity: Severity
    resource: str
    title: str
    evidence: str
    fix: str
    accepted: str | None = None  # the file's reason, when a reviewer accepted it

    @property
    def id(self) -> str:
        return f"{self.control}:{self.resource}"

    @property
    def blocks(self) -> bool:
        return self.severity in BLOCKING and self.accepted is None


class Pending(BaseModel):
    check: str
    why: str


class AuditResult(BaseModel):
    environment: str
    findings: list[Finding]
    pending: list[Pending]
    checks: list[str]  # what was read
    unused_acceptances: list[str] = []  # accepted ids that matched no finding (stale entries)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocks]

    @property
    def accepted(self) -> list[Finding]:
        return [f for f in self.findings if f.accepted]

    def summary(self) -> str:
        counts = {s: sum(1 for f in self.findings if f.severity == s) for s in ("critical", "high", "medium", "low")}
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
        text += f" ({len(self.accepted)} accepted)" if self.accepted else ""
        if self.pending:
            text += f"; pending: {', '.join(p.check for p in self.pending)}"
        return text

    def rows(self) -> list[dict[str, str]]:
        """The findings table (a Prefect table artifact, the CLI's table, the go-live report)."""
        order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
        return [{"id": f.id, "severity": f.severity, "status": "accepted" if f.accepted else (
                    "BLOCKS" if f.blocks else "open"), "resource": f.resource, "finding": f.title,
                 "evidence": f.evidence, "fix": f.fix, "control": f"AWS FSBP {f.control}" + (f"; CIS {f.cis}" if f.cis else ""),
                 "accepted because": f.accepted or ""}
                for f in sorted(self.findings, key=lambda f: (order[f.severity], f.id))]

    def markdown(self) -> str:
        lines = [f"Audit of {self.environment}: {self.summary()}.", "",
                 "| id | severity | status | resource | finding | evidence | fix | control |",
                 "|---|---|---|---|---|---|---|---|"]
        for row in self.rows():
            status = row["status"] + (f": {row['accepted because']}" if row["accepted because"] else "")
            lines.append("| " + " | ".join(str(v).replace("|", "/") for v in (
                row["id"], row["severity"], status, row["resource"], row["finding"], row["evidence"], row["fix"],
                row["control"])) + " |")
        for pending in self.pending:
            lines.append(f"\nPending: {pending.check}: {pending.why}.")
        for stale in self.unused_acceptances:
            lines.append(f"\nAccepted in the file but not found (remove the entry?): {stale}.")
        return "\n".join(lines)


# --- the checks -------------------------------------------------------------------------------------


def _vpc_id(run: Run) -> str | None:
    from tasks.network import Vpc

    found = Vpc(run, "vpc").discover()
    return found.id if found else None


def security_groups(run: Run) -> list[Finding]:
    """Every group in the environment's VPC (golive's or added by hand): who may reach which port."""
    vpc = _vpc_id(run)
    if vpc is None:
        return []
    findings = []
    groups = run.client("ec2").describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["SecurityGroups"]
    for group in groups:
        name = group.get("GroupName", group["GroupId"])
        label = f"{name} ({group['GroupId']})"
        if name == "default":
            if group.get("IpPermissions") or group.get("IpPermissionsEgress"):
                findings.append(Finding(
                    control="EC2.2", cis="5.4", severity="medium", resource=name if name != "default" else f"default-{vpc}",
                    title="the VPC's default security group allows traffic",
                    evidence=f"{label}: {len(group.get('IpPermissions', []))} ingress, "
                             f"{len(group.get('IpPermissionsEgress', []))} egress rules",
                    fix="revoke every rule of the default group (nothing golive makes uses it)"))
            continue
        for permission in group.get("IpPermissions", []):
            sources = [r["CidrIp"] for r in permission.get("IpRanges", [])] + [
                r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])]
            open_to = [s for s in sources if s in WORLD]
            if not open_to:
                continue
            protocol = permission.get("IpProtocol")
            low, high = permission.get("FromPort", 0), permission.get("ToPort", 65535)
            ports = "all ports" if protocol == "-1" else (f"port {low}" if low == high else f"ports {low}-{high}")
            evidence = f"{label} allows {protocol if protocol != '-1' else 'all protocols'} {ports} from {', '.join(open_to)}"
            reach = set(range(low, high + 1)) if protocol != "-1" else None
            if reach is not None and reach <= PUBLIC_PORTS:
                continue  # HTTP and HTTPS to the world: what a public site is
            if reach is not None and 22 in reach:
                control, cis, title = "EC2.13", "5.2", "SSH (22) open to the internet"
            elif reach is not None and 3389 in reach:
                control, cis, title = "EC2.14", "5.3", "RDP (3389) open to the internet"
            else:
                control, cis, title = "EC2.18", "", f"{ports} open to the internet"
            findings.append(Finding(
                control=control, cis=cis, severity="high", resource=name, title=title, evidence=evidence,
                fix=f"revoke the rule (aws ec2 revoke-security-group-ingress --group-id {group['GroupId']} ...); "
                    "reach tasks with ECS Exec or SSM Session Manager instead of SSH"))
    return findings


def buckets(run: Run) -> list[Finding]:
    """The environment's buckets: public access blocked, and TLS-only."""
    from tasks.storage import bucket_policy

    s3, account, findings = run.client("s3"), run.account_id(), []
    for purpose in ("static", "media", "logs"):
        name = bucket_name(run.env_name, account, purpose)
        try:
            block = s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code in ("NoSuchBucket", "404"):
                continue
            if code != "NoSuchPublicAccessBlockConfiguration":
                raise
            block = {}
        off = [k for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
               if not block.get(k)]
        if off:
            findings.append(Finding(control="S3.8", cis="2.1.4", severity="high", resource=name,
                                    title="public access not blocked", evidence=f"off: {', '.join(off)}",
                                    fix=f"aws s3api put-public-access-block --bucket {name} with all four true "
                                        f"(or `golive apply {run.env_name}`)"))
        policy = bucket_policy(s3, name) or {}
        tls_only = any(s.get("Effect") == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
                       for s in policy.get("Statement", []))
        if not tls_only:
            sandbox = " (the sandbox does not set it: moto would apply its Deny without the condition)" if run.target.is_sandbox else ""
            findings.append(Finding(control="S3.5", cis="2.1.1", severity="medium", resource=name,
                                    title="plain-HTTP requests not refused", evidence=f"no aws:SecureTransport Deny in the policy{sandbox}",
                                    fix=f"`golive apply {run.env_name}` adds the TlsOnly statement"))
    return findings


def database(run: Run) -> list[Finding]:
    prefix, findings = resource_name(run.env_name, ""), []
    for db in run.client("rds").describe_db_instances()["DBInstances"]:
        name = db["DBInstanceIdentifier"]
        if not name.startswith(prefix):
            continue
        if not db.get("StorageEncrypted"):
            findings.append(Finding(control="RDS.3", cis="2.3.1", severity="high", resource=name,
                                    title="storage not encrypted at rest", evidence="StorageEncrypted = false",
                                    fix="restore an encrypted copy of a snapshot and switch to it"))
        if db.get("PubliclyAccessible"):
            findings.append(Finding(control="RDS.2", cis="2.3.3", severity="critical", resource=name,
                                    title="database reachable from the internet", evidence="PubliclyAccessible = true",
                                    fix=f"aws rds modify-db-instance --db-instance-identifier {name} --no-publicly-accessible"))
        if not db.get("BackupRetentionPeriod"):
            findings.append(Finding(control="RDS.11", severity="medium", resource=name, title="automated backups off",
                                    evidence="BackupRetentionPeriod = 0", fix="set database.backup_retention_days"))
        if run.environment.is_production and not db.get("MultiAZ"):
            findings.append(Finding(control="RDS.5", severity="medium", resource=name, title="not Multi-AZ",
                                    evidence="MultiAZ = false", fix="database.multi_az = true"))
    return findings


def cache(run: Run) -> list[Finding]:
    prefix, findings = resource_name(run.env_name, ""), []
    for group in run.client("elasticache").describe_replication_groups()["ReplicationGroups"]:
        name = group["ReplicationGroupId"]
        if not name.startswith(prefix):
            continue
        if not group.get("AtRestEncryptionEnabled"):
            findings.append(Finding(control="ElastiCache.4", severity="medium", resource=name, title="Redis not encrypted at rest",
                                    evidence="AtRestEncryptionEnabled = false", fix="replace the replication group with encryption at rest"))
        if not group.get("TransitEncryptionEnabled"):
            findings.append(Finding(control="ElastiCache.5", severity="medium", resource=name,
                                    title="Redis not encrypted in transit", evidence="TransitEncryptionEnabled = false",
                                    fix="enable in-transit encryption (the app connects with rediss://)"))
    return findings


def _tls_below_1_2(policy: str) -> bool:
    # AWS's policy names say their floor: ...TLS13-1-2-..., ...TLS-1-2-...; the old defaults allow TLS 1.0.
    return not ("TLS13" in policy or "TLS-1-2" in policy or "TLS-1-3" in policy or "FS-1-2" in policy)


def edge(run: Run) -> list[Finding]:
    """The ALB's listeners and the distribution: TLS floor, redirect, WAF."""
    from tasks.cdn import Distribution
    from tasks.load_balancer import LoadBalancer

    findings = []
    lb = LoadBalancer(run, "alb")._find()
    if lb:
        name = lb["LoadBalancerName"]
        for listener in run.client("elbv2").describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]:
            if listener["Protocol"] == "HTTPS" and _tls_below_1_2(listener.get("SslPolicy", "")):
                findings.append(Finding(control="ELB.17", severity="high", resource=f"{name}:{listener['Port']}",
                                        title="TLS policy allows versions below 1.2",
                                        evidence=f"SslPolicy = {listener.get('SslPolicy')}",
                                        fix="use ELBSecurityPolicy-TLS13-1-2-2021-06 (`golive apply` sets it)"))
            if listener["Protocol"] == "HTTP" and not any(a["Type"] == "redirect" for a in listener["DefaultActions"]):
                findings.append(Finding(control="ELB.1", severity="medium", resource=f"{name}:{listener['Port']}",
                                        title="HTTP not redirected to HTTPS",
                                        evidence=f"default action {listener['DefaultActions'][0]['Type']}",
                                        fix="redirect port 80 to HTTPS (`golive apply` sets it)"))
    found = Distribution(run).discover()
    if found:
        config = run.client("cloudfront").get_distribution_config(Id=found.id)["DistributionConfig"]
        floor = config.get("ViewerCertificate", {}).get("MinimumProtocolVersion", "")
        if not floor.startswith("TLSv1.2"):
            findings.append(Finding(control="CloudFront.10", severity="high", resource=found.id,
                                    title="viewer TLS below 1.2 allowed", evidence=f"MinimumProtocolVersion = {floor}",
                                    fix="TLSv1.2_2021 (`golive apply --phase cdn`)"))
        if not config.get("WebACLId"):
            findings.append(Finding(control="CloudFront.6", severity="medium", resource=found.id, title="no WAF in front of CloudFront",
                                    evidence="WebACLId is empty", fix=f"`golive apply {run.env_name} --phase monitoring`"))
    return findings


def logging_and_recording(run: Run) -> list[Finding]:
    """Flow logs on the VPC, AWS Config recording, a multi-region trail logging."""
    findings = []
    vpc = _vpc_id(run)
    if vpc:
        logs = run.client("ec2").describe_flow_logs(Filter=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]
        if not [f for f in logs if f.get("FlowLogStatus") == "ACTIVE"]:
            findings.append(Finding(control="EC2.6", cis="3.7", severity="medium", resource=resource_name(run.env_name, "vpc"),
                                    title="VPC flow logs off", evidence=f"no active flow log on {vpc}",
                                    fix=f"`golive apply {run.env_name} --phase monitoring`"))
    config = run.client("config")
    statuses = config.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    if not any(s.get("recording") for s in statuses):
        findings.append(Finding(control="Config.1", cis="3.3", severity="high", resource=f"config:{run.environment.region}",
                                title="AWS Config not recording",
                                evidence=f"{len(statuses)} recorder(s), none recording",
                                fix=f"`golive apply {run.env_name} --phase monitoring`"))
    from tasks.cloudtrail import logging_trails

    if not logging_trails(run):
        findings.append(Finding(control="CloudTrail.1", cis="3.1", severity="high", resource="cloudtrail",
                                title="no multi-region trail logging", evidence="describe_trails: none multi-region and logging",
                                fix=f"`golive apply {run.env_name} --phase monitoring`"))
    return findings


def identity(run: Run) -> list[Finding]:
    """The root user's MFA, and golive's roles' policies: no '*' action on '*' resources."""
    iam, findings = run.client("iam"), []
    summary = iam.get_account_summary()["SummaryMap"]
    if summary.get("AccountMFAEnabled") != 1:
        findings.append(Finding(control="IAM.9", cis="1.5", severity="critical", resource="root",
                                title="root user without MFA", evidence=f"AccountMFAEnabled = {summary.get('AccountMFAEnabled')}",
                                fix="sign in as root and add a hardware or virtual MFA device (AWS console, Security credentials)"))
    for role in iam.list_roles(PathPrefix=f"/golive/{run.env_name}/")["Roles"]:
        for policy_name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            statements = document.get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                actions = statement.get("Action", [])
                actions = [actions] if isinstance(actions, str) else actions
                resources = statement.get("Resource", [])
                resources = [resources] if isinstance(resources, str) else resources
                if statement.get("Effect") == "Allow" and "*" in actions and "*" in resources:
                    findings.append(Finding(control="IAM.1", cis="1.16", severity="high",
                                            resource=f"{role['RoleName']}/{policy_name}",
                                            title="full administrative access", evidence='"Action": "*" on "Resource": "*"',
                                            fix="grant the actions the role uses (tasks/security.py generates them)"))
    return findings + linted_policies(run, iam)


def linted_policies(run: Run, iam) -> list[Finding]:
    """IAM findings from the policy linter (parliament, golive/permissions.py): each of golive's roles'
    policies as IAM holds them; parliament's MEDIUM and above become findings of that severity."""
    from golive.permissions import lint, role_documents

    findings = []
    for role in iam.list_roles(PathPrefix=f"/golive/{run.env_name}/")["Roles"]:
        for name, document in role_documents(iam, role["RoleName"]).items():
            for issue in lint(document):
                findings.append(Finding(
                    control="IAM.21", severity=issue["severity"].lower() if issue["severity"] != "CRITICAL" else "critical",
                    resource=f"{role['RoleName']}/{name}", title=f"policy linter: {issue['issue']}",
                    evidence=f"parliament: {json.dumps(issue['detail'])[:300]}",
                    fix="regenerate the policy (`python -m golive.permissions docs`, Phase 1) or narrow the statement"))
    return findings


def config_compliance(run: Run) -> tuple[list[Finding], list[Pending]]:
    """Config's verdicts on golive's rules, where the API answers."""
    if run.target.is_sandbox:
        return [], [Pending(check="AWS Config rule compliance",
                            why=f"moto 5.2.5 has no {SANDBOX_LACKS_COMPLIANCE} (and evaluates no rule); against AWS "
                                "each NON_COMPLIANT rule is a finding")]
    prefix, findings = resource_name(run.env_name, ""), []
    config = run.client("config")
    for page in config.get_paginator("describe_compliance_by_config_rule").paginate(ComplianceTypes=["NON_COMPLIANT"]):
        for rule in page["ComplianceByConfigRules"]:
            name = rule["ConfigRuleName"]
            if name.startswith(prefix):
                count = rule["Compliance"].get("ComplianceContributorCount", {}).get("CappedCount", "?")
                findings.append(Finding(control=f"Config:{name.removeprefix(prefix)}", severity="medium", resource=name,
                                        title="AWS Config rule NON_COMPLIANT", evidence=f"{count} non-compliant resources",
                                        fix=f"aws configservice get-compliance-details-by-config-rule --config-rule-name {name}"))
    return findings, []


CHECKS: dict[str, Callable[[Run], list[Finding]]] = {
    "security groups": security_groups, "S3 buckets": buckets, "RDS": database, "ElastiCache": cache,
    "ALB and CloudFront TLS, WAF": edge, "flow logs, Config, CloudTrail": logging_and_recording,
    "root MFA and IAM policies": identity,
}


def audit(run: Run) -> AuditResult:
    """Every check against the live environment, with the file's accepted exceptions applied."""
    findings: list[Finding] = []
    for check in CHECKS.values():
        findings += check(run)
    compliance, pending = config_compliance(run)
    findings += compliance
    accepted = {a.id: a.reason for a in run.environment.audit.accept}
    findings = [f.model_copy(update={"accepted": accepted.get(f.id)}) for f in findings]
    seen = {f.id for f in findings}
    return AuditResult(environment=run.env_name, findings=findings, pending=pending,
                       checks=[*CHECKS, "AWS Config rule compliance"],
                       unused_acceptances=[i for i in accepted if i not in seen])
