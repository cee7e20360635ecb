"""Helm values and manifests of the BinderHub layer, as pure functions of the typed config.

Nothing here touches Pulumi: the program calls these inside ``apply`` once the cluster's node-group
labels and the floating IP are known, and tests call them directly. No secret ever enters a values
mapping: registry credentials and the GitHub token live in Kubernetes Secrets the chart is pointed at,
so a Release's values stay readable in a plan and in Pulumi's state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from jetstream_binderhub.config.hub import REPO_PROVIDERS, HubStackConfig
from jetstream_binderhub.errors import ConfigError, Problem
from jetstream_binderhub.helm_values import deep_merge
from jetstream_binderhub.hub.dask import add_dask_gateway
from jetstream_binderhub.hub.gpu import add_gpu_servers
from jetstream_binderhub.hub.support_values import binderhub_support_values, traefik_support_values
from jetstream_binderhub.naming import NODE_GROUP_LABEL

PUSH_SECRET = "binderhub-registry-push"
"""Opaque Secret with `config.json`: what build pods push with and BinderHub checks the registry with."""
PULL_SECRET = "binderhub-registry-pull"
"""`kubernetes.io/dockerconfigjson` Secret user pods pull private images with."""
GITHUB_SECRET = "binderhub-github-token"
GITHUB_SECRET_KEY = "token"
REGISTRY_CONFIG_DIR = "/etc/binderhub/registry"
BINDERHUB_TLS_SECRET = "binderhub-tls"
JUPYTERHUB_TLS_SECRET = "jupyterhub-tls"
PROXY_SERVICE_URL = "http://proxy-public"
"""JupyterHub's proxy Service in the release namespace (z2jh names it without a prefix)."""


def node_selector(cfg: HubStackConfig, labels: Mapping[str, str], role: str) -> dict[str, str]:
    """The selector of the `core` or `user` node group, from the cluster's label values."""
    key = f"{role}_node_group"
    group = getattr(cfg.placement, key)
    if group not in labels:
        raise ConfigError(
            [
                Problem(
                    f"placement.{key}",
                    f"unknown node group {group!r} (the cluster stack reports: {', '.join(sorted(labels))})",
                )
            ]
        )
    return {NODE_GROUP_LABEL: labels[group]}


def _ingress(cfg: HubStackConfig, host: str, tls_secret: str) -> dict[str, Any]:
    return {
        "enabled": True,
        "ingressClassName": cfg.ingress.class_name,
        # cert-manager's ingress-shim sees the annotation and keeps a certificate for `tls` in the Secret.
        "annotations": {"cert-manager.io/cluster-issuer": cfg.tls.issuer_name},
        "hosts": [host],
        "pathType": "Prefix",
        "tls": [{"hosts": [host], "secretName": tls_secret}],
    }


def _jupyterhub_values(cfg: HubStackConfig, core: dict[str, str], user: dict[str, str]) -> dict[str, Any]:
    jh = cfg.binderhub.jupyterhub
    res = jh.user_resources
    policy = {"networkPolicy": {"enabled": jh.network_policies}}
    singleuser: dict[str, Any] = {
        "nodeSelector": user,
        "cpu": {"guarantee": res.cpu_guarantee, "limit": res.cpu_limit},
        "memory": {"guarantee": res.memory_guarantee, "limit": res.memory_limit},
        # z2jh's default, written out so it is the typed config's promise (users never reach the cloud
        # metadata service, which hands out instance credentials) and extra_values cannot turn it off.
        "cloudMetadata": {"blockWithIptables": True},
        **policy,
    }
    if cfg.binderhub.registry.pulls_need_secret:
        # z2jh hands singleuser.image.pullSecrets to KubeSpawner.image_pull_secrets
        # (zero-to-jupyterhub-k8s jupyterhub/files/hub/jupyterhub_config.py), which every launched pod gets.
        singleuser["image"] = {"pullSecrets": [PULL_SECRET]}
    hub: dict[str, Any] = {"nodeSelector": core, **policy}
    if cfg.binderhub.cors_allow_origin:
        # The spawner passes it to the user's server as --ServerApp.allow_origin (binderhub
        # binderspawner_mixin.py); the BinderHub API's own header is BinderHub.cors_allow_origin.
        hub["config"] = {"BinderSpawnerMixin": {"cors_allow_origin": cfg.binderhub.cors_allow_origin}}
    return {
        "hub": hub,
        "proxy": {
            # The ingress controller is the only entry point; the proxy gets no load balancer of its own.
            "service": {"type": "ClusterIP"},
            "https": {"enabled": False},
            "chp": {"nodeSelector": core, **policy},
        },
        "ingress": _ingress(cfg, cfg.binderhub.hub_host, JUPYTERHUB_TLS_SECRET),
        "cull": {
            "enabled": jh.cull.enabled,
            "users": True,
            "timeout": jh.cull.timeout_seconds,
            "every": jh.cull.every_seconds,
            "maxAge": jh.cull.max_age_seconds,
        },
        "singleuser": singleuser,
        "scheduling": {"userScheduler": {"nodeSelector": core}},
    }


