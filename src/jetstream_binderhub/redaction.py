"""Masking known secret values wherever they were copied into plain text: a light module, because the
offline plan needs it and must not import the engine-event machinery to get it."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

SECRET_PLACEHOLDER = "[secret]"

MIN_REDACTED = 6
"""Shorter known secrets are not searched for: masking every "admin" in a plan would hide more than it
protects (and no credential this short is worth having)."""


def redact(value: Any, secrets: Collection[str]) -> Any:
    """`value` (text, or JSON-like data) with every occurrence of a known secret value replaced by
    ``[secret]``: a value that came from a Pulumi secret stays masked even where something copied it
    into plain text (a diagnostic, another property, an output)."""
    known = sorted((s for s in secrets if len(s) >= MIN_REDACTED), key=len, reverse=True)
    if not known:
        return value
    pattern = re.compile("|".join(re.escape(s) for s in known))

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(SECRET_PLACEHOLDER, item)
        if isinstance(item, Mapping):
            return {walk(k) if isinstance(k, str) else k: walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)
