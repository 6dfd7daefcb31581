"""The predicted timeline of a go-live from nothing against real AWS (`golive plan ENV --timeline`).

What waits on what is read from the runbook's own code, not from a second copy of it:
- between phases, golive/phases.py's `after` graph, which the go-live's scheduler follows (a phase starts
  once the phases it stands on are done);
- inside a phase, the flow's source (parsed, never run): a task `.submit`ted starts once the futures its
  arguments name are done (and whatever the flow itself had waited for when it submitted it); a task
  called directly, a `.result()`, or a helper that does either, makes the flow wait there, so everything
  submitted after it starts after it. A needless wait in a flow therefore shows here as a longer path.
How long each step takes comes from golive/timeline_model.toml (sources cited there), per the file:
Multi-AZ or not, NAT per zone, the load test's duration, the cutover's steps and bake time.

The go-live's own ending follows flows/go_live.py: the restore verification from the end of Phase 5; the
launch gate once it and every phase are done (the audit gate is Phase 7's last step); the approval; the
DNS cutover. Post-launch monitoring follows the cutover and is shown, not counted: the total is to the
end of the cutover.
"""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from golive.config import Environment
from golive.phases import PHASES

MODEL_FILE = Path(__file__).resolve().parent / "timeline_model.toml"
# What an apply run takes at each `if` the flows make about the run (the timeline is of an apply run).
# The go-live hands Phase 4 its static files and Phase 3 its load balancer (phases.py `ahead`).
APPLY_RUN = {"run.applying": True, "not run.applying": False, "rollback": False, "restore is None": False,
             "static_files is None": False, "load_balancer is None": False}


@dataclass
class Step:
    """One step of the timeline: a task call site in a flow (a comprehension's tasks run at once: one step)."""

    key: str
    stage: str  # the phase or launch stage it belongs to
    task: str
    label: str
    seconds: float
    after: set[str] = field(default_factory=set)
    what: str = ""
    emulate: str | None = None
    aws_seconds: float = 0.0  # the part of `seconds` that is AWS's wait (scaled by the benchmark)
    start: float = 0.0
    end: float = 0.0
    critical: bool = False


@dataclass
class Stage:
    name: str
    start: float
    end: float


@dataclass
class Timeline:
    environment: str
    steps: list[Step]
    stages: list[Stage]
    critical_path: list[Step]
    total: float  # seconds from the go-live's start to the end of the DNS cutover
    notes: list[str]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


# ---- the model ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> dict:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _field(env: Environment, dotted: str) -> Any:
    value: Any = env
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def step_seconds(model: dict, env: Environment, task: str, *, last_iteration: bool = False) -> tuple[float, float, dict]:
    """(seconds, of which AWS's part, the model entry) for one task of this file. AWS's part is what the
    sandbox benchmark scales; the file's own durations (file_seconds) and `scaled = false` work are kept."""
    entry = model.get("steps", {}).get(task)
    if entry is None:
        seconds = float(model["defaults"]["task_seconds"])
        return seconds, seconds, {}
    seconds = float(entry.get("seconds", model["defaults"]["task_seconds"]))
    for condition in entry.get("when", []):
        if "last_iteration" in condition:
            matched = condition["last_iteration"] == last_iteration
        elif "is_set" in condition:
            matched = (_field(env, condition["field"]) is not None) == condition["is_set"]
        else:
            matched = _field(env, condition["field"]) == condition["equals"]
        if matched:
            seconds = float(condition["seconds"])
            break
    from_file = float(_field(env, entry["file_seconds"])) if "file_seconds" in entry else 0.0
    aws = float(entry.get("aws_seconds", seconds)) if entry.get("scaled", True) else 0.0
    return seconds + from_file, min(aws, seconds), entry


# ---- reading the flows --------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _module(name: str) -> tuple[ast.Module, str] | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    path = Path(spec.origin)
    return ast.parse(path.read_text(), filename=str(path)), name


def _decorated_as(node: ast.FunctionDef, names: set[str]) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name) and target.id in names:
            return True
    return False


@dataclass
class _Function:
    node: ast.FunctionDef
    module: str
    is_task: bool
    is_flow: bool


