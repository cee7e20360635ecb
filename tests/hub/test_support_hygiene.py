"""Abuse and hygiene under Pulumi's mocks: cryptnono, the image cleaner, priority and disruption budgets."""

from __future__ import annotations

from typing import Any

import pytest

from jetstream_binderhub.config.hub import parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.schema import validate_binderhub_values
from jetstream_binderhub.hub.values import binderhub_values

from .conftest import PlanHub

RELEASE = "kubernetes:helm.sh/v3:Release"
PRIORITY = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large"}


def _walk_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k, v in value.items() for k in [k, *_walk_keys(v)]]
    if isinstance(value, list):
        return [k for v in value for k in _walk_keys(v)]
    return []


def test_core_pods_outrank_user_servers_and_survive_a_drain(
    plan_hub: PlanHub, hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> None:
    # A core group of up to two nodes, so two BinderHub and two Traefik pods may sit behind budgets.
    cluster_config["cluster"]["default_worker"]["max_count"] = 2
    hub_config["ingress"]["replicas"] = 2
    hub_config["support"]["disruption"]["binderhub_replicas"] = 2
    run = plan_hub(hub_config, cluster=cluster_config)
    pc = run.resource(PRIORITY, "support-core-priority").inputs
    assert (pc["metadata"]["name"], pc["value"], pc["global_default"]) == ("binderhub-core", 10000, False)
    values = run.values()
    core = {"priorityClassName": "binderhub-core"}
    assert values["extraPodSpec"] == core
    assert values["jupyterhub"]["hub"]["extraPodSpec"] == core
    assert values["jupyterhub"]["proxy"]["chp"]["extraPodSpec"] == core
    # User servers keep the default priority: nothing sets one for them.
    assert "extraPodConfig" not in values["jupyterhub"]["singleuser"]
    assert "podPriority" not in values["jupyterhub"].get("scheduling", {})
    # Two BinderHub pods behind the chart's own budget; the single hub and proxy get no budget that
    # would stop a drain forever.
    assert values["replicas"] == 2
    assert "pdb" not in values["jupyterhub"]["hub"] and "pdb" not in values["jupyterhub"]["proxy"]["chp"]
    traefik = run.resource(RELEASE, "ingress-release").inputs["values"]
    assert traefik["priorityClassName"] == "binderhub-core"
    assert traefik["deployment"]["replicas"] == 2
    assert traefik["podDisruptionBudget"] == {"enabled": True, "maxUnavailable": 1}
    prometheus = run.resource(RELEASE, "support-prometheus").inputs["values"]
    assert prometheus["server"]["priorityClassName"] == "binderhub-core"
    # The class exists before BinderHub's pods ask for it.
    assert "support-core-priority" in run.resource(RELEASE, "binderhub-release").options["depends_on"]


def test_without_disruption_handling_no_pod_names_a_priority_class(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["support"]["disruption"]["enabled"] = False
    run = plan_hub(hub_config)
    assert not [r for r in run.layer.resources if r.type == PRIORITY]
    for release in ("binderhub-release", "ingress-release", "support-prometheus", "support-cryptnono"):
        assert "priorityClassName" not in _walk_keys(run.values(release)), release
    assert "replicas" not in run.values()


def test_one_core_node_gets_priority_but_no_second_pod(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    # The shipped site: one core node, so one Traefik and one BinderHub pod, both at core priority.
    run = plan_hub(hub_config)
    traefik = run.values("ingress-release")
    assert traefik["priorityClassName"] == "binderhub-core"
    assert "podDisruptionBudget" not in traefik
    assert run.values()["replicas"] == 1
    hub_config["support"]["disruption"]["binderhub_replicas"] = 2
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    assert err.value.lines()[0].startswith(
        "support.disruption.binderhub_replicas: 2 BinderHub pods on core group 'default-worker' of at most 1 node(s)"
    )


def test_cryptnono_runs_pinned_on_every_node_and_sees_the_dind_daemon(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    rel = run.resource(RELEASE, "support-cryptnono").inputs
    assert (rel["chart"], rel["version"], rel["namespace"]) == (
        "cryptnono",
        "0.3.2-0.dev.git.267.h766bf8f",
        "cryptnono",
    )
    assert rel["repository_opts"] == {"repo": "https://cryptnono.github.io/cryptnono/"}
    values = rel["values"]
    # No nodeSelector: it must run where users' code runs (the chart tolerates NoSchedule taints).
    assert "nodeSelector" not in values
    whacker = values["detectors"]["execwhacker"]
    assert whacker["containerdHostPath"] == "/run/containerd/containerd.sock"
    assert whacker["dockerHostPath"] == "/var/run/dind/docker.sock"
    assert values["metrics"] == {"enabled": True, "collector": {"enabled": True}}
    assert run.output("support_chart_versions")["cryptnono"] == "0.3.2-0.dev.git.267.h766bf8f"
    hub_config["binderhub"]["builder"] = {"type": "pink"}
    hub_config["support"]["monitoring"]["enabled"] = False
    values = plan_hub(hub_config).values("support-cryptnono")
    assert "dockerHostPath" not in values["detectors"]["execwhacker"]
    assert values["metrics"]["enabled"] is False
    hub_config["support"]["cryptnono"]["enabled"] = False
    assert not [r for r in plan_hub(hub_config).layer.resources if "cryptnono" in r.name]


def test_image_cleaner_thresholds_reach_the_chart_in_its_units(hub_config: dict[str, Any]) -> None:
    values = binderhub_values(parse_hub_stack(hub_config, node_groups=LABELS), LABELS, github_token=False)
    assert values["imageCleaner"] == {
        "enabled": True,
        "cordon": True,
        "imageGCThresholdType": "relative",
        "imageGCThresholdHigh": 80,
        "imageGCThresholdLow": 60,
    }
    hub_config["support"]["image_cleaner"] = {"threshold_type": "absolute", "high": 40, "low": 10}
    values = binderhub_values(parse_hub_stack(hub_config, node_groups=LABELS), LABELS, github_token=False)
    # mybinder.org's setting: 40e9 and 10e9 bytes.
    assert (
        values["imageCleaner"]["imageGCThresholdHigh"],
        values["imageCleaner"]["imageGCThresholdLow"],
    ) == (
        40 * 10**9,
        10 * 10**9,
    )
    assert validate_binderhub_values(values) == []
    values["imageCleaner"]["imageGCThresholdHigh"] = 4.5e10 + 0.5
    assert [p.key for p in validate_binderhub_values(values)] == ["imageCleaner.imageGCThresholdHigh"]


@pytest.mark.parametrize(
    ("cleaner", "expected"),
    [
        ({"high": 60, "low": 70}, "support.image_cleaner.low: must be below high (60)"),
        (
            {"high": 120},
            "support.image_cleaner.high: is a percentage with threshold_type relative (at most 100)",
        ),
    ],
)
def test_bad_cleaner_thresholds_are_named(
    hub_config: dict[str, Any], cleaner: dict[str, Any], expected: str
) -> None:
    hub_config["support"]["image_cleaner"] = cleaner
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub_config)
    assert any(line.startswith(expected) for line in err.value.lines()), err.value.lines()
