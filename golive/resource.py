"""The contract every AWS step keeps: discover, diff, then change (DESIGN.md).

A Resource knows how to find itself by name and tags, what it should look like, and how to create,
update and delete itself. `ensure` runs the same code in plan and apply mode; only apply writes.
`remove_all` is teardown: everything of a kind the environment owns, found by tag, deleted.

Idempotency comes from discovery (tags written in the same call that creates the resource), not from
Prefect's cache: a run killed anywhere finds what the last one made and carries on from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from golive.aws_errors import aws_error
from golive.changes import Action, Change, FieldChange, unknown_fields
from golive.naming import (
    COMPONENT_TAG,
    ENVIRONMENT_TAG,
    MANAGED_BY,
    MANAGED_BY_TAG,
    ec2_filters,
    resource_name,
    tag_list,
    tag_value,
    tags,
)
from golive.run import Run


class ReplacementRefused(RuntimeError):
    """A change AWS can only make by deleting the resource; refused unless the run allows it."""


class DependencyNotApplied(RuntimeError):
    """Apply was asked to send a value that only an earlier, unapplied step can make (KNOWN_AFTER_APPLY)."""


def _refuse_unknown(resource: "Resource", values: dict[str, Any]) -> None:
    """Apply never sends a placeholder to AWS: a step whose input is still known only after apply stops,
    naming the fields, before any write. (Phases check their foundation first; this is the last guard.)"""
    unknown = unknown_fields(values)
    if unknown:
        raise DependencyNotApplied(
            f"{resource.kind} {resource.name}: {', '.join(unknown)} depend on something not made yet "
            "(known after apply). Apply the earlier phase or step first. Nothing was changed.")


class AmbiguousResource(RuntimeError):
    """More than one resource carries the same environment and component tags."""


@dataclass
class Found:
    """A resource as AWS reports it: its id, the fields we compare, and the raw description. `tags` is
    what it carries (None: not read; Resource.current_tags reads them where the kind can)."""

    id: str
    state: dict[str, Any]
    component: str = ""
    raw: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] | None = None


@dataclass(frozen=True)
class Ensured:
    id: str | None  # None in plan mode for something not yet created
    change: Change
    found: Found | None = None

    def current(self, run: Run, describe) -> dict:
        """The resource's description as it now is: what discovery read when this run changed nothing
        (or only planned), a fresh describe() after a write, {} when it does not exist yet."""
        if self.found is not None and not (run.applying and self.change.is_change):
            return self.found.raw
        return describe() if self.id and run.applying else {}


class Resource(ABC):
    kind: ClassVar[str]
    # Desired fields AWS cannot change in place: a difference there means delete and create.
    replace_on: ClassVar[frozenset[str]] = frozenset()
    # Fields the sandbox's emulator cannot update (field -> the missing API call). Such a change is
    # shown as skipped in the sandbox, never silently dropped; against AWS it is applied.
    sandbox_lacks: ClassVar[dict[str, str]] = {}
    # The whole create or delete call the emulator lacks: shown as skipped in the sandbox.
    sandbox_lacks_create: ClassVar[str | None] = None
    sandbox_lacks_delete: ClassVar[str | None] = None

    def __init__(self, run: Run, component: str):
        self.run = run
        self.component = component
        self.name = resource_name(run.env_name, component)

    def settable_fields(self) -> set[str]:
        """The desired fields this target can hold: all of them in AWS; the sandbox lacks sandbox_lacks.
        For creates made of several calls, one per field group (ensure() shows the rest as not set)."""
        lacking = set(self.sandbox_lacks) if self.run.target.is_sandbox else set()
        return set(self.desired()) - lacking

    @abstractmethod
    def desired(self) -> dict[str, Any]:
        """The fields this resource should have, in the same shape discover() reports them."""

    @abstractmethod
    def discover(self) -> Found | None:
        """This component's resource, found by tags, or None."""

    @abstractmethod
    def create(self) -> str:
        """Create it (tagged in the same call) and wait until usable; return its id."""

    def update(self, found: Found, changes: dict[str, FieldChange]) -> None:
        raise NotImplementedError(f"{self.kind} cannot be updated in place: {', '.join(changes)}")

    @abstractmethod
    def delete(self, found: Found) -> str | None:
        """Delete it and wait until it is gone (or no longer blocks what depends on it). May return a note
        for the change, such as what the deletion keeps (an RDS final snapshot)."""

    def settle(self, found: Found) -> Found:
        """Wait for a resource still on its way to usable (apply mode): a run killed during create()'s wait
        left it there, and the next run finds it instead of creating it. Returns it as it now is.
        Kinds whose create waits override this; the rest are usable as soon as they exist."""
        return found

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """Everything of this kind the environment owns, whatever its component (for teardown)."""
        raise NotImplementedError

    # Tag drift. The ownership tags (golive.naming.tags) are how every step finds what it made; one removed
    # or changed by hand would make discovery miss the resource and apply make a second one. A kind that
    # can tell its resource by something other than tags (its deterministic name) implements
    # discover_untagged(); a kind that can read and write its tags implements current_tags() and
    # restore_tags(). ensure() then shows the drift as an update of `tags` (plan exits 2) and apply puts the
    # tags back on the resource it found, never a duplicate (Ansible's purge_tags, for the keys golive owns:
    # tags a person added are left alone).

    def ownership_tags(self) -> dict[str, str]:
        return tags(self.run.env_name, self.component)

    def discover_untagged(self) -> Found | None:
        """This component's resource found without its ownership tags (by its deterministic name), or None."""
        return None

    def current_tags(self, found: Found) -> dict[str, str] | None:
        """The tags the resource carries, or None where the kind does not compare them."""
        return found.tags

    def restore_tags(self, found: Found) -> None:
        raise NotImplementedError(f"{self.kind} cannot restore its tags")

    @classmethod
    def before_teardown(cls, run: Run, found: list[Found]) -> None:
        """Undo what ties these resources to each other before any is deleted (apply mode only)."""


