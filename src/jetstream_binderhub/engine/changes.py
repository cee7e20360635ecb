"""What a Pulumi preview (or update) would change, built from the engine's own event stream.

The Automation API's ``PreviewResult`` only carries counts; the per-resource diff exists only as
engine events (``on_event`` callbacks, or the JSON lines ``pulumi ... --event-log`` writes). This
module folds those events into one :class:`ResourceChange` per resource, so the pull-request comment
and the safety guard read a small typed model instead of the engine's step protocol.

The model is deliberately independent of the engine: a diff of two offline plans can build
:class:`LayerChanges` directly. Display values in it are already masked; nothing here keeps a secret.

Importing this module does not import Pulumi (the CLI's ``--help`` must stay fast); the collector
imports ``pulumi.automation.events`` when it first sees an event.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from jetstream_binderhub.errors import JetstreamBinderHubError
from jetstream_binderhub.naming import CLUSTER_TYPE, CONTROL_PLANE, DEFAULT_WORKER, NODE_GROUP_TYPE
from jetstream_binderhub.redaction import SECRET_PLACEHOLDER, redact

if TYPE_CHECKING:
    from pulumi.automation.events import EngineEvent, StepEventMetadata, StepEventStateMetadata

STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_TYPE_PREFIX = "pulumi:providers:"

SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
"""Key of Pulumi's special-object signature; with value SECRET_SIG the object is a secret."""
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""What the engine sends for an input that is only known after apply."""
UNKNOWN_DISPLAY = "(known after apply)"

MAX_VALUE_CHARS = 40
"""Longer values are left out of the diff: reviewers want short scalars (flavors, versions, counts)."""

_SECRET_WORDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "credential",
    "private",
    "kubeconfig",
    "apikey",
    "auth",
    "cert",
    "sshkey",
)
"""Property names whose values are never printed even when Pulumi does not mark them secret: the
OpenStack provider's applicationCredentialSecret, for one, reaches the engine in plain text."""

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*(?:[@-~]|$)|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_PULUMI_COLOR = re.compile(r"<\{%[^%]*%\}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean_text(text: str) -> str:
    """Text without terminal colour: ANSI escapes, Pulumi's ``<{%reset%}>`` colour directives (the event
    stream carries them unless NO_COLOR is set) and any other control character but newline and tab."""
    return _CONTROL.sub("", _PULUMI_COLOR.sub("", _ANSI.sub("", text)))


class ChangeOp(StrEnum):
    """What happens to one resource. A replacement is one op however many engine steps it takes."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    IMPORT = "import"
    SAME = "same"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ValueChange(_Frozen):
    """A short, non-secret value before and after; ``None`` on the side where the property is absent.

    Only present when both sides are safe to print: builders must never put a secret here.
    """

    old: str | None = None
    new: str | None = None


def name_from_urn(urn: str) -> str:
    """The logical name: ``urn:pulumi:<stack>::<project>::<qualified type>::<name>``. Names may
    themselves contain ``::``, so split from the left."""
    parts = urn.removeprefix("urn:pulumi:").split("::", 3)
    return parts[3] if len(parts) == 4 else urn


def type_from_urn(urn: str) -> str:
    parts = urn.removeprefix("urn:pulumi:").split("::", 3)
    return parts[2].rsplit("$", 1)[-1] if len(parts) == 4 else ""


class ResourceChange(_Frozen):
    """What happens to one resource (one URN), however many engine steps that takes."""

    layer: str
    urn: str
    type: str = Field(default="", description="Pulumi type token; taken from the URN when empty.")
    name: str = Field(default="", description="Logical name; taken from the URN when empty.")
    op: ChangeOp
    changed_keys: list[str] = Field(
        default_factory=list,
        description="Property paths that change (detailed diff paths, else top-level keys).",
    )
    replace_causes: list[str] = Field(
        default_factory=list, description="Property paths that force the replacement (only for REPLACE)."
    )
    values: dict[str, ValueChange] = Field(
        default_factory=dict, description="Printable old/new values of some changed_keys (never secrets)."
    )
    secret_keys: list[str] = Field(
        default_factory=list, description="Changed paths whose value is secret: name them, never show them."
    )
    delete_before_replace: bool | None = Field(
        default=None,
        description=(
            "For REPLACE: True when the old resource is deleted before the new one exists, False when the "
            "new one is created first, None when the events do not say."
        ),
    )
    failed: bool = Field(
        default=False, description="The engine reported this resource's operation as failed."
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_from_urn(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(urn := data.get("urn"), str):
            data = dict(data)
            data["name"] = data.get("name") or name_from_urn(urn)
            data["type"] = data.get("type") or type_from_urn(urn)
        return data

    @property
    def is_provider(self) -> bool:
        return self.type.startswith(PROVIDER_TYPE_PREFIX)


class Diagnostic(_Frozen):
    """An error or warning the engine, a provider or the program reported."""

    severity: Literal["error", "warning"]
    message: str = Field(description="Colour stripped; may span lines.")
    urn: str | None = None

    @property
    def headline(self) -> str:
        """The line that says what went wrong: provider errors open with "1 error occurred:" and put the
        cause on the next line, behind a full URN that is shortened here to the resource's name."""
        for line in self.message.splitlines():
            line = line.strip().removeprefix("* ").removeprefix("error: ").strip()
            if line and not _ERROR_COUNT.match(line):
                return _URN_IN_TEXT.sub(r"\1", line)
        return ""


_ERROR_COUNT = re.compile(r"^\d+ errors? occurred:?$")
_URN_IN_TEXT = re.compile(r"urn:pulumi:\S*::([^\s:]+)")
_GENERIC_FAILURES = re.compile(r"^(update|preview|refresh|destroy) failed$", re.IGNORECASE)


class ServerCount(_Frozen):
    """One group of servers as one side of the engine's states holds it. ``None``: not known there (a
    secret, or a value only known after apply)."""

    flavor: str | None = None
    min_count: int | None = None
    max_count: int | None = None

    @property
    def known(self) -> bool:
        return self.flavor is not None and self.min_count is not None and self.max_count is not None


class ServerGroup(_Frozen):
    """The servers of one Magnum group before and after the change, from the engine's own states: what
    the allocation is charged for. A cluster resource carries two groups (its control plane and
    default-worker), a node group one."""

    group: str = Field(description="control-plane, default-worker or the node group's name.")
    resource: str = Field(description="Logical name of the Pulumi resource that holds it.")
    before: ServerCount | None = Field(
        default=None, description="What is deployed now; None when the resource does not exist yet."
    )
    after: ServerCount | None = Field(
        default=None, description="What the change makes; None when the resource goes."
    )


class LayerChanges(_Frozen):
    """Everything one layer's preview (or update) would change, plus what the engine complained about."""

    layer: str
    changes: list[ResourceChange] = Field(default_factory=list)
    unchanged: int = Field(default=0, description="Resources left as they are (not listed in changes).")
    diagnostics: list[Diagnostic] = Field(default_factory=list)
    missing: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "Per op, how many more steps the engine's summary counted than arrived as events. Non-empty "
            "means events were lost (the Automation API drops events it cannot parse), so this is incomplete."
        ),
    )
    servers: list[ServerGroup] = Field(
        default_factory=list,
        description=(
            "The Magnum cluster's and node groups' servers before and after, from every step the engine "
            "reported (unchanged resources included): what the SU/hour change is priced from."
        ),
    )

    @property
    def counts(self) -> dict[ChangeOp, int]:
        counts = Counter(c.op for c in self.changes)
        counts[ChangeOp.SAME] += self.unchanged
        return {op: counts[op] for op in ChangeOp}

    @property
    def has_changes(self) -> bool:
        return any(c.op is not ChangeOp.SAME for c in self.changes)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def failure_line(self) -> str | None:
        """One line saying why this layer failed, or None when the engine reported no error.

        Pulumi ends a failed run with a generic "update failed"; the cause is in the error tied to a
        resource, so that one wins, prefixed with the resource's name."""
        errors = self.errors
        if not errors:
            return None
        useful = [d for d in errors if not _GENERIC_FAILURES.match(d.headline)]
        # The stack itself carries the generic error; one tied to a real resource names the cause.
        specific = [d for d in useful if d.urn and type_from_urn(d.urn) != STACK_TYPE]
        best = (specific or useful or errors)[0]
        headline = best.headline
        name = name_from_urn(best.urn) if best in specific and best.urn else ""
        line = (
            f"{self.layer}: {name}: {headline}"
            if name and name not in headline
            else f"{self.layer}: {headline}"
        )
        return line if len(line) <= 300 else line[:299] + "…"