@lru_cache(maxsize=None)
def _resolve(module: str, name: str) -> _Function | None:
    """A function by the name it has in `module`: defined there, or imported from one of our packages."""
    parsed = _module(module)
    if parsed is None:
        return None
    tree, _ = parsed
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return _Function(node, module, _decorated_as(node, {"task"}), _decorated_as(node, {"flow"}))
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("tasks", "flows"):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    return _resolve(node.module, alias.name)
    return None


def _contains_tasks(function: _Function, depth: int = 0) -> bool:
    """Whether calling this plain function runs tasks (so the flow waits on them there)."""
    if depth > 3:
        return False
    for call in ast.walk(function.node):
        if not isinstance(call, ast.Call):
            continue
        if isinstance(call.func, ast.Attribute) and call.func.attr == "submit":
            return True
        if isinstance(call.func, ast.Name):
            callee = _resolve(function.module, call.func.id)
            if callee and (callee.is_task or callee.is_flow or _contains_tasks(callee, depth + 1)):
                return True
    return False


class _FlowReader:
    """Walks one flow function's body in order, as the flow thread runs it, and records its task steps."""

    def __init__(self, builder: "_Builder", stage: str, loops: dict[str, int]):
        self.builder, self.stage, self.loops = builder, stage, loops
        self.waited: set[str] = set()  # what the flow thread has waited for so far
        self.iteration_last = False
        self.in_loop = 0  # inside a loop read once: its turns' tasks are one step

    def read(self, function: _Function, bound: dict[str, set[str]] | None = None) -> set[str]:
        names: dict[str, set[str]] = dict(bound or {})
        returned: set[str] = set()
        self._body(function, function.node.body, names, returned)
        return returned

    # statements
    def _body(self, function: _Function, body: list[ast.stmt], names: dict, returned: set) -> None:
        for statement in body:
            self._statement(function, statement, names, returned)

    def _statement(self, function: _Function, node: ast.stmt, names: dict, returned: set) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)):
            return
        if isinstance(node, ast.Assign):
            value = self._expr(function, node.value, names, label=_target_label(node.targets[0]))
            for target in node.targets:
                self._bind(target, value, names)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            value = self._expr(function, node.value, names, label=_target_label(node.target))
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                value = value | names.get(node.target.id, set())
            self._bind(node.target, value, names)
        elif isinstance(node, ast.Expr):
            self._expr(function, node.value, names)
        elif isinstance(node, ast.Return) and node.value is not None:
            returned |= self._expr(function, node.value, names)
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if test in APPLY_RUN:
                self._body(function, node.body if APPLY_RUN[test] else node.orelse, names, returned)
            else:
                self._expr(function, node.test, names)
                self._body(function, node.body, names, returned)
                self._body(function, node.orelse, names, returned)
        elif isinstance(node, ast.For):
            iterable = self._expr(function, node.iter, names)
            unrolled = ast.unparse(node.iter) in self.loops  # turns known from the file, in order
            turns = self.loops.get(ast.unparse(node.iter), 1)
            self.in_loop += not unrolled  # otherwise its turns' tasks are read once, as one step
            for turn in range(turns):
                self.iteration_last = unrolled and turn == turns - 1
                self._bind(node.target, iterable, names)
                self._body(function, node.body, names, returned)
            self.iteration_last = False
            self.in_loop -= not unrolled
        elif isinstance(node, (ast.With, ast.Try)):
            for part in ("body", "handlers", "orelse", "finalbody"):
                for child in getattr(node, part, []) or []:
                    if isinstance(child, ast.ExceptHandler):
                        continue  # the failure path: not part of a run that succeeds
                    self._statement(function, child, names, returned)
        elif isinstance(node, ast.Raise):
            return

    def _bind(self, target: ast.expr, value: set[str], names: dict) -> None:
        if isinstance(target, ast.Name):
            names[target.id] = set(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._bind(element, value, names)
        elif isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
            names[target.value.id] = names.get(target.value.id, set()) | value

    # expressions: each returns the steps its value depends on
    def _expr(self, function: _Function, node: ast.expr | None, names: dict, label: str = "",
              each: bool = False) -> set[str]:
        if node is None:
            return set()
        if isinstance(node, ast.Name):
            return set(names.get(node.id, set()))
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            inner = dict(names)
            for generator in node.generators:
                self._bind(generator.target, self._expr(function, generator.iter, inner), inner)
            parts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            return set().union(*(self._expr(function, p, inner, label, each=True) for p in parts))
        if isinstance(node, ast.IfExp):
            test = ast.unparse(node.test)
            if test in APPLY_RUN:
                return self._expr(function, node.body if APPLY_RUN[test] else node.orelse, names, label, each)
        if isinstance(node, ast.Lambda):
            return set()
        if isinstance(node, ast.Call):
            return self._call(function, node, names, label, each)
        found: set[str] = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                found |= self._expr(function, child, names, label, each)
        return found

    def _arguments(self, function: _Function, node: ast.Call, names: dict, label: str, each: bool) -> set[str]:
        found: set[str] = set()
        for argument in [*node.args, *(k.value for k in node.keywords)]:
            found |= self._expr(function, argument, names, label, each)
        return found

    def _call(self, function: _Function, node: ast.Call, names: dict, label: str, each: bool) -> set[str]:
        callee = node.func
        if isinstance(callee, ast.Attribute) and callee.attr == "submit" and isinstance(callee.value, ast.Name):
            needs = self._arguments(function, node, names, label, each)
            return {self.builder.add(self.stage, callee.value.id, label, needs | self.waited, each or self.in_loop > 0,
                                     self.iteration_last)}
        if isinstance(callee, ast.Attribute) and callee.attr == "result":
            value = self._expr(function, callee.value, names, label, each)
            self.waited |= value
            return value
        if isinstance(callee, ast.Name):
            target = _resolve(function.module, callee.id)
            needs = self._arguments(function, node, names, label, each)
            if target is not None and target.is_task:
                key = self.builder.add(self.stage, callee.id, label, needs | self.waited, each, self.iteration_last)
                self.waited = {key}
                return {key}
            if target is not None and (target.is_flow or _contains_tasks(target)):
                parameters = [a.arg for a in target.node.args.args]
                bound = {p: needs for p in parameters}
                value = self.read(target, bound)
                self.waited |= value
                return value | needs
            return needs
        return self._expr(function, callee, names, label, each) | self._arguments(function, node, names, label, each)


def _target_label(target: ast.expr) -> str:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Subscript) and isinstance(target.value, ast.Name):
        return target.value.id
    return ""


