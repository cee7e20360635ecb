"""docs/configuration.md is generated from the models; a stale copy would mislead users."""

from __future__ import annotations

from pathlib import Path

from jetstream_binderhub.config.cluster import ClusterConfig, NodeGroup
from jetstream_binderhub.config.reference import render


def test_committed_reference_is_current(repo_root: Path) -> None:
    committed = (repo_root / "docs" / "configuration.md").read_text()
    assert committed == render(), (
        "docs/configuration.md is stale: run `python -m jetstream_binderhub.config.reference > docs/configuration.md`"
    )


def test_every_field_is_documented() -> None:
    text = render()
    for name, field in ClusterConfig.model_fields.items():
        assert field.description, f"cluster.{name} has no description"
        assert f"`cluster.{name}`" in text
    for name in NodeGroup.model_fields:
        assert f"`cluster.node_groups[].{name}`" in text


def test_secret_keys_are_documented() -> None:
    from jetstream_binderhub.config.hub import SECRET_KEYS

    text = render()
    for key in SECRET_KEYS:
        assert f"- `{key}`:" in text
