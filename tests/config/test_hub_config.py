"""The BinderHub layer's config rules: each bad value is caught before Pulumi runs, with its key named."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.config.hub import HUB_KEYS, check_hub_stack, parse_hub_stack
from jetstream_binderhub.config.stackfile import HUB_PROJECT
from jetstream_binderhub.errors import ConfigError

LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large"}


@pytest.fixture
def hub(repo_root: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo_root / "binderhub" / "Pulumi.jetstream2.yaml").read_text())
    prefix = f"{HUB_PROJECT}:"
    return copy.deepcopy({k.removeprefix(prefix): v for k, v in doc["config"].items()})


def errors(raw: dict[str, Any]) -> list[str]:
    _, problems = check_hub_stack(raw, node_groups=LABELS)
    assert problems, "expected the config to be refused"
    return [str(p) for p in problems]


def keys(raw: dict[str, Any]) -> list[str]:
    return [line.split(":", 1)[0] for line in errors(raw)]


def test_shipped_site_is_the_pythia_binder(hub: dict[str, Any], repo_root: Path) -> None:
    assert set(hub) <= set(HUB_KEYS)
    cfg = parse_hub_stack(hub, source="binderhub/Pulumi.jetstream2.yaml", node_groups=LABELS)
    assert cfg.dns.provider == "designate"
    assert cfg.dns.zone == "see240014.projects.jetstream-cloud.org."
    assert cfg.binderhub.registry.provider == "quay"
    assert cfg.binderhub.registry.image_prefix.startswith("quay.io/projectpythia/")
    assert cfg.placement.core_node_group == "default-worker"
    assert cfg.placement.user_node_group == "user-m3.large"
    assert cfg.ingress.floating_ip_pool == "public"
    # No secret is written in the shipped file, not even encrypted.
    text = (repo_root / "binderhub" / "Pulumi.jetstream2.yaml").read_text()
    assert "secure:" not in text
    assert "registry_password" not in hub and "github_token" not in hub


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("binder.see240014.projects.jetstream-cloud.org.", "without the trailing dot"),
        ("https://binder.see240014.projects.jetstream-cloud.org", "not a URL"),
        ("149.165.1.2", "not an IP address"),
        ("Binder.see240014.projects.jetstream-cloud.org", "fully qualified lowercase"),
        ("binder", "fully qualified lowercase"),
        ("bin_der.see240014.projects.jetstream-cloud.org", "fully qualified lowercase"),
    ],
)
def test_bad_host_names_are_named(hub: dict[str, Any], host: str, why: str) -> None:
    hub["binderhub"]["host"] = host
    (line,) = errors(hub)
    assert line.startswith("binderhub.host: ")
    assert why in line


def test_hosts_must_differ_and_lie_in_the_designate_zone(hub: dict[str, Any]) -> None:
    hub["binderhub"]["hub_host"] = hub["binderhub"]["host"]
    assert keys(hub) == ["binderhub.hub_host"]
    hub["binderhub"].update(host="binder.projectpythia.org", hub_host="hub.projectpythia.org")
    lines = errors(hub)
    assert [line.split(":", 1)[0] for line in lines] == ["binderhub.host", "binderhub.hub_host"]
    assert "not inside the Designate zone 'see240014.projects.jetstream-cloud.org.'" in lines[0]
    # With bring-your-own DNS any host is fine.
    hub["dns"] = {"provider": "external"}
    assert check_hub_stack(hub, node_groups=LABELS)[1] == []


def test_designate_zone_needs_its_dot_and_an_allocation_or_zone(hub: dict[str, Any]) -> None:
    hub["dns"] = {"provider": "designate", "zone": "see240014.projects.jetstream-cloud.org"}
    assert keys(hub) == ["dns.zone"]
    hub["dns"] = {"provider": "designate"}
    assert keys(hub) == ["dns.allocation"]
    hub["dns"] = {"provider": "external", "allocation": "see240014"}
    assert keys(hub) == ["dns.allocation"]


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("quay.io/binder-", "has no project level"),
        ("quay.io/", "has no project level"),
        ("docker.io/projectpythia/binder-", "must start with the registry host 'quay.io'"),
        ("quay.io/projectpythia/binder/r2d-", "nested paths are refused"),
        ("quay.io/ProjectPythia/binder-", "not a valid image name part"),
    ],
)
def test_registry_image_prefix_needs_host_and_project_level(
    hub: dict[str, Any], prefix: str, why: str
) -> None:
    hub["binderhub"]["registry"]["image_prefix"] = prefix
    (line,) = errors(hub)
    assert line.startswith("binderhub.registry.image_prefix: ")
    assert why in line


def test_registry_url_rules(hub: dict[str, Any]) -> None:
    hub["binderhub"]["registry"] = {
        "provider": "harbor",
        "username": "robot",
        "image_prefix": "h.example.org/p/b-",
    }
    assert keys(hub) == ["binderhub.registry.url"]
    hub["binderhub"]["registry"]["url"] = "http://h.example.org"
    assert keys(hub) == ["binderhub.registry.url"]
    hub["binderhub"]["registry"]["url"] = "https://h.example.org"
    assert check_hub_stack(hub, node_groups=LABELS)[1] == []


@pytest.mark.parametrize(
    ("email", "why"),
    [("binder-team", "not a valid email address"), ("ops@example.com", "reserved domain")],
)
def test_acme_contact_must_be_a_real_email(hub: dict[str, Any], email: str, why: str) -> None:
    hub["tls"]["acme_email"] = email
    (line,) = errors(hub)
    assert line.startswith("tls.acme_email: ") and why in line


def test_quotas_below_zero_are_refused(hub: dict[str, Any]) -> None:
    hub["binderhub"]["limits"].update(per_repo_quota=-1, total_quota=-5)
    assert keys(hub) == ["binderhub.limits.per_repo_quota", "binderhub.limits.total_quota"]


def test_unknown_node_group_is_named_with_a_hint(hub: dict[str, Any]) -> None:
    hub["placement"]["user_node_group"] = "user-m3-large"
    (line,) = errors(hub)
    assert line.startswith("placement.user_node_group: unknown node group 'user-m3-large'")
    assert "label value of group 'user-m3.large', write the group name" in line
    hub["placement"] = {"core_node_group": "gpu", "user_node_group": "user-m3.large"}
    assert errors(hub) == [
        "placement.core_node_group: unknown node group 'gpu' (the cluster has: default-worker, user-m3.large)"
    ]


def test_user_resources_and_builder_rules(hub: dict[str, Any]) -> None:
    res = hub["binderhub"]["jupyterhub"]["user_resources"]
    res.update(cpu_guarantee=8, memory_guarantee="16G", memory_limit="lots")
    assert keys(hub) == [
        "binderhub.jupyterhub.user_resources.cpu_limit",
        "binderhub.jupyterhub.user_resources.memory_limit",
    ]
    hub = copy.deepcopy(hub)
    hub["binderhub"]["jupyterhub"]["user_resources"] = {}
    hub["binderhub"]["builder"] = {"type": "pink", "mtu": 1400}
    assert keys(hub) == ["binderhub.builder.mtu"]
    hub["binderhub"]["builder"] = {"repo2docker_image": "quay.io/jupyterhub/repo2docker:latest"}
    assert keys(hub) == ["binderhub.builder.repo2docker_image"]


def test_spec_rules_must_be_regexes_for_served_providers(hub: dict[str, Any]) -> None:
    hub["binderhub"]["limits"]["allowed_specs"] = {"gh": ["^projectpythia/.*"], "gl": ["^pythia/.*"]}
    assert errors(hub) == [
        "binderhub.limits.allowed_specs.gl: provider 'gl' is not in repo_providers (gh), so these rules would "
        "never apply"
    ]
    hub["binderhub"]["limits"]["allowed_specs"] = {"gh": ["^(projectpythia"]}
    assert keys(hub) == ["binderhub.limits.allowed_specs"]


def test_every_problem_is_reported_in_one_pass(hub: dict[str, Any]) -> None:
    hub["colour"] = "blue"
    hub["tls"]["acme_email"] = "nobody"
    hub["binderhub"]["registry"]["image_prefix"] = "quay.io/binder-"
    hub["placement"]["user_node_group"] = "users"
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub, source="binderhub/Pulumi.jetstream2.yaml", node_groups=LABELS)
    assert [line.split(":", 1)[0] for line in err.value.lines()] == [
        "colour",
        "tls.acme_email",
    ], "model errors stop before the checks that need a valid model"
    hub["tls"]["acme_email"] = "projectpythia@ucar.edu"
    del hub["colour"]
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub, node_groups=LABELS)
    assert [line.split(":", 1)[0] for line in err.value.lines()] == [
        "binderhub.registry.image_prefix",
        "placement.user_node_group",
    ]


def test_registry_visibility_follows_the_provider_unless_set(hub: dict[str, Any]) -> None:
    registry = hub["binderhub"]["registry"]
    assert "private" not in registry
    # Quay makes a pushed repository private: the shipped site's user pods must get the pull secret.
    assert parse_hub_stack(hub, node_groups=LABELS).binderhub.registry.pulls_need_secret is True
    registry["private"] = False
    assert parse_hub_stack(hub, node_groups=LABELS).binderhub.registry.pulls_need_secret is False
    hub["binderhub"]["registry"] = {
        "provider": "dockerhub",
        "username": "pythia",
        "image_prefix": "docker.io/projectpythia/binder-",
    }
    assert parse_hub_stack(hub, node_groups=LABELS).binderhub.registry.pulls_need_secret is False


def test_builder_resources_are_kubernetes_quantities_with_limits_above_requests(hub: dict[str, Any]) -> None:
    builder = hub["binderhub"]["builder"]
    builder["daemon_resources"] = {
        "cpu_request": 2,
        "cpu_limit": 1,
        "memory_request": "1Gi",
        "memory_limit": "4Gi",
    }
    builder["build_pod_resources"] = {"cpu_request": 0.1, "memory_request": "2K"}
    lines = errors(hub)
    assert any(
        line.startswith("binderhub.builder.daemon_resources.cpu_limit: is below cpu_request (2)")
        for line in lines
    ), lines
    # `K` is KubeSpawner's spelling; the Kubernetes API refuses it in a pod's resources.
    assert any(
        line.startswith("binderhub.builder.build_pod_resources.memory_request: must be a Kubernetes memory")
        for line in lines
    ), lines
    builder["daemon_resources"] = {"cpu_request": 1, "memory_request": "8Gi", "memory_limit": "4G"}
    builder["build_pod_resources"] = {"cpu_request": 0.1, "memory_request": "512Mi"}
    assert keys(hub) == ["binderhub.builder.daemon_resources.memory_limit"]


@pytest.mark.parametrize(
    "origin", ["https://projectpythia.org/", "projectpythia.org", "https://*.projectpythia.org", "*, null"]
)
def test_cors_origin_is_star_or_one_origin(hub: dict[str, Any], origin: str) -> None:
    hub["binderhub"]["cors_allow_origin"] = origin
    assert keys(hub) == ["binderhub.cors_allow_origin"]


def test_shipped_site_matches_the_live_pythia_binder(hub: dict[str, Any], repo_root: Path) -> None:
    cfg = parse_hub_stack(hub, node_groups=LABELS)
    # Project Pythia's allocation (SEE240014) names the zone; the hosts live in it.
    assert cfg.dns.zone == "see240014.projects.jetstream-cloud.org."
    assert cfg.binderhub.host == "binder.see240014.projects.jetstream-cloud.org"
    assert cfg.binderhub.cors_allow_origin == "*"
    res = cfg.binderhub.jupyterhub.user_resources
    assert (res.memory_guarantee, res.memory_limit, res.cpu_limit) == ("8G", "8G", 4)
    limits = cfg.binderhub.limits
    # BinderHub ignores case and matches from the start of <owner>/<repo>/<ref>.
    for spec in (
        "ProjectPythia/pythia-foundations/HEAD",
        "projectpythia/radar-cookbook/main",
        "KTYLE/metpy-workshop/HEAD",
        "daes433533/course/HEAD",
        "binder-examples/requirements/HEAD",
        "brian-rose/ClimateLaboratoryBook/main",
    ):
        assert limits.allows("gh", spec), spec
    for spec in ("someone/ProjectPythia/HEAD", "ktyle-fork/x/HEAD", "brian-rosette/x/HEAD"):
        assert not limits.allows("gh", spec), spec
    assert not limits.allows("git", "https://github.com/ProjectPythia/x/HEAD")
    text = (repo_root / "Pulumi.jetstream2.yaml").read_text()
    assert "flavor: m3.small" in text


def test_every_limit_below_its_reservation_is_refused_with_the_reservation_named(hub: dict[str, Any]) -> None:
    hub["binderhub"]["builder"]["daemon_resources"] = {
        "cpu_request": 0.5,
        "memory_request": "2Gi",
        "memory_limit": "1Gi",
    }
    hub["binderhub"]["jupyterhub"]["user_resources"] = {
        "cpu_guarantee": 1.5,
        "cpu_limit": 1,
        "memory_guarantee": "8G",
        "memory_limit": "4G",
    }
    lines = errors(hub)
    for expected in (
        "binderhub.builder.daemon_resources.memory_limit: is below memory_request (2Gi);",
        "binderhub.jupyterhub.user_resources.cpu_limit: is below cpu_guarantee (1.5);",
        "binderhub.jupyterhub.user_resources.memory_limit: is below memory_guarantee (8G);",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
