"""Generate the chart schemas the offline check ships with, from the pinned charts' own schema files.

The plan and the programs validate Helm values the way Helm does: chart defaults coalesced with the
site's values, then checked against the chart's JSON schema (and each subchart's subtree against the
subchart's schema). They need both files of every pinned chart with no network and no checkout beside
the repository, so this script compacts them into `src/jetstream_binderhub/schemas/<chart>.json`:
the schema keeps what validation reads (types, properties, required, enums, patterns, bounds,
additionalProperties, combinators) and drops the prose; the chart's values.yaml becomes plain JSON.

A chart bump is one command: put the new chart's schema and values where `--upstream` points (by
default `$JSBH_UPSTREAM_DIR`, else `shared/upstream` beside the repository, the charts' `values.schema.json`/`schema.yaml` and
`values.yaml` upstream), update CHARTS below, and run

    python scripts/generate_schemas.py [--upstream DIR]

`tests/test_schemas.py` fails while the shipped files differ from what this script makes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_ENV = "JSBH_UPSTREAM_DIR"
DEFAULT_UPSTREAM = Path(os.environ.get(UPSTREAM_ENV) or ROOT.parent / "shared" / "upstream")
OUT_DIR = ROOT / "src" / "jetstream_binderhub" / "schemas"


@dataclass(frozen=True)
class Chart:
    name: str
    version: str
    schema: str
    """File name of the chart's schema (YAML or JSON) in the upstream directory."""
    values: str
    """File name of the chart's default values.yaml in the upstream directory."""
    source: str
    license: str
    subcharts: dict[str, str] = field(default_factory=dict)
    """Values key -> chart name of a subchart whose subtree Helm validates against its own schema."""


CHARTS = (
    Chart(
        name="binderhub",
        version="1.0.0-0.dev.git.3958.haf9ca8b1",
        schema="binderhub-values.schema.yaml",
        values="binderhub-values.yaml",
        source="jupyterhub/binderhub helm-chart/binderhub/{schema.yaml,values.yaml} @ b9fad995d5529e487c25a9f0795f4fe150a96f25",
        license="BSD-3-Clause",
        subcharts={"jupyterhub": "jupyterhub"},
    ),
    Chart(
        name="jupyterhub",
        version="4.2.0",
        schema="z2jh-4.2.0-values.schema.yaml",
        values="z2jh-4.2.0-values.yaml",
        source="jupyterhub/zero-to-jupyterhub-k8s jupyterhub/{values.schema.yaml,values.yaml} @ 4.2.0",
        license="BSD-3-Clause",
    ),
    Chart(
        name="dask-gateway",
        version="2026.3.0",
        schema="dask-gateway-2026.3.0-values.schema.yaml",
        values="dask-gateway-2026.3.0-values.yaml",
        source="dask/dask-gateway resources/helm/dask-gateway/{values.schema.yaml,values.yaml} @ 2026.3.0",
        license="BSD-3-Clause",
    ),
    # Not yet here: prometheus-community's `prometheus` chart (29.27.0, Apache-2.0) has a values.schema.json,
    # but its files are not among the upstream data this script reads; add them there and a Chart entry
    # here, and the support layer's Prometheus values are checked like the others (hub/support.py asks
    # `available()`).
)

# Keywords whose value is a map of names to subschemas: the names are the user's, never keywords.
_SCHEMA_MAPS = {"properties", "patternProperties", "definitions", "$defs", "dependentSchemas"}
# Keywords whose value is one subschema (or, for items, a list of them) or a boolean.
_SCHEMA_ONE = {"additionalProperties", "additionalItems", "items", "not", "if", "then", "else", "contains"}
_SCHEMA_ONE |= {"propertyNames", "unevaluatedProperties", "unevaluatedItems"}
_SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
# Keywords that constrain a value as they are. Everything else (description, title, examples, default,
# $comment, markdown prose) changes no validation result and is dropped.
_PLAIN = {"$schema", "$ref", "type", "required", "enum", "const", "pattern", "format", "multipleOf"}
_PLAIN |= {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength"}
_PLAIN |= {"minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "dependentRequired"}


def compact(schema: Any) -> Any:
    """`schema` with only what a JSON-schema validator reads."""
    if not isinstance(schema, dict):
        return schema  # true/false schemas
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _SCHEMA_MAPS:
            out[key] = {name: compact(sub) for name, sub in value.items()}
        elif key in _SCHEMA_ONE:
            out[key] = [compact(s) for s in value] if isinstance(value, list) else compact(value)
        elif key in _SCHEMA_LISTS:
            out[key] = [compact(s) for s in value]
        elif key == "dependencies":  # draft 7: a list of required names or a subschema, per property
            out[key] = {k: v if isinstance(v, list) else compact(v) for k, v in value.items()}
        elif key in _PLAIN:
            out[key] = value
    return out


def _read(path: Path) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def render(chart: Chart, upstream: Path) -> str:
    """The shipped file for `chart`, as text: sorted, compact JSON, so a diff shows only real changes."""
    doc = {
        "chart": chart.name,
        "version": chart.version,
        "source": chart.source,
        "license": chart.license,
        "subcharts": chart.subcharts,
        "schema": compact(_read(upstream / chart.schema)),
        "defaults": _read(upstream / chart.values) or {},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the chart schemas the offline check ships with.")
    parser.add_argument(
        "--upstream", type=Path, default=DEFAULT_UPSTREAM, help="directory of the charts' files"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the package's schema files go")
    args = parser.parse_args(argv)
    missing = [c.schema for c in CHARTS if not (args.upstream / c.schema).is_file()]
    missing += [c.values for c in CHARTS if not (args.upstream / c.values).is_file()]
    if missing:
        print(f"generate_schemas: not in {args.upstream}: {', '.join(missing)}", file=sys.stderr)
        return 2
    for chart in CHARTS:
        target = args.out / f"{chart.name}.json"
        target.write_text(render(chart, args.upstream), encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
