"""Dask Gateway and GPU settings of the BinderHub layer: bad values refused with their key and a reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.config.hub import check_hub_stack
from jetstream_binderhub.config.stackfile import HUB_PROJECT

LABELS = {
    "default-worker": "default-worker",
    "user-m3.large": "user-m3-large",
    "dask-m3.large": "dask-m3-large",
    "gpu-g3.large": "gpu-g3-large",
}


@pytest.fixture
def hub(repo_root: Path) -> dict[str, Any]:
    doc = yaml.safe_load((repo_root / "binderhub" / "Pulumi.jetstream2.yaml").read_text())
    prefix = f"{HUB_PROJECT}:"
    return copy.deepcopy({k.removeprefix(prefix): v for k, v in doc["config"].items()})


def problems(raw: dict[str, Any]) -> list[str]:
    _, found = check_hub_stack(raw, node_groups=LABELS)
    return [str(p) for p in found]


def test_dask_gateway_is_off_unless_asked(hub: dict[str, Any]) -> None:
    hub.pop("dask_gateway", None)
    cfg, found = check_hub_stack(hub, node_groups=LABELS)
    assert not found and cfg is not None
    assert cfg.dask_gateway.enabled is False
    assert cfg.gpu is None


def test_defaults_give_a_workshop_sized_cluster(hub: dict[str, Any]) -> None:
    hub["dask_gateway"] = {"enabled": True}
    cfg, found = check_hub_stack(hub, node_groups=LABELS)
    assert not found and cfg is not None
    dask = cfg.dask_gateway
    assert dask.chart_version == "2026.3.0"
    # 8 cores and 32G less the scheduler's 0.5 core and 2G: seven 1-core, 3.5G workers.
    assert dask.max_workers == 7
    assert dask.limits.clusters_per_user == 1


@pytest.mark.parametrize(
    ("dask", "key", "why"),
    [
        (
            {"enabled": True, "limits": {"cores_per_cluster": 1}},
            "dask_gateway",
            "no cluster could have a worker",
        ),
        (
            {"enabled": True, "worker_memory": "16G", "limits": {"memory_per_cluster": "16G"}},
            "dask_gateway",
            "no cluster could have a worker",
        ),
        (
            {"enabled": True, "limits": {"idle_timeout_minutes": 600, "max_lifetime_hours": 2}},
            "dask_gateway.limits",
            "the lifetime would always stop a cluster first",
        ),
        ({"enabled": True, "worker_memory": "lots"}, "dask_gateway.worker_memory", "byte quantity"),
        ({"enabled": True, "limits": {"clusters_per_user": 0}}, "dask_gateway.limits.clusters_per_user", ""),
        ({"enabled": True, "chart_version": "2026.3"}, "dask_gateway.chart_version", ""),
        ({"enabled": True, "workers": 3}, "dask_gateway.workers", "unknown key"),
        (
            {"enabled": True, "worker_node_group": "dask-m3-large"},
            "dask_gateway.worker_node_group",
            "label value of group 'dask-m3.large'",
        ),
    ],
)
def test_bad_dask_settings_are_refused_with_a_reason(
    hub: dict[str, Any], dask: dict[str, Any], key: str, why: str
) -> None:
    hub["dask_gateway"] = dask
    found = problems(hub)
    assert any(line.startswith(f"{key}:") and why in line for line in found), found


def test_an_unknown_worker_group_is_ignored_while_the_gateway_is_off(hub: dict[str, Any]) -> None:
    hub["dask_gateway"] = {"enabled": False, "worker_node_group": "nowhere"}
    assert problems(hub) == []


def test_gpu_group_must_be_its_own(hub: dict[str, Any]) -> None:
    hub["gpu"] = {"node_group": "user-m3.large", "repositories": ["https://github.com/projectpythia/"]}
    found = problems(hub)
    assert any(
        line.startswith("gpu.node_group:") and "placement.user_node_group" in line and "GPU rates" in line
        for line in found
    ), found


def test_gpu_group_shared_with_dask_workers_is_refused(hub: dict[str, Any]) -> None:
    hub["dask_gateway"] = {"enabled": True, "worker_node_group": "gpu-g3.large"}
    hub["gpu"] = {"node_group": "gpu-g3.large", "repositories": ["https://github.com/projectpythia/"]}
    assert any("Dask workers" in line for line in problems(hub))


@pytest.mark.parametrize(
    ("gpu", "key", "why"),
    [
        ({"node_group": "g3", "repositories": ["x"]}, "gpu.node_group", "unknown node group 'g3'"),
        ({"node_group": "gpu-g3.large", "repositories": []}, "gpu.repositories", ""),
        ({"node_group": "gpu-g3.large", "repositories": ["("]}, "gpu.repositories", "not a valid regular"),
        ({"repositories": ["x"]}, "gpu.node_group", "required"),
    ],
)
def test_bad_gpu_settings_are_refused(hub: dict[str, Any], gpu: dict[str, Any], key: str, why: str) -> None:
    hub["gpu"] = gpu
    found = problems(hub)
    assert any(line.startswith(f"{key}:") and why in line for line in found), found


def test_a_gpu_group_of_its_own_is_accepted(hub: dict[str, Any]) -> None:
    hub["gpu"] = {"node_group": "gpu-g3.large", "repositories": [r"https://github\.com/projectpythia/gpu-"]}
    cfg, found = check_hub_stack(hub, node_groups=LABELS)
    assert not found and cfg is not None and cfg.gpu is not None
    assert cfg.gpu.gpus_per_server == 1
