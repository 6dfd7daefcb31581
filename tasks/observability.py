"""Plan section 1.1, billing alerts; and the alerts topic every later alarm publishes to.

An SNS topic with the environment file's email subscribed (AWS sends a confirmation the person must
accept), and an AWS Budgets monthly cost budget alerting at the file's thresholds by email and SNS.
"""

from __future__ import annotations

import json
from typing import Any

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import Record, known_after_apply
from golive.naming import COMPONENT_TAG, ENVIRONMENT_TAG, resource_name, tag_list, tag_value
from golive.resource import Found, Resource, ensure, owned_by
from golive.retry import AWS_STEP
from golive.run import Run


class AlertsTopic(Resource):
    kind = "sns-topic"

    def __init__(self, run: Run, component: str = "alerts", email: str = "", account: str = ""):
        super().__init__(run, component)
        self.email, self.account = email, account

    @property
    def sns(self):
        return self.run.client("sns")

    def _arn(self) -> str:
        return f"arn:aws:sns:{self.run.environment.region}:{self.account}:{self.name}"

    def _policy(self) -> dict:
        # Budgets and CloudWatch alarms publish here; only from this account.
        return {"Version": "2012-10-17", "Statement": [{
            "Sid": "AlertSources", "Effect": "Allow",
            "Principal": {"Service": ["budgets.amazonaws.com", "cloudwatch.amazonaws.com"]},
            "Action": "SNS:Publish", "Resource": self._arn(),
            "Condition": {"StringEquals": {"aws:SourceAccount": self.account}},
        }]}

    def desired(self) -> dict[str, Any]:
        return {"policy": self._policy(), "email_subscriptions": [self.email]}

    def discover(self) -> Found | None:
        arn = self._arn()
        try:
            attributes = self.sns.get_topic_attributes(TopicArn=arn)["Attributes"]
        except aws_error("NotFound"):
            return None
        return Found(id=arn, component=self.component, raw=attributes, state={
            "policy": json.loads(attributes.get("Policy", "{}")),
            "email_subscriptions": sorted(s["Endpoint"] for s in self._subscriptions(arn)),
        })

    def _subscriptions(self, arn: str) -> list[dict]:
        pages = self.sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
        return [s for page in pages for s in page["Subscriptions"] if s["Protocol"] == "email"]

    def create(self) -> str:
        arn = self.sns.create_topic(
            Name=self.name, Attributes={"Policy": json.dumps(self._policy())},
            Tags=tag_list(self.run.env_name, self.component),
        )["TopicArn"]
        self.sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=self.email)
        return arn

    def update(self, found: Found, changes) -> None:
        if "policy" in changes:
            self.sns.set_topic_attributes(TopicArn=found.id, AttributeName="Policy",
                                          AttributeValue=json.dumps(self._policy()))
        if "email_subscriptions" in changes:
            for subscription in self._subscriptions(found.id):
                # A subscription still pending confirmation has no ARN yet and cannot be removed.
                if subscription["Endpoint"] != self.email and subscription["SubscriptionArn"].startswith("arn:"):
                    self.sns.unsubscribe(SubscriptionArn=subscription["SubscriptionArn"])
            if self.email not in found.state["email_subscriptions"]:
                self.sns.subscribe(TopicArn=found.id, Protocol="email", Endpoint=self.email)

    def delete(self, found: Found) -> None:
        self.sns.delete_topic(TopicArn=found.id)  # its subscriptions go with it

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        sns = run.client("sns")
        prefix = resource_name(run.env_name, "")
        found = []
        for page in sns.get_paginator("list_topics").paginate():
            for topic in page["Topics"]:
                arn = topic["TopicArn"]
                name = arn.rsplit(":", 1)[-1]
                if not name.startswith(prefix):
                    continue
                tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}
                if tags.get(ENVIRONMENT_TAG) == run.env_name:  # "golive-prod-" also prefixes "golive-prod-eu-"
                    found.append(Found(id=arn, state={}, component=name.removeprefix(prefix)))
        return found


