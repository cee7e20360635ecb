"""Every validation rule of the cluster config, good and bad, as the user meets it: key path + reason."""

from __future__ import annotations

from typing import Any

import pytest

from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.errors import ConfigError


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_cluster_stack(raw)
    return info.value.lines()


def group(**kw: Any) -> dict[str, Any]:
    return {"name": "user", "flavor": "m3.large", **kw}


def test_shipped_site_is_valid_and_takes_profile_defaults(cluster_config: dict[str, Any]) -> None:
    cfg = parse_cluster_stack(cluster_config)
    assert cfg.profile == "jetstream2"
    assert cfg.cluster.name == "pythia-binder"
    assert cfg.cluster.image == "ubuntu-jammy-kube-v1.33.2-250626-0848"
    assert cfg.cluster.capi_helm_chart_version == "0.16.0"
    assert cfg.cluster.fixed_network == "auto_allocated_network"
    assert cfg.cluster.external_network == "public"
    (user,) = cfg.cluster.node_groups
    assert (user.name, user.flavor, user.min_count, user.upper, user.autoscaled) == (
        "user-m3.large",
        "m3.large",
        1,
        10,
        True,
    )


def test_models_are_frozen(cluster_config: dict[str, Any]) -> None:
    cfg = parse_cluster_stack(cluster_config)
    with pytest.raises(ValueError, match="frozen"):
        cfg.cluster.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["Pythia", "pythia_binder", "-pythia", "pythia-", "a" * 64, "py.thia"])
def test_cluster_name_must_be_rfc1123_label(name: str) -> None:
    (line,) = problems({"cluster": {"name": name}})
    assert line.startswith("cluster.name: must be an RFC 1123 label")
    assert repr(name) in line


def test_missing_cluster_is_named() -> None:
    assert problems({}) == ["cluster: required key is missing"]


def test_unknown_keys_are_refused_with_their_path() -> None:
    lines = problems({"cluster": {"name": "x", "node_groups": [group(max_cout=3)]}, "colour": "blue"})
    assert "colour: unknown key for the cluster layer (expected: profile, cluster)" in lines
    assert any(line.startswith("cluster.node_groups[0].max_cout: unknown key") for line in lines)


def test_min_count_zero_explains_the_driver() -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(min_count=0)]}})
    assert line.startswith("cluster.node_groups[0].min_count:")
    assert "Magnum's Cluster API driver refuses empty node groups" in line
    assert "(got 0)" in line


def test_default_worker_cannot_be_empty_either() -> None:
    (line,) = problems({"cluster": {"name": "x", "default_worker": {"min_count": 0}}})
    assert line.startswith("cluster.default_worker.min_count:")
    assert "empty node groups" in line


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"min_count": 3, "max_count": 2}, "max_count (2) must be at least min_count (3)"),
        (
            {"min_count": 2, "max_count": 5, "count": 1},
            "count (1) must lie between min_count (2) and max_count (5)",
        ),
        (
            {"min_count": 2, "max_count": 5, "count": 6},
            "count (6) must lie between min_count (2) and max_count (5)",
        ),
    ],
)
def test_initial_count_between_min_and_max(counts: dict[str, int], message: str) -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(**counts)]}})
    assert line == f"cluster.node_groups[0]: {message}"


def test_autoscale_on_needs_room_to_scale() -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(autoscale=True, min_count=2)]}})
    assert "only autoscales groups whose min and max differ" in line


def test_autoscale_off_with_a_range_is_refused() -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(autoscale=False, max_count=4)]}})
    assert "autoscale is off but min_count and max_count differ" in line


def test_autoscale_defaults_from_the_range() -> None:
    cfg = parse_cluster_stack(
        {"cluster": {"name": "x", "node_groups": [group(max_count=4), group(name="fixed")]}}
    )
    assert [g.autoscaled for g in cfg.cluster.node_groups] == [True, False]


def test_cluster_autoscaling_off_conflicts_with_autoscaled_groups() -> None:
    (line,) = problems({"cluster": {"name": "x", "autoscaling": False, "node_groups": [group(max_count=4)]}})
    assert line.startswith("cluster: autoscaling is off but user ask for it")


@pytest.mark.parametrize("name", ["default-worker", "default.worker"])
def test_group_may_not_collide_with_default_worker(name: str) -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(name=name)]}})
    assert line.startswith("cluster.node_groups[0]:")
    assert "collides with Magnum's own 'default-worker' group" in line


def test_group_names_must_be_unique_after_the_driver_sanitises_them() -> None:
    (line,) = problems(
        {"cluster": {"name": "x", "node_groups": [group(name="user-m3.large"), group(name="user-m3-large")]}}
    )
    assert "both select as capi.stackhpc.com/node-group='user-m3-large'" in line


@pytest.mark.parametrize("name", ["User", "user_1", ".user", "user."])
def test_group_name_rfc1123(name: str) -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(name=name)]}})
    assert line.startswith("cluster.node_groups[0].name: must be lowercase letters")