def _repo_provider_snippet(prefixes: tuple[str, ...]) -> str:
    # repo_providers maps prefixes to classes, which YAML cannot express; BinderHub execs extraConfig
    # with `c` in scope. One line, so it reads in a plan and a diff.
    classes = ", ".join(REPO_PROVIDERS[p] for p in prefixes)
    mapping = ", ".join(f"{p!r}: {REPO_PROVIDERS[p]}" for p in prefixes)
    return f"from binderhub.repoproviders import {classes}; c.BinderHub.repo_providers = {{{mapping}}}"


def binderhub_values(cfg: HubStackConfig, labels: Mapping[str, str], *, github_token: bool) -> dict[str, Any]:
    """Values of the binderhub chart: generated from the config, then `extra_values` merged last.

    `labels` maps node-group names to their `capi.stackhpc.com/node-group` values (the cluster stack's
    `node_group_labels` output); `github_token` says whether the token Secret exists.
    """
    bh = cfg.binderhub
    reg = bh.registry
    limits = bh.limits
    core = node_selector(cfg, labels, "core")
    user = node_selector(cfg, labels, "user")

    binderhub_config: dict[str, Any] = {
        "use_registry": True,
        "image_prefix": reg.image_prefix,
        "hub_url": f"https://{bh.hub_host}",
        # BinderHub calls the hub API through the proxy Service instead of out through the floating IP
        # and back in (hairpin NAT through the router is not something to depend on).
        "hub_url_local": PROXY_SERVICE_URL,
        # The chart places the builder daemonset and image cleaner with this; BinderHub also applies it
        # to build pods.
        "build_node_selector": user,
        "per_repo_quota": limits.per_repo_quota,
    }
    if bh.cors_allow_origin:
        binderhub_config["cors_allow_origin"] = bh.cors_allow_origin
    if bh.banner_message:
        binderhub_config["banner_message"] = bh.banner_message
    if bh.about_message:
        binderhub_config["about_message"] = bh.about_message

    registry: dict[str, Any] = {
        "url": reg.api_url,
        # The chart renders its own docker config from `registry.password`, which would put the password
        # into these values; ours is mounted from the Secret the program manages instead.
        "docker_config_path": f"{REGISTRY_CONFIG_DIR}/config.json",
    }
    if token_url := reg.effective_token_url:
        registry["token_url"] = token_url

    config: dict[str, Any] = {
        "BinderHub": binderhub_config,
        "DockerRegistry": registry,
        "KubernetesBuildExecutor": {
            "build_image": bh.builder.repo2docker_image,
            "node_selector": user,
            "push_secret": PUSH_SECRET,
            # The repo2docker pod only; the build's own steps run in the daemon, capped below.
            "resources": bh.builder.build_pod_resources.kubernetes(),
        },
    }
    if limits.total_quota is not None:
        config["LaunchQuota"] = {"total_quota": limits.total_quota}
    for prefix in sorted(set(limits.allowed_specs) | set(limits.banned_specs)):
        rules: dict[str, list[str]] = {}
        if prefix in limits.allowed_specs:
            rules["allowed_specs"] = list(limits.allowed_specs[prefix])
        if prefix in limits.banned_specs:
            rules["banned_specs"] = list(limits.banned_specs[prefix])
        config[REPO_PROVIDERS[prefix]] = rules

    image_name, _, image_tag = bh.builder.image.rpartition(":")
    daemonset: dict[str, Any] = {"image": {"name": image_name, "tag": image_tag}}
    if bh.builder.mtu is not None:
        daemonset["extraArgs"] = [f"--mtu={bh.builder.mtu}"]

    values: dict[str, Any] = {
        "nodeSelector": core,
        "service": {"type": "ClusterIP"},
        "ingress": {**_ingress(cfg, bh.host, BINDERHUB_TLS_SECRET), "https": {"enabled": False}},
        "config": config,
        # containerd nodes have no Docker socket to borrow: builds run against a daemonset of our own.
        "imageBuilderType": bh.builder.type,
        # The chart's `<builder>.resources` go on the daemonset's container, where every build runs.
        bh.builder.type: {"daemonset": daemonset, "resources": bh.builder.daemon_resources.kubernetes()},
        "extraVolumes": [
            {"name": "registry-credentials", "secret": {"secretName": PUSH_SECRET}},
        ],
        "extraVolumeMounts": [
            {"name": "registry-credentials", "mountPath": REGISTRY_CONFIG_DIR, "readOnly": True},
        ],
        "jupyterhub": add_gpu_servers(
            add_dask_gateway(_jupyterhub_values(cfg, core, user), cfg, bh.namespace), cfg, labels
        ),
    }
    if github_token:
        values["extraEnv"] = {
            "GITHUB_ACCESS_TOKEN": {
                "valueFrom": {"secretKeyRef": {"name": GITHUB_SECRET, "key": GITHUB_SECRET_KEY}},
            }
        }
    if limits.repo_providers is not None:
        values["extraConfig"] = {"10-repo-providers": _repo_provider_snippet(limits.repo_providers)}
    values = deep_merge(values, binderhub_support_values(cfg))
    return deep_merge(values, bh.extra_values)


