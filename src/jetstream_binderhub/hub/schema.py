"""Validating BinderHub values against the real upstream chart schemas, the way Helm does.

Helm validates the *coalesced* values (chart defaults with the user's values over them, a null removing
a key) against the chart's schema, then does the same for each subchart's subtree. The BinderHub chart
leaves its `jupyterhub:` subtree open, so that subtree is checked against the JupyterHub (z2jh) chart's
own schema, the version the BinderHub chart depends on.

The schema files are upstream data kept beside the repository (`../shared/upstream`), never copied
into it; when they are absent (an installed package, a bare CI runner) validation is skipped and says so.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from jetstream_binderhub.errors import Problem
from jetstream_binderhub.hub.values import deep_merge

BINDERHUB_SCHEMA = "binderhub-values.schema.yaml"
BINDERHUB_DEFAULTS = "binderhub-values.yaml"
JUPYTERHUB_SCHEMA = "z2jh-4.2.0-values.schema.yaml"
JUPYTERHUB_DEFAULTS = "z2jh-4.2.0-values.yaml"
UPSTREAM_ENV = "JSBH_UPSTREAM_DIR"


def find_upstream_dir() -> Path | None:
    """`$JSBH_UPSTREAM_DIR`, else `../shared/upstream` beside a source checkout; None when neither has them."""
    candidates = [Path(p) for p in (os.environ.get(UPSTREAM_ENV),) if p]
    # src/jetstream_binderhub/hub/schema.py -> the checkout is three levels up (editable installs only).
    candidates.append(Path(__file__).resolve().parents[3].parent / "shared" / "upstream")
    return next((p for p in candidates if (p / BINDERHUB_SCHEMA).is_file()), None)


@cache
def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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


def _problems(schema: Mapping[str, Any], instance: Any, prefix: str) -> list[Problem]:
    from jsonschema import Draft7Validator

    found = []
    for err in sorted(
        Draft7Validator(schema).iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))
    ):
        path = ".".join([prefix, *map(str, err.absolute_path)] if prefix else map(str, err.absolute_path))
        found.append(Problem(path or "(root)", err.message))
    return found


def validate_binderhub_values(values: Mapping[str, Any], upstream_dir: Path) -> list[Problem]:
    """Every problem the binderhub chart (and its jupyterhub subchart) would report for `values`."""
    bh_defaults = _load(upstream_dir / BINDERHUB_DEFAULTS)
    problems = _problems(_load(upstream_dir / BINDERHUB_SCHEMA), coalesce(bh_defaults, values), "")
    # The subchart sees the parent's jupyterhub subtree, nulls included, over its own defaults.
    parent_view = deep_merge(bh_defaults.get("jupyterhub") or {}, values.get("jupyterhub") or {})
    subchart = coalesce(_load(upstream_dir / JUPYTERHUB_DEFAULTS), parent_view)
    problems += _problems(_load(upstream_dir / JUPYTERHUB_SCHEMA), subchart, "jupyterhub")
    return problems