class EventStreamError(JetstreamBinderHubError):
    """The event stream could not be read; the preview it describes must not be trusted."""

    def __init__(self, layer: str, problems: list[str]) -> None:
        self.layer = layer
        self.problems = problems
        super().__init__(
            f"layer {layer}: could not read the engine's events:\n" + "\n".join(f"  {p}" for p in problems)
        )


# --- reading values without ever printing a secret -------------------------------------------------


class _Hidden:
    """A value that must not be printed: a secret, or something too big or nested to be a scalar."""

    def __init__(self, secret: bool) -> None:
        self.secret = secret


_SECRET = _Hidden(secret=True)
_OPAQUE = _Hidden(secret=False)
_ABSENT = object()

_PATH_TOKEN = re.compile(r'\.?([^.\[\]"]+)|\[(\d+)\]|\["((?:[^"\\]|\\.)*)"\]')


def parse_property_path(path: str) -> list[str | int] | None:
    """Split an engine property path (``labels.kube_tag``, ``tags[0]``, ``labels["a.b/c"]``);
    None when it does not parse, in which case no value is shown for it."""
    segments: list[str | int] = []
    pos = 0
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if not match or match.end() == pos:
            return None
        name, index, quoted = match.groups()
        if name is not None:
            segments.append(name)
        elif index is not None:
            segments.append(int(index))
        else:
            segments.append(json.loads(f'"{quoted}"'))
        pos = match.end()
    return segments


