"""Generated values against the real upstream chart schemas (BinderHub, and z2jh 4.2.0 for `jupyterhub:`).

The schemas ship with the package (generated from the pinned charts), validated the way Helm does: chart
defaults coalesced with our values first. Each test that claims "valid" also shows the validator refuses
something, so a validator that accepts everything cannot pass.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jetstream_binderhub.config.hub import HubStackConfig, parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.schema import coalesce, validate_binderhub_values
from jetstream_binderhub.hub.values import binderhub_values, deep_merge

from .conftest import PlanHub

LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large"}

REGISTRIES: dict[str, dict[str, Any]] = {
    "quay": {
        "provider": "quay",
        "username": "projectpythia+binderhub",
        "image_prefix": "quay.io/projectpythia/binder-",
    },
    "dockerhub": {
        "provider": "dockerhub",
        "username": "pythia",
        "image_prefix": "docker.io/projectpythia/binder-",
    },
    "ghcr": {
        "provider": "ghcr",
        "username": "pythia-bot",
        "image_prefix": "ghcr.io/projectpythia/binder/r2d-",
    },
    "harbor": {
        "provider": "harbor",
        "url": "https://harbor.example.org",
        "username": "robot$binder",
        "image_prefix": "harbor.example.org/binder/r2d-",
        "private": True,
    },
    "oci": {
        "provider": "oci",
        "url": "https://registry.example.org:5000",
        "username": "binder",
        "image_prefix": "registry.example.org:5000/binder/image-",
        "token_url": "https://registry.example.org:5000/token",
    },
}

# What BinderHub needs for each: (DockerRegistry.url, token_url, key of the credentials in config.json)
REGISTRY_FACTS = {
    "quay": ("https://quay.io", "https://quay.io/v2/auth?service=quay.io", "https://quay.io"),
    "dockerhub": ("https://registry-1.docker.io", None, "https://index.docker.io/v1/"),
    "ghcr": ("https://ghcr.io", "https://ghcr.io/token?service=ghcr.io", "https://ghcr.io"),
    "harbor": (
        "https://harbor.example.org",
        "https://harbor.example.org/service/token?service=harbor-registry",
        "https://harbor.example.org",
    ),
    "oci": (
        "https://registry.example.org:5000",
        "https://registry.example.org:5000/token",
        "https://registry.example.org:5000",
    ),
}


def config(raw: dict[str, Any]) -> HubStackConfig:
    return parse_hub_stack(raw, node_groups=LABELS)


def problems(values: dict[str, Any]) -> list[str]:
    return [str(p) for p in validate_binderhub_values(values)]


def test_shipped_site_values_pass_both_chart_schemas(hub_config: dict[str, Any]) -> None:
    values = binderhub_values(config(hub_config), LABELS, github_token=True)
    assert problems(values) == []
    # The same validator refuses a value the z2jh schema forbids inside the jupyterhub subtree...
    broken = deep_merge(values, {"jupyterhub": {"singleuser": {"cpu": {"limit": "four"}}}})
    assert problems(broken) == ["jupyterhub.singleuser.cpu.limit: 'four' is not of type 'number', 'null'"]
    # ...and a key the BinderHub schema does not know at the root.
    assert problems({**values, "imageBuilder": "dind"}) == [
        "(root): Additional properties are not allowed ('imageBuilder' was unexpected)"
    ]


@pytest.mark.parametrize("kind", sorted(REGISTRIES))
def test_every_registry_choice_validates_and_is_wired(kind: str, hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["registry"] = copy.deepcopy(REGISTRIES[kind])
    cfg = config(hub_config)
    values = binderhub_values(cfg, LABELS, github_token=False)
    assert problems(values) == []
    url, token_url, auth_key = REGISTRY_FACTS[kind]
    registry = values["config"]["DockerRegistry"]
    assert registry["url"] == url
    assert registry.get("token_url") == token_url
    assert cfg.binderhub.registry.auth_url == auth_key
    assert values["config"]["BinderHub"]["image_prefix"] == REGISTRIES[kind]["image_prefix"]
    pull = values["jupyterhub"]["singleuser"].get("image", {}).get("pullSecrets")
    # Unset `private` follows what the registry does with a newly pushed repository.
    assert pull == (None if kind == "dockerhub" else ["binderhub-registry-pull"])


@pytest.mark.parametrize(
    "dns",
    [
        {"provider": "designate", "allocation": "see240014"},
        {"provider": "designate", "zone": "see240014.projects.jetstream-cloud.org."},
        {"provider": "external"},
    ],
    ids=["designate-allocation", "designate-zone", "external"],
)
def test_every_dns_choice_validates(dns: dict[str, Any], hub_config: dict[str, Any]) -> None:
    hub_config["dns"] = dns
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(values) == []
    assert values["ingress"]["hosts"] == [hub_config["binderhub"]["host"]]


def test_pink_builder_validates(hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["builder"] = {"type": "pink"}
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(values) == []
    assert values["imageBuilderType"] == "pink"
    assert values["pink"]["daemonset"]["image"] == {"name": "quay.io/podman/stable", "tag": "v5.8.1"}
    assert "dind" not in values


def test_extra_values_merge_last_and_are_still_validated(hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["extra_values"] = {
        "imageCleaner": {"delay": 10},
        "jupyterhub": {"cull": {"concurrency": 5}, "singleuser": {"defaultUrl": "/lab"}},
        "config": {"BinderHub": {"template_path": "/etc/binderhub/templates"}},
    }
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(values) == []
    assert values["imageCleaner"]["delay"] == 10
    assert values["jupyterhub"]["cull"] == {
        "enabled": True,
        "users": True,
        "timeout": 1800,
        "every": 660,
        "maxAge": 28800,
        "concurrency": 5,
    }
    assert values["jupyterhub"]["singleuser"]["defaultUrl"] == "/lab"
    assert values["jupyterhub"]["singleuser"]["nodeSelector"] == {
        "capi.stackhpc.com/node-group": "user-m3-large"
    }
    assert values["config"]["BinderHub"]["template_path"] == "/etc/binderhub/templates"
    assert values["config"]["BinderHub"]["image_prefix"] == "quay.io/projectpythia/binder-"

    hub_config["binderhub"]["extra_values"] = {"jupyterhub": {"cull": {"concurrency": "five"}}}
    bad = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(bad) == ["jupyterhub.cull.concurrency: 'five' is not of type 'integer', 'null'"]


def test_bad_extra_values_stop_the_plan_naming_the_key(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["extra_values"] = {"imageCleaner": {"delay": "two"}}
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    assert err.value.lines() == [
        "binderhub.extra_values: the binderhub chart would refuse imageCleaner.delay: 'two' is not of type 'integer'"
    ]


def test_helm_merge_rules() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    assert deep_merge(base, {"a": {"c": [3]}, "e": None}) == {"a": {"b": 1, "c": [3]}, "d": "x", "e": None}
    # Helm drops a key whose user value is null, so chart defaults can be removed.
    assert coalesce(base, {"a": {"b": None}, "d": None}) == {"a": {"c": [1, 2]}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}, "inputs are not modified"


def test_null_in_extra_values_removes_a_chart_default(hub_config: dict[str, Any]) -> None:
    # z2jh requires hub.services.binder (BinderHub's token); removing it must be refused, not ignored.
    # (With Dask Gateway on, the typed config registers a service there and extra_values may not touch it.)
    hub_config["dask_gateway"] = {"enabled": False}
    hub_config["binderhub"]["extra_values"] = {"jupyterhub": {"hub": {"services": None}}}
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert "jupyterhub.hub: 'services' is a required property" in problems(values)


def test_builder_daemon_and_build_pods_get_their_resources(hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["builder"]["build_pod_resources"] = {
        "cpu_request": 0.2,
        "memory_request": "1Gi",
        "memory_limit": "2Gi",
    }
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(values) == []
    # The chart puts dind.resources on the daemonset container, where every build's steps run.
    assert values["dind"]["resources"] == {
        "requests": {"cpu": "0.5", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "4Gi"},
    }
    assert values["config"]["KubernetesBuildExecutor"]["resources"] == {
        "requests": {"cpu": "0.2", "memory": "1Gi"},
        "limits": {"memory": "2Gi"},
    }
    hub_config["binderhub"]["builder"] = {"type": "pink"}
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert values["pink"]["resources"]["limits"] == {"cpu": "4", "memory": "4Gi"}


def test_cors_reaches_binderhub_and_the_spawner_only_when_set(hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["cors_allow_origin"] = "https://projectpythia.org"
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert problems(values) == []
    assert values["config"]["BinderHub"]["cors_allow_origin"] == "https://projectpythia.org"
    spawner = values["jupyterhub"]["hub"]["config"]["BinderSpawnerMixin"]
    assert spawner == {"cors_allow_origin": "https://projectpythia.org"}
    del hub_config["binderhub"]["cors_allow_origin"]
    values = binderhub_values(config(hub_config), LABELS, github_token=False)
    assert "cors_allow_origin" not in values["config"]["BinderHub"]
    assert "config" not in values["jupyterhub"]["hub"]