def test_unknown_flavor_is_named_with_the_catalog() -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(flavor="m3.huge")]}})
    assert line.startswith(
        "cluster.node_groups[0].flavor: unknown flavor 'm3.huge' for site profile 'jetstream2'"
    )
    assert "m3.quad" in line
    assert "custom_flavor: true" in line


def test_custom_flavor_is_allowed_when_marked() -> None:
    cfg = parse_cluster_stack(
        {"cluster": {"name": "x", "node_groups": [group(flavor="m9.big", custom_flavor=True)]}}
    )
    assert cfg.cluster.node_groups[0].flavor == "m9.big"


def test_too_small_flavor_for_a_node_is_refused() -> None:
    (line,) = problems({"cluster": {"name": "x", "node_groups": [group(flavor="m3.tiny")]}})
    assert line.startswith("cluster.node_groups[0].flavor: flavor 'm3.tiny' has 1 vCPU")
    assert "refuses nodes below 2 vCPUs" in line


def test_control_plane_flavor_checked_too() -> None:
    (line,) = problems({"cluster": {"name": "x", "control_plane": {"flavor": "nope"}}})
    assert line.startswith("cluster.control_plane.flavor: unknown flavor 'nope'")


@pytest.mark.parametrize("count", [2, 4])
def test_control_plane_count_odd(count: int) -> None:
    (line,) = problems({"cluster": {"name": "x", "control_plane": {"count": count}}})
    assert line.startswith("cluster.control_plane.count: must be odd: etcd keeps quorum")


def test_three_control_plane_servers_are_fine() -> None:
    assert (
        parse_cluster_stack(
            {"cluster": {"name": "x", "control_plane": {"count": 3}}}
        ).cluster.control_plane.count
        == 3
    )


def test_chart_version_mismatch_breaks_autoscaling() -> None:
    (line,) = problems({"cluster": {"name": "x", "capi_helm_chart_version": "0.10.1"}})
    assert line.startswith("cluster.capi_helm_chart_version: '0.10.1' differs from the '0.16.0'")
    assert "autoscaler only works when they match" in line


def test_chart_version_mismatch_allowed_without_autoscaling() -> None:
    cfg = parse_cluster_stack(
        {"cluster": {"name": "x", "capi_helm_chart_version": "0.10.1", "autoscaling": False}}
    )
    assert cfg.cluster.capi_helm_chart_version == "0.10.1"


def test_existing_template_excludes_template_settings() -> None:
    lines = problems(
        {"cluster": {"name": "x", "existing_template_id": "abc", "image": "ubuntu-kube-v1.33.2"}}
    )
    assert lines == ["cluster.image: cannot be set with existing_template_id: the template decides it"]


@pytest.mark.parametrize(
    ("raw", "key", "why"),
    [
        ({"kube_tag": "v1.33.2"}, "cluster.kube_tag", "the Kubernetes version comes from cluster.image"),
        ({"api_load_balancer": True}, "cluster.api_load_balancer", "always puts the Kubernetes API behind"),
        ({"floating_ips": True}, "cluster.floating_ips", "ignores floating_ip_enabled"),
        ({"docker_volume_size_gb": 50}, "cluster.docker_volume_size_gb", "never reads docker_volume_size"),
        (
            {"node_groups": [group(docker_volume_size_gb=50)]},
            "cluster.node_groups[0].docker_volume_size_gb",
            "never reads a node group's docker_volume_size",
        ),
    ],
)
def test_settings_the_driver_ignores_are_refused_with_the_reason(
    raw: dict[str, Any], key: str, why: str
) -> None:
    (line,) = problems({"cluster": {"name": "x", **raw}})
    assert line.startswith(f"{key}: is no longer a setting: ")
    assert why in line and line.endswith("; delete it")


def test_the_kubernetes_version_is_read_from_the_image() -> None:
    from jetstream_binderhub.config.cluster import kube_version_of

    assert kube_version_of("ubuntu-jammy-kube-v1.33.2-250626-0848") == "v1.33.2"
    assert kube_version_of("ubuntu-noble-kube-v1.34.1-260301-1200") == "v1.34.1"
    assert kube_version_of("my-own-image") is None


def test_unknown_profile_is_named() -> None:
    (line,) = problems({"profile": "aws", "cluster": {"name": "x"}})
    assert line.startswith("profile: unknown site profile 'aws' (available: jetstream2)")


def test_all_problems_reported_at_once() -> None:
    lines = problems(
        {"cluster": {"name": "X", "control_plane": {"count": 2}, "node_groups": [group(min_count=0)]}}
    )
    keys = sorted(line.split(":")[0] for line in lines)
    assert keys == ["cluster.control_plane.count", "cluster.name", "cluster.node_groups[0].min_count"]


def test_network_driver_is_a_closed_choice() -> None:
    (line,) = problems({"cluster": {"name": "x", "network_driver": "weave"}})
    assert line.startswith("cluster.network_driver:")
    assert "'calico'" in line
