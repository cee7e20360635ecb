"""`binderhub.extra_values` refuses secrets and refuses to override what the typed config sets.

Chart values are printed by `plan`, stored in plain text in Pulumi's state and in Helm's release Secret,
so a secret there is refused (never echoed in the message); and a typed setting changed behind the
config's back (placement, network policies, allowed specs, pinned images) is refused with the key to use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from jetstream_binderhub.config.hub import parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.extra_values import _secret_name, controlled_paths, typed_key
from jetstream_binderhub.hub.schema import validate_binderhub_values
from jetstream_binderhub.hub.values import binderhub_values
from jetstream_binderhub.schemas import load

from .conftest import PlanHub

LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large"}
PLANTED = "planted-S3cret-value-41"
GITHUB_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"


def refused(hub_config: dict[str, Any], extra: dict[str, Any]) -> list[str]:
    hub_config["binderhub"]["extra_values"] = extra
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub_config, node_groups=LABELS)
    return err.value.lines()


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"jupyterhub": {"hub": {"cookieSecret": PLANTED}}}, "jupyterhub.hub.cookieSecret"),
        ({"jupyterhub": {"proxy": {"secretToken": PLANTED}}}, "jupyterhub.proxy.secretToken"),
        (
            {"jupyterhub": {"hub": {"services": {"grafana": {"apiToken": PLANTED}}}}},
            "jupyterhub.hub.services.grafana.apiToken",
        ),
        ({"jupyterhub": {"hub": {"db": {"password": PLANTED}}}}, "jupyterhub.hub.db.password"),
        ({"registry": {"password": PLANTED}}, "registry.password"),
        (
            {"config": {"GitHubRepoProvider": {"access_token": PLANTED}}},
            "config.GitHubRepoProvider.access_token",
        ),
        (
            {"jupyterhub": {"hub": {"config": {"GenericOAuthenticator": {"client_secret": PLANTED}}}}},
            "jupyterhub.hub.config.GenericOAuthenticator.client_secret",
        ),
        (
            {"jupyterhub": {"singleuser": {"extraEnv": {"GITHUB_TOKEN": PLANTED}}}},
            "jupyterhub.singleuser.extraEnv.GITHUB_TOKEN",
        ),
        (
            {"jupyterhub": {"hub": {"extraEnv": [{"name": "ZENODO_API_KEY", "value": PLANTED}]}}},
            "jupyterhub.hub.extraEnv.0.value",
        ),
        # Under keys that say nothing: recognised by the value.
        (
            {
                "jupyterhub": {
                    "singleuser": {
                        "extraEnv": {"PIP_INDEX_URL": f"https://bot:{PLANTED}@pypi.example.org/simple"}
                    }
                }
            },
            "jupyterhub.singleuser.extraEnv.PIP_INDEX_URL",
        ),
        (
            {"jupyterhub": {"proxy": {"https": {"manual": {"key": PEM + PLANTED}}}}},
            "jupyterhub.proxy.https.manual.key",
        ),
        (
            {"jupyterhub": {"singleuser": {"extraEnv": {"NOTE": f"{GITHUB_TOKEN}{PLANTED}"}}}},
            "jupyterhub.singleuser.extraEnv.NOTE",
        ),
        (
            {"extraConfig": {"20-mine": f"c.X.y = 'git+https://u:{PLANTED}@git.example.org/r'"}},
            "extraConfig.20-mine",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_a_secret_in_extra_values_is_refused_without_echoing_it(
    hub_config: dict[str, Any], extra: dict[str, Any], key: str
) -> None:
    lines = refused(hub_config, extra)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"binderhub.extra_values.{key}: ")
    assert "registry_password and github_token" in lines[0], "points at the supported secret settings"
    assert PLANTED not in "\n".join(lines) and GITHUB_TOKEN not in "\n".join(lines)


def test_chart_keys_that_only_name_a_secret_are_accepted(hub_config: dict[str, Any]) -> None:
    # Real chart keys (the schema check below proves it) whose names say "secret", "token" or "key".
    extra = {
        "imageCleaner": {"image": {"pullSecrets": ["cleaner-pull"]}},
        "extraEnv": {"SOME_TOKEN": {"valueFrom": {"secretKeyRef": {"name": "other", "key": "token"}}}},
        "jupyterhub": {
            "hub": {
                "existingSecret": "hub-secret",
                "image": {"pullSecrets": ["hub-pull"]},
                "config": {"JupyterHub": {"cookie_secret_file": "/srv/jupyterhub/cookie_secret"}},
            },
            "proxy": {"https": {"secret": {"name": "proxy-tls", "key": "tls.key", "crt": "tls.crt"}}},
            "imagePullSecret": {"create": False},
            "singleuser": {"extraEnv": {"PIP_INDEX_URL": "https://pypi.org/simple", "PASSWORD_POLICY": ""}},
        },
    }
    hub_config["binderhub"]["extra_values"] = extra
    cfg = parse_hub_stack(hub_config, node_groups=LABELS)
    assert validate_binderhub_values(binderhub_values(cfg, LABELS, github_token=False)) == []
    assert refused(hub_config, {**extra, "jupyterhub": {"imagePullSecret": {"password": PLANTED}}}) != []


def _schema_properties(schema: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of the schema's properties that hold values (mappings are walked into: only their leaves
    are judged by name)."""
    if not isinstance(schema, Mapping):
        return
    for name, sub in (schema.get("properties") or {}).items():
        if not (isinstance(sub, Mapping) and sub.get("type") == "object"):
            yield (*path, name)
        yield from _schema_properties(sub, (*path, name))
    for key in ("additionalProperties", "items"):
        if isinstance(schema.get(key), Mapping):
            yield from _schema_properties(schema[key], (*path, "*"))


