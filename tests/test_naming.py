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


@pytest.mark.parametrize("name", ["jetstream2", "pythia_workshop.2026-03", "A" * 100, "-x", "a..b"])
def test_site_names_pulumi_accepts_are_accepted(name: str) -> None:
    from jetstream_binderhub.naming import check_site_name, site_name_problem

    assert site_name_problem(name) is None
    assert check_site_name(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("my site", "invalid character ' ' at position 2"),
        ("../escape", "invalid character '/' at position 2"),
        ("a/b", "invalid character '/'"),
        ("$HOME", "invalid character '$' at position 0"),
        ("sité", "invalid character 'é' at position 3"),
        ("..", "would name a directory"),
        (".", "would name a directory"),
        ("", "may not be empty"),
        ("a" * 101, "cannot exceed 100 characters"),
    ],
)
def test_site_names_pulumi_refuses_are_refused_with_the_reason(name: str, why: str) -> None:
    from jetstream_binderhub.errors import InvalidSiteName
    from jetstream_binderhub.naming import check_site_name, site_name_problem

    problem = site_name_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(InvalidSiteName) as refused:
        check_site_name(name)
    assert refused.value.exit_code == 2
