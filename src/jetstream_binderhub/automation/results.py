"""Typed results of site operations: change counts per layer, and outputs with secrets wrapped.

Nothing here can print a secret by accident: a :class:`Secret` shows as ``[secret]`` in ``repr``,
``str``, f-strings, logs and tracebacks; only :meth:`Secret.reveal` returns the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from jetstream_binderhub.engine.changes import LayerChanges
    from jetstream_binderhub.plan.model import CostChange

T = TypeVar("T")

SECRET_TEXT = "[secret]"


class Layer(StrEnum):
    """The two Pulumi projects of a site, in dependency order."""

    CLUSTER = "cluster"
    BINDERHUB = "binderhub"


LayerChoice = Literal["cluster", "binderhub", "all"]

Operation = Literal["preview", "up", "destroy", "refresh"]


def layers_for(choice: Layer | LayerChoice, *, reverse: bool = False) -> list[Layer]:
    """The layers a choice names, in dependency order (cluster first), or the reverse for destroy."""
    layers = list(Layer) if choice == "all" else [Layer(choice)]
    return layers[::-1] if reverse else layers


class Secret(Generic[T]):
    """A value that must not be shown. ``reveal()`` is the only way to the value."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def reveal(self) -> T:
        return self._value

    def __repr__(self) -> str:
        return SECRET_TEXT

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return SECRET_TEXT

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash((Secret, SECRET_TEXT))

    def __reduce__(self) -> Any:
        # Pickling would write the value to disk or a queue unnoticed; refuse instead.
        raise TypeError("a Secret cannot be pickled; reveal() it deliberately if you must")


def masked(value: Any) -> Any:
    """A JSON-able copy with every Secret replaced by ``[secret]``."""
    if isinstance(value, Secret):
        return SECRET_TEXT
    if isinstance(value, Mapping):
        return {str(k): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


@dataclass(frozen=True)
class LayerOutputs:
    """One layer's stack outputs; secret outputs are :class:`Secret`. Reads like a read-only dict."""

    layer: Layer
    stack: str
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def masked(self) -> dict[str, Any]:
        """A JSON-able dict with every secret shown as ``[secret]``."""
        return masked(dict(self.values))

    def __repr__(self) -> str:
        return f"LayerOutputs(layer={self.layer.value!r}, stack={self.stack!r}, values={self.masked()!r})"


def wrap_outputs(layer: Layer, stack: str, raw: Mapping[str, tuple[Any, bool]]) -> LayerOutputs:
    return LayerOutputs(
        layer=layer,
        stack=stack,
        values={name: Secret(value) if secret else value for name, (value, secret) in raw.items()},
    )


@dataclass(frozen=True)
class LayerResult:
    """What one operation did (or, for preview, would do) to one layer."""

    layer: Layer
    operation: Operation
    stack: str
    changes: LayerChanges | None = None
    """Per-resource changes from the engine's events; None when the layer was skipped."""
    duration_seconds: float = 0.0
    skipped: str | None = None
    """Why the layer was not run (e.g. the hub cannot be previewed before its cluster exists)."""
    problem: str | None = None
    """Something to tell the user although the operation succeeded (its events could not be read)."""
    cost: CostChange | None = None
    """A cluster-layer preview's SU/hour before and after, priced from the engine's states."""

    @property
    def counts(self) -> dict[str, int]:
        """create/update/replace/delete/... -> number of resources (empty when skipped)."""
        if self.changes is None:
            return {}
        return {str(op): n for op, n in self.changes.counts.items()}

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "layer": self.layer.value,
            "operation": self.operation,
            "stack": self.stack,
            "duration_seconds": round(self.duration_seconds, 1),
            "counts": self.counts,
        }
        if self.skipped:
            data["skipped"] = self.skipped
        if self.problem:
            data["problem"] = self.problem
        if self.changes is not None:
            data["changes"] = self.changes.model_dump(mode="json")
        if self.cost is not None:
            data["cost"] = self.cost.model_dump(mode="json")
        return data


@dataclass(frozen=True)
class SiteResult:
    """The result of one operation over one or both layers, in the order they ran."""

    site: str
    operation: Operation
    layers: tuple[LayerResult, ...]
    notes: tuple[str, ...] = ()
    failed_layer: Layer | None = None
    """Set on the partial result an error carries: the layer that failed after the ones in `layers` ran."""

    def layer(self, layer: Layer | str) -> LayerResult:
        return next(r for r in self.layers if r.layer == Layer(layer))

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return {r.layer.value: r.counts for r in self.layers}

    @property
    def all_notes(self) -> list[str]:
        """The site's notes and each layer's problem, for printing after the summary."""
        return [*self.notes, *(r.problem for r in self.layers if r.problem)]

    @property
    def cost_line(self) -> str | None:
        """The SU/hour change of the site (the cluster layer's), or None when it was not priced."""
        return next((r.cost.line for r in self.layers if r.cost is not None), None)

    @property
    def layer_changes(self) -> list[LayerChanges]:
        return [r.changes for r in self.layers if r.changes is not None]

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "operation": self.operation,
            "layers": [r.to_json() for r in self.layers],
            "notes": list(self.notes),
            **({"failed_layer": self.failed_layer.value} if self.failed_layer else {}),
        }
