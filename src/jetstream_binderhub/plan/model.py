"""What a plan says, separate from how it is printed (text, JSON, pull-request markdown)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class PlannedResource(_Out):
    """One resource the program declares, with its inputs (secrets masked) and non-default options."""

    layer: str
    type: str
    name: str
    parent: str | None = Field(description="Logical name of the parent resource; None for the stack.")
    custom: bool = Field(description="True for a cloud resource, False for a component that groups others.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class PlannedOutput(_Out):
    name: str
    value: Any
    secret: bool


class LayerPlan(_Out):
    layer: str
    project: str
    stack: str
    resources: list[PlannedResource]
    outputs: list[PlannedOutput]

    def output(self, name: str) -> PlannedOutput:
        return next(o for o in self.outputs if o.name == name)

    def resource(self, type_suffix: str, name: str | None = None) -> PlannedResource:
        """The one resource whose type ends with `type_suffix` (and has `name`, when given)."""
        found = [
            r for r in self.resources if r.type.endswith(type_suffix) and (name is None or r.name == name)
        ]
        if len(found) != 1:
            raise LookupError(
                f"expected one {type_suffix} {name or ''} in layer {self.layer}, found {len(found)}"
            )
        return found[0]


class CostLine(_Out):
    group: str
    flavor: str
    min_count: int
    max_count: int
    su_per_hour_each: float | None = Field(description="None when the flavor is custom (not in the catalog).")
    resource: str | None = Field(
        default=None,
        description="The allocation the flavor draws on (`cpu`, `gpu`, `large-memory`); None when custom.",
    )


class ResourceCost(_Out):
    """What the groups whose flavors draw on one allocation cost."""

    min_per_hour: float
    max_per_hour: float
    groups: list[str]


class CostEstimate(_Out):
    unit: str
    lines: list[CostLine]
    min_per_hour: float = Field(description="Every priced group at its minimum size, whatever it draws on.")
    max_per_hour: float = Field(description="Every priced group at its maximum size, whatever it draws on.")
    unpriced: list[str] = Field(default_factory=list, description="Groups whose flavor has no known rate.")

    @computed_field(  # derived from the lines, so a plan printed by older code reads the same
        description=(
            "Per allocation the flavors draw on (`cpu`, `gpu`, `large-memory`), its own totals: on Jetstream2 "
            "each is a separate ACCESS allocation, so only these can be weighed against one. Custom flavors "
            "are in none."
        )
    )
    @property
    def by_resource(self) -> dict[str, ResourceCost]:
        totals: dict[str, ResourceCost] = {}
        for line in self.lines:
            if line.resource is None or line.su_per_hour_each is None:
                continue
            was = totals.get(line.resource, ResourceCost(min_per_hour=0, max_per_hour=0, groups=[]))
            totals[line.resource] = ResourceCost(
                min_per_hour=was.min_per_hour + line.su_per_hour_each * line.min_count,
                max_per_hour=was.max_per_hour + line.su_per_hour_each * line.max_count,
                groups=[*was.groups, line.group],
            )
        return dict(sorted(totals.items()))

    @property
    def min_per_year(self) -> float:
        return self.min_per_hour * 24 * 365


class CostChange(_Out):
    """What a change does to the site's SU/hour, as a live preview prices it from the engine's states."""

    before: CostEstimate | None = Field(description="What is deployed now; None for a new site.")
    after: CostEstimate
    not_priced: dict[str, str] = Field(
        default_factory=dict,
        description="Groups left out of both sides' totals, each with why (custom flavors are in `unpriced`).",
    )
    line: str = Field(description="The one line the pull-request comment shows (plan.cost.cost_change).")


class Plan(_Out):
    site: str
    profile: str
    layers: list[LayerPlan]
    cost: CostEstimate
    warnings: list[str] = Field(
        default_factory=list, description="Valid, but probably not what was meant: shown before the plan."
    )
    notes: list[str] = Field(default_factory=list)

    def layer(self, name: str) -> LayerPlan:
        return next(layer for layer in self.layers if layer.layer == name)
