"""Configuration of the site's support pieces (the `support` key of the BinderHub layer).

What a binder needs to run for the length of an allocation besides BinderHub itself: the allocation's
budget the SU burn is measured against. Every piece can be switched off on its own.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from jetstream_binderhub.config.base import Model


class AllocationConfig(Model):
    """The ACCESS allocation the site's nodes are charged to, as the operator last read it."""

    su_remaining: float = Field(
        ge=0,
        description=(
            "SUs left on the allocation on `as_of`, as the ACCESS allocations portal shows them. Update it (with "
            "`as_of`) now and then: burn projections start from it."
        ),
    )
    as_of: date = Field(description="The day `su_remaining` was read (YYYY-MM-DD).")
    end_date: date = Field(description="Last day of the allocation (YYYY-MM-DD); unspent SUs lapse after it.")
    resource: Literal["cpu", "large-memory", "gpu"] = Field(
        default="cpu",
        description=(
            "Which ACCESS resource the budget is for: Jetstream2 CPU, Large Memory and GPU are separate "
            "allocations, so only nodes of flavors drawing on this one count against it."
        ),
    )

    @field_validator("end_date")
    @classmethod
    def _after_as_of(cls, value: date, info: ValidationInfo) -> date:
        as_of = info.data.get("as_of")
        if as_of is not None and value <= as_of:
            raise ValueError(
                f"must be after as_of ({as_of}): an allocation that has ended has no budget to project against"
            )
        return value


class SupportConfig(Model):
    """Pieces that keep a public binder healthy and inside its budget for a year."""

    allocation: AllocationConfig | None = Field(
        default=None,
        description=(
            "The allocation's remaining SUs and end date; without it `cost` shows the burn rate only and no "
            "budget alert is made."
        ),
    )
