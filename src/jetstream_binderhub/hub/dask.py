"""Dask Gateway beside BinderHub, as pure functions of the typed config: the gateway chart's values,
what the JupyterHub inside BinderHub needs to reach it, and the network policy of the Dask pods.

Read from dask/dask-gateway 2026.3.0 (resources/helm/dask-gateway, dask-gateway-server):
- The gateway is a JupyterHub service: z2jh generates the service's api token into its `hub` Secret
  (key `hub.services.dask-gateway.apiToken`, templates/hub/secret.yaml), and the gateway chart mounts
  that key when `gateway.auth.jupyterhub.apiToken` is unset (templates/gateway/deployment.yaml). A
  Secret can only be mounted in its own namespace, so the gateway lives in the BinderHub namespace, and
  no token is ever in values or in Pulumi's state.
- Users reach the gateway through the hub's proxy at /services/dask-gateway/ (the service's `url` is
  the gateway's Traefik, a ClusterIP Service), so there is no new public endpoint or certificate.
- The gateway's memory settings read `G` as GiB and refuse `Gi` (dask_gateway_server/traitlets.py
  MemoryLimit), unlike Kubernetes: every memory handed to it here is a byte count.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.dask import DaskGatewayConfig, memory_bytes, worker_group
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.errors import ConfigError, Problem
from jetstream_binderhub.naming import DEFAULT_WORKER, NODE_GROUP_LABEL
from jetstream_binderhub.profiles import Flavor, load_profile

SERVICE_NAME = "dask-gateway"
"""The JupyterHub service name: the proxy route /services/dask-gateway/ and the Secret key follow it."""
SERVICE_PREFIX = f"/services/{SERVICE_NAME}"
HUB_SECRET = "hub"
"""z2jh's Secret (no fullnameOverride prefix inside the binderhub chart) holding service api tokens."""
HUB_API_URL = "http://hub:8081/hub/api"
INSTANCE_LABEL = "gateway.dask.org/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
"""Egress the Dask pods are denied: the tenant network, the cluster's pods and services, and the link-local
range that holds the cloud's metadata service (169.254.169.254, which RFC 1918 ranges do not cover)."""


def fullname(release_name: str) -> str:
    """The chart's `dask-gateway.fullname`: the release name when it contains the chart name
    (templates/_helpers.tpl), which names the `traefik-<fullname>` and `api-<fullname>` Services and the
    `gateway.dask.org/instance` label of every pod the gateway makes."""
    name = "dask-gateway"
    full = release_name if name in release_name else f"{release_name}-{name}"
    return full[:63].rstrip("-")


def traefik_service(dask: DaskGatewayConfig) -> str:
    return f"traefik-{fullname(dask.release_name)}"[:63].rstrip("-")


def _selector(labels: Mapping[str, str], group: str, key: str) -> dict[str, str]:
    if group not in labels:
        raise ConfigError(
            [
                Problem(
                    key,
                    f"unknown node group {group!r} (the cluster stack reports: {', '.join(sorted(labels))})",
                )
            ]
        )
    return {NODE_GROUP_LABEL: labels[group]}


def _limits_snippet(dask: DaskGatewayConfig) -> str:
    lim = dask.limits
    return "\n".join(
        [
            "# Per-cluster limits the gateway enforces on every scale and adapt request.",
            f"c.ClusterConfig.cluster_max_cores = {float(lim.cores_per_cluster)!r}",
            f"c.ClusterConfig.cluster_max_memory = {int(memory_bytes(lim.memory_per_cluster))}",
            f"c.ClusterConfig.idle_timeout = {lim.idle_timeout_minutes * 60}",
        ]
    )


