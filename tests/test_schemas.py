"""The chart schemas shipped with the package: what the generator makes, compacted without changing a
verdict, and in step with the charts the programs pin."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from jetstream_binderhub import schemas
from jetstream_binderhub.config.hub import BINDERHUB_CHART_VERSION

REPO_ROOT = Path(__file__).resolve().parents[1]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "generate_schemas", REPO_ROOT / "scripts" / "generate_schemas.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.fixture(scope="module")
def upstream() -> Path:
    """The charts' own files, where this checkout has them (CI lays them beside it); a clone from
    GitHub does not, and needs them only to regenerate."""
    if not (GEN.DEFAULT_UPSTREAM / GEN.CHARTS[0].schema).is_file():
        pytest.skip(
            f"the charts' own schema files are not in {GEN.DEFAULT_UPSTREAM} (only needed to regenerate)"
        )
    return GEN.DEFAULT_UPSTREAM


def _need_files(spec: Any, upstream: Path) -> None:
    # Charts added later may not be laid out beside every checkout yet.
    if not (upstream / spec.schema).is_file():
        pytest.skip(f"{spec.schema} is not in {upstream} (only needed to regenerate)")


def test_every_chart_the_generator_knows_ships() -> None:
    assert schemas.available() == sorted(c.name for c in GEN.CHARTS)
    for chart in GEN.CHARTS:
        assert schemas.load(chart.name).version == chart.version


def test_shipped_binderhub_schema_is_the_pinned_chart_version() -> None:
    # A chart bump that forgot to regenerate would validate against the old chart's schema.
    assert schemas.load("binderhub").version == BINDERHUB_CHART_VERSION
    assert schemas.load("binderhub").subcharts == {"jupyterhub": "jupyterhub"}


@pytest.mark.parametrize("chart", [c.name for c in GEN.CHARTS])
def test_shipped_files_are_what_the_generator_makes(chart: str, upstream: Path) -> None:
    spec = next(c for c in GEN.CHARTS if c.name == chart)
    _need_files(spec, upstream)
    shipped = (REPO_ROOT / "src" / "jetstream_binderhub" / "schemas" / f"{chart}.json").read_text()
    assert shipped == GEN.render(spec, upstream), (
        f"src/jetstream_binderhub/schemas/{chart}.json is stale: run `python scripts/generate_schemas.py`"
    )


def _verdicts(schema: dict[str, Any], instance: Any) -> list[tuple[str, str]]:
    from jsonschema import Draft7Validator

    return sorted(
        (".".join(map(str, e.absolute_path)), e.message)
        for e in Draft7Validator(schema).iter_errors(instance)
    )


def _broken_instances(defaults: dict[str, Any]) -> list[Any]:
    """Chart defaults with each top-level value swapped for a wrong type, an unknown key, and a null."""
    out: list[Any] = [defaults, {}, {**defaults, "noSuchKey": 1}]
    for key, value in defaults.items():
        wrong = 7 if isinstance(value, dict | list | str | bool) else "seven"
        out.append({**defaults, key: wrong})
        if isinstance(value, dict):
            out.append({**defaults, key: {**value, "noSuchKey": {"x": 1}}})
            for sub, subvalue in value.items():
                out.append({**defaults, key: {**value, sub: [] if not isinstance(subvalue, list) else "x"}})
    return out


@pytest.mark.parametrize("chart", [c.name for c in GEN.CHARTS])
def test_compaction_changes_no_verdict(chart: str, upstream: Path) -> None:
    spec = next(c for c in GEN.CHARTS if c.name == chart)
    _need_files(spec, upstream)
    full = GEN._read(upstream / spec.schema)
    compacted = GEN.compact(full)
    instances = _broken_instances(json.loads(json.dumps(GEN._read(upstream / spec.values))))
    refused = 0
    for instance in instances:
        expected = _verdicts(full, instance)
        assert _verdicts(compacted, instance) == expected
        refused += bool(expected)
    assert refused > len(instances) // 2, "the instances must exercise the schema, not only pass it"


def test_compaction_drops_prose_but_keeps_user_property_names() -> None:
    schema = {
        "type": "object",
        "description": "prose",
        "properties": {"description": {"type": "string", "description": "a property named description"}},
        "additionalProperties": {"title": "t", "type": "integer"},
        "items": [{"examples": [1], "enum": [1]}],
    }
    assert GEN.compact(schema) == {
        "type": "object",
        "properties": {"description": {"type": "string"}},
        "additionalProperties": {"type": "integer"},
        "items": [{"enum": [1]}],
    }
    text = (REPO_ROOT / "src" / "jetstream_binderhub" / "schemas" / "jupyterhub.json").read_text()
    assert '"description":"' not in text


def test_validation_is_done_once_for_the_same_values() -> None:
    values = {"jupyterhub": {"singleuser": {"cpu": {"limit": "four"}}}}
    first = schemas.validate_chart_values("binderhub", values)
    assert "jupyterhub.singleuser.cpu.limit: 'four' is not of type 'number', 'null'" in map(str, first)
    hits = schemas._validate_text.cache_info().hits
    assert schemas.validate_chart_values("binderhub", json.loads(json.dumps(values))) == first
    assert schemas._validate_text.cache_info().hits == hits + 1


def test_unknown_chart_is_named() -> None:
    with pytest.raises(KeyError, match="no schema ships for chart 'nope'"):
        schemas.load("nope")


def test_a_refusal_names_the_chart_and_every_problem() -> None:
    assert schemas.refusal("dask-gateway", {}) is None
    message = schemas.refusal("binderhub", {"imageBuilderType": "docker", "replicas": "two"})
    assert message is not None
    lines = message.splitlines()
    assert lines[0] == "the binderhub chart would refuse these values:"
    assert "  imageBuilderType: 'docker' is not one of ['host', 'dind', 'pink']" in lines
    assert any(line.startswith("  replicas: 'two' is not of type") for line in lines)