BUILDER_POLICY = "binderhub-builders"
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
LINK_LOCAL = "169.254.0.0/16"
"""Link-local, where the cloud metadata service answers (169.254.169.254): credentials and user data."""
BUILDER_COMPONENTS = ("image-builder", "binderhub-build")
"""Pod labels `component=`: the chart's builder daemonset (templates/container-builder/daemonset.yaml)
and BinderHub's build pods (binderhub/build.py, KubernetesBuildExecutor._component_label)."""


def builder_network_policy_spec() -> dict[str, Any]:
    """Fence for the builder daemonset and the build pods, where repository code runs during a build
    (the daemon runs each step; its containers' traffic leaves through the daemon pod): nothing comes in,
    DNS goes to the cluster, everything else only to public addresses. mybinder.org fences the same pods
    (mybinder.org-deploy mybinder/templates/netpol.yaml); the DNS rules follow z2jh's singleuser policy."""
    dns_ports = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    return {
        "podSelector": {
            "matchExpressions": [{"key": "component", "operator": "In", "values": list(BUILDER_COMPONENTS)}]
        },
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [],
        "egress": [
            {
                "ports": dns_ports,
                "to": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}},
                    *({"ipBlock": {"cidr": cidr}} for cidr in PRIVATE_RANGES),
                ],
            },
            {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [*PRIVATE_RANGES, LINK_LOCAL]}}]},
        ],
    }