def _is_secret(value: Any) -> bool:
    if isinstance(value, Mapping):
        return value.get(SECRET_SIG_KEY) == SECRET_SIG
    return value == SECRET_PLACEHOLDER


def _secret_name(segment: str | int) -> bool:
    key = re.sub(r"[^a-z]", "", str(segment).lower())
    return any(word in key for word in _SECRET_WORDS)


def _resolve(root: Mapping[str, Any] | None, segments: list[str | int]) -> Any:
    """The value at `segments`, _SECRET if any step is secret, _ABSENT if the path is not there."""
    value: Any = root
    if value is None:
        return _ABSENT
    for segment in segments:
        if _is_secret(value):
            return _SECRET
        if isinstance(value, Mapping) and isinstance(segment, str):
            if SECRET_SIG_KEY in value:  # an asset, archive or resource reference: not a plain map
                return _OPAQUE
            if segment not in value:
                return _ABSENT
            value = value[segment]
        elif isinstance(value, list) and isinstance(segment, int):
            if segment >= len(value):
                return _ABSENT
            value = value[segment]
        else:
            return _ABSENT
    return _SECRET if _is_secret(value) else value


def _render(value: Any) -> str | _Hidden:
    if isinstance(value, _Hidden):
        return value
    if value == UNKNOWN_VALUE:
        return UNKNOWN_DISPLAY
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = clean_text(value)
        if "\n" in text or len(text) > MAX_VALUE_CHARS:
            return _OPAQUE
        return text
    return _OPAQUE


def _value_change(
    path: str, kind: str, old_root: Mapping[str, Any] | None, new_root: Mapping[str, Any] | None
) -> ValueChange | _Hidden:
    segments = parse_property_path(path)
    if segments is None:
        return _OPAQUE
    base = kind.removesuffix("-replace")
    old = _render(_resolve(old_root, segments)) if base != "add" else None
    new = _render(_resolve(new_root, segments)) if base != "delete" else None
    if old is _SECRET or new is _SECRET:
        return _SECRET
    if isinstance(old, _Hidden) or isinstance(new, _Hidden) or any(_secret_name(s) for s in segments):
        return _OPAQUE
    if old is None and new is None:
        return _OPAQUE
    return ValueChange(old=old, new=new)


# --- folding engine steps into one change per resource ---------------------------------------------

_IGNORED_STEPS = {
    "read",
    "read-replacement",
    "refresh",
    "discard",
    "discard-replaced",
    "remove-pending-replace",
}
"""Steps that change nothing in the cloud (reads, refreshes) or only tidy Pulumi's own state."""


