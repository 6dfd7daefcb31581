"""`golive doctor`: is this machine ready to run the go-live against this environment?

Read-only: every check is a describe/get call. What no API can set up (a CLI profile, MFA, billing access
for IAM users, confirming the alert email) is printed for a person to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from golive.run import Run


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def diagnose(run: Run) -> tuple[list[Check], list[str]]:
    env = run.environment
    checks = [Check("environment file", True, f"{env.name}: valid ({env.region}, {env.domain})")]
    try:
        identity = run.client("sts").get_caller_identity()
        pinned = env.aws.account_id
        same = not pinned or identity["Account"] == pinned
        checks.append(Check("credentials", same, f"{identity['Arn']} (account {identity['Account']})"
                            + ("" if same else f"; the file pins account {pinned}")))
    except Exception as error:  # any failure here is the finding itself
        checks.append(Check("credentials", False, f"{type(error).__name__}: {error}. "
                            "Configure a profile (aws configure sso / aws configure) or set aws.profile in the file"))
        return checks, _manual(run)
    try:
        zones = run.client("ec2").describe_availability_zones(
            Filters=[{"Name": "zone-name", "Values": env.network.availability_zones}])["AvailabilityZones"]
        available = sorted(z["ZoneName"] for z in zones if z["State"] == "available")
        missing = sorted(set(env.network.availability_zones) - set(available))
        checks.append(Check("region and zones", not missing,
                            f"{env.region}: {', '.join(available)} available"
                            + (f"; not available to this account: {', '.join(missing)}" if missing else "")))
    except Exception as error:
        checks.append(Check("region and zones", False, f"{type(error).__name__}: {error}"))
    return checks, _manual(run)


def _manual(run: Run) -> list[str]:
    env = run.environment
    if run.target.is_sandbox:
        return ["nothing for the sandbox; against AWS, run `golive doctor` without --sandbox for the list"]
    return [
        f"an AWS CLI profile for the account (`aws configure sso`), named in aws.profile (now: {env.aws.profile or 'the default chain'})",
        "MFA on the root user and on every person who assumes the deploy role (its trust policy requires MFA)",
        "IAM access to Billing activated by the root user (Account settings), so budget alerts can be managed",
        f"confirm the SNS subscription email sent to {env.alerts_email} after the first apply",
        f"the domain {env.domain}: registered, and its registrar pointing at the Route 53 name servers (Phase 1.6)",
        "aws.account_id set in the environment file, so a wrong profile can never change another account",
    ]
