"""The node-group label value is what pods select on; it must match the driver's sanitized_name."""

from __future__ import annotations

import pytest

from jetstream_binderhub.naming import content_digest, node_group_label_value


@pytest.mark.parametrize(
    ("group", "label"),
    [
        ("user-m3.large", "user-m3-large"),  # the 2i2c/Pythia example: dots become dashes
        ("GPU_A100", "gpu-a100"),  # lowercased, underscore replaced
        ("a..b", "a-b"),  # a run of other characters becomes one dash
        ("-edge-", "edge"),  # dashes at the ends are stripped
        ("default-worker", "default-worker"),
        ("core", "core"),
    ],
)
def test_label_value_follows_the_driver(group: str, label: str) -> None:
    assert node_group_label_value(group) == label


def test_digest_depends_on_content_only() -> None:
    assert content_digest({"a": 1, "b": [1, 2]}) == content_digest({"b": [1, 2], "a": 1})
    assert content_digest({"a": 1}) != content_digest({"a": 2})