@dataclass
class _Pending:
    urn: str
    type: str
    steps: list[str] = field(default_factory=list)
    changed: dict[str, None] = field(default_factory=dict)  # ordered set
    causes: dict[str, None] = field(default_factory=dict)
    keys: dict[str, None] = field(default_factory=dict)
    values: dict[str, ValueChange] = field(default_factory=dict)
    secret: dict[str, None] = field(default_factory=dict)
    failed: bool = False
    before: StepEventStateMetadata | None = None
    """The first old state a step carried: the resource as deployed now."""
    after: StepEventStateMetadata | None = None
    """The last new state a step carried: the resource as the change leaves it (deletes carry none)."""

    @property
    def op(self) -> ChangeOp:
        steps = set(self.steps)
        if steps & {"replace", "create-replacement", "import-replacement"}:
            return ChangeOp.REPLACE
        # A delete-replaced on its own removes an old copy left pending by an earlier failed
        # replacement: a real cloud delete, reported as one.
        if steps & {"delete", "delete-replaced"}:
            return ChangeOp.DELETE
        for op in (ChangeOp.CREATE, ChangeOp.UPDATE, ChangeOp.IMPORT):
            if op.value in steps:
                return op
        return ChangeOp.SAME

    @property
    def delete_before_replace(self) -> bool | None:
        # The engine orders a delete-before-replace as delete-replaced, replace, create-replacement and a
        # create-before-delete as create-replacement, replace, ... delete-replaced (after all creates).
        creates = [
            i
            for i, s in enumerate(self.steps)
            if s in ("create-replacement", "replace", "import-replacement")
        ]
        deletes = [i for i, s in enumerate(self.steps) if s == "delete-replaced"]
        if deletes and (not creates or deletes[0] < creates[0]):
            return True
        if "create-replacement" in self.steps or "import-replacement" in self.steps:
            return False
        return None


def _bookkeeping(type_: str) -> bool:
    return type_ == STACK_TYPE or type_.startswith(PROVIDER_TYPE_PREFIX)


