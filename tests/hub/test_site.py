"""The shipped site end to end: `jetstream-binderhub plan jetstream2` plans both layers, and the BinderHub
layer is checked against the cluster layer's config before anything runs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from jetstream_binderhub.cli import app
from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.config.stackfile import HUB_PROJECT
from jetstream_binderhub.errors import ConfigError

from .conftest import PlanHub


def test_shipped_site_core_on_m3_quad_users_on_autoscaled_m3_large(
    cluster_config: dict[str, Any], hub_config: dict[str, Any]
) -> None:
    cluster = parse_cluster_stack(cluster_config).cluster
    assert hub_config["placement"] == {
        "core_node_group": "default-worker",
        "user_node_group": "user-m3.large",
    }
    assert cluster.default_worker.flavor == "m3.quad"
    (users,) = [g for g in cluster.node_groups if g.name == "user-m3.large"]
    assert (users.flavor, users.min_count, users.upper, users.autoscaled) == ("m3.large", 1, 10, True)
    assert cluster.label_values()["user-m3.large"] == "user-m3-large"


def test_plan_shows_both_layers_with_secrets_masked(repo_root: Path) -> None:
    runner = CliRunner()
    text = runner.invoke(app, ["plan", "jetstream2", "-C", str(repo_root)])
    assert text.exit_code == 0, text.output
    out = text.output
    assert (
        "Layer cluster" in out and "Layer binderhub: project jetstream-binderhub-hub, stack jetstream2" in out
    )
    assert "kubernetes:helm.sh/v3:Release  binderhub-release" in out
    assert "values.service.spec.loadBalancerIP = <ingress-floating-ip.address>" in out
    assert "string_data = [secret]" in out
    assert "pulumi -C binderhub config set --secret registry_password -s jetstream2" in out

    data = json.loads(runner.invoke(app, ["plan", "jetstream2", "--json", "-C", str(repo_root)]).output)
    hub = next(layer for layer in data["layers"] if layer["layer"] == "binderhub")
    by_name = {r["name"]: r for r in hub["resources"]}
    values = by_name["binderhub-release"]["inputs"]["values"]
    # Answered from the cluster layer's planned outputs through the stack reference.
    assert values["jupyterhub"]["singleuser"]["nodeSelector"] == {
        "capi.stackhpc.com/node-group": "user-m3-large"
    }
    assert by_name["cluster-k8s"]["inputs"]["kubeconfig"] == "[secret]"
    outputs = {o["name"]: o["value"] for o in hub["outputs"]}
    assert outputs["binderhub_url"] == "https://binder.see240014.projects.jetstream-cloud.org"


def test_users_that_cannot_fit_on_a_user_node_are_refused(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    hub_config["binderhub"]["jupyterhub"]["user_resources"] = {
        "cpu_guarantee": 20,
        "cpu_limit": 24,
        "memory_guarantee": "64Gi",
        "memory_limit": "64Gi",
    }
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config)
    assert err.value.lines() == [
        "binderhub.jupyterhub.user_resources.cpu_guarantee: 20 cores never fit on a m3.large node (16 vCPUs, "
        "60 GB) of group 'user-m3.large': no server could start",
        "binderhub.jupyterhub.user_resources.memory_guarantee: 64Gi never fits on a m3.large node (16 vCPUs, "
        "60 GB) of group 'user-m3.large': no server could start",
    ]


def test_cluster_keys_in_the_hub_file_are_refused(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config, plain={"jetstream-binderhub:cluster": {"name": "x"}})
    assert err.value.lines() == [
        "jetstream-binderhub:cluster: is a cluster layer key; it belongs in Pulumi.jetstream2.yaml at the "
        "repository root"
    ]


def test_placement_is_checked_against_the_clusters_groups(
    plan_hub: PlanHub, hub_config: dict[str, Any], cluster_config: dict[str, Any]
) -> None:
    # The same hub config is wrong for a cluster without that group: caught before anything runs.
    cluster_config["cluster"]["node_groups"] = []
    with pytest.raises(ConfigError) as err:
        plan_hub(hub_config, cluster=cluster_config)
    assert err.value.lines() == [
        "placement.user_node_group: unknown node group 'user-m3.large' (the cluster has: default-worker)"
    ]


def test_bad_hub_config_exits_2_before_anything_is_planned(
    site_dir: Callable[..., Path], hub_config: dict[str, Any]
) -> None:
    root = site_dir()
    hub_config["binderhub"]["host"] = "binder.see240014.projects.jetstream-cloud.org."
    hub_config["binderhub"]["registry"]["image_prefix"] = "quay.io/binder-"
    hub_config["binderhub"]["limits"]["total_quota"] = -1
    hub_config["tls"]["acme_email"] = "not-an-email"
    hub_config["placement"]["user_node_group"] = "user-m3.xlarge"
    (root / "binderhub").mkdir(exist_ok=True)
    (root / "binderhub" / "Pulumi.jetstream2.yaml").write_text(
        yaml.safe_dump({"config": {f"{HUB_PROJECT}:{k}": v for k, v in hub_config.items()}})
    )
    result = CliRunner().invoke(app, ["plan", "jetstream2", "-C", str(root)])
    assert result.exit_code == 2, result.output
    assert "binderhub.host: write the host without the trailing dot" in result.output
    assert "tls.acme_email: value is not a valid email address" in result.output
    assert "binderhub.limits.total_quota: Input should be greater than or equal to 0" in result.output
    assert "Traceback" not in result.output
    assert "Layer cluster" not in result.output, "nothing is planned when any layer's config is wrong"
    # Once the model is valid, the checks against the cluster and the registry run too.
    hub_config["binderhub"]["host"] = "binder.see240014.projects.jetstream-cloud.org"
    hub_config["binderhub"]["limits"]["total_quota"] = 100
    hub_config["tls"]["acme_email"] = "projectpythia@ucar.edu"
    (root / "binderhub" / "Pulumi.jetstream2.yaml").write_text(
        yaml.safe_dump({"config": {f"{HUB_PROJECT}:{k}": v for k, v in hub_config.items()}})
    )
    result = CliRunner().invoke(app, ["plan", "jetstream2", "-C", str(root)])
    assert result.exit_code == 2, result.output
    assert "binderhub.registry.image_prefix: 'quay.io/binder-' has no project level" in result.output
    assert "placement.user_node_group: unknown node group 'user-m3.xlarge'" in result.output