def _options_snippet(image_prefix: str) -> str:
    # The client sends the notebook's image (DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE, set for every binder);
    # anything not built by this BinderHub is refused, so the gateway cannot run arbitrary images.
    return "\n".join(
        [
            "from dask_gateway_server.options import Options, String",
            "",
            f"_BINDER_IMAGE_PREFIX = {image_prefix!r}",
            "",
            "",
            "def _binder_image(options):",
            "    image = options.image.strip()",
            "    if not image.startswith(_BINDER_IMAGE_PREFIX):",
            "        raise ValueError(",
            '            "Dask workers run the image of the binder they are started from; start the cluster "',
            '            "from a notebook of this BinderHub (got image %r)" % image',
            "        )",
            '    return {"image": image}',
            "",
            "",
            "c.Backend.cluster_options = Options(",
            '    String("image", default="", label="Image (the binder\'s own)"), handler=_binder_image',
            ")",
        ]
    )


def _cluster_count_snippet(dask: DaskGatewayConfig) -> str:
    # dask-gateway 2026.3.0 has no limit on clusters per user (its Backend only checks per-cluster limits):
    # the backend the chart configures is subclassed to count clusters before starting one.
    lim = dask.limits
    return "\n".join(
        [
            "from dask_gateway_server.backends.base import PublicException",
            "from dask_gateway_server.backends.kubernetes import KubeBackend",
            "",
            f"_CLUSTERS_PER_USER = {lim.clusters_per_user}",
            f"_TOTAL_CLUSTERS = {lim.total_clusters!r}",
            "",
            "",
            "class BinderKubeBackend(KubeBackend):",
            "    async def start_cluster(self, user, cluster_options):",
            "        mine = await self.list_clusters(username=user.name)",
            "        if len(mine) >= _CLUSTERS_PER_USER:",
            "            raise PublicException(",
            '                "this binder already has %d Dask cluster(s), the most allowed; shut one down "',
            '                "first (cluster.shutdown())" % len(mine)',
            "            )",
            "        if _TOTAL_CLUSTERS is not None and len(await self.list_clusters()) >= _TOTAL_CLUSTERS:",
            '            raise PublicException("this BinderHub runs as many Dask clusters as it can; try again later")',
            "        return await super().start_cluster(user, cluster_options)",
            "",
            "",
            "c.DaskGateway.backend_class = BinderKubeBackend",
        ]
    )


def dask_gateway_values(cfg: HubStackConfig, labels: Mapping[str, str]) -> dict[str, Any]:
    """Values of the dask-gateway chart: JupyterHub auth from the hub's Secret, everything ClusterIP,
    schedulers on the user group, workers on their group, limits in the gateway's own config."""
    dask = cfg.dask_gateway
    core = _selector(labels, cfg.placement.core_node_group, "placement.core_node_group")
    user = _selector(labels, cfg.placement.user_node_group, "placement.user_node_group")
    workers = _selector(
        labels,
        worker_group(dask, cfg.placement.user_node_group),
        "dask_gateway.worker_node_group" if dask.worker_node_group else "placement.user_node_group",
    )
    scheduler_memory = int(memory_bytes(dask.scheduler_memory))
    worker_memory = int(memory_bytes(dask.worker_memory))
    # No service account token in a pod that runs a binder's code (z2jh does the same for user servers).
    pod_defaults = {"automountServiceAccountToken": False}
    backend: dict[str, Any] = {
        "scheduler": {
            "cores": {"request": dask.scheduler_cores, "limit": dask.scheduler_cores * 2},
            "memory": {"request": scheduler_memory, "limit": scheduler_memory},
            "extraPodConfig": {
                **pod_defaults,
                # The user group already holds the binder's image; a scheduler is small.
                "nodeSelector": user,
                # The maximum lifetime: the kubelet stops the scheduler at this age, and the gateway's
                # controller then marks the cluster failed and deletes its workers (controller.py
                # handle_pending_cluster / scheduler terminated).
                "activeDeadlineSeconds": int(dask.limits.max_lifetime_hours * 3600),
            },
        },
        "worker": {
            "cores": {"request": dask.worker_cores, "limit": dask.worker_cores},
            "memory": {"request": worker_memory, "limit": worker_memory},
            "threads": max(1, int(dask.worker_cores)),
            "extraPodConfig": {**pod_defaults, "nodeSelector": workers},
        },
    }
    # Workers run the binder's own image, which Quay keeps private: they need the pull secret user pods
    # get, whenever the registry's visibility (set or the provider's default) calls for it.
    if cfg.binderhub.registry.pulls_need_secret:
        from jetstream_binderhub.hub.values import PULL_SECRET

        backend["imagePullSecrets"] = [{"name": PULL_SECRET}]
    return {
        "gateway": {
            "prefix": SERVICE_PREFIX,
            "nodeSelector": core,
            "auth": {
                "type": "jupyterhub",
                # apiToken unset: the chart mounts the token z2jh generated (apiTokenFromSecretName/Key
                # default to `hub` / `hub.services.dask-gateway.apiToken`).
                "jupyterhub": {
                    "apiUrl": HUB_API_URL,
                    "apiTokenFromSecretName": HUB_SECRET,
                    "apiTokenFromSecretKey": f"hub.services.{SERVICE_NAME}.apiToken",
                },
            },
            "backend": backend,
            "extraConfig": {
                "10-limits": _limits_snippet(dask),
                "20-binder-image": _options_snippet(cfg.binderhub.registry.image_prefix),
                "30-clusters-per-user": _cluster_count_snippet(dask),
            },
        },
        "controller": {"nodeSelector": core},
        "traefik": {
            "nodeSelector": core,
            # Reached only through the hub's proxy and from user pods inside the cluster.
            "service": {"type": "ClusterIP"},
        },
    }


