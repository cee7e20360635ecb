"""What `binderhub.extra_values` may not do: carry a secret, or change what the typed config decides.

Chart values are not secret anywhere on their way: they are printed by `plan` (text and JSON) and in
the pull-request preview, stored in plain text in Pulumi's state, and kept by Helm in the release's own
Secret, readable by anyone who may read Secrets in the namespace. The layer's real secrets
(`registry_password`, `github_token`) are Pulumi secrets that reach the chart only as references to
Kubernetes Secrets, so a secret found in `extra_values` is refused rather than masked.

The typed config's guarantees (placement, network policies, metadata blocking, allowed specs, pinned
images, ...) are whatever the layer writes into the values. The paths it controls are derived from the
values it generates, for this site's config and for one with every optional setting switched on, so a
value added to the generator is protected without a list to keep in step.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jetstream_binderhub.config.hub import REPO_PROVIDERS, SECRET_KEYS, HubStackConfig, set_secret_command
from jetstream_binderhub.errors import Problem

KEY = "binderhub.extra_values"

Path = tuple[str, ...]

SECRET_HINT = (
    f"the layer's secrets are the Pulumi secrets {' and '.join(SECRET_KEYS)} "
    f"(`{set_secret_command('<key>')}`), which reach the chart only as Kubernetes Secret references; "
    "chart values are shown in plans and stored in plain text in the state and in Helm's release Secret"
)

_SECRET_NAME = re.compile(r"password|passwd|passphrase|secret|token|apikey|privatekey|accesskey|credential")
"""Words (in a key folded to lowercase letters and digits) that name a secret value."""

_REFERENCE_NAME = re.compile(
    r"(name|names|ref|existingsecret|pullsecrets?|pushsecret|secretsync|url|uri|file|path|dir|enabled|"
    r"lifetime|expiresin|seconds|days|ttl)$"
)
"""Names that only point at a secret or describe one, as the charts spell them: `image.pullSecrets`,
`hub.existingSecret`, `proxy.secretSync`, `secretKeyRef`, `secretName`, BinderHub's
`KubernetesBuildExecutor.push_secret` and `DockerRegistry.token_url`, JupyterHub's
`cookie_secret_file`. Their values are not secrets (URLs are still checked for credentials)."""

_CREDENTIAL_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@?#]+:[^/\s@?#]*@", re.IGNORECASE)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
_TOKEN_FORMATS = re.compile(
    r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}|"
    r"xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.)"
)
"""Tokens recognisable by their form whatever key holds them: GitHub, GitLab, Slack, AWS, JWTs."""

_ATOMIC = frozenset(
    {"nodeSelector", "node_selector", "build_node_selector", "networkPolicy", "cloudMetadata"}
)
"""Mappings the layer owns whole: one more selector label moves pods off their node group, one more
egress rule opens what the policy closes."""


def _fold(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _secret_name(name: str) -> bool:
    folded = _fold(name)
    return bool(_SECRET_NAME.search(folded)) and not _REFERENCE_NAME.search(folded)


def _walk(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) pair, mappings and lists included, depth first."""
    yield path, value
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk(child, (*path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, (*path, str(index)))


def _where(path: Path) -> str:
    return ".".join((KEY, *path))


def _has_text(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return any(_has_text(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _value_problem(text: str) -> str | None:
    if _CREDENTIAL_URL.search(text):
        return "holds a URL with a password in it (user:password@)"
    if _PRIVATE_KEY.search(text):
        return "holds private key material"
    if _TOKEN_FORMATS.search(text):
        return "holds what looks like an access token"
    return None


def secret_problems(extra: Mapping[str, Any]) -> list[Problem]:
    """Secret-looking keys, credential URLs, key material and known token formats anywhere in `extra`.

    Messages name the key, never the value."""
    problems: list[Problem] = []
    for path, value in _walk(extra):
        name = path[-1] if path else ""
        if isinstance(value, Mapping):
            # Kubernetes' EnvVar list form: {name: GITHUB_TOKEN, value: ...}
            env_name = value.get("name")
            if isinstance(env_name, str) and _secret_name(env_name) and _has_text(value.get("value")):
                problems.append(
                    Problem(_where((*path, "value")), f"sets {env_name}, which names a secret; {SECRET_HINT}")
                )
            for key in value:
                if found := _value_problem(str(key)):
                    problems.append(Problem(_where(path), f"has a key that {found}; {SECRET_HINT}"))
            continue
        if name and _secret_name(name) and _has_text(value):
            problems.append(Problem(_where(path), f"looks like a secret ({name!r}); {SECRET_HINT}"))
        elif isinstance(value, str) and (found := _value_problem(value)):
            problems.append(Problem(_where(path), f"{found}; {SECRET_HINT}"))
    return problems


# --- what the typed config controls ---------------------------------------------------------------

_TYPED_KEYS: tuple[tuple[Path, str | None], ...] = (
    (("nodeSelector",), "placement.core_node_group"),
    (("jupyterhub", "hub", "nodeSelector"), "placement.core_node_group"),
    (("jupyterhub", "proxy", "chp", "nodeSelector"), "placement.core_node_group"),
    (("jupyterhub", "scheduling", "userScheduler", "nodeSelector"), "placement.core_node_group"),
    (("jupyterhub", "singleuser", "nodeSelector"), "placement.user_node_group"),
    (("config", "BinderHub", "build_node_selector"), "placement.user_node_group"),
    (("config", "KubernetesBuildExecutor", "node_selector"), "placement.user_node_group"),
    (("ingress",), "binderhub.host (and ingress.class_name, tls.acme_server)"),
    (("jupyterhub", "ingress"), "binderhub.hub_host (and ingress.class_name, tls.acme_server)"),
    *(
        ((*ing, fixed), None)
        for ing in (("ingress",), ("jupyterhub", "ingress"))
        for fixed in ("enabled", "https", "pathType")
    ),
    (("config", "BinderHub", "hub_url"), "binderhub.hub_host"),
    (("config", "BinderHub", "image_prefix"), "binderhub.registry.image_prefix"),
    (("config", "BinderHub", "per_repo_quota"), "binderhub.limits.per_repo_quota"),
    (("config", "BinderHub", "banner_message"), "binderhub.banner_message"),
    (("config", "BinderHub", "about_message"), "binderhub.about_message"),
    (("config", "LaunchQuota"), "binderhub.limits.total_quota"),
    (("config", "DockerRegistry", "url"), "binderhub.registry.provider / url"),
    (("config", "DockerRegistry", "token_url"), "binderhub.registry.token_url"),
    (("config", "KubernetesBuildExecutor", "build_image"), "binderhub.builder.repo2docker_image"),
    (("imageBuilderType",), "binderhub.builder.type"),
    (("config", "KubernetesBuildExecutor", "resources"), "binderhub.builder.build_pod_resources"),
    (("dind",), "binderhub.builder (daemon_image, mtu)"),
    (("pink",), "binderhub.builder (daemon_image, mtu)"),
    (("dind", "resources"), "binderhub.builder.daemon_resources"),
    (("pink", "resources"), "binderhub.builder.daemon_resources"),
    (("config", "BinderHub", "cors_allow_origin"), "binderhub.cors_allow_origin"),
    (
        ("jupyterhub", "hub", "config", "BinderSpawnerMixin", "cors_allow_origin"),
        "binderhub.cors_allow_origin",
    ),
    (("extraConfig", "10-repo-providers"), "binderhub.limits.repo_providers"),
    (("extraEnv", "GITHUB_ACCESS_TOKEN"), "the secret github_token"),
    (("jupyterhub", "cull"), "binderhub.jupyterhub.cull"),
    (("jupyterhub", "cull", "enabled"), "binderhub.jupyterhub.cull.enabled"),
    (("jupyterhub", "cull", "timeout"), "binderhub.jupyterhub.cull.timeout_seconds"),
    (("jupyterhub", "cull", "every"), "binderhub.jupyterhub.cull.every_seconds"),
    (("jupyterhub", "cull", "maxAge"), "binderhub.jupyterhub.cull.max_age_seconds"),
    (("jupyterhub", "singleuser", "cpu", "guarantee"), "binderhub.jupyterhub.user_resources.cpu_guarantee"),
    (("jupyterhub", "singleuser", "cpu", "limit"), "binderhub.jupyterhub.user_resources.cpu_limit"),
    (
        ("jupyterhub", "singleuser", "memory", "guarantee"),
        "binderhub.jupyterhub.user_resources.memory_guarantee",
    ),
    (("jupyterhub", "singleuser", "memory", "limit"), "binderhub.jupyterhub.user_resources.memory_limit"),
    (("jupyterhub", "singleuser", "image", "pullSecrets"), "binderhub.registry.private"),
    (("jupyterhub", "hub", "networkPolicy"), "binderhub.jupyterhub.network_policies"),
    (("jupyterhub", "proxy", "chp", "networkPolicy"), "binderhub.jupyterhub.network_policies"),
    (("jupyterhub", "singleuser", "networkPolicy"), "binderhub.jupyterhub.network_policies"),
    (("jupyterhub", "singleuser", "cloudMetadata"), "binderhub.jupyterhub.network_policies"),
    (("jupyterhub", "hub", "services", "dask-gateway"), "dask_gateway.enabled (and release_name)"),
    *(
        (("jupyterhub", "singleuser", "extraEnv", f"DASK_GATEWAY__{var}"), "dask_gateway.enabled")
        for var in ("ADDRESS", "PUBLIC_ADDRESS", "PROXY_ADDRESS", "AUTH__TYPE", "CLUSTER__OPTIONS__IMAGE")
    ),
    (("jupyterhub", "hub", "extraConfig", "20-gpu-servers"), "gpu"),
    (("jupyterhub", "hub", "authenticatePrometheus"), "support.monitoring.enabled"),
    (("jupyterhub", "hub", "networkPolicy", "interNamespaceAccessLabels"), "support.monitoring.enabled"),
    (("imageCleaner",), "support.image_cleaner"),
    (("replicas",), "support.disruption.binderhub_replicas"),
    (("extraPodSpec", "priorityClassName"), "support.disruption"),
    (("jupyterhub", "hub", "extraPodSpec", "priorityClassName"), "support.disruption"),
    (("jupyterhub", "proxy", "chp", "extraPodSpec", "priorityClassName"), "support.disruption"),
    *(
        (
            (("config", cls, "allowed_specs"), f"binderhub.limits.allowed_specs.{p}")
            for p, cls in REPO_PROVIDERS.items()
        )
    ),
    *(
        (
            (("config", cls, "banned_specs"), f"binderhub.limits.banned_specs.{p}")
            for p, cls in REPO_PROVIDERS.items()
        )
    ),
)
"""For the message only: which typed key sets a controlled path (longest matching prefix wins; None: the
layer fixes it). Paths the layer sets without a key (service types, the registry credentials mount)
are fixed. tests/hub/test_extra_values.py fails when a generated path is neither named nor known fixed."""


def _leaves(value: Any, path: Path = ()) -> Iterator[Path]:
    """Paths of the values' leaves; lists and the layer's own mappings count as one leaf."""
    if isinstance(value, Mapping) and (not path or path[-1] not in _ATOMIC):
        # An empty mapping merges to nothing, so it overrides nothing.
        for key, child in value.items():
            yield from _leaves(child, (*path, str(key)))
    else:
        yield path


def _maximal_variants(cfg: HubStackConfig) -> list[HubStackConfig]:
    """`cfg` with every optional value the generator knows switched on, once per builder type."""
    bh = cfg.binderhub
    every = tuple(REPO_PROVIDERS)
    limits = bh.limits.model_copy(
        update={
            "repo_providers": every,
            "allowed_specs": {p: (".*",) for p in every},
            "banned_specs": {p: ("^$",) for p in every},
            "total_quota": bh.limits.total_quota if bh.limits.total_quota is not None else 1,
        }
    )
    registry = bh.registry.model_copy(update={"private": True, "token_url": "https://registry.invalid/token"})
    variants = []
    for builder_type in ("dind", "pink"):
        builder = bh.builder.model_copy(update={"type": builder_type, "mtu": bh.builder.mtu or 1400})
        update = {
            "limits": limits,
            "registry": registry,
            "builder": builder,
            "banner_message": bh.banner_message or "-",
            "about_message": bh.about_message or "-",
            "cors_allow_origin": bh.cors_allow_origin or "*",
            "extra_values": {},
        }
        variants.append(cfg.model_copy(update={"binderhub": bh.model_copy(update=update)}))
    return variants


def controlled_paths(cfg: HubStackConfig) -> set[Path]:
    """Every values path the layer sets from its typed config (or fixes), for this site and in general."""
    from jetstream_binderhub.hub.values import binderhub_values

    labels = {cfg.placement.core_node_group: "core", cfg.placement.user_node_group: "user"}
    own = cfg.model_copy(update={"binderhub": cfg.binderhub.model_copy(update={"extra_values": {}})})
    paths: set[Path] = set()
    for variant in (own, *_maximal_variants(cfg)):
        paths.update(_leaves(binderhub_values(variant, labels, github_token=True)))
    return paths


def typed_key(path: Path) -> str | None:
    """The typed key that sets `path`, or None when the layer fixes it."""
    best: tuple[int, str | None] = (0, None)
    for prefix, key in _TYPED_KEYS:
        if path[: len(prefix)] == prefix and len(prefix) > best[0]:
            best = (len(prefix), key)
    return best[1]


def override_problems(cfg: HubStackConfig) -> list[Problem]:
    """Each place `extra_values` would replace, extend or remove what the typed config sets."""
    controlled = controlled_paths(cfg)
    problems: list[Problem] = []
    for path in sorted(set(_leaves(cfg.binderhub.extra_values))):
        hits = sorted(c for c in controlled if c[: len(path)] == path or path[: len(c)] == c)
        if not hits:
            continue
        keys = sorted({k for k in (typed_key(h) for h in hits) if k})
        how = (
            f"use {' and '.join(keys)} instead"
            if keys
            else "the BinderHub layer fixes it, as its own wiring depends on it"
        )
        if any(len(h) > len(path) for h in hits):
            what = f"would replace {'.'.join(hits[0])}, which the typed config sets"
        else:
            what = "is set by the typed config"
        problems.append(
            Problem(
                _where(path),
                f"{what}: {how} (extra_values is only for chart settings the config has no key for)",
            )
        )
    return problems


def extra_values_problems(cfg: HubStackConfig) -> list[Problem]:
    extra = cfg.binderhub.extra_values
    if not extra:
        return []
    return secret_problems(extra) + override_problems(cfg)
