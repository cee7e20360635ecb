"""No pydantic pattern text reaches a user: every regex-constrained key explains itself in words."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.hub import HubStackConfig, check_hub_stack
from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, read_stack_file
from jetstream_binderhub.errors import PATTERN_MEANINGS, ConfigError, Problem

REPO_ROOT = Path(__file__).resolve().parents[2]

BAD = "NOT Valid!"

KeyPath = tuple[str | int, ...]


def _patterns_in(metadata: list[Any] | tuple[Any, ...]) -> Iterator[str]:
    for meta in metadata:
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            yield pattern


def _walk_annotation(annotation: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        yield from ((path, p) for p in _patterns_in(annotation.__metadata__))
        yield from _walk_annotation(args[0], path)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield from pattern_fields(annotation, path)
    elif origin in (list, tuple):
        for arg in args:
            if arg is not Ellipsis:
                yield from _walk_annotation(arg, (*path, 0))
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from _walk_annotation(arg, path)


def pattern_fields(model: type[BaseModel], path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """(key path, regex) of every pattern-constrained string anywhere under `model`."""
    for name, field in model.model_fields.items():
        here = (*path, name)
        yield from ((here, p) for p in _patterns_in(field.metadata))
        yield from _walk_annotation(field.annotation, here)


def _key(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _set(raw: dict[str, Any], path: KeyPath, value: str) -> None:
    node: Any = raw
    for part in path[:-1]:
        if isinstance(part, int):
            assert len(node) > part, f"the shipped site has no element {part} to put a bad value in"
            node = node[part]
        else:
            node = node.setdefault(part, {})
    node[path[-1]] = value


def _problems(layer: str, raw: dict[str, Any]) -> list[Problem]:
    if layer == "cluster":
        with pytest.raises(ConfigError) as err:
            parse_cluster_stack(raw)
        return err.value.problems
    _, problems = check_hub_stack(raw)
    return problems


CASES = [
    *(("cluster", path, pattern) for path, pattern in pattern_fields(ClusterStackConfig)),
    *(("hub", path, pattern) for path, pattern in pattern_fields(HubStackConfig)),
]


def test_the_walk_finds_the_known_patterns() -> None:
    keys = {(layer, _key(path)) for layer, path, _ in CASES}
    assert {
        ("hub", "dns.allocation"),
        ("cluster", "cluster.capi_helm_chart_version"),
        ("cluster", "cluster.node_groups[0].role"),
    } <= keys


@pytest.mark.parametrize(("layer", "path", "pattern"), CASES, ids=[f"{c[0]}:{_key(c[1])}" for c in CASES])
def test_a_bad_value_is_explained_in_words(layer: str, path: KeyPath, pattern: str) -> None:
    assert re.search(pattern, BAD) is None
    if layer == "cluster":
        raw = read_stack_file(REPO_ROOT / "Pulumi.jetstream2.yaml").namespace(CLUSTER_PROJECT)
    else:
        raw = read_stack_file(REPO_ROOT / "binderhub" / "Pulumi.jetstream2.yaml").namespace(HUB_PROJECT)
    _set(raw, path, BAD)
    problems = _problems(layer, raw)
    assert all("should match pattern" not in p.message and pattern not in p.message for p in problems)
    assert pattern in PATTERN_MEANINGS, f"{_key(path)}: give its pattern a meaning with described_pattern()"
    mine = [p for p in problems if p.key == _key(path)]
    assert [p.message for p in mine] == [f"{PATTERN_MEANINGS[pattern]} (got {BAD!r})"]
