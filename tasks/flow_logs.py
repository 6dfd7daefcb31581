"""Plan 7.2: VPC flow logs for the environment's VPC, every accepted and rejected flow, into the logs
bucket (S3 costs a fraction of CloudWatch Logs for data read only when investigating)."""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.changes import Record, known_after_apply
from golive.naming import ec2_filters, resource_name
from golive.resource import Ec2Resource, Found, ensure, owned_by
from golive.retry import AWS_STEP
from golive.run import Run
from tasks.network import Vpc


class VpcFlowLog(Ec2Resource):
    kind = "vpc-flow-log"
    describe_operation, result_key, id_key = "describe_flow_logs", "FlowLogs", "FlowLogId"
    replace_on = frozenset({"vpc", "destination", "traffic"})  # a flow log cannot be modified

    def __init__(self, run: Run, component: str = "flow-logs", vpc_id: str | None = None, bucket_arn: str | None = None):
        super().__init__(run, component)
        self.vpc_id, self.bucket_arn = vpc_id, bucket_arn

    def desired(self) -> dict[str, Any]:
        # No key prefix: AWS files them under AWSLogs/<account>/vpcflowlogs/ (moto 5.2.5 fails with a prefix).
        return {"vpc": known_after_apply(self.vpc_id), "destination": self.bucket_arn, "traffic": "ALL"}

    def observe(self, item: dict) -> dict[str, Any]:
        return {"vpc": item["ResourceId"], "destination": item.get("LogDestination"), "traffic": item["TrafficType"]}

    @classmethod
    def _describe_owned(cls, run: Run, component: str | None) -> list[dict]:
        # describe_flow_logs names its filter parameter Filter, not Filters.
        pages = run.client("ec2").get_paginator("describe_flow_logs").paginate(Filter=ec2_filters(run.env_name, component))
        return [item for page in pages for item in page["FlowLogs"] if owned_by(item, run.env_name, component)]

    def create(self) -> str:
        spec = self.desired()
        created = self.ec2_once.create_flow_logs(
            ResourceIds=[spec["vpc"]], ResourceType="VPC", TrafficType=spec["traffic"], LogDestinationType="s3",
            LogDestination=spec["destination"], MaxAggregationInterval=600,
            TagSpecifications=self.tag_specifications("vpc-flow-log"))
        if created.get("Unsuccessful"):
            problem = created["Unsuccessful"][0]["Error"]
            raise RuntimeError(f"flow logs for {spec['vpc']} refused: {problem['Code']}: {problem['Message']}")
        return created["FlowLogIds"][0]

    def delete(self, found: Found) -> None:
        self.ec2.delete_flow_logs(FlowLogIds=[found.id])


class FlowLogRecord(Record):
    vpc_id: str | None
    destination: str | None
    status: str | None = None


@task(**AWS_STEP)
def ensure_flow_logs(run: Run, bucket_arn: str) -> FlowLogRecord:
    """Flow logs of the environment's VPC into the logs bucket."""
    vpc = Vpc(run, "vpc").discover()
    if vpc is None and run.applying:
        raise RuntimeError(f"the VPC does not exist; run `golive apply {run.env_name} --phase infrastructure` first")
    flow_log = VpcFlowLog(run, vpc_id=vpc.id if vpc else None, bucket_arn=bucket_arn)
    outcome = ensure(flow_log)
    current = outcome.current(run, lambda: (flow_log._describe(run, flow_log.component) or [{}])[0])
    return FlowLogRecord(name=resource_name(run.env_name, "flow-logs"), id=outcome.id, change=outcome.change,
                         vpc_id=vpc.id if vpc else None, destination=bucket_arn,
                         status=current.get("DeliverLogsStatus"))


TEARDOWN_ORDER = [VpcFlowLog]