class _Builder:
    def __init__(self, model: dict, env: Environment, held: set[str] | None = None):
        self.model, self.env, self.held = model, env, held
        self.steps: dict[str, Step] = {}

    def add(self, stage: str, task: str, label: str, after: set[str], each: bool, last: bool) -> str:
        seconds, aws, entry = step_seconds(self.model, self.env, task, last_iteration=last)
        if self.held is not None and entry and aws and entry.get("emulate") not in self.held:
            # A wait the sandbox does not hold (a failover, a restore by pg_dump): there it is an API step.
            default = float(self.model["defaults"]["task_seconds"])
            seconds, aws = seconds - aws + default, default
        key = f"{stage}:{task}#{len(self.steps)}"
        shown = task + (f" ({label})" if label and label != task else "") + (" [each, at once]" if each else "")
        self.steps[key] = Step(key=key, stage=stage, task=task, label=shown, seconds=seconds, after=set(after),
                               what=entry.get("what", self.model["defaults"]["what"]), emulate=entry.get("emulate"),
                               aws_seconds=aws)
        return key

    def stage_gate(self, stage: str, after: Iterable[str]) -> str:
        """A zero-length step standing for 'this stage may start': after the steps that end what it waits on."""
        key = f"{stage}:start#{len(self.steps)}"
        self.steps[key] = Step(key=key, stage=stage, task="start", label=f"{stage} starts", seconds=0.0,
                               after=set(after), what="")
        return key

    def read_flow(self, stage: str, flow_path: str, gate: str, loops: dict[str, int] | None = None) -> set[str]:
        """The steps of one flow started at `gate`; returns every step it made (the flow ends when all end)."""
        module, name = flow_path.split(":")
        function = _resolve(module, name)
        if function is None:
            raise LookupError(f"cannot find {flow_path} to read its steps")
        before = set(self.steps)
        reader = _FlowReader(self, stage, loops or {})
        reader.waited = {gate}
        reader.read(function)
        made = set(self.steps) - before
        for key in made:
            if not self.steps[key].after:
                self.steps[key].after = {gate}
        return made | {gate}