def test_no_chart_key_is_taken_for_a_secret_unless_it_holds_one() -> None:
    # Every property of both pinned schemas (and every key of their defaults) that the name rule calls a
    # secret: exactly the ones the charts document as secrets.
    paths = set()
    for chart in ("binderhub", "jupyterhub"):
        paths |= {(chart, *p) for p in _schema_properties(load(chart).schema or {})}

        def defaults(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
            if isinstance(value, Mapping):
                for k, v in value.items():
                    if not isinstance(v, Mapping):
                        yield (*path, str(k))
                    yield from defaults(v, (*path, str(k)))

        paths |= set(defaults(load(chart).defaults, (chart,)))
    taken = {".".join(p) for p in paths if _secret_name(p[-1])}
    assert taken == {
        "binderhub.registry.password",
        "binderhub.jupyterhub.hub.services.binder.apiToken",
        "jupyterhub.hub.cookieSecret",
        "jupyterhub.hub.db.password",
        "jupyterhub.hub.services.apiToken",
        "jupyterhub.hub.services.api_token",
        "jupyterhub.imagePullSecret.password",
        "jupyterhub.proxy.secretToken",
    }


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (
            {
                "jupyterhub": {
                    "singleuser": {"nodeSelector": {"capi.stackhpc.com/node-group": "default-worker"}}
                }
            },
            "jupyterhub.singleuser.nodeSelector: is set by the typed config: use placement.user_node_group instead",
        ),
        (
            # One more label is a different placement too: the selector is the layer's whole.
            {"config": {"BinderHub": {"build_node_selector": {"disk": "ssd"}}}},
            "config.BinderHub.build_node_selector: is set by the typed config: use placement.user_node_group",
        ),
        (
            {"jupyterhub": {"singleuser": {"networkPolicy": {"enabled": False}}}},
            "jupyterhub.singleuser.networkPolicy: is set by the typed config: use "
            "binderhub.jupyterhub.network_policies instead",
        ),
        (
            {"jupyterhub": {"singleuser": {"cloudMetadata": {"blockWithIptables": False}}}},
            "jupyterhub.singleuser.cloudMetadata: is set by the typed config: use "
            "binderhub.jupyterhub.network_policies instead",
        ),
        (
            {"config": {"GitHubRepoProvider": {"allowed_specs": [".*"]}}},
            "config.GitHubRepoProvider.allowed_specs: is set by the typed config: use "
            "binderhub.limits.allowed_specs.gh instead",
        ),
        (
            # A provider the site does not configure is still the typed config's to restrict.
            {"config": {"GitLabRepoProvider": {"banned_specs": ["^evil/.*"]}}},
            "config.GitLabRepoProvider.banned_specs: is set by the typed config: use "
            "binderhub.limits.banned_specs.gl instead",
        ),
        (
            {"dind": {"resources": {"limits": {"memory": "64Gi"}}}},
            "dind.resources.limits.memory: is set by the typed config: use binderhub.builder.daemon_resources "
            "instead",
        ),
        (
            {"jupyterhub": {"hub": {"config": {"BinderSpawnerMixin": {"cors_allow_origin": "*"}}}}},
            "jupyterhub.hub.config.BinderSpawnerMixin.cors_allow_origin: is set by the typed config: use "
            "binderhub.cors_allow_origin instead",
        ),
        (
            {"dind": {"daemonset": {"image": {"tag": "latest"}}}},
            "dind.daemonset.image.tag: is set by the typed config: use binderhub.builder (daemon_image, mtu)",
        ),
        (
            {"jupyterhub": {"singleuser": None}},
            "jupyterhub.singleuser: would replace jupyterhub.singleuser.cloudMetadata, which the typed config sets",
        ),
        (
            # A mapping where the layer writes a scalar: still the scalar's typed key.
            {"jupyterhub": {"singleuser": {"memory": {"limit": {"value": "16G"}}}}},
            "jupyterhub.singleuser.memory.limit.value: is set by the typed config: use "
            "binderhub.jupyterhub.user_resources.memory_limit instead",
        ),
        (
            # Dask Gateway's wiring into every binder (the shipped site runs it).
            {"jupyterhub": {"singleuser": {"extraEnv": {"DASK_GATEWAY__ADDRESS": "http://elsewhere"}}}},
            "jupyterhub.singleuser.extraEnv.DASK_GATEWAY__ADDRESS: is set by the typed config: use dask_gateway",
        ),
        (
            {"extraVolumes": []},
            "extraVolumes: is set by the typed config: the BinderHub layer fixes it",
        ),
    ],
    ids=lambda x: x if isinstance(x, str) and ":" not in x else "",
)
def test_overriding_a_typed_setting_is_refused_naming_the_key(
    hub_config: dict[str, Any], extra: dict[str, Any], line: str
) -> None:
    lines = refused(hub_config, extra)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"binderhub.extra_values.{line}"), lines[0]


