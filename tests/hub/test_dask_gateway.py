"""Dask Gateway beside BinderHub, planned under Pulumi's mocks: the release, its wiring into JupyterHub,
the limits the gateway enforces and the network policy around Dask pods."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from jetstream_binderhub.config.hub import parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.dask import dask_gateway_values
from jetstream_binderhub.naming import NODE_GROUP_LABEL
from jetstream_binderhub.schemas import validate_chart_values

from .conftest import PlanHub

RELEASE = "kubernetes:helm.sh/v3:Release"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large", "dask-m3.xl": "dask-m3-xl"}
DASK_GROUP = {"name": "dask-m3.xl", "flavor": "m3.xl", "min_count": 1, "max_count": 4}


def test_shipped_site_plans_the_gateway_beside_the_hub(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    layer = plan_hub(hub_config).layer
    release = layer.resource(RELEASE, "dask-gateway-release")
    inputs = release.inputs
    assert (inputs["chart"], inputs["version"], inputs["repository_opts"]) == (
        "dask-gateway",
        "2026.3.0",
        {"repo": "https://helm.dask.org"},
    )
    # The hub's namespace: the gateway mounts JupyterHub's generated token from the `hub` Secret there.
    assert inputs["namespace"] == "binderhub"
    # The hub's Secret must exist first, and Traefik's own CRDs must be installed before the gateway's copies.
    assert set(release.options["depends_on"]) == {"binderhub-release", "ingress-release"}
    assert inputs["skip_crds"] is False
    assert release.options["provider"] == "cluster-k8s"
    assert layer.resource(POLICY, "dask-gateway-network-policy").options["provider"] == "cluster-k8s"
    assert layer.output("chart_versions").value["dask-gateway"] == "2026.3.0"


def test_no_token_anywhere_the_hub_generates_it_and_the_gateway_reads_its_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    gateway = run.values("dask-gateway-release")["gateway"]
    auth = gateway["auth"]
    assert auth["type"] == "jupyterhub"
    assert "apiToken" not in auth["jupyterhub"]
    assert (auth["jupyterhub"]["apiTokenFromSecretName"], auth["jupyterhub"]["apiTokenFromSecretKey"]) == (
        "hub",
        "hub.services.dask-gateway.apiToken",
    )
    service = run.values()["jupyterhub"]["hub"]["services"]["dask-gateway"]
    assert service == {"display": False, "url": "http://traefik-dask-gateway"}
    # The proxy routes /services/dask-gateway/ to the service url; the gateway's routes carry that prefix.
    assert gateway["prefix"] == "/services/dask-gateway"
    assert run.values("dask-gateway-release")["traefik"]["service"]["type"] == "ClusterIP"


def test_every_binder_is_pointed_at_the_gateway(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    single = plan_hub(hub_config).values()["jupyterhub"]["singleuser"]
    assert single["extraEnv"] == {
        "DASK_GATEWAY__ADDRESS": "http://proxy-public/services/dask-gateway",
        "DASK_GATEWAY__PUBLIC_ADDRESS": "/services/dask-gateway/",
        "DASK_GATEWAY__PROXY_ADDRESS": "gateway://traefik-dask-gateway.binderhub:80",
        "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
        "DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE": "{{JUPYTER_IMAGE_SPEC}}",
    }
    # The user pods' policy denies private addresses; the gateway's Traefik is let through, on its pod port.
    (rule,) = single["networkPolicy"]["egress"]
    assert rule["to"][0]["podSelector"]["matchLabels"] == {
        "gateway.dask.org/instance": "dask-gateway",
        "app.kubernetes.io/component": "traefik",
    }
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]


def test_a_release_name_renames_every_address(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["dask_gateway"]["release_name"] = "pangeo"
    run = plan_hub(hub_config)
    jh = run.values()["jupyterhub"]
    assert jh["hub"]["services"]["dask-gateway"]["url"] == "http://traefik-pangeo-dask-gateway"
    assert jh["singleuser"]["extraEnv"]["DASK_GATEWAY__PROXY_ADDRESS"] == (
        "gateway://traefik-pangeo-dask-gateway.binderhub:80"
    )
    policy = run.layer.resource(POLICY, "dask-gateway-network-policy").inputs["spec"]
    assert policy["podSelector"]["matchLabels"] == {"gateway.dask.org/instance": "pangeo-dask-gateway"}


def test_switched_off_nothing_of_it_is_planned(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["dask_gateway"] = {"enabled": False}
    run = plan_hub(hub_config)
    assert not [r for r in run.layer.resources if r.name.startswith("dask-gateway")]
    jh = run.values()["jupyterhub"]
    assert "services" not in jh["hub"] and "extraEnv" not in jh["singleuser"]
    assert "egress" not in jh["singleuser"]["networkPolicy"]
    assert "dask-gateway" not in run.layer.output("chart_versions").value


def test_placement_limits_and_lifetime(
    plan_hub: PlanHub, hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["node_groups"].append(DASK_GROUP)
    hub_config["dask_gateway"].update(worker_node_group="dask-m3.xl", worker_cores=2, worker_memory="7G")
    hub_config["dask_gateway"]["limits"].update(max_lifetime_hours=4, idle_timeout_minutes=20)
    backend_values = plan_hub(hub_config, cluster=cluster_config).values("dask-gateway-release")
    gateway = backend_values["gateway"]
    scheduler, worker = gateway["backend"]["scheduler"], gateway["backend"]["worker"]
    assert worker["extraPodConfig"]["nodeSelector"] == {NODE_GROUP_LABEL: "dask-m3-xl"}
    # Schedulers stay on the user group, where the binder's image is already pulled.
    assert scheduler["extraPodConfig"]["nodeSelector"] == {NODE_GROUP_LABEL: "user-m3-large"}
    assert scheduler["extraPodConfig"]["activeDeadlineSeconds"] == 4 * 3600
    # Bytes, because the gateway reads "7G" as GiB.
    assert worker["memory"] == {"request": 7_000_000_000, "limit": 7_000_000_000}
    assert worker["cores"] == {"request": 2, "limit": 2} and worker["threads"] == 2
    assert all(p["extraPodConfig"]["automountServiceAccountToken"] is False for p in (scheduler, worker))
    assert "c.ClusterConfig.idle_timeout = 1200" in gateway["extraConfig"]["10-limits"]
    for part in ("gateway", "controller", "traefik"):
        assert backend_values[part]["nodeSelector"] == {NODE_GROUP_LABEL: "default-worker"}


def test_a_worker_group_of_its_own_says_what_its_minimum_costs(
    plan_hub: PlanHub, hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["node_groups"].append(DASK_GROUP)
    hub_config["dask_gateway"]["worker_node_group"] = "dask-m3.xl"
    notes = plan_hub(hub_config, cluster=cluster_config).notes
    (note,) = [n for n in notes if n.startswith("Dask workers run on group")]
    assert "1 m3.xl node is billed with or without clusters, 32 SU/h (280,320 SU a year)" in note
    # On the user group (the shipped site) there is nothing extra to say.
    del hub_config["dask_gateway"]["worker_node_group"]
    assert not [n for n in plan_hub(hub_config, cluster=cluster_config).notes if n.startswith("Dask workers")]


def test_a_worker_larger_than_its_nodes_is_refused_before_planning(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["dask_gateway"].update(worker_cores=32, worker_memory="100G")
    hub_config["dask_gateway"]["limits"].update(cores_per_cluster=64, memory_per_cluster="200G")
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    text = str(err.value)
    assert "dask_gateway.worker_cores: 32 cores never fit on a m3.large node" in text
    assert "dask_gateway.worker_memory: 100G never fits" in text


def test_private_images_are_pulled_by_the_workers_too(hub_config: dict[str, Any]) -> None:
    # The shipped site leaves `private` unset: Quay makes pushed images private, so workers need the
    # same pull secret as user pods or every cluster ends in ImagePullBackOff.
    assert "private" not in hub_config["binderhub"]["registry"]
    cfg = parse_hub_stack(hub_config, node_groups=LABELS)
    values = dask_gateway_values(cfg, LABELS)
    assert values["gateway"]["backend"]["imagePullSecrets"] == [{"name": "binderhub-registry-pull"}]
    assert validate_chart_values("dask-gateway", values) == []

    hub_config["binderhub"]["registry"]["private"] = False
    public = dask_gateway_values(parse_hub_stack(hub_config, node_groups=LABELS), LABELS)
    assert "imagePullSecrets" not in public["gateway"]["backend"]


@pytest.mark.parametrize("private", [False, True])
def test_values_pass_the_charts_schemas(hub_config: dict[str, Any], private: bool) -> None:
    from jetstream_binderhub.hub.values import binderhub_values

    hub_config["binderhub"]["registry"]["private"] = private
    hub_config["dask_gateway"]["worker_node_group"] = "dask-m3.xl"
    cfg = parse_hub_stack(hub_config, node_groups=LABELS)
    assert validate_chart_values("dask-gateway", dask_gateway_values(cfg, LABELS)) == []
    assert validate_chart_values("binderhub", binderhub_values(cfg, LABELS, github_token=False)) == []


def test_the_schema_check_bites() -> None:
    assert validate_chart_values("dask-gateway", {"traefik": {"service": {"type": 3}}})


def test_network_policy_fences_schedulers_and_workers(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    policy = plan_hub(hub_config).layer.resource(POLICY, "dask-gateway-network-policy").inputs
    assert policy["metadata"] == {"name": "dask-gateway-clusters", "namespace": "binderhub"}
    spec = policy["spec"]
    selector = spec["podSelector"]
    assert selector["matchLabels"] == {"gateway.dask.org/instance": "dask-gateway"}
    assert selector["matchExpressions"][0]["values"] == ["dask-scheduler", "dask-worker"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # Only the gateway's pods (its Traefik included, through which users connect) and the cluster's own.
    assert spec["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"gateway.dask.org/instance": "dask-gateway"}}}]}
    ]
    (internet,) = [r for r in spec["egress"] if "ipBlock" in r["to"][0]]
    block = internet["to"][0]["ipBlock"]
    denied = [ipaddress.ip_network(c) for c in block["except"]]
    for address in ("169.254.169.254", "10.0.0.5", "192.168.1.1", "172.20.0.1"):
        assert any(ipaddress.ip_address(address) in net for net in denied), address
    assert not any(ipaddress.ip_address("149.165.1.1") in net for net in denied)
    dns = [r for r in spec["egress"] if r.get("ports") and r["ports"][0]["port"] == 53]
    assert dns and dns[0]["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }


def test_the_public_ingress_ignores_the_gateways_routes(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    # Traefik's CRD provider watches every namespace by default and would serve the gateway's IngressRoutes
    # (entry point `web`) on the public address.
    providers = plan_hub(hub_config).values("ingress-release")["providers"]
    assert providers["kubernetesCRD"]["namespaces"] == ["traefik"]


# The gateway's extraConfig is Python the gateway executes; run it against stand-ins of the two
# dask_gateway_server modules it imports, to check what a user would see.


class _Options:
    def __init__(self, *fields: Any, handler: Any) -> None:
        self.fields, self.handler = fields, handler


class _KubeBackend:
    clusters: list[tuple[str, str]] = []

    async def list_clusters(self, username: str | None = None) -> list[str]:
        return [c for u, c in self.clusters if username in (None, u)]

    async def start_cluster(self, user: Any, cluster_options: Any) -> str:
        return "binderhub.new"


class _PublicError(Exception):
    pass


@pytest.fixture
def gateway_config(hub_config: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stubs = {
        "dask_gateway_server": types.ModuleType("dask_gateway_server"),
        "dask_gateway_server.options": types.ModuleType("dask_gateway_server.options"),
        "dask_gateway_server.backends": types.ModuleType("dask_gateway_server.backends"),
        "dask_gateway_server.backends.base": types.ModuleType("dask_gateway_server.backends.base"),
        "dask_gateway_server.backends.kubernetes": types.ModuleType(
            "dask_gateway_server.backends.kubernetes"
        ),
    }
    stubs["dask_gateway_server.options"].__dict__.update(Options=_Options, String=lambda *a, **k: (a, k))
    stubs["dask_gateway_server.backends.base"].__dict__["PublicException"] = _PublicError
    stubs["dask_gateway_server.backends.kubernetes"].__dict__["KubeBackend"] = _KubeBackend
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        cfg = parse_hub_stack(hub_config, node_groups=LABELS)
        c = types.SimpleNamespace(
            ClusterConfig=types.SimpleNamespace(),
            Backend=types.SimpleNamespace(),
            DaskGateway=types.SimpleNamespace(),
        )
        for snippet in dask_gateway_values(cfg, LABELS)["gateway"]["extraConfig"].values():
            exec(compile(snippet, "extraConfig", "exec"), {"c": c})
        yield {"c": c}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_gateway_limits_are_what_the_site_says(gateway_config: dict[str, Any]) -> None:
    c = gateway_config["c"]
    assert c.ClusterConfig.cluster_max_cores == 8.0
    assert c.ClusterConfig.cluster_max_memory == 32_000_000_000
    assert c.ClusterConfig.idle_timeout == 1800


def test_workers_only_run_images_this_binderhub_built(gateway_config: dict[str, Any]) -> None:
    handler = gateway_config["c"].Backend.cluster_options.handler
    image = "quay.io/projectpythia/binder-projectpythia-2dcookbook-abc:0123"
    assert handler(types.SimpleNamespace(image=image)) == {"image": image}
    with pytest.raises(ValueError, match="start the cluster from a notebook of this BinderHub"):
        handler(types.SimpleNamespace(image="docker.io/someone/miner:latest"))


def test_one_cluster_per_binder_and_a_site_wide_cap(gateway_config: dict[str, Any]) -> None:
    backend = gateway_config["c"].DaskGateway.backend_class()
    user = types.SimpleNamespace(name="projectpythia-cookbook-x1")

    def start(clusters: list[tuple[str, str]]) -> str:
        backend.clusters = clusters
        return asyncio.run(backend.start_cluster(user, {}))

    assert start([("someone-else", "a")]) == "binderhub.new"
    with pytest.raises(_PublicError, match="already has 1 Dask cluster"):
        start([(user.name, "mine")])
    # The shipped site allows ten clusters at once.
    with pytest.raises(_PublicError, match="as many Dask clusters as it can"):
        start([(f"user{i}", str(i)) for i in range(10)])


def test_a_group_missing_live_is_reported_once_without_tracebacks(
    plan_hub: PlanHub, hub_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # The gateway's release waits on BinderHub's, which fails; asyncio must not print a traceback for each
    # resource left holding that one failure.
    outputs = {
        "profile": "jetstream2",
        "cluster_id": "3f1c-magnum-uuid",
        "kubeconfig": "apiVersion: v1",
        "node_group_labels": {"default-worker": "default-worker"},
    }
    with pytest.raises(Exception, match=r"placement\.user_node_group: unknown node group"):
        plan_hub(hub_config, cluster_outputs=outputs)
    gc.collect()
    assert "never retrieved" not in caplog.text
