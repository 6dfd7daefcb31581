"""The sandbox's AWS can take as long as AWS does: resources held in their transitional states.

moto 5.2.5 makes everything available at once (notes/moto-5.2.5.md). When GOLIVE_EMULATOR_DELAYS holds a
JSON object of {kind: seconds}, the sandbox's moto process keeps each new resource of that kind in the state
AWS shows while it works, for that long after the call that started the work, so the runbook's own
waiters wait as they would against AWS. benchmarks/timeline.py sets it from golive/timeline_model.toml,
scaled down; unset (the default), nothing is held and the sandbox answers as fast as before.

Kinds (the model's `emulate` keys) and what is held:
  rds-instance                   DBInstanceStatus 'creating' after CreateDBInstance
  elasticache-replication-group  Status 'creating' after CreateReplicationGroup
  nat-gateway                    State 'pending' after CreateNatGateway
  alb-provisioning               State.Code 'provisioning' after CreateLoadBalancer
  cloudfront-deploy              Status 'InProgress' after CreateDistribution and each UpdateDistribution
  ecs-service-rollout            runningCount 0 after CreateService (services_stable keeps waiting)
  ecs-task-start                 a RunTask task stays PENDING this long before its process starts
  acm-validation                 PENDING_VALIDATION this long (moto's own ACM_VALIDATION_WAIT)
  route53-change                 GetChange 'PENDING' after ChangeResourceRecordSets (moto: INSYNC at once,
                                 under one fixed change id; here each change gets its own)
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from typing import Any, Callable, NamedTuple

DELAYS_VARIABLE = "GOLIVE_EMULATOR_DELAYS"
READY_AT = "_golive_ready_at"
log = logging.getLogger("golive.sandbox.transitions")


def delays() -> dict[str, float]:
    """The held kinds and their seconds from the environment ({} when unset)."""
    raw = os.environ.get(DELAYS_VARIABLE, "").strip()
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in value.values()):
        raise ValueError(f"{DELAYS_VARIABLE} must be a JSON object of kind -> seconds (>= 0); got {raw!r}")
    return {str(k): float(v) for k, v in value.items()}


def held(obj: Any) -> bool:
    return time.monotonic() < obj.__dict__.get(READY_AT, 0.0)


def hold_attribute(cls: type, attribute: str, transitional: Any) -> None:
    """Make `cls.attribute` read `transitional` while an object is held, its own value otherwise."""
    original = next((vars(c)[attribute] for c in cls.__mro__ if attribute in vars(c)), None)
    store = f"_golive_{attribute}"

    def get(self):
        if held(self):
            return transitional
        if isinstance(original, property):
            return original.fget(self)
        return self.__dict__.get(store)

    def set_(self, value):
        if isinstance(original, property) and original.fset is not None:
            original.fset(self, value)
        else:
            self.__dict__[store] = value

    setattr(cls, attribute, property(get, set_))


def hold_after(cls: type, method: str, seconds: float, pick: Callable[[Any], Any] = lambda result: result) -> None:
    """After `cls.method` returns, hold the object it made or changed (`pick` finds it in the result)."""
    original = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        pick(result).__dict__[READY_AT] = time.monotonic() + seconds
        return result

    setattr(cls, method, wrapper)


def hold_route53_changes(seconds: float) -> None:
    """Each record change answers with an id of its own, PENDING until `seconds` have passed."""
    import itertools
    import threading

    from moto.route53.responses import Route53

    ready: dict[str, float] = {}
    numbers, lock = itertools.count(1), threading.Lock()
    change, get = Route53.change_resource_record_sets, Route53.get_change

    def change_resource_record_sets(self):
        answer = change(self)
        info = answer.result["ChangeInfo"]
        with lock:
            info["Id"] = f"/change/CGOLIVE{next(numbers):08d}"
            ready[info["Id"].rsplit("/", 1)[-1]] = time.monotonic() + seconds
        info["Status"] = "PENDING"
        return answer

    def get_change(self):
        answer = get(self)
        info = answer.result["ChangeInfo"]
        if time.monotonic() < ready.get(str(info["Id"]).rsplit("/", 1)[-1], 0.0):
            info["Status"] = "PENDING"
        return answer

    Route53.change_resource_record_sets, Route53.get_change = change_resource_record_sets, get_change


def task_start_delay() -> float:
    """How long a RunTask task stays PENDING before its process starts (golive/sandbox/ecs_emulation.py)."""
    return delays().get("ecs-task-start", 0.0)


class Held(NamedTuple):
    """A kind held in its transitional state: where moto keeps it, the attribute held and its value,
    and the backend methods whose result (or its first item, `first_of_result`) starts the hold."""

    module: str
    model: str
    attribute: str
    transitional: Any
    backend: str
    methods: tuple[str, ...]
    first_of_result: bool = False  # CloudFront's create and update return (distribution, ...)


HELD: dict[str, Held] = {
    "rds-instance": Held("moto.rds.models", "DBInstance", "status", "creating", "RDSBackend", ("create_db_instance",)),
    "elasticache-replication-group": Held("moto.elasticache.models", "ReplicationGroup", "status", "creating",
                                          "ElastiCacheBackend", ("create_replication_group",)),
    "nat-gateway": Held("moto.ec2.models.nat_gateways", "NatGateway", "state", "pending", "NatGatewayBackend",
                        ("create_nat_gateway",)),
    "alb-provisioning": Held("moto.elbv2.models", "FakeLoadBalancer", "state", "provisioning", "ELBv2Backend",
                             ("create_load_balancer",)),
    "cloudfront-deploy": Held("moto.cloudfront.models", "Distribution", "status", "InProgress", "CloudFrontBackend",
                              ("create_distribution_with_tags", "update_distribution"), first_of_result=True),
    "ecs-service-rollout": Held("moto.ecs.models", "Service", "running_count", 0, "EC2ContainerServiceBackend",
                                ("create_service",)),
}


def install() -> None:
    """Hold the kinds GOLIVE_EMULATOR_DELAYS names (call in the moto process before its server starts)."""
    wanted = delays()
    if not wanted:
        return
    log.info("holding transitional states: %s", ", ".join(f"{k} {v:g} s" for k, v in sorted(wanted.items())))
    for kind, held in HELD.items():
        if kind not in wanted:
            continue
        models = importlib.import_module(held.module)
        hold_attribute(getattr(models, held.model), held.attribute, held.transitional)
        for method in held.methods:
            hold_after(getattr(models, held.backend), method, wanted[kind],
                       pick=(lambda result: result[0]) if held.first_of_result else (lambda result: result))
    if "route53-change" in wanted:
        hold_route53_changes(wanted["route53-change"])
    if "acm-validation" in wanted:
        from moto import settings

        settings.ACM_VALIDATION_WAIT = wanted["acm-validation"]