def traefik_values(cfg: HubStackConfig, labels: Mapping[str, str], load_balancer_ip: str) -> dict[str, Any]:
    """Values of the Traefik chart: a LoadBalancer Service on the given floating IP, HTTP redirected."""
    ing = cfg.ingress
    core = node_selector(cfg, labels, "core")
    annotations = {
        # The cloud controller never deletes a floating IP it did not create, but say so anyway:
        # this address is Pulumi's, and DNS points at it.
        "loadbalancer.openstack.org/keep-floatingip": "true",
    }
    spec: dict[str, Any] = {"type": "LoadBalancer", "loadBalancerIP": load_balancer_ip}
    if ing.preserve_client_ip:
        spec["externalTrafficPolicy"] = "Local"
        # openstack-cloud-controller-manager: "A health monitor is required for services with
        # externalTrafficPolicy: Local" (docs/openstack-cloud-controller-manager/expose-applications-using-
        # loadbalancer-type-service.md); without one, nodes without a Traefik pod get traffic and drop it.
        # The driver's create-monitor default may differ between releases, so ask per Service.
        annotations["loadbalancer.openstack.org/enable-health-monitor"] = "true"
    timeouts = {"readTimeout": ing.timeout_seconds, "idleTimeout": ing.timeout_seconds}
    values: dict[str, Any] = {
        "deployment": {"replicas": ing.replicas},
        "nodeSelector": core,
        "ingressClass": {"enabled": True, "isDefaultClass": True, "name": ing.class_name},
        "providers": {
            "kubernetesIngress": {"publishedService": {"enabled": True}},
            # The CRD provider watches every namespace by default (chart 41.3.0 values.yaml), so it would
            # also serve the IngressRoutes Dask Gateway makes for its own Traefik, publicly, on `web`.
            # This controller only routes Ingress objects; its CRD objects live in its own namespace.
            "kubernetesCRD": {"namespaces": [ing.namespace]},
        },
        "service": {
            "annotations": annotations,
            # The chart copies `spec` into the Service verbatim. openstack-cloud-controller-manager attaches
            # the existing floating IP named by spec.loadBalancerIP to the new load balancer's VIP port
            # (there is no annotation for it), so a rebuilt load balancer comes back on the same address.
            "spec": spec,
        },
        "ports": {
            "web": {
                "http": {
                    "redirections": {
                        # Priority 1 instead of the default MaxInt-1: cert-manager's HTTP-01 solver ingress
                        # (a longer, more specific rule) must win over the redirect on port 80.
                        "entryPoint": {"to": "websecure", "scheme": "https", "permanent": True, "priority": 1}
                    }
                }
            },
            # The chart turns these into --entryPoints.websecure.transport.respondingTimeouts.* flags
            # (traefik-helm-chart v41.3.0 traefik/templates/_podtemplate.tpl).
            "websecure": {"transport": {"respondingTimeouts": timeouts}},
        },
    }
    if ing.replicas > 1:
        values["podDisruptionBudget"] = {"enabled": True, "maxUnavailable": 1}
        values["affinity"] = {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/name": "traefik",
                                    "app.kubernetes.io/instance": f"{ing.release_name}-{ing.namespace}",
                                }
                            },
                        },
                    }
                ]
            }
        }
    return deep_merge(values, traefik_support_values(cfg))


def cert_manager_values(cfg: HubStackConfig, labels: Mapping[str, str]) -> dict[str, Any]:
    """Values of the cert-manager chart: CRDs installed (and kept on uninstall), pods on the core group."""
    return {
        # `keep` leaves the CRDs behind on uninstall: deleting them would delete every Certificate too.
        "crds": {"enabled": True, "keep": True},
        "global": {"nodeSelector": node_selector(cfg, labels, "core")},
    }


def cluster_issuer_spec(cfg: HubStackConfig) -> dict[str, Any]:
    """The ACME ClusterIssuer: Let's Encrypt over HTTP-01 answered through the ingress controller."""
    return {
        "acme": {
            "email": cfg.tls.acme_email,
            "server": cfg.tls.acme_url,
            "privateKeySecretRef": {"name": f"{cfg.tls.issuer_name}-account-key"},
            "solvers": [{"http01": {"ingress": {"ingressClassName": cfg.ingress.class_name}}}],
        }
    }


def docker_config_json(auth_url: str, username: str, password: str) -> str:
    """A docker `config.json` with one registry's credentials, as docker, repo2docker and kubelet read it."""
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {auth_url: {"auth": auth}}}, sort_keys=True)


def dns_records(cfg: HubStackConfig, address: str) -> list[dict[str, Any]]:
    """The A records both hosts need, with absolute names as DNS writes them."""
    return [{"name": name, "type": "A", "ttl": cfg.dns.ttl, "value": address} for name in cfg.dns_names()]


def chart_versions(cfg: HubStackConfig) -> dict[str, str]:
    versions = {
        "binderhub": cfg.binderhub.chart_version,
        cfg.ingress.controller: cfg.ingress.chart_version,
        "cert-manager": cfg.tls.cert_manager_version,
    }
    if cfg.dask_gateway.enabled:
        versions["dask-gateway"] = cfg.dask_gateway.chart_version
    return versions