def _traefik_pod(dask: DaskGatewayConfig) -> dict[str, Any]:
    return {
        "podSelector": {
            "matchLabels": {INSTANCE_LABEL: fullname(dask.release_name), COMPONENT_LABEL: "traefik"}
        }
    }


def add_dask_gateway(jupyterhub: Mapping[str, Any], cfg: HubStackConfig, namespace: str) -> dict[str, Any]:
    """The jupyterhub subtree with the gateway registered as a service and every binder pointed at it.

    Lists (network policy egress rules) are extended rather than replaced, so rules others add survive.
    """
    dask = cfg.dask_gateway
    out = copy.deepcopy(dict(jupyterhub))
    if not dask.enabled:
        return out
    traefik = traefik_service(dask)
    hub = out.setdefault("hub", {})
    # No apiToken: the chart generates one into its Secret and keeps it across upgrades.
    hub.setdefault("services", {})[SERVICE_NAME] = {"display": False, "url": f"http://{traefik}"}
    singleuser = out.setdefault("singleuser", {})
    env = singleuser.setdefault("extraEnv", {})
    env.update(
        {
            # The API through the proxy's in-cluster Service; dashboards through the hub's public host.
            "DASK_GATEWAY__ADDRESS": f"http://proxy-public{SERVICE_PREFIX}",
            "DASK_GATEWAY__PUBLIC_ADDRESS": f"{SERVICE_PREFIX}/",
            "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{traefik}.{namespace}:80",
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            # KubeSpawner formats admin-set variables once (kubespawner spawner.py get_env), leaving
            # {JUPYTER_IMAGE_SPEC}, which the dask-gateway client fills from the notebook's environment:
            # the workers run the binder's own image.
            "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE": "{{JUPYTER_IMAGE_SPEC}}",
        }
    )
    # Scheduler connections go to the gateway's Traefik (port 8000 in the pod); z2jh's user policy
    # otherwise denies private addresses.
    to_traefik = {"to": [_traefik_pod(dask)], "ports": [{"port": 8000, "protocol": "TCP"}]}
    # New mappings rather than in-place edits: the caller's subtrees may share one networkPolicy dict.
    for owner in (singleuser, out.setdefault("proxy", {}).setdefault("chp", {})):
        policy = dict(owner.get("networkPolicy") or {})
        policy["egress"] = [*policy.get("egress", []), to_traefik]
        owner["networkPolicy"] = policy
    return out