class MonthlyBudget(Resource):
    """A monthly cost budget with an alert per threshold. Budgets are per account, found by name."""

    kind = "budget"
    sandbox_lacks = {"limit_usd": "update_budget"}  # moto 5.2.5 answers it with HTTP 500

    def __init__(self, run: Run, component: str = "monthly", account: str = "", topic_arn: str | None = None):
        super().__init__(run, component)
        self.topic_arn = topic_arn
        self.account = account or run.account_id()  # teardown builds one from what it found

    @property
    def budgets(self):
        # Budgets is a global service served from us-east-1.
        return self.run.client("budgets")

    def desired(self) -> dict[str, Any]:
        settings = self.run.environment.budget
        return {"limit_usd": float(settings.monthly_limit_usd),
                "alert_thresholds_percent": [float(t) for t in settings.alert_thresholds_percent]}

    def discover(self) -> Found | None:
        try:
            budget = self.budgets.describe_budget(AccountId=self.account, BudgetName=self.name)["Budget"]
        except aws_error("NotFoundException"):
            return None
        notifications = self.budgets.describe_notifications_for_budget(
            AccountId=self.account, BudgetName=self.name)["Notifications"]
        return Found(id=self.name, component=self.component, raw=budget, state={
            "limit_usd": float(budget["BudgetLimit"]["Amount"]),
            "alert_thresholds_percent": sorted(float(n["Threshold"]) for n in notifications),
        })

    def _notification(self, threshold: float) -> dict:
        return {"NotificationType": "ACTUAL", "ComparisonOperator": "GREATER_THAN",
                "Threshold": threshold, "ThresholdType": "PERCENTAGE"}

    def _subscribers(self) -> list[dict]:
        subscribers = [{"SubscriptionType": "EMAIL", "Address": self.run.environment.alerts_email}]
        if self.topic_arn:
            subscribers.append({"SubscriptionType": "SNS", "Address": self.topic_arn})
        return subscribers

    def _budget(self) -> dict:
        return {"BudgetName": self.name, "BudgetType": "COST", "TimeUnit": "MONTHLY",
                "BudgetLimit": {"Amount": f"{self.desired()['limit_usd']:.2f}", "Unit": "USD"}}

    def create(self) -> str:
        self.budgets.create_budget(
            AccountId=self.account, Budget=self._budget(),
            NotificationsWithSubscribers=[
                {"Notification": self._notification(t), "Subscribers": self._subscribers()}
                for t in self.desired()["alert_thresholds_percent"]
            ],
        )
        return self.name

    def update(self, found: Found, changes) -> None:
        if "limit_usd" in changes:
            self.budgets.update_budget(AccountId=self.account, NewBudget=self._budget())
        if "alert_thresholds_percent" in changes:
            current = set(found.state["alert_thresholds_percent"])
            wanted = set(self.desired()["alert_thresholds_percent"])
            for threshold in current - wanted:
                self.budgets.delete_notification(AccountId=self.account, BudgetName=self.name,
                                                 Notification=self._notification(threshold))
            for threshold in wanted - current:
                self.budgets.create_notification(AccountId=self.account, BudgetName=self.name,
                                                 Notification=self._notification(threshold),
                                                 Subscribers=self._subscribers())

    def delete(self, found: Found) -> None:
        self.budgets.delete_budget(AccountId=self.account, BudgetName=found.id)

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        found = cls(run).discover()
        return [found] if found else []


class TopicRecord(Record):
    email: str


@task(**AWS_STEP)
def ensure_alerts_topic(run: Run) -> TopicRecord:
    """The SNS topic every alarm and budget alert goes to, with the file's email subscribed."""
    topic = AlertsTopic(run, email=run.environment.alerts_email, account=run.account_id())
    outcome = ensure(topic)
    return TopicRecord(name=topic.name, id=outcome.id, change=outcome.change, email=topic.email)


@task(**AWS_STEP)
def ensure_budget(run: Run, topic: TopicRecord) -> Record:
    """The plan's billing alerts: a monthly budget at the file's limit, alerting at each threshold."""
    budget = MonthlyBudget(run, account=run.account_id(), topic_arn=topic.id)
    outcome = ensure(budget)
    return Record(name=budget.name, id=outcome.id, change=outcome.change)


class MetricAlarm(Resource):
    """A CloudWatch alarm that notifies the alerts topic. put_metric_alarm creates and updates alike."""

    kind = "cloudwatch-alarm"

    def __init__(self, run: Run, component: str, spec: dict[str, Any] | None = None, topic_arn: str | None = None):
        super().__init__(run, component)
        self.spec, self.topic_arn = spec or {}, topic_arn

    @property
    def cloudwatch(self):
        return self.run.client("cloudwatch")

    def desired(self) -> dict[str, Any]:
        return {**self.spec, "actions": [known_after_apply(self.topic_arn)]}

    @staticmethod
    def _state(alarm: dict) -> dict[str, Any]:
        common = {"comparison": alarm["ComparisonOperator"], "threshold": float(alarm["Threshold"]),
                  "evaluation_periods": alarm["EvaluationPeriods"], "actions": sorted(alarm.get("AlarmActions", []))}
        if alarm.get("Metrics"):  # metric math (a rate): the queries are what we compare
            return {**common, "metrics": [_query(m) for m in alarm["Metrics"]]}
        return {
            **common,
            "namespace": alarm.get("Namespace"), "metric": alarm.get("MetricName"),
            # A percentile (p95) is an extended statistic: AWS reports it in its own field.
            "statistic": alarm.get("Statistic") or alarm.get("ExtendedStatistic"),
            "dimensions": {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])},
            "period": alarm.get("Period"),
        }

    def discover(self) -> Found | None:
        alarms = self.cloudwatch.describe_alarms(AlarmNames=[self.name])["MetricAlarms"]
        return Found(id=alarms[0]["AlarmArn"], state=self._state(alarms[0]), component=self.component,
                     raw=alarms[0]) if alarms else None

    def _put(self, tags: bool) -> None:
        spec = self.desired()
        kwargs = dict(
            AlarmName=self.name, ComparisonOperator=spec["comparison"], Threshold=spec["threshold"],
            EvaluationPeriods=spec["evaluation_periods"], AlarmActions=spec["actions"], OKActions=spec["actions"],
            TreatMissingData="missing",
        )
        if "metrics" in spec:
            kwargs["Metrics"] = spec["metrics"]
        else:
            statistic = {"ExtendedStatistic" if spec["statistic"].startswith("p") else "Statistic": spec["statistic"]}
            kwargs.update(Namespace=spec["namespace"], MetricName=spec["metric"], Period=spec["period"],
                          Dimensions=[{"Name": k, "Value": v} for k, v in spec["dimensions"].items()], **statistic)
        if tags:
            kwargs["Tags"] = tag_list(self.run.env_name, self.component)
        self.cloudwatch.put_metric_alarm(**kwargs)

    def create(self) -> str:
        self._put(tags=True)
        return self.cloudwatch.describe_alarms(AlarmNames=[self.name])["MetricAlarms"][0]["AlarmArn"]

    def update(self, found: Found, changes) -> None:
        self._put(tags=False)

    def delete(self, found: Found) -> None:
        self.cloudwatch.delete_alarms(AlarmNames=[found.raw.get("AlarmName", self.name)])

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return owned_alarms(run, run.client("cloudwatch"))