class ChangeCollector:
    """Collects one layer's changes from engine events; pass it as ``on_event``.

    >>> collector = ChangeCollector(layer="cluster")
    >>> stack.preview(on_event=collector)  # doctest: +SKIP
    >>> collector.result().counts  # doctest: +SKIP

    Accepts :class:`~pulumi.automation.events.EngineEvent` objects or their JSON dicts. The
    Automation API swallows exceptions raised by ``on_event`` (it only warns), so a problem with an
    event is recorded rather than raised, and :meth:`result` raises :class:`EventStreamError` instead.
    """

    def __init__(self, layer: str, *, secrets: Collection[str] = ()) -> None:
        self.layer = layer
        self._secrets = tuple(secrets)
        """Known secret values (the passphrase, credentials, secret config) masked wherever they appear."""
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._steps: Counter[str] = Counter()
        self._engine_counts: dict[str, int] | None = None
        self._diagnostics: dict[tuple[str, str, str | None], Diagnostic] = {}
        self._problems: list[str] = []

    def __call__(self, event: EngineEvent | Mapping[str, Any]) -> None:
        try:
            from pulumi.automation.events import EngineEvent

            parsed = event if isinstance(event, EngineEvent) else EngineEvent.from_json(dict(event))
            with self._lock:
                self._add(parsed)
        except Exception as exc:  # see the class docstring: raising here would lose the event silently
            sequence = (
                event.get("sequence") if isinstance(event, Mapping) else getattr(event, "sequence", None)
            )
            with self._lock:
                self._problems.append(f"event {sequence}: {type(exc).__name__}: {clean_text(str(exc))}")

    def _add(self, event: EngineEvent) -> None:
        if event.resource_pre_event is not None:
            self._add_step(event.resource_pre_event.metadata)
        elif event.res_op_failed_event is not None:
            meta = event.res_op_failed_event.metadata
            self._pending.setdefault(
                meta.urn, _Pending(meta.urn, meta.type or type_from_urn(meta.urn))
            ).failed = True
        elif event.diagnostic_event is not None:
            diag = event.diagnostic_event
            if diag.severity in ("error", "warning"):
                message = clean_text(diag.message).strip()
                if message:
                    key = (diag.severity, message, diag.urn or None)
                    self._diagnostics.setdefault(
                        key, Diagnostic(severity=diag.severity, message=message, urn=diag.urn or None)
                    )
        elif event.summary_event is not None:
            # A CLI `up` without --skip-preview logs a preview summary and then the update's; keep the last.
            self._engine_counts = {str(k): int(v) for k, v in event.summary_event.resource_changes.items()}

    def _add_step(self, meta: StepEventMetadata) -> None:
        step = str(meta.op.value)
        if step in _IGNORED_STEPS:
            return
        self._steps[step] += 1
        pending = self._pending.setdefault(meta.urn, _Pending(meta.urn, meta.type or type_from_urn(meta.urn)))
        pending.steps.append(step)
        if pending.type in _SIZED_TYPES:
            pending.before = pending.before or meta.old
            pending.after = meta.new or pending.after
        detailed = meta.detailed_diff or {}
        for path, diff in detailed.items():
            kind = str(diff.diff_kind.value)
            pending.changed.setdefault(path)
            if kind.endswith("-replace"):
                pending.causes.setdefault(path)
            if path in pending.values or path in pending.secret:
                continue
            shown = _value_change(path, kind, _old_root(meta.old, diff.input_diff), _inputs(meta.new))
            if isinstance(shown, ValueChange):
                pending.values[path] = shown
            elif shown.secret:
                pending.secret.setdefault(path)
        if not detailed:
            for key in meta.diffs or []:
                pending.changed.setdefault(key)
                self._mark_secret_key(pending, key, meta)
        for key in meta.keys or []:
            pending.keys.setdefault(key)
            self._mark_secret_key(pending, key, meta)

    @staticmethod
    def _mark_secret_key(pending: _Pending, key: str, meta: StepEventMetadata) -> None:
        segments = parse_property_path(key) or [key]
        if any(_resolve(root, segments) is _SECRET for root in (_inputs(meta.old), _inputs(meta.new))):
            pending.secret.setdefault(key)

    def result(self) -> LayerChanges:
        """The changes seen so far. Raises EventStreamError if any event could not be read."""
        with self._lock:
            if self._problems:
                raise EventStreamError(self.layer, list(self._problems))
            changes: list[ResourceChange] = []
            unchanged = 0
            for pending in self._pending.values():
                op = pending.op
                if op is ChangeOp.SAME:
                    unchanged += 0 if _bookkeeping(pending.type) else 1
                    continue
                # The stack and provider plumbing is noise, except a replaced provider: every resource
                # it manages is replaced with it (a new kubeconfig re-creates the whole hub).
                if _bookkeeping(pending.type) and not (op is ChangeOp.REPLACE and pending.type != STACK_TYPE):
                    continue
                changes.append(self._change(pending, op))
            diagnostics = list(self._diagnostics.values())
            result = LayerChanges(
                layer=self.layer,
                changes=changes,
                unchanged=unchanged,
                diagnostics=diagnostics,
                missing=self._missing(),
                servers=[
                    g
                    for p in self._pending.values()
                    if p.type in _SIZED_TYPES
                    for g in _servers(p)
                    if g.before is not None or g.after is not None
                ],
            )
        if not self._secrets:
            return result
        return LayerChanges.model_validate(redact(result.model_dump(mode="json"), self._secrets))

    def _change(self, pending: _Pending, op: ChangeOp) -> ResourceChange:
        replacing = op is ChangeOp.REPLACE
        causes = (list(pending.causes) or list(pending.keys)) if replacing else []
        listed = op in (ChangeOp.UPDATE, ChangeOp.REPLACE)
        changed = list(pending.changed) if listed else []
        if replacing:
            changed += [c for c in causes if c not in pending.changed]
        return ResourceChange(
            layer=self.layer,
            urn=pending.urn,
            type=pending.type,
            op=op,
            changed_keys=changed,
            replace_causes=causes,
            values={k: v for k, v in pending.values.items() if k in changed} if listed else {},
            secret_keys=[k for k in pending.secret if k in changed],
            delete_before_replace=pending.delete_before_replace if replacing else None,
            failed=pending.failed,
        )

    def _missing(self) -> dict[str, int]:
        if self._engine_counts is None:
            return {}
        # The engine's summary counts only logical steps: create-replacement and delete-replaced are
        # parts of a replace, not steps of their own.
        seen = Counter(
            {op: n for op, n in self._steps.items() if op not in ("create-replacement", "delete-replaced")}
        )
        missing = {}
        for op in ("create", "update", "replace", "delete"):
            gap = self._engine_counts.get(op, 0) - seen[op]
            if gap > 0:
                missing[op] = gap
        return missing