def network_policy_spec(dask: DaskGatewayConfig) -> dict[str, Any]:
    """Dask schedulers and workers: reachable from the gateway's own pods (its Traefik, API and
    controller) and each other only; out to DNS, each other and the public internet, never to private
    addresses or the metadata service."""
    instance = {INSTANCE_LABEL: fullname(dask.release_name)}
    same_instance = {"podSelector": {"matchLabels": instance}}
    return {
        "podSelector": {
            "matchLabels": instance,
            "matchExpressions": [
                {"key": COMPONENT_LABEL, "operator": "In", "values": ["dask-scheduler", "dask-worker"]}
            ],
        },
        "policyTypes": ["Ingress", "Egress"],
        # User pods reach a scheduler through the gateway's Traefik, which is in `same_instance`.
        "ingress": [{"from": [same_instance]}],
        "egress": [
            {"to": [same_instance]},
            {
                "to": [
                    {
                        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
            },
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE_RANGES)}}]},
        ],
    }


def group_flavor(cluster: ClusterStackConfig, group: str) -> Flavor | None:
    """The profile's facts about a node group's flavor (None for an unknown group or a custom flavor)."""
    c = cluster.cluster
    name = (
        c.default_worker.flavor
        if group == DEFAULT_WORKER
        else next((g.flavor for g in c.node_groups if g.name == group), None)
    )
    return load_profile(cluster.profile).flavor(name) if name else None


def dask_fit_problems(cfg: HubStackConfig, cluster: ClusterStackConfig) -> list[Problem]:
    """A worker larger than a node of its group would stay pending forever; say so before deploying."""
    dask = cfg.dask_gateway
    if not dask.enabled:
        return []
    group = worker_group(dask, cfg.placement.user_node_group)
    flavor = group_flavor(cluster, group)
    if flavor is None:
        return []
    where = f"a {flavor.name} node ({flavor.vcpus} vCPUs, {flavor.ram_gb:g} GB) of group {group!r}"
    problems = []
    if dask.worker_cores > flavor.vcpus:
        problems.append(
            Problem(
                "dask_gateway.worker_cores",
                f"{dask.worker_cores:g} cores never fit on {where}: no worker could start",
            )
        )
    if memory_bytes(dask.worker_memory) > flavor.ram_gb * 1e9:
        problems.append(
            Problem(
                "dask_gateway.worker_memory",
                f"{dask.worker_memory} never fits on {where}: no worker could start",
            )
        )
    return problems


def dask_schema_problems(cfg: HubStackConfig, labels: Mapping[str, str]) -> list[Problem]:
    """What the dask-gateway chart's schema refuses in the values this config makes (ours to fix)."""
    if not cfg.dask_gateway.enabled:
        return []
    from jetstream_binderhub.schemas import validate_chart_values

    return [
        Problem("dask_gateway", f"the dask-gateway chart would refuse {found}")
        for found in validate_chart_values("dask-gateway", dask_gateway_values(cfg, labels))
    ]


def dask_notes(cfg: HubStackConfig, cluster: ClusterStackConfig) -> list[str]:
    """What a Dask worker group of its own costs while nobody computes (Magnum cannot scale it to 0)."""
    dask = cfg.dask_gateway
    group = dask.worker_node_group
    if not dask.enabled or group is None or group == cfg.placement.user_node_group:
        return []
    flavor = group_flavor(cluster, group)
    nodes = next((g.min_count for g in cluster.cluster.node_groups if g.name == group), None)
    if flavor is None or nodes is None:
        return []
    unit = load_profile(cluster.profile).su_unit
    hourly = flavor.su_per_hour * nodes
    return [
        f"Dask workers run on group {group!r}: its minimum of {nodes} {flavor.name} node"
        f"{'s' if nodes > 1 else ''} is billed with or without clusters, {hourly:g} {unit}/h "
        f"({hourly * 24 * 365:,.0f} {unit} a year); without dask_gateway.worker_node_group they share the "
        "user group at no extra cost"
    ]