def owned_alarms(run: Run, cloudwatch) -> list[Found]:
    """The environment's metric alarms in one region, by their tags (whatever their names): not the alarms
    AWS makes for a target-tracking policy, which go with the policy."""
    prefix = resource_name(run.env_name, "")
    found = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        for item in page["MetricAlarms"]:
            tags = cloudwatch.list_tags_for_resource(ResourceARN=item["AlarmArn"])["Tags"]
            if owned_by({"Tags": tags}, run.env_name, None):
                found.append(Found(id=item["AlarmArn"], state={}, raw=item,
                                   component=tag_value(tags, COMPONENT_TAG) or item["AlarmName"].removeprefix(prefix)))
    return found


def alarm(namespace: str, metric: str, dimensions: dict[str, str], comparison: str, threshold: float,
          statistic: str = "Average", period: int = 300, evaluation_periods: int = 2) -> dict[str, Any]:
    return {"namespace": namespace, "metric": metric, "statistic": statistic, "dimensions": dimensions,
            "comparison": comparison, "threshold": float(threshold), "period": period,
            "evaluation_periods": evaluation_periods}


def _query(query: dict) -> dict[str, Any]:
    """One metric-math query in the shape put_metric_alarm takes (AWS adds fields we do not set)."""
    shaped = {"Id": query["Id"], "ReturnData": query.get("ReturnData", True)}
    if "Expression" in query:
        shaped.update(Expression=query["Expression"], Label=query.get("Label", ""))
    else:
        stat = query["MetricStat"]
        shaped["MetricStat"] = {"Metric": {"Namespace": stat["Metric"]["Namespace"],
                                           "MetricName": stat["Metric"]["MetricName"],
                                           "Dimensions": sorted(stat["Metric"].get("Dimensions", []), key=lambda d: d["Name"])},
                                "Period": stat["Period"], "Stat": stat["Stat"]}
    return shaped


def rate_alarm(namespace: str, part: str, whole: str, dimensions: dict[str, str], percent: float,
               period: int = 300, evaluation_periods: int = 2, extra_parts: tuple[str, ...] = ()) -> dict[str, Any]:
    """An alarm on 100 * (part [+ extra parts]) / whole, e.g. 5xx answers as a share of requests."""
    dims = [{"Name": k, "Value": v} for k, v in sorted(dimensions.items())]
    metrics = [part, *extra_parts]
    queries = [_query({"Id": f"m{i}", "ReturnData": False, "MetricStat": {
        "Metric": {"Namespace": namespace, "MetricName": name, "Dimensions": dims}, "Period": period, "Stat": "Sum"}})
        for i, name in enumerate([*metrics, whole])]
    parts = " + ".join(f"FILL(m{i}, 0)" for i in range(len(metrics)))
    queries.append(_query({"Id": "rate", "Expression": f"100 * ({parts}) / m{len(metrics)}",
                           "Label": f"{'+'.join(metrics)} per 100 {whole}", "ReturnData": True}))
    return {"metrics": queries, "comparison": "GreaterThanThreshold", "threshold": float(percent),
            "evaluation_periods": evaluation_periods}


@task(**AWS_STEP)
def ensure_alarms(run: Run, topic: TopicRecord, alarms: dict[str, dict[str, Any]]) -> list[Record]:
    """CloudWatch alarms (component -> spec) that alert the topic."""
    records = []
    for component, spec in alarms.items():
        outcome = ensure(MetricAlarm(run, component, spec, topic.id))
        records.append(Record(name=resource_name(run.env_name, component), id=outcome.id, change=outcome.change))
    return records


TEARDOWN_ORDER: list[type[Resource]] = [MetricAlarm, MonthlyBudget, AlertsTopic]
