"""GPU servers for the repositories that ask for them, as a pure function of the typed config.

BinderHub without authentication offers no profile to choose, and its per-repository `spec_config`
only feeds the launch quota (binderhub/repoproviders.py repo_config, builder.py check_quota). What it
does pass to the spawner is the repository URL of every launch (`user_options["repo_url"]`,
binderhub/launcher.py), so a KubeSpawner pre-spawn hook in the hub's config routes the operator's
listed repositories to the GPU node group with an `nvidia.com/gpu` limit.

The `nvidia.com/gpu` resource is advertised by the NVIDIA GPU operator, which the Magnum Cluster API
driver already installs: capi-helm-charts' cluster-addons enable it by default (0.16.0:
charts/cluster-addons/values.yaml `nvidiaGPUOperator`, gpu-operator v25.3.0) and magnum-capi-helm does
not turn it off (driver.py addons). The operator uses the host's driver when the image has one and
installs its own otherwise, so this layer installs no second device plugin (two would both register
the GPUs of a node).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.errors import ConfigError, Problem
from jetstream_binderhub.naming import NODE_GROUP_LABEL
from jetstream_binderhub.profiles import load_profile

GPU_RESOURCE = "nvidia.com/gpu"
GPU_OPERATOR_VERSIONS = {"0.16.0": "v25.3.0"}
"""capi_helm_chart_version -> the gpu-operator chart its cluster-addons install (read from the tag)."""


def _hook_snippet(patterns: tuple[str, ...], selector: Mapping[str, str], gpus: int) -> str:
    pattern = "|".join(f"(?:{p})" for p in patterns)
    return "\n".join(
        [
            "import re",
            "",
            f"_GPU_REPOSITORIES = re.compile({pattern!r}, re.IGNORECASE)",
            f"_GPU_NODE_SELECTOR = {dict(selector)!r}",
            f"_GPU_LIMITS = {{{GPU_RESOURCE!r}: {str(gpus)!r}}}",
            '_previous_pre_spawn_hook = c.KubeSpawner.get("pre_spawn_hook")',
            "",
            "",
            "def _gpu_servers(spawner):",
            "    # BinderHub's launcher puts the repository URL into the spawn request.",
            '    if _GPU_REPOSITORIES.match(spawner.user_options.get("repo_url") or ""):',
            "        spawner.node_selector = dict(_GPU_NODE_SELECTOR)",
            "        spawner.extra_resource_limits = dict(_GPU_LIMITS)",
            "    if _previous_pre_spawn_hook is not None:",
            "        return _previous_pre_spawn_hook(spawner)",
            "",
            "",
            "c.KubeSpawner.pre_spawn_hook = _gpu_servers",
        ]
    )


def add_gpu_servers(
    jupyterhub: Mapping[str, Any], cfg: HubStackConfig, labels: Mapping[str, str]
) -> dict[str, Any]:
    """The jupyterhub subtree with the GPU routing hook, when the site has a GPU group."""
    out = copy.deepcopy(dict(jupyterhub))
    gpu = cfg.gpu
    if gpu is None:
        return out
    if gpu.node_group not in labels:
        raise ConfigError(
            [
                Problem(
                    "gpu.node_group",
                    f"unknown node group {gpu.node_group!r} (the cluster stack reports: {', '.join(sorted(labels))})",
                )
            ]
        )
    selector = {NODE_GROUP_LABEL: labels[gpu.node_group]}
    extra = out.setdefault("hub", {}).setdefault("extraConfig", {})
    extra["20-gpu-servers"] = _hook_snippet(gpu.repositories, selector, gpu.gpus_per_server)
    return out


def gpu_fit_problems(cfg: HubStackConfig, cluster: ClusterStackConfig) -> list[Problem]:
    """The GPU group must be of GPU flavors that hold a user server and the GPUs asked for."""
    from jetstream_binderhub.hub.dask import group_flavor

    gpu = cfg.gpu
    if gpu is None:
        return []
    flavor = group_flavor(cluster, gpu.node_group)
    if flavor is None:  # an unknown group is reported by the placement check; a custom flavor has no facts
        return []
    where = f"group {gpu.node_group!r} ({flavor.name})"
    if flavor.resource != "gpu":
        return [
            Problem(
                "gpu.node_group",
                f"{where} has no GPU: its flavor draws on the {flavor.resource} allocation; use a GPU flavor "
                "(g3.* on Jetstream2)",
            )
        ]
    problems = []
    # A g3 node is a virtual machine with one (virtual, possibly fractional) GPU device.
    devices = max(1, int(flavor.gpu_fraction))
    if gpu.gpus_per_server > devices:
        problems.append(
            Problem(
                "gpu.gpus_per_server",
                f"{gpu.gpus_per_server} never fit on a node of {where}, which has {devices} GPU device: no GPU "
                "server could start",
            )
        )
    res = cfg.binderhub.jupyterhub.user_resources
    memory = res.memory_guarantee_bytes
    if (res.cpu_guarantee or 0) > flavor.vcpus or (memory is not None and memory > flavor.ram_gb * 2**30):
        problems.append(
            Problem(
                "binderhub.jupyterhub.user_resources",
                f"the guarantees never fit on a node of {where} ({flavor.vcpus} vCPUs, {flavor.ram_gb:g} GB): "
                "no GPU server could start",
            )
        )
    return problems


def gpu_notes(cfg: HubStackConfig, cluster: ClusterStackConfig) -> list[str]:
    """Where `nvidia.com/gpu` comes from on this site, and how to check it once deployed."""
    if cfg.gpu is None:
        return []
    chart = cluster.cluster.capi_helm_chart_version or load_profile(cluster.profile).capi_helm_chart_version
    operator = GPU_OPERATOR_VERSIONS.get(chart, "the version its cluster-addons pin")
    return [
        f"GPU servers ({', '.join(cfg.gpu.repositories)}) go to group {cfg.gpu.node_group!r}; nvidia.com/gpu comes "
        f"from the NVIDIA GPU operator {operator} that Magnum installs with capi-helm-charts {chart} (no second "
        "device plugin is installed). After up, `kubectl get nodes -o custom-columns=NAME:.metadata.name,"
        "GPU:.status.allocatable.nvidia\\.com/gpu` should show 1 on that group's nodes"
    ]
