"""Plan 7.2: AWS Config records the environment's resources and checks them against AWS managed rules
chosen for this stack: encryption at rest, nothing public, restricted ports, RDS backups and Multi-AZ,
CloudTrail and flow logs on, HTTPS only, the WAF on CloudFront, MFA on the root user.

An account has one configuration recorder and one delivery channel per region. When the account already
has them (made by someone else, e.g. Control Tower) they are used as they are and never changed or
deleted; otherwise golive makes its own (golive-<env>-recorder, delivering to the logs bucket under
config/). The recorder records as AWS Config's service-linked role, created if the account lacks it.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task

from golive.changes import Action, Change, Record, known_after_apply
from golive.naming import resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.log_archive import PREFIXES

SERVICE_ROLE_PATH = "/aws-service-role/config.amazonaws.com/"
# component -> (AWS managed rule identifier, its parameters)
MANAGED_RULES: dict[str, tuple[str, dict[str, str]]] = {
    "rds-encrypted": ("RDS_STORAGE_ENCRYPTED", {}),
    "rds-multi-az": ("RDS_MULTI_AZ_SUPPORT", {}),
    "rds-backups": ("DB_INSTANCE_BACKUP_ENABLED", {}),
    "rds-not-public": ("RDS_INSTANCE_PUBLIC_ACCESS_CHECK", {}),
    "redis-encrypted": ("ELASTICACHE_REPL_GRP_ENCRYPTED_AT_REST", {}),
    "s3-no-public-read": ("S3_BUCKET_PUBLIC_READ_PROHIBITED", {}),
    "s3-encrypted": ("S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED", {}),
    "s3-tls-only": ("S3_BUCKET_SSL_REQUESTS_ONLY", {}),
    "restricted-ssh": ("INCOMING_SSH_DISABLED", {}),
    "restricted-ports": ("RESTRICTED_INCOMING_TRAFFIC", {
        "blockedPort1": "22", "blockedPort2": "3389", "blockedPort3": "5432", "blockedPort4": "6379",
        "blockedPort5": "3306"}),
    "alb-https-redirect": ("ALB_HTTP_TO_HTTPS_REDIRECTION_CHECK", {}),
    "cloudfront-waf": ("CLOUDFRONT_ASSOCIATED_WITH_WAF", {}),
    "cloudtrail-multi-region": ("MULTI_REGION_CLOUD_TRAIL_ENABLED", {}),
    "vpc-flow-logs": ("VPC_FLOW_LOGS_ENABLED", {}),
    "root-mfa": ("ROOT_ACCOUNT_MFA_ENABLED", {}),
}


def config_client(run: Run):
    return run.client("config")


class ConfigRecorder(Resource):
    kind = "config-recorder"

    def __init__(self, run: Run, component: str = "recorder", role_arn: str | None = None):
        super().__init__(run, component)
        self.role_arn = role_arn

    def desired(self) -> dict[str, Any]:
        return {"all_supported": True, "global_resources": True, "role": known_after_apply(self.role_arn), "recording": True}

    def discover(self) -> Found | None:
        config = config_client(self.run)
        recorders = config.describe_configuration_recorders(ConfigurationRecorderNames=[self.name]) \
            if self._exists(config) else {"ConfigurationRecorders": []}
        if not recorders["ConfigurationRecorders"]:
            return None
        recorder = recorders["ConfigurationRecorders"][0]
        status = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[self.name])
        group = recorder.get("recordingGroup", {})
        return Found(id=self.name, component=self.component, raw=recorder, state={
            "all_supported": group.get("allSupported"), "global_resources": group.get("includeGlobalResourceTypes"),
            "role": recorder.get("roleARN"),
            "recording": bool(status["ConfigurationRecordersStatus"][0].get("recording"))})

    def _exists(self, config) -> bool:
        # Asking for a recorder by a name that does not exist is an error: list them all first.
        return any(r["name"] == self.name for r in config.describe_configuration_recorders()["ConfigurationRecorders"])

    def _put(self) -> None:
        config_client(self.run).put_configuration_recorder(ConfigurationRecorder={
            "name": self.name, "roleARN": self.role_arn,
            "recordingGroup": {"allSupported": True, "includeGlobalResourceTypes": True}})

    def create(self) -> str:
        self._put()  # recording starts once the delivery channel exists (ensure_config starts it)
        return self.name

    def update(self, found: Found, changes) -> None:
        if set(changes) - {"recording"}:
            self._put()
        if "recording" in changes:
            start_recording(self.run, self.name)

    def delete(self, found: Found) -> None:
        config = config_client(self.run)
        config.stop_configuration_recorder(ConfigurationRecorderName=found.id)
        config.delete_configuration_recorder(ConfigurationRecorderName=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


def start_recording(run: Run, name: str) -> None:
    config_client(run).start_configuration_recorder(ConfigurationRecorderName=name)


class DeliveryChannel(Resource):
    kind = "config-delivery-channel"

    def __init__(self, run: Run, component: str = "config-channel", bucket: str | None = None):
        super().__init__(run, component)
        self.bucket = bucket

    def desired(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "prefix": PREFIXES["config"]}

    def discover(self) -> Found | None:
        channels = config_client(self.run).describe_delivery_channels()["DeliveryChannels"]
        channel = next((c for c in channels if c["name"] == self.name), None)
        return Found(id=self.name, component=self.component, raw=channel, state={
            "bucket": channel.get("s3BucketName"), "prefix": channel.get("s3KeyPrefix")}) if channel else None

    def create(self) -> str:
        config_client(self.run).put_delivery_channel(DeliveryChannel={
            "name": self.name, "s3BucketName": self.bucket, "s3KeyPrefix": PREFIXES["config"]})
        return self.name

    def update(self, found: Found, changes) -> None:
        self.create()

    def delete(self, found: Found) -> None:
        config_client(self.run).delete_delivery_channel(DeliveryChannelName=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class ConfigRule(Resource):
    kind = "config-rule"

    def desired(self) -> dict[str, Any]:
        identifier, parameters = MANAGED_RULES[self.component]
        return {"source": identifier, "parameters": parameters}

    @staticmethod
    def _state(rule: dict) -> dict[str, Any]:
        return {"source": rule["Source"].get("SourceIdentifier"),
                "parameters": json.loads(rule.get("InputParameters") or "{}")}

    def discover(self) -> Found | None:
        rule = next((r for r in _rules(self.run) if r["ConfigRuleName"] == self.name), None)
        return Found(id=rule["ConfigRuleArn"], component=self.component, raw=rule, state=self._state(rule)) if rule else None

    def _put(self) -> None:
        spec = self.desired()
        rule: dict[str, Any] = {"ConfigRuleName": self.name, "Source": {"Owner": "AWS", "SourceIdentifier": spec["source"]}}
        if spec["parameters"]:
            rule["InputParameters"] = json.dumps(spec["parameters"])
        config_client(self.run).put_config_rule(ConfigRule=rule, Tags=tag_list(self.run.env_name, self.component))

    def create(self) -> str:
        self._put()
        return self.discover().id

    def update(self, found: Found, changes) -> None:
        self._put()

    def delete(self, found: Found) -> None:
        config_client(self.run).delete_config_rule(ConfigRuleName=found.raw["ConfigRuleName"])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        # Tags are not searchable for Config rules: our names (golive-<env>-...) mark them; env names
        # carry no '-', so this prefix is the environment's alone.
        prefix = resource_name(run.env_name, "")
        return [Found(id=r["ConfigRuleArn"], component=r["ConfigRuleName"].removeprefix(prefix), raw=r, state={})
                for r in _rules(run) if r["ConfigRuleName"].startswith(prefix)]


def _rules(run: Run) -> list[dict]:
    config, rules, token = config_client(run), [], None
    while True:
        page = config.describe_config_rules(**({"NextToken": token} if token else {}))
        rules.extend(page["ConfigRules"])
        token = page.get("NextToken")
        if not token:
            return rules


def service_role_arn(run: Run) -> str | None:
    """AWS Config's service-linked role, made if the account lacks it (AWS owns it: never deleted)."""
    iam = run.client("iam")
    roles = iam.list_roles(PathPrefix=SERVICE_ROLE_PATH)["Roles"]
    if roles:
        return roles[0]["Arn"]
    change = Change(action=Action.CREATE, kind="iam-service-linked-role", name="AWSServiceRoleForConfig",
                    note="AWS Config's own role; kept by destroy (other recorders may use it)")
    run.report(change)
    if not run.applying:
        return None
    return iam.create_service_linked_role(AWSServiceName="config.amazonaws.com")["Role"]["Arn"]