def test_chart_settings_without_a_key_still_pass(hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["extra_values"] = {
        "imageCleaner": {"delay": 10},
        "ingress": {
            "annotations": {
                "traefik.ingress.kubernetes.io/router.middlewares": "binderhub-ratelimit@kubernetescrd"
            }
        },
        "jupyterhub": {"singleuser": {"defaultUrl": "/lab"}, "hub": {"services": {}}},
    }
    values = binderhub_values(parse_hub_stack(hub_config, node_groups=LABELS), LABELS, github_token=False)
    assert (
        values["imageCleaner"]["delay"] == 10 and values["jupyterhub"]["singleuser"]["defaultUrl"] == "/lab"
    )


def test_the_guarded_paths_follow_the_generator(hub_config: dict[str, Any]) -> None:
    cfg = parse_hub_stack(hub_config, node_groups=LABELS)
    paths = controlled_paths(cfg)
    # Derived from the generated values, for this site and with every optional setting on.
    assert ("jupyterhub", "singleuser", "nodeSelector") in paths
    assert ("config", "GitLabRepoProvider", "allowed_specs") in paths
    assert ("pink", "daemonset", "image", "name") in paths and ("dind", "daemonset", "extraArgs") in paths
    assert ("extraEnv", "GITHUB_ACCESS_TOKEN", "valueFrom", "secretKeyRef", "name") in paths
    # Every path is named by a typed key, or is one the layer fixes on purpose. A new generated value
    # lands here: name its typed key in hub/extra_values.py (_TYPED_KEYS), or add it below if it is fixed.
    fixed = {".".join(p) for p in paths if typed_key(p) is None}
    assert fixed == {
        "config.BinderHub.hub_url_local",
        "config.BinderHub.use_registry",
        "config.DockerRegistry.docker_config_path",
        "config.KubernetesBuildExecutor.push_secret",
        "extraVolumeMounts",
        "extraVolumes",
        "ingress.enabled",
        "ingress.https.enabled",
        "ingress.pathType",
        "jupyterhub.ingress.enabled",
        "jupyterhub.ingress.pathType",
        "jupyterhub.proxy.https.enabled",
        "jupyterhub.proxy.service.type",
        "service.type",
    }


def test_the_plan_stops_on_a_secret_in_extra_values(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["binderhub"]["extra_values"] = {"jupyterhub": {"hub": {"cookieSecret": PLANTED}}}
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    assert [line.split(":", 1)[0] for line in err.value.lines()] == [
        "binderhub.extra_values.jupyterhub.hub.cookieSecret"
    ]
    assert PLANTED not in str(err.value)