# ---- scheduling ---------------------------------------------------------------------------------------------

def _schedule(steps: dict[str, Step], scale: float = 1.0) -> None:
    """Earliest start and end of each step (steps are made in an order where what they wait on comes first)."""
    for step in steps.values():
        duration = step.seconds - step.aws_seconds * (1 - scale)
        step.start = max((steps[k].end for k in step.after), default=0.0)
        step.end = step.start + duration


def _critical_path(steps: dict[str, Step], last: str) -> list[Step]:
    path = [steps[last]]
    while path[-1].after:
        path.append(max((steps[k] for k in path[-1].after), key=lambda s: s.end))
    for step in path:
        step.critical = True
    return [s for s in reversed(path) if s.seconds > 0 or s.task != "start"]


def predict(env: Environment, *, model: dict | None = None, scale: float = 1.0, held: set[str] | None = None) -> Timeline:
    """The timeline of a go-live of `env` from nothing. scale < 1 shortens AWS's waits only (the file's own
    durations, such as the load test and the cutover's bake time, are kept); held: the emulated kinds the
    sandbox holds (other modelled waits count as API steps): the sandbox benchmark's view."""
    model = model or load_model()
    builder = _Builder(model, env, held)
    ends: dict[str, set[str]] = {}
    stages: dict[str, tuple[str, set[str]]] = {}

    # Phases 1-7 as the go-live's scheduler runs them (flows/go_live.py run_phases).
    remaining = [p for p in PHASES if p.number != 8 and p.automated]
    done: set[int] = set()
    def phase_ends(numbers: Iterable[int]) -> set[str]:
        return set().union(*(ends[f"phase {d}"] for d in numbers))

    while remaining:
        phase = next(p for p in remaining if all(d in done for d in (*p.needs, *(p.ahead.after if p.ahead else ()))))
        remaining.remove(phase)
        stage = f"phase {phase.number} {phase.name}"
        ahead: set[str] = set()
        if phase.ahead:  # its part that the go-live runs as soon as its own phases are done
            ahead_stage = f"{stage} (ahead: {phase.ahead.flow_path.split(':')[1].replace('_', ' ')})"
            ahead_gate = builder.stage_gate(ahead_stage, phase_ends(phase.ahead.after))
            ahead = builder.read_flow(ahead_stage, phase.ahead.flow_path, ahead_gate)
            stages[ahead_stage] = (ahead_gate, ahead)
        # A phase of which it needs only the part run ahead: that part's end (the whole phase's, if it has none).
        parts = set().union(*(ends.get(f"phase {d} ahead", ends[f"phase {d}"]) for d in phase.after_ahead))
        gate = builder.stage_gate(stage, phase_ends(phase.after) | ahead | parts)
        made = builder.read_flow(stage, phase.flow_path, gate)
        ends[f"phase {phase.number}"] = made | ahead
        if phase.ahead:
            ends[f"phase {phase.number} ahead"] = ahead
        stages[stage] = (gate, made)
        done.add(phase.number)
    every_phase = set().union(*(v for k, v in ends.items() if k.startswith("phase ")))

    # The go-live's ending (flows/go_live.py _go_live).
    restore_gate = builder.stage_gate("restore verification", ends["phase 5"])
    restore = builder.read_flow("restore verification", "flows.backup_verification:backup_verification", restore_gate)
    stages["restore verification"] = (restore_gate, restore)
    # The go-live resolves the restore verification before it starts the launch gate; the audit gate is
    # Phase 7's own last step (Phase 7 runs after every other phase).
    gate_gate = builder.stage_gate("8.1 launch gate", every_phase | restore)
    launch_gate = builder.read_flow("8.1 launch gate", "flows.pre_launch:pre_launch_tests", gate_gate)
    stages["8.1 launch gate"] = (gate_gate, launch_gate)
    approval = builder.stage_gate("approval", launch_gate)
    stages["approval"] = (approval, {approval})
    steps_percent = env.launch.cutover.steps_percent
    cutover_gate = builder.stage_gate("8.2 DNS cutover", {approval})
    cutover = builder.read_flow("8.2 DNS cutover", "flows.cutover:dns_cutover", cutover_gate,
                                loops={"walk": len(steps_percent)})
    stages["8.2 DNS cutover"] = (cutover_gate, cutover)
    finish = builder.stage_gate("cut over", cutover)

    steps = builder.steps
    _schedule(steps, scale)
    path = _critical_path(steps, finish)
    stage_list = [Stage(name, steps[gate].start, max(steps[k].end for k in made)) for name, (gate, made) in stages.items()]
    notes = []
    if env.launch.approval == "manual":
        notes.append("launch.approval = \"manual\": the cutover also waits for a person to approve (not counted)")
    notes.append(f"then post-launch monitoring for launch.monitoring.window_seconds = "
                 f"{env.launch.monitoring.window_seconds:g} s (not counted: the total is to the end of the cutover)")
    return Timeline(environment=env.name, steps=list(steps.values()), stages=stage_list, critical_path=path,
                    total=steps[finish].end, notes=notes)


