"""Plan 7.2: a multi-region CloudTrail trail, if the account has none logging.

An account's existing multi-region trail that is logging (an organisation's, Control Tower's) already
records this environment's API calls: it is used as it is, and a second trail (whose management events
would be billed) is not made. Otherwise golive-<env>-trail records every region's management events,
global services included, into the logs bucket, with log file validation (a digest chain that shows
tampering).
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Action, Change, Record
from golive.naming import ENVIRONMENT_TAG, resource_name, tag_list
from golive.resource import Found, Resource, ensure
from golive.retry import AWS_STEP
from golive.run import Run


class Trail(Resource):
    kind = "cloudtrail-trail"

    def __init__(self, run: Run, component: str = "trail", bucket: str | None = None):
        super().__init__(run, component)
        self.bucket = bucket

    @property
    def cloudtrail(self):
        return self.run.client("cloudtrail")

    def desired(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "multi_region": True, "global_events": True, "validation": True, "logging": True}

    def _state(self, trail: dict) -> dict[str, Any]:
        status = self.cloudtrail.get_trail_status(Name=trail["TrailARN"])
        return {"bucket": trail.get("S3BucketName"), "multi_region": trail.get("IsMultiRegionTrail"),
                "global_events": trail.get("IncludeGlobalServiceEvents"),
                "validation": trail.get("LogFileValidationEnabled"), "logging": status.get("IsLogging")}

    def discover(self) -> Found | None:
        trail = next((t for t in self.cloudtrail.describe_trails(includeShadowTrails=False)["trailList"]
                      if t["Name"] == self.name), None)
        return Found(id=trail["TrailARN"], component=self.component, raw=trail, state=self._state(trail)) if trail else None

    def create(self) -> str:
        arn = self.cloudtrail.create_trail(
            Name=self.name, S3BucketName=self.bucket, IsMultiRegionTrail=True, IncludeGlobalServiceEvents=True,
            EnableLogFileValidation=True, TagsList=tag_list(self.run.env_name, self.component))["TrailARN"]
        self.cloudtrail.start_logging(Name=arn)
        return arn

    def update(self, found: Found, changes) -> None:
        if set(changes) - {"logging"}:
            self.cloudtrail.update_trail(Name=found.id, S3BucketName=self.bucket, IsMultiRegionTrail=True,
                                         IncludeGlobalServiceEvents=True, EnableLogFileValidation=True)
        if "logging" in changes:
            self.cloudtrail.start_logging(Name=found.id)

    def delete(self, found: Found) -> None:
        self.cloudtrail.delete_trail(Name=found.raw["Name"])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        if found is None:
            return []
        tags = run.client("cloudtrail").list_tags(ResourceIdList=[found.id])["ResourceTagList"]
        mine = {t["Key"]: t["Value"] for r in tags for t in r.get("TagsList", [])}.get(ENVIRONMENT_TAG) == run.env_name
        return [found] if mine else []


def logging_trails(run: Run) -> list[dict]:
    """Multi-region trails of the account (any owner) that are logging now."""
    cloudtrail = run.client("cloudtrail")
    trails = cloudtrail.describe_trails(includeShadowTrails=True)["trailList"]
    return [t for t in trails if t.get("IsMultiRegionTrail")
            and cloudtrail.get_trail_status(Name=t["TrailARN"]).get("IsLogging")]


class TrailRecord(Record):
    external: bool
    multi_region: bool
    logging: bool


@task(**AWS_STEP)
def ensure_trail(run: Run, bucket: str) -> TrailRecord:
    """golive's trail, unless the account already has a multi-region trail logging."""
    ours = resource_name(run.env_name, "trail")
    others = [t for t in logging_trails(run) if t["Name"] != ours]
    if others and Trail(run).discover() is None:
        trail = others[0]
        return TrailRecord(name=trail["Name"], id=trail["TrailARN"], external=True, multi_region=True, logging=True,
                           change=Change(action=Action.NOOP, kind="cloudtrail-trail", name=trail["Name"],
                                         id=trail["TrailARN"], note="the account's own multi-region trail: used as it is"))
    trail = Trail(run, bucket=bucket)
    outcome = ensure(trail)
    state = outcome.found.state if outcome.found and not outcome.change.is_change else trail.desired()
    return TrailRecord(name=ours, id=outcome.id, change=outcome.change, external=False,
                       multi_region=bool(state["multi_region"]), logging=bool(state["logging"]) and bool(outcome.id))


TEARDOWN_ORDER = [Trail]