class ConfigRecord(Record):
    recorder: str | None
    recording: bool
    external: bool  # the account's own recorder, used as it is
    channel: Record | None
    rules: list[Record]


@task(**AWS_STEP)
def ensure_config(run: Run, bucket: str) -> ConfigRecord:
    """The recorder (the account's, or golive's), its delivery channel, recording on, and the rules."""
    config = config_client(run)
    ours = resource_name(run.env_name, "recorder")
    recorders = config.describe_configuration_recorders()["ConfigurationRecorders"]
    external = [r for r in recorders if r["name"] != ours]
    rules = []
    for component in MANAGED_RULES:
        outcome = ensure(ConfigRule(run, component))
        rules.append(Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change))
    if external:
        name = external[0]["name"]
        status = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])
        recording = bool(status["ConfigurationRecordersStatus"][0].get("recording"))
        return ConfigRecord(name=name, id=name, recorder=name, recording=recording, external=True, channel=None,
                            rules=rules, change=Change(action=Action.NOOP, kind="config-recorder", name=name,
                                                       id=name, note="the account's own recorder: used as it is"))
    role = service_role_arn(run)
    recorder = ConfigRecorder(run, role_arn=role)
    recorded = ensure(recorder)
    channel = ensure(DeliveryChannel(run, bucket=bucket))
    recording = recorded.found.state["recording"] if recorded.found else False
    if run.applying and recorded.change.action is Action.CREATE:
        start_recording(run, recorder.name)  # AWS starts a recorder only once its channel exists
        recording = True
    return ConfigRecord(name=recorder.name, id=recorded.id, change=recorded.change, recorder=recorder.name,
                        recording=recording or (recorded.change.is_change and run.applying), external=False,
                        channel=Record(name=resource_name(run.env_name, "config-channel"), id=channel.id,
                                       change=channel.change), rules=rules)


TEARDOWN_ORDER = [ConfigRule, ConfigRecorder, DeliveryChannel]
