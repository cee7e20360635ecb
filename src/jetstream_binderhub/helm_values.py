"""Helm's two ways of layering values, as pure functions (no Pulumi, no chart files)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` over `base` the way Helm layers user values: mappings merge key by key, anything else
    (lists, scalars, null) replaces. A null is kept, so Helm itself removes that key from the chart's
    defaults as well."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def coalesce(defaults: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: `values` over `defaults`, mappings merged, a null deleting the key."""
    out = copy.deepcopy(dict(defaults))
    for key, value in values.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = coalesce(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = coalesce({}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out
