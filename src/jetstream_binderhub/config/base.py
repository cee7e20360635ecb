"""The base every config model shares."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Frozen, strict about unknown keys, documented field by field.

    Unknown keys are refused rather than ignored: a misspelt ``max_cout`` silently ignored would
    give a cluster the user did not ask for.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, use_attribute_docstrings=False, defer_build=True
    )
