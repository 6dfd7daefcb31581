"""The eight phases of the deployment plan, by number and short name, and the flows that automate them.

Flows are referenced by import path so that the CLI can validate `--phase` and print help without
importing Prefect. A phase with no flow yet is listed so that asking for it says so plainly.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


def load_flow(path: str) -> Callable:
    """The flow a "module:function" path names, imported on first use."""
    module, function = path.split(":")
    return getattr(importlib.import_module(module), function)


@dataclass(frozen=True)
class Ahead:
    """A part of a phase that stands on less than the whole phase: the go-live runs it as a flow of its own as
    soon as the phases in `after` are done, and hands its result to the phase as `parameter`. Run alone
    (`golive apply`, a plan), the phase does it itself."""

    flow_path: str  # "module:function"
    parameter: str  # the phase flow's parameter that takes its result
    after: tuple[int, ...]

    def flow(self) -> Callable:
        return load_flow(self.flow_path)


@dataclass(frozen=True)
class Phase:
    number: int
    name: str
    title: str
    flow_path: str | None  # "module:function", or None while the phase is not automated yet
    after: tuple[int, ...] = ()  # the phases it stands on: the go-live starts it once they are done
    ahead: Ahead | None = None  # a part the go-live runs before the phase's own turn
    # Phases of which it needs only the part run ahead (their `ahead`): the go-live starts it once those
    # parts are done; run one phase at a time, it comes after the whole phase, which then makes that part.
    after_ahead: tuple[int, ...] = ()

    @property
    def needs(self) -> tuple[int, ...]:
        """Every phase it comes after when phases run one at a time."""
        return (*self.after, *self.after_ahead)

    @property
    def automated(self) -> bool:
        return self.flow_path is not None

    def flow(self) -> Callable:
        if self.flow_path is None:
            raise LookupError(f"phase {self.number} ({self.name}) is not automated yet")
        return load_flow(self.flow_path)


PHASES: list[Phase] = [
    Phase(1, "infrastructure", "Infrastructure setup", "flows.infrastructure:infrastructure"),
    Phase(2, "containers", "Application containerization", "flows.containers:containers"),
    # The services start once the schema and the app's database login exist: Phase 5 runs its one-off
    # tasks on the backend's image (Phase 2) before Phase 3 starts what serves it. 3.3's load balancer needs
    # only Phase 1: the go-live makes it beside Phases 2 and 5 (in AWS, minutes of provisioning).
    Phase(3, "ecs", "ECS deployment", "flows.ecs:ecs", after=(1, 2, 5),
          ahead=Ahead("flows.ecs:load_balancer", "load_balancer", after=(1,))),
    # CloudFront needs the load balancer (Phase 3's part run ahead), not the services behind it: the go-live
    # makes the distribution beside Phases 5 and 3 (in AWS, its 5-minute deployment leaves the path). 4.2's
    # static files need only the bucket (Phase 1) and the app (Phase 2): published ahead, beside them too.
    Phase(4, "cdn", "CDN and performance", "flows.cdn:cdn", after=(1,), after_ahead=(3,),
          ahead=Ahead("flows.cdn:static_files", "static_files", after=(1, 2))),
    Phase(5, "data", "Database migration and data", "flows.data:data", after=(1, 2)),
    Phase(6, "cicd", "CI/CD pipeline", "flows.cicd:cicd", after=(3,)),
    # Phase 7 comes last (after 4 and 6, and 6 after 3: after every other phase): its closing security audit
    # then reads the whole environment and is the go-live's audit gate, not a second audit run after it.
    Phase(7, "monitoring", "Monitoring and security", "flows.monitoring:monitoring", after=(4, 6)),
    # Phase 8 is the go-live flow's own ending (flows/go_live.py): the gate, approval, cutover, watch.
    Phase(8, "launch", "Testing and go-live", None, after=(4, 5)),
]


def find_phase(ref: str) -> Phase:
    """A phase by number ('1') or short name ('infrastructure'); a clear error otherwise."""
    for phase in PHASES:
        if ref.strip().lower() in (str(phase.number), phase.name):
            return phase
    choices = ", ".join(f"{p.number}/{p.name}" for p in PHASES)
    raise LookupError(f"unknown phase {ref!r}; use a number or name: {choices}")


def dependency_order(phases: list[Phase]) -> list[Phase]:
    """The phases so that each comes after those it stands on (by number among equals): the order a
    one-phase-at-a-time run (`golive apply ENV`) takes. Phase 5 comes before Phase 3."""
    done: set[int] = set()
    ordered: list[Phase] = []
    remaining = sorted(phases, key=lambda p: p.number)
    while remaining:
        ready = next((p for p in remaining if all(n in done or n not in {r.number for r in remaining} for n in p.needs)),
                     None)
        if ready is None:
            raise ValueError(f"phases {[p.number for p in remaining]} depend on each other in a circle")
        ordered.append(ready)
        done.add(ready.number)
        remaining.remove(ready)
    return ordered


def automated() -> list[Phase]:
    """The automated phases, in dependency order."""
    return dependency_order([phase for phase in PHASES if phase.automated])
