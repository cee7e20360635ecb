"""GPU servers: a GPU node group the BinderHub layer routes the operator's listed repositories to,
nothing else, with the GPU allocation's rates and a warning for the node its minimum keeps billed."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.naming import NODE_GROUP_LABEL
from jetstream_binderhub.plan.render import render_text
from jetstream_binderhub.schemas import validate_chart_values

from .conftest import PlanHub

GPU_GROUP = {"name": "gpu-g3.large", "flavor": "g3.large", "min_count": 1, "max_count": 2}
GPU = {"node_group": "gpu-g3.large", "repositories": [r"https://github\.com/projectpythia/.*-gpu"]}


@pytest.fixture
def gpu_site(
    hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    cluster_config["cluster"]["node_groups"].append(dict(GPU_GROUP))
    hub_config["gpu"] = dict(GPU)
    return hub_config, cluster_config


def hook(values: dict[str, Any]) -> str:
    return values["jupyterhub"]["hub"]["extraConfig"]["20-gpu-servers"]


def run_hook(snippet: str, repo_url: str, previous: Any = None) -> types.SimpleNamespace:
    kube = {"pre_spawn_hook": previous} if previous else {}
    c = types.SimpleNamespace(KubeSpawner=types.SimpleNamespace(get=kube.get))
    exec(compile(snippet, "extraConfig", "exec"), {"c": c})
    spawner = types.SimpleNamespace(
        user_options={"repo_url": repo_url, "image": "quay.io/projectpythia/binder-x:1"},
        node_selector={NODE_GROUP_LABEL: "user-m3-large"},
        extra_resource_limits={},
    )
    c.KubeSpawner.pre_spawn_hook(spawner)
    return spawner


def test_listed_repositories_get_a_gpu_server_on_the_gpu_group(
    plan_hub: PlanHub, gpu_site: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    hub_config, cluster_config = gpu_site
    run = plan_hub(hub_config, cluster=cluster_config)
    values = run.values()
    assert validate_chart_values("binderhub", values) == []
    snippet = hook(values)
    gpu = run_hook(snippet, "https://github.com/ProjectPythia/radar-cookbook-gpu")
    assert gpu.node_selector == {NODE_GROUP_LABEL: "gpu-g3-large"}
    assert gpu.extra_resource_limits == {"nvidia.com/gpu": "1"}
    # Everything else keeps the user group, and never asks for a GPU.
    cpu = run_hook(snippet, "https://github.com/ProjectPythia/radar-cookbook")
    assert cpu.node_selector == {NODE_GROUP_LABEL: "user-m3-large"} and cpu.extra_resource_limits == {}
    assert values["jupyterhub"]["singleuser"]["nodeSelector"] == {NODE_GROUP_LABEL: "user-m3-large"}
    assert any("NVIDIA GPU operator v25.3.0" in note for note in run.notes)


def test_a_hook_set_before_still_runs(gpu_site: tuple[dict[str, Any], dict[str, Any]]) -> None:
    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.hub.values import binderhub_values

    hub_config, _ = gpu_site
    labels = {
        "default-worker": "default-worker",
        "user-m3.large": "user-m3-large",
        "gpu-g3.large": "gpu-g3-large",
    }
    values = binderhub_values(parse_hub_stack(hub_config, node_groups=labels), labels, github_token=False)
    seen: list[str] = []
    run_hook(
        hook(values), "https://github.com/x/y", previous=lambda s: seen.append(s.user_options["repo_url"])
    )
    assert seen == ["https://github.com/x/y"]


def test_without_a_gpu_key_no_hook(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    extra = plan_hub(hub_config).values()["jupyterhub"]["hub"].get("extraConfig", {})
    assert "20-gpu-servers" not in extra


@pytest.mark.parametrize(
    ("change", "key", "why"),
    [
        ({"flavor": "m3.large"}, "gpu.node_group", "has no GPU"),
        ({}, "gpu.gpus_per_server", "1 GPU device"),
    ],
)
def test_a_group_that_cannot_serve_gpus_is_refused(
    plan_hub: PlanHub,
    gpu_site: tuple[dict[str, Any], dict[str, Any]],
    change: dict[str, Any],
    key: str,
    why: str,
) -> None:
    hub_config, cluster_config = gpu_site
    cluster_config["cluster"]["node_groups"][-1].update(change)
    if key == "gpu.gpus_per_server":
        hub_config["gpu"]["gpus_per_server"] = 2
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config, cluster=cluster_config)
    assert any(p.key == key and why in p.message for p in err.value.problems), err.value


def test_plan_shows_gpu_rates_on_their_allocation_and_warns_about_the_minimum(project: Path) -> None:
    from jetstream_binderhub.plan.site import plan_site

    cluster_file = project / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(cluster_file.read_text())
    doc["config"][f"{CLUSTER_PROJECT}:cluster"]["node_groups"].append(dict(GPU_GROUP))
    cluster_file.write_text(yaml.safe_dump(doc))
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(hub_file.read_text())
    doc["config"][f"{HUB_PROJECT}:gpu"] = dict(GPU)
    hub_file.write_text(yaml.safe_dump(doc))

    plan = plan_site("jetstream2", project)
    (line,) = [x for x in plan.cost.lines if x.group == "gpu-g3.large"]
    assert (line.su_per_hour_each, line.resource) == (32, "gpu")
    (warning,) = [w for w in plan.warnings if "GPU group" in w]
    assert "'gpu-g3.large'" in warning and "32 SU/h, 768 SU a day of the GPU allocation" in warning
    text = render_text(plan)
    assert "gpu 32..64 SU/h (gpu-g3.large)" in text


def test_no_gpu_group_no_warning(project: Path) -> None:
    from jetstream_binderhub.plan.site import plan_site

    plan = plan_site("jetstream2", project)
    assert not [w for w in plan.warnings if "GPU" in w]
    assert "charged to separate allocations" not in render_text(plan)
