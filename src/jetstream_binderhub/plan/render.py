"""Plans as text for people and JSON for machines; the same Plan model feeds both."""

from __future__ import annotations

import json
from typing import Any

from jetstream_binderhub.plan.model import LayerPlan, Plan, PlannedResource

MAX_VALUE = 100
MAX_VALUE_LINES = 40
MAX_LINES_PER_RESOURCE = 200  # enough for a whole BinderHub values tree; --json has everything


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested inputs as `a.b[0].c = leaf` pairs: Helm values and labels read (and diff) best that way."""
    if isinstance(value, dict) and value:
        pairs: list[tuple[str, Any]] = []
        for key in sorted(value):
            pairs += flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
        return pairs
    if isinstance(value, list) and value and any(isinstance(v, dict | list) for v in value):
        pairs = []
        for i, item in enumerate(value):
            pairs += flatten(item, f"{prefix}[{i}]")
        return pairs
    return [(prefix, value)]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(", ", ": "))
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "… (full value: --json)"


def _assignment(indent: str, key: str, value: Any) -> list[str]:
    """`key = value`; a multi-line string continues on lines of its own under the key, so the tree's
    indentation (and its `│` rails) carry on instead of restarting at column 0."""
    if isinstance(value, str) and "\n" in value.strip("\n"):
        lines = value.strip("\n").splitlines()
        shown = [f"{indent}{key} ="] + [f"{indent}  | {_short(line)}" for line in lines[:MAX_VALUE_LINES]]
        if len(lines) > MAX_VALUE_LINES:
            shown.append(f"{indent}  | … {len(lines) - MAX_VALUE_LINES} more lines (full value: --json)")
        return shown
    return [f"{indent}{key} = {_short(value)}"]


def amount(value: float) -> str:
    """A cost as people write it: 1,600,010 rather than 1.60001e+06; at most two decimals."""
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _options(res: PlannedResource) -> str:
    parts = []
    for key, value in res.options.items():
        if value is True:
            parts.append(key)
        elif isinstance(value, list):
            parts.append(f"{key}=[{', '.join(map(str, value))}]")
        elif isinstance(value, dict):
            parts.append(f"{key}=" + ",".join(f"{k}:{v}" for k, v in value.items()))
        else:
            parts.append(f"{key}={value}")
    return f"  [{'; '.join(parts)}]" if parts else ""


def _tree(layer: LayerPlan) -> list[str]:
    children: dict[str | None, list[PlannedResource]] = {}
    for res in layer.resources:
        children.setdefault(res.parent, []).append(res)
    lines: list[str] = []

    def walk(parent: str | None, indent: str) -> None:
        kids = children.get(parent, [])
        for i, res in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(f"{indent}{'└─' if last else '├─'} {res.type}  {res.name}{_options(res)}")
            body = indent + ("   " if last else "│  ")
            pairs = flatten(res.inputs) if res.inputs else []
            for key, value in pairs[:MAX_LINES_PER_RESOURCE]:
                lines.extend(_assignment(f"{body}    ", key, value))
            if len(pairs) > MAX_LINES_PER_RESOURCE:
                lines.append(f"{body}    … {len(pairs) - MAX_LINES_PER_RESOURCE} more (full inputs: --json)")
            walk(res.name, body)

    walk(None, "  ")
    return lines


def render_text(plan: Plan) -> str:
    out = [
        f"Offline plan of site {plan.site!r} (profile {plan.profile}).",
        "Nothing was contacted: values the cloud decides show as <resource.property>, secrets as [secret].",
    ]
    if plan.warnings:
        out += ["", "Warnings:", *(f"  ! {w}" for w in plan.warnings)]
    for layer in plan.layers:
        custom = sum(1 for r in layer.resources if r.custom)
        out += [
            "",
            f"Layer {layer.layer}: project {layer.project}, stack {layer.stack}, {custom} cloud resources",
            *_tree(layer),
            "  Outputs:",
            *(line for o in layer.outputs for line in _assignment("    ", o.name, o.value)),
        ]
    cost = plan.cost
    unit = cost.unit
    out += ["", f"Cost estimate ({unit}/hour while the servers exist):"]
    out.append(f"    {'group':<24} {'flavor':<12} {'min':>4} {'max':>4} {unit + '/h each':>10}")
    for line in cost.lines:
        rate = amount(line.su_per_hour_each) if line.su_per_hour_each is not None else "custom"
        out.append(
            f"    {line.group:<24} {line.flavor:<12} {line.min_count:>4} {line.max_count:>4} {rate:>10}"
        )
    out.append(
        f"  at minimum size {amount(cost.min_per_hour)} {unit}/h (about {cost.min_per_year:,.0f} {unit} a "
        f"year); at maximum size {amount(cost.max_per_hour)} {unit}/h"
    )
    if len(cost.by_resource) > 1:
        # Jetstream2's GPU and large-memory flavors draw on allocations of their own.
        parts = [
            f"{resource} {amount(r.min_per_hour)}..{amount(r.max_per_hour)} {unit}/h ({', '.join(r.groups)})"
            for resource, r in cost.by_resource.items()
        ]
        out.append(f"  charged to separate allocations: {'; '.join(parts)}")
    if cost.unpriced:
        out.append(f"  not counted (custom flavors): {', '.join(cost.unpriced)}")
    if plan.notes:
        out += ["", "Notes:", *(f"  - {n}" for n in plan.notes)]
    return "\n".join(out) + "\n"


def plan_json(plan: Plan) -> dict[str, Any]:
    data = plan.model_dump(mode="json")
    data["cost"]["min_per_year"] = plan.cost.min_per_year
    return data


def render_json(plan: Plan) -> str:
    return json.dumps(plan_json(plan), indent=2, sort_keys=True) + "\n"