def owned_by(item: dict, environment: str, component: str | None) -> bool:
    """Check the tags ourselves too: an API (or emulator) that ignores a tag filter must not make us
    adopt someone else's resource (moto 5.2.5 ignores them on describe_nat_gateways)."""
    tags = item.get("Tags") or []
    return (
        tag_value(tags, ENVIRONMENT_TAG) == environment
        and tag_value(tags, MANAGED_BY_TAG) == MANAGED_BY
        and (component is None or tag_value(tags, COMPONENT_TAG) == component)
    )


def tag_drift(resource: Resource, found: Found) -> FieldChange | None:
    """The ownership tags the resource lacks or carries with another value, as a change of `tags`."""
    current = resource.current_tags(found)
    if current is None:
        return None
    wanted = resource.ownership_tags()
    before = {key: current.get(key) for key in wanted}
    return FieldChange(field="tags", before=before, after=wanted) if before != wanted else None


def diff(desired: dict[str, Any], found: Found) -> dict[str, FieldChange]:
    return {
        key: FieldChange(field=key, before=found.state.get(key), after=value)
        for key, value in desired.items()
        if _normal(found.state.get(key)) != _normal(value)
    }


def _normal(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset)):
        return sorted((_normal(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    return value


def ensure(resource: Resource) -> Ensured:
    """Discover, diff, and (in apply mode) create, update or replace. Reports the change either way."""
    run = resource.run
    desired = resource.desired()
    if run.target.is_sandbox and resource.sandbox_lacks_create:
        # What the emulator cannot create cannot exist there either (moto often lacks the describe too).
        change = Change(action=Action.SKIP, kind=resource.kind, name=resource.name,
                        note=f"sandbox: moto has no {resource.sandbox_lacks_create}; created against AWS")
        run.report(change)
        return Ensured(id=None, change=change)
    found = resource.discover()
    if found is not None and run.applying:
        found = resource.settle(found)  # the wait a killed run did not see through
    if found is None:
        # Ours by name, its ownership tags removed by hand: restored below, never duplicated.
        found = resource.discover_untagged()
    if found is None:
        # Fields the emulator cannot hold are left out of the create (Resource.create skips them too) and
        # said so, never shown as made.
        lacking = {f: c for f, c in resource.sandbox_lacks.items() if f in desired} if run.target.is_sandbox else {}
        change = Change(
            action=Action.CREATE,
            kind=resource.kind,
            name=resource.name,
            fields=tuple(FieldChange(field=k, after=v) for k, v in desired.items() if k not in lacking),
            note=(f"sandbox: {', '.join(sorted(lacking))} not set, moto has no "
                  f"{', '.join(sorted(set(lacking.values())))}; applied against AWS") if lacking else "",
        )
        if run.applying:
            _refuse_unknown(resource, desired)
        new_id = resource.create() if run.applying else None
        change = change.model_copy(update={"id": new_id})
        run.report(change)
        return Ensured(id=new_id, change=change)

    changes = diff(desired, found)
    drift = tag_drift(resource, found)
    if drift is not None:
        changes["tags"] = drift
    if not changes:
        change = Change(action=Action.NOOP, kind=resource.kind, name=resource.name, id=found.id)
        return Ensured(id=found.id, change=change, found=found)

    forcing = sorted(set(changes) & resource.replace_on)
    if forcing:
        change = Change(
            action=Action.REPLACE,
            kind=resource.kind,
            name=resource.name,
            id=found.id,
            fields=tuple(changes.values()),
            note=f"{', '.join(forcing)} forces replacement",
        )
        if run.applying:
            if not run.allow_replace:
                raise ReplacementRefused(
                    f"{resource.kind} {resource.name} ({found.id}): {change.note} "
                    f"({'; '.join(c.render() for c in changes.values() if c.field in forcing)}). "
                    "Nothing was changed. Re-run with --allow-replace to delete and recreate it."
                )
            _refuse_unknown(resource, desired)
            resource.delete(found)
            new_id = resource.create()
            change = change.model_copy(update={"id": new_id})
            run.report(change)
            return Ensured(id=new_id, change=change)
        run.report(change)
        return Ensured(id=found.id, change=change, found=found)

    lacking = {f: call for f, call in resource.sandbox_lacks.items() if f in changes} if run.target.is_sandbox else {}
    if lacking:
        skipped = Change(
            action=Action.SKIP, kind=resource.kind, name=resource.name, id=found.id,
            fields=tuple(changes.pop(f) for f in lacking),
            note=f"sandbox: moto has no {', '.join(sorted(set(lacking.values())))}; applied against AWS",
        )
        run.report(skipped)
        if not changes:
            return Ensured(id=found.id, change=skipped, found=found)

    notes = [skipped.note] if lacking else []
    if drift is not None:
        notes.append("ownership tags removed or changed by hand: " + ("restored" if run.applying else "apply restores them"))
    change = Change(
        action=Action.UPDATE, kind=resource.kind, name=resource.name, id=found.id, fields=tuple(changes.values()),
        note="; ".join(notes),
    )
    if run.applying:
        _refuse_unknown(resource, {f: c.after for f, c in changes.items()})
        if changes.pop("tags", None) is not None:
            resource.restore_tags(found)
        if changes:
            resource.update(found, changes)
    run.report(change)
    return Ensured(id=found.id, change=change, found=found)


def remove_all(kind: type[Resource], run: Run) -> list[Change]:
    """Teardown of one kind: delete (apply) or list (plan) everything of it the environment owns."""
    changes = []
    if run.target.is_sandbox and kind.sandbox_lacks_create:
        return changes  # the sandbox could never have made one
    everything = kind.discover_all(run)
    if everything and run.applying:
        kind.before_teardown(run, everything)
    for found in everything:
        resource = kind(run, found.component or "unknown")
        change = Change(action=Action.DELETE, kind=kind.kind, name=resource.name, id=found.id)
        if run.target.is_sandbox and kind.sandbox_lacks_delete:
            change = change.model_copy(update={
                "action": Action.SKIP, "note": f"sandbox: moto has no {kind.sandbox_lacks_delete}; deleted against AWS"})
        elif run.applying:
            note = resource.delete(found)
            if note:
                change = change.model_copy(update={"note": note})
        run.report(change)
        changes.append(change)
    return changes


def prune(kind: type[Resource], run: Run, keep: set[str]) -> list[Change]:
    """Delete (apply) or plan deleting what the environment owns of a kind but the file no longer asks
    for: a NAT gateway left over from per-AZ mode would otherwise keep costing money unseen."""
    changes = []
    for found in kind.discover_all(run):
        if found.component in keep:
            continue
        resource = kind(run, found.component)
        change = Change(action=Action.DELETE, kind=kind.kind, name=resource.name, id=found.id,
                        note="no longer in the environment file")
        if run.applying:
            resource.delete(found)
        run.report(change)
        changes.append(change)
    return changes


class NamedResource(Resource):
    """Found by its deterministic name through a describe call, its owner read from its tags. RDS and
    ElastiCache share this shape: Describe*(<Name>=...) and ListTagsForResource(ResourceName=arn)."""

    service: ClassVar[str]
    describe: ClassVar[tuple[str, str, str]]  # operation, its name parameter, result key
    describe_name_key: ClassVar[str]
    not_found: ClassVar[str]  # the error code for "no such name"
    arn_key: ClassVar[str] = "ARN"

    @property
    def client(self):
        return self.run.client(self.service)

    def _describe_one(self) -> dict | None:
        operation, parameter, key = self.describe
        try:
            items = getattr(self.client, operation)(**{parameter: self.name})[key]
        except aws_error(self.not_found):
            return None
        return items[0] if items else None

    @classmethod
    def _tags(cls, run: Run, item: dict) -> dict[str, str]:
        tag_list_ = run.client(cls.service).list_tags_for_resource(ResourceName=item[cls.arn_key])["TagList"]
        return {t["Key"]: t["Value"] for t in tag_list_}

    @classmethod
    def owner(cls, run: Run, item: dict) -> str | None:
        return cls._tags(run, item).get(ENVIRONMENT_TAG)

    def current_tags(self, found: Found) -> dict[str, str] | None:
        return found.tags if found.tags is not None else (self._tags(self.run, found.raw) if found.raw else None)

    def restore_tags(self, found: Found) -> None:
        self.client.add_tags_to_resource(ResourceName=found.raw[self.arn_key],
                                         Tags=tag_list(self.run.env_name, self.component))

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        """By the environment's tag, whatever the name (the component is its tag too)."""
        operation, _, key = cls.describe
        prefix = resource_name(run.env_name, "")
        found = []
        for page in run.client(cls.service).get_paginator(operation).paginate():
            for item in page[key]:
                name = item[cls.describe_name_key]
                tags_ = cls._tags(run, item)
                if tags_.get(ENVIRONMENT_TAG) == run.env_name and tags_.get(MANAGED_BY_TAG) == MANAGED_BY:
                    found.append(Found(id=name, state={}, raw=item, tags=tags_,
                                       component=tags_.get(COMPONENT_TAG) or name.removeprefix(prefix)))
        return found


class Ec2Resource(Resource):
    """An EC2 resource found through a describe call filtered by the environment's tags."""

    describe_operation: ClassVar[str]  # e.g. "describe_vpcs"
    result_key: ClassVar[str]  # e.g. "Vpcs"
    id_key: ClassVar[str]  # e.g. "VpcId"

    @property
    def ec2(self):
        return self.run.client("ec2")

    @property
    def ec2_once(self):
        """For creates without an idempotency token: one attempt, the task retries after rediscovery."""
        return self.run.aws.client("ec2", retry=False)

    @classmethod
    def is_live(cls, item: dict) -> bool:
        """False for resources on their way out (a NAT gateway 'deleting'): ensure makes a new one."""
        return not cls.is_gone(item)

    @classmethod
    def is_gone(cls, item: dict) -> bool:
        """True for descriptions of resources already deleted; teardown still waits for the rest."""
        return False

    @abstractmethod
    def observe(self, item: dict) -> dict[str, Any]:
        """The comparable fields of a describe result."""

    @classmethod
    def _describe(cls, run: Run, component: str | None, *, leaving: bool = False) -> list[dict]:
        """Owned resources of this kind; with leaving=True also those still being deleted."""
        return [item for item in cls._describe_owned(run, component)
                if (not cls.is_gone(item) if leaving else cls.is_live(item))]

    @classmethod
    def _describe_owned(cls, run: Run, component: str | None) -> list[dict]:
        client = run.client("ec2")
        filters = ec2_filters(run.env_name, component)
        items: list[dict] = []
        paginate = client.can_paginate(cls.describe_operation)
        if paginate:
            for page in client.get_paginator(cls.describe_operation).paginate(Filters=filters):
                items.extend(page[cls.result_key])
        else:
            items = getattr(client, cls.describe_operation)(Filters=filters)[cls.result_key]
        return [item for item in items if owned_by(item, run.env_name, component)]

    def _found(self, item: dict) -> Found:
        return Found(
            id=item[self.id_key],
            state=self.observe(item),
            component=tag_value(item.get("Tags"), COMPONENT_TAG) or "",
            raw=item,
            tags={t["Key"]: t["Value"] for t in item.get("Tags") or []},
        )

    def untagged_filters(self) -> list[dict] | None:
        """Describe filters that find this component's resource by its name, not its tags (a security
        group's GroupName, say); None where the kind's only name is its Name tag."""
        return None

    def discover_untagged(self) -> Found | None:
        filters = self.untagged_filters()
        if not filters:
            return None
        items = getattr(self.ec2, self.describe_operation)(Filters=filters)[self.result_key]
        # Someone else's (another environment's tag on it) is never taken over.
        items = [i for i in items if tag_value(i.get("Tags"), ENVIRONMENT_TAG) in (None, self.run.env_name)
                 and self.is_live(i)]
        if len(items) > 1:
            raise AmbiguousResource(f"{len(items)} {self.kind}s are named {self.name}: "
                                    f"{', '.join(i[self.id_key] for i in items)}. Only one should be.")
        return self._found(items[0]) if items else None

    def restore_tags(self, found: Found) -> None:
        self.ec2.create_tags(Resources=[found.id], Tags=tag_list(self.run.env_name, self.component))

    def discover(self) -> Found | None:
        items = self._describe(self.run, self.component)
        if len(items) > 1:
            ids = ", ".join(item[self.id_key] for item in items)
            raise AmbiguousResource(
                f"{len(items)} {self.kind}s are tagged as {self.name}: {ids}. Only one should be; "
                "delete the stray ones (or run `golive destroy`) and apply again."
            )
        return self._found(items[0]) if items else None

    @classmethod
    def discover_all(cls, run: Run) -> list[Found]:
        return [
            Found(
                id=item[cls.id_key],
                state={},
                component=tag_value(item.get("Tags"), COMPONENT_TAG) or "",
                raw=item,
            )
            for item in cls._describe(run, None, leaving=True)
        ]

    def tag_specifications(self, resource_type: str) -> list[dict]:
        return [{"ResourceType": resource_type, "Tags": tag_list(self.run.env_name, self.component)}]