def emulator_delays(env: Environment, scale: float, model: dict | None = None) -> dict[str, float]:
    """The sandbox emulator's held states for this file at this scale (golive/sandbox/transitions.py): each
    emulated wait's modelled seconds (or its `emulated_seconds`, the held part) times `scale`."""
    model = model or load_model()
    delays: dict[str, float] = {}
    for task, entry in model.get("steps", {}).items():
        kind = entry.get("emulate")
        if not kind:
            continue
        _, aws, _ = step_seconds(model, env, task)
        delays[kind] = max(delays.get(kind, 0.0), entry.get("emulated_seconds", aws) * scale)
    return delays


def minutes(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}" if whole >= 3600 else f"{whole // 60}:{whole % 60:02d}"


def render(timeline: Timeline, env: Environment, console, *, every_step: bool = False, model: dict | None = None) -> None:
    """Print the timeline: the stages, the critical path (or every step), the sources of its long waits."""
    from rich.table import Table

    model = model or load_model()
    console.print(f"[bold]Predicted timeline of a go-live of {timeline.environment} from nothing, against AWS[/] "
                  f"(model: golive/timeline_model.toml; no AWS call made)")
    stages = Table(title="Stages (start -> end, from the go-live's start)", title_justify="left", show_edge=False)
    for column in ("stage", "start", "end", "takes"):
        stages.add_column(column, justify="left" if column == "stage" else "right")
    for stage in timeline.stages:
        stages.add_row(stage.name, minutes(stage.start), minutes(stage.end), minutes(stage.end - stage.start))
    console.print(stages)
    shown = [s for s in timeline.steps if s.task != "start"] if every_step else timeline.critical_path
    steps = Table(title="Every step (* on the critical path)" if every_step else "Critical path",
                  title_justify="left", show_edge=False)
    for column in ("", "stage", "step", "start", "takes"):
        steps.add_column(column, justify="right" if column in ("start", "takes") else "left")
    for step in shown:
        steps.add_row("*" if step.critical else "", step.stage, step.label, minutes(step.start), minutes(step.seconds))
    console.print(steps)
    console.print(f"[bold]Total to the end of the DNS cutover: {minutes(timeline.total)}[/] "
                  f"({timeline.total / 60:.0f} min)")
    for note in timeline.notes:
        console.print(f"  {note}")
    longest: dict[str, Step] = {}
    for step in timeline.critical_path:
        if step.seconds >= 60 and step.task in model.get("steps", {}) and (
                step.task not in longest or step.seconds > longest[step.task].seconds):
            longest[step.task] = step
    if longest:
        console.print("\n[bold]The critical path's long waits, and where their figures come from[/]")
        for task, step in longest.items():
            entry = model["steps"][task]
            console.print(f"- {task} ({minutes(step.seconds)}): {entry.get('what', '')}. " + "; ".join(
                part for part in (f"Source: {entry['source']}" if "source" in entry else "",
                                  f"engineering estimate: {entry['estimate']}" if "estimate" in entry else "",
                                  f"from the file: {entry['file_seconds']}" if "file_seconds" in entry else "") if part),
                          soft_wrap=True)