# --- the servers a step's states describe ---------------------------------------------------------

_SIZED_TYPES = {CLUSTER_TYPE, NODE_GROUP_TYPE}

_CLUSTER_GROUPS = (
    (CONTROL_PLANE, "masterFlavor", "masterCount", "masterCount"),
    # default-worker's range is not on the cluster: its node count is its size as far as Pulumi knows.
    (DEFAULT_WORKER, "flavor", "nodeCount", "nodeCount"),
)
_NODE_GROUP_KEYS = ("flavorId", "minNodeCount", "maxNodeCount")


def _plain(state: StepEventStateMetadata, key: str, *, deployed: bool) -> Any:
    """A property's value, None when it is absent, secret or only known after apply. For the deployed
    side the outputs (what the cloud reported at the last update or refresh) come first, then the
    inputs last sent; for the new side the inputs the program sends now."""
    roots = (state.outputs, state.inputs) if deployed else (state.inputs,)
    for root in roots:
        value = (root or {}).get(key)
        if value is None or _is_secret(value) or value == UNKNOWN_VALUE:
            continue
        return value
    return None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _flavor(value: Any) -> str | None:
    return clean_text(value) if isinstance(value, str) and value else None


def _size(
    state: StepEventStateMetadata | None, keys: tuple[str, str, str], *, deployed: bool
) -> ServerCount | None:
    if state is None:
        return None
    flavor, low, high = (_plain(state, k, deployed=deployed) for k in keys)
    low_count, high_count = _count(low), _count(high)
    if high_count is None or (low_count is not None and high_count < low_count):
        # No maximum (or Magnum's 0 for none): the group does not autoscale and stays at its minimum.
        high_count = low_count
    return ServerCount(flavor=_flavor(flavor), min_count=low_count, max_count=high_count)


def _servers(pending: _Pending) -> list[ServerGroup]:
    before, after = pending.before, pending.after
    if pending.op is ChangeOp.IMPORT:
        before = before or after  # an imported resource already runs (and bills) before the change
    name = name_from_urn(pending.urn)
    if pending.type == CLUSTER_TYPE:
        return [
            ServerGroup(
                group=group,
                resource=name,
                before=_size(before, (flavor, low, high), deployed=True),
                after=_size(after, (flavor, low, high), deployed=False),
            )
            for group, flavor, low, high in _CLUSTER_GROUPS
        ]
    group = next(
        (v for s in (after, before) if s is not None and isinstance(v := (s.inputs or {}).get("name"), str)),
        name.split("-nodegroup-", 1)[-1],
    )
    return [
        ServerGroup(
            group=clean_text(group),
            resource=name,
            before=_size(before, _NODE_GROUP_KEYS, deployed=True),
            after=_size(after, _NODE_GROUP_KEYS, deployed=False),
        )
    ]


def _inputs(state: StepEventStateMetadata | None) -> Mapping[str, Any] | None:
    return state.inputs if state is not None else None


def _old_root(state: StepEventStateMetadata | None, input_diff: bool) -> Mapping[str, Any] | None:
    # A detailed diff compares old inputs with new inputs only when input_diff says so; otherwise it
    # compares the old outputs (what the cloud reported) with the new inputs.
    if state is None:
        return None
    if input_diff:
        return state.inputs
    return state.outputs if state.outputs else state.inputs


def changes_from_events(layer: str, events: Iterable[EngineEvent | Mapping[str, Any]]) -> LayerChanges:
    """Fold a sequence of events (objects or JSON dicts, in engine order) into one layer's changes."""
    collector = ChangeCollector(layer)
    for event in events:
        collector(event)
    return collector.result()


def read_event_log(path: Path, *, layer: str) -> LayerChanges:
    """Read a ``--event-log`` file: one JSON event per line. A last line cut short (the CLI was killed
    mid-write) is skipped; any other line that is not JSON is an error."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    events: list[Mapping[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break
            raise EventStreamError(layer, [f"{path}:{number}: not JSON ({exc.msg})"]) from exc
    return changes_from_events(layer, events)
