"""The SU/hour estimate a site owner budgets an allocation with."""

from __future__ import annotations

from typing import Any

from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.plan.cost import estimate
from jetstream_binderhub.profiles import load_profile


def test_shipped_site_cost(cluster_config: dict[str, Any]) -> None:
    cfg = parse_cluster_stack(cluster_config)
    cost = estimate(cfg.cluster, load_profile("jetstream2"))
    # m3.small control plane (2) + m3.quad default-worker (4) + m3.large users 1..10 (16 each)
    assert cost.min_per_hour == 2 + 4 + 16
    assert cost.max_per_hour == 2 + 4 + 16 * 10
    assert cost.min_per_year == (2 + 4 + 16) * 24 * 365
    assert [(line.group, line.min_count, line.max_count) for line in cost.lines] == [
        ("control-plane", 1, 1),
        ("default-worker", 1, 1),
        ("user-m3.large", 1, 10),
    ]
    assert cost.unit == "SU"


def test_custom_flavors_are_listed_not_priced_as_free() -> None:
    cfg = parse_cluster_stack(
        {"cluster": {"name": "x", "node_groups": [{"name": "odd", "flavor": "x9", "custom_flavor": True}]}}
    )
    cost = estimate(cfg.cluster, load_profile("jetstream2"))
    assert cost.unpriced == ["odd"]
    assert cost.min_per_hour == 8 + 4  # defaults: m3.medium control plane, m3.quad default-worker


def test_gpu_and_large_memory_rates_come_from_the_catalog() -> None:
    profile = load_profile("jetstream2")
    g3 = profile.flavor("g3.large")
    r3 = profile.flavor("r3.large")
    assert g3 is not None and g3.resource == "gpu" and g3.su_per_hour == 2 * g3.vcpus
    assert r3 is not None and r3.resource == "large-memory" and r3.su_per_hour == 2 * r3.vcpus
