"""Validating BinderHub values against the pinned chart's schema (and its JupyterHub subchart's), the
way Helm does. The schemas ship with the package: see :mod:`jetstream_binderhub.schemas`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jetstream_binderhub.errors import Problem
from jetstream_binderhub.helm_values import coalesce
from jetstream_binderhub.schemas import validate_chart_values

__all__ = ["coalesce", "validate_binderhub_values"]


def validate_binderhub_values(values: Mapping[str, Any]) -> list[Problem]:
    """Every problem the binderhub chart (and its jupyterhub subchart) would report for `values`."""
    return validate_chart_values("binderhub", values)
