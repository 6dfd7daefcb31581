"""The cost estimate of what is deployed, kept beside the budget (plan 1.1, billing alerts).

Applying Phase 1 stores the estimate's inputs (golive/cost.py CostInputs: sizes, counts, usage
assumptions) in Parameter Store at /golive/<env>/cost/estimate-inputs, tagged like every parameter of the
environment and removed with them by teardown. Planning compares the file with them, so a plan says how a
change moves the monthly estimate ("+ USD 36.50/month: network.nat_gateways single -> per-az"), and
warns when the file's estimate is above its budget.

The record is written by Phase 1 for the whole file: a change that a later phase applies (task sizes in
Phase 3) is recorded when Phase 1 runs next, which the go-live always does first.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from golive.aws_errors import aws_error
from golive.changes import Record
from golive.cost import CostChange, CostInputs, budget_problem, compare, estimate
from golive.resource import Found, ensure
from golive.retry import AWS_STEP
from golive.run import Run, logger
from tasks.secrets import Parameter

COMPONENT = "cost/estimate-inputs"


class CostEstimate(Parameter):
    """The inputs of the last applied estimate, compared field by field (as named in the file)."""

    kind = "cost-estimate"

    def __init__(self, run: Run, component: str = COMPONENT):
        self.inputs = CostInputs.of(run.environment)
        super().__init__(run, component, self.inputs.to_json())

    def desired(self) -> dict[str, Any]:
        return {"monthly_usd": round(estimate(self.inputs).total, 2), **self.inputs.flat()}

    def deployed(self) -> CostInputs | None:
        try:
            item = self.ssm.get_parameter(Name=self.parameter)["Parameter"]
        except aws_error("ParameterNotFound"):
            return None
        return CostInputs.from_json(item["Value"])

    def discover(self) -> Found | None:
        deployed = self.deployed()
        if deployed is None:
            return None
        return Found(id=self.parameter, component=self.component, raw={"inputs": deployed},
                     state={"monthly_usd": round(estimate(deployed).total, 2), **deployed.flat()})

    def update(self, found: Found, changes) -> None:
        self.ssm.put_parameter(Name=self.parameter, Value=self.value, Type="String", Overwrite=True)


class CostRecord(Record):
    monthly_usd: float
    budget_usd: float
    change_sentence: str  # "+ USD 36.50/month (...): network.nat_gateways single -> per-az"
    budget_warning: str | None = None


@task(**AWS_STEP)
def ensure_cost_estimate(run: Run) -> CostRecord:
    """Record the file's estimate inputs (apply), or say how the file moves the recorded estimate and
    whether it is over budget (plan)."""
    record = CostEstimate(run)
    moved: CostChange = compare(record.deployed(), record.inputs)
    outcome = ensure(record)
    warning = budget_problem(run.environment, moved.after_usd)
    log = logger()
    if moved.moves or moved.before_usd is None:
        log.info(f"cost: {moved.sentence()}")
    if warning:
        log.warning(f"cost: {warning}")
    return CostRecord(name=record.name, id=outcome.id, change=outcome.change, monthly_usd=moved.after_usd,
                      budget_usd=run.environment.budget.monthly_limit_usd, change_sentence=moved.sentence(),
                      budget_warning=warning)
