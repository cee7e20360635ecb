"""The cluster layer's resource graph under Pulumi's mocks (preview=False): what `pulumi up` would create."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from jetstream_binderhub.plan.model import LayerPlan

PlanCluster = Callable[[dict[str, Any]], LayerPlan]

TEMPLATE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"
CLUSTER = "openstack:containerinfra/cluster:Cluster"
NODE_GROUP = "openstack:containerinfra/nodeGroup:NodeGroup"

# Inputs that pulumi-openstack marks ForceNew on a Cluster (terraform-provider-openstack v3.4.0):
# a change to any of them destroys the cluster and every user's hub with it.
CLUSTER_FORCE_NEW = {
    "name",
    "labels",
    "master_count",
    "master_flavor",
    "flavor",
    "keypair",
    "fixed_network",
    "fixed_subnet",
    "floating_ip_enabled",
    "master_lb_enabled",
    "docker_volume_size",
    "create_timeout",
    "region",
    "discovery_url",
}


def with_groups(cfg: dict[str, Any], *groups: dict[str, Any]) -> dict[str, Any]:
    cfg["cluster"]["node_groups"] = list(groups)
    return cfg


def test_shipped_site_graph(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    layer = plan_cluster(cluster_config)
    types = [(r.type, r.name) for r in layer.resources]
    assert types == [
        ("jetstream-binderhub:infra:MagnumCluster", "pythia-binder"),
        (TEMPLATE, "pythia-binder-template"),
        (CLUSTER, "pythia-binder-cluster"),
        (NODE_GROUP, "pythia-binder-nodegroup-user-m3.large"),
    ]
    assert {r.parent for r in layer.resources[1:]} == {"pythia-binder"}


def test_template_inputs(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    template = plan_cluster(cluster_config).resource(TEMPLATE)
    inputs = template.inputs
    assert inputs["coe"] == "kubernetes"
    assert inputs["network_driver"] == "calico"
    # The driver builds an API load balancer anyway; Magnum needs the flag for 3 control-plane servers.
    assert inputs["master_lb_enabled"] is True
    assert not {"floating_ip_enabled", "docker_volume_size"} & set(inputs), "the driver ignores them"
    assert inputs["external_network_id"] == "public"
    assert inputs["fixed_network"] == "auto_allocated_network"
    assert inputs["image"] == "ubuntu-jammy-kube-v1.33.2-250626-0848"
    assert inputs["flavor"] == "m3.quad"
    assert inputs["master_flavor"] == "m3.small"
    labels = inputs["labels"]
    assert labels["auto_scaling_enabled"] == "true"
    assert labels["capi_helm_chart_version"] == "0.16.0"
    assert labels["kube_dashboard_enabled"] == "false"
    assert labels["monitoring_enabled"] == "false"
    # Frozen into the cluster at creation, these would override default-worker's own range for good.
    assert not {"min_node_count", "max_node_count"} & set(labels)
    assert "kube_tag" not in labels, "the driver reads the image's kube_version; the name carries it"
    assert inputs["name"].startswith("pythia-binder-v1.33.2-capi-0.16.0-")
    # Magnum refuses edits to a template in use: every change must be a create-before-delete replacement.
    assert template.options["replace_on_changes"] == ["*"]
    assert "delete_before_replace" not in template.options


def test_cluster_inputs_and_options(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    cluster = plan_cluster(cluster_config).resource(CLUSTER)
    assert cluster.inputs["name"] == "pythia-binder"
    template_name = plan_cluster(cluster_config).resource(TEMPLATE).inputs["name"]
    assert cluster.inputs["cluster_template_id"] == f"<pythia-binder-template.id of {template_name}>"
    assert cluster.inputs["master_count"] == 1
    assert cluster.inputs["node_count"] == 1
    assert "labels" not in cluster.inputs, "cluster labels are ForceNew; they must come from the template"
    # Ignored by the driver, ForceNew in the provider: not sent, and never diffed away from old state.
    ignored = ["create_timeout", "floating_ip_enabled", "master_lb_enabled", "docker_volume_size"]
    assert not set(ignored) & set(cluster.inputs)
    assert cluster.options["protect"] is True
    assert cluster.options["custom_timeouts"]["create"] == "60m", "the wait is Pulumi's alone"
    assert cluster.options["ignore_changes"] == ignored, "a fixed-size default-worker is Pulumi's to size"


def test_protect_can_be_turned_off(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    cluster_config["cluster"]["protect"] = False
    layer = plan_cluster(cluster_config)
    assert "protect" not in layer.resource(CLUSTER).options
    assert "protect" not in layer.resource(NODE_GROUP).options


def test_node_groups_are_protected_and_allow_replace_lifts_only_the_named_one(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from jetstream_binderhub.naming import ALLOW_REPLACE_ENV

    with_groups(
        cluster_config,
        {"name": "user-m3.large", "flavor": "m3.large", "min_count": 1, "max_count": 2},
        {"name": "gpu", "flavor": "g3.large", "min_count": 1, "max_count": 1},
    )
    groups = {r.name: r for r in plan_cluster(cluster_config).resources if r.type == NODE_GROUP}
    assert {name: r.options.get("protect") for name, r in groups.items()} == {
        "pythia-binder-nodegroup-user-m3.large": True,
        "pythia-binder-nodegroup-gpu": True,
    }

    # What `up --allow-replace` hands a local program (a URN counts by its logical name).
    monkeypatch.setenv(
        ALLOW_REPLACE_ENV,
        f"urn:pulumi:jetstream2::jetstream-binderhub::{NODE_GROUP}::pythia-binder-nodegroup-gpu",
    )
    layer = plan_cluster(cluster_config)
    groups = {r.name: r for r in layer.resources if r.type == NODE_GROUP}
    assert "protect" not in groups["pythia-binder-nodegroup-gpu"].options
    assert groups["pythia-binder-nodegroup-user-m3.large"].options["protect"] is True
    assert layer.resource(CLUSTER).options["protect"] is True


def test_autoscaled_default_worker_is_left_to_the_autoscaler(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["default_worker"] = {"flavor": "m3.quad", "min_count": 1, "max_count": 3}
    layer = plan_cluster(cluster_config)
    assert layer.resource(CLUSTER).options["ignore_changes"][-1] == "node_count"
    assert "max_node_count" not in layer.resource(TEMPLATE).inputs["labels"]


def test_node_groups_are_created_one_after_another(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    cfg = with_groups(
        cluster_config,
        {"name": "user-a", "flavor": "m3.large", "min_count": 1, "max_count": 5},
        {"name": "user-b", "flavor": "m3.xl"},
        {"name": "gpu.a100", "flavor": "g3.large", "max_count": 2},
    )
    layer = plan_cluster(cfg)
    groups = [r for r in layer.resources if r.type == NODE_GROUP]
    assert [g.inputs["name"] for g in groups] == ["user-a", "user-b", "gpu.a100"]
    assert [g.options["depends_on"] for g in groups] == [
        ["pythia-binder-cluster"],
        ["pythia-binder-nodegroup-user-a"],
        ["pythia-binder-nodegroup-user-b"],
    ]
    # Nothing else is serialised: the template and cluster wait on nobody by option.
    assert "depends_on" not in layer.resource(TEMPLATE).options
    assert "depends_on" not in layer.resource(CLUSTER).options


def test_node_group_inputs_and_drift(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    cfg = with_groups(
        cluster_config,
        {
            "name": "auto",
            "flavor": "m3.large",
            "min_count": 2,
            "max_count": 5,
            "count": 3,
            "labels": {"x": "y"},
        },
        {"name": "fixed", "flavor": "m3.xl", "min_count": 2},
    )
    layer = plan_cluster(cfg)
    auto = layer.resource(NODE_GROUP, "pythia-binder-nodegroup-auto")
    fixed = layer.resource(NODE_GROUP, "pythia-binder-nodegroup-fixed")
    assert (auto.inputs["min_node_count"], auto.inputs["node_count"], auto.inputs["max_node_count"]) == (
        2,
        3,
        5,
    )
    assert auto.inputs["flavor_id"] == "m3.large"
    assert auto.inputs["labels"] == {"x": "y"}
    assert auto.inputs["cluster_id"] == "<pythia-binder-cluster.id>"
    assert "image_id" not in auto.inputs, (
        "the driver renders the template's image for every group; pinning it replaces groups on upgrade"
    )
    # image_id is never set, so ignoring it would guard nothing; docker_volume_size left the program.
    assert auto.options["ignore_changes"] == ["docker_volume_size", "node_count"]
    assert fixed.options["ignore_changes"] == ["docker_volume_size"]
    assert (fixed.inputs["min_node_count"], fixed.inputs["node_count"], fixed.inputs["max_node_count"]) == (
        2,
        2,
        2,
    )


def test_outputs_and_secrets(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    layer = plan_cluster(cluster_config)
    assert layer.output("kubeconfig").secret is True
    assert layer.output("kubeconfig").value == "[secret]"
    assert layer.output("api_address").value == "<pythia-binder-cluster.api_address>"
    assert layer.output("cluster_name").value == "pythia-binder"
    template_name = layer.resource(TEMPLATE).inputs["name"]
    assert layer.output("template_id").value == f"<pythia-binder-template.id of {template_name}>"
    assert layer.output("node_group_labels").value == {
        "default-worker": "default-worker",
        "user-m3.large": "user-m3-large",
    }
    assert not any(o.secret for o in layer.outputs if o.name != "kubeconfig")


def test_two_plans_are_identical(plan_cluster: PlanCluster, cluster_config: dict[str, Any]) -> None:
    assert plan_cluster(cluster_config) == plan_cluster(cluster_config)


@pytest.mark.parametrize(
    "change",
    [
        {"image": "ubuntu-noble-kube-v1.34.1-260301-1200"},
        {"extra_labels": {"boot_volume_type": "ceph"}},
        {"boot_volume_size_gb": 40},
    ],
)
def test_template_change_is_an_in_place_cluster_upgrade(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any], change: dict[str, Any]
) -> None:
    before = plan_cluster(cluster_config)
    cluster_config["cluster"].update(change)
    after = plan_cluster(cluster_config)

    old_t, new_t = before.resource(TEMPLATE), after.resource(TEMPLATE)
    assert old_t.inputs["name"] != new_t.inputs["name"], "a changed template needs a new name to coexist"
    assert old_t.name == new_t.name, "same logical resource, so Pulumi replaces it create-before-delete"

    old_c, new_c = before.resource(CLUSTER), after.resource(CLUSTER)
    force_new_before = {k: v for k, v in old_c.inputs.items() if k in CLUSTER_FORCE_NEW}
    force_new_after = {k: v for k, v in new_c.inputs.items() if k in CLUSTER_FORCE_NEW}
    assert force_new_before == force_new_after, "nothing that would replace the cluster may change"
    # The cluster follows the new template's id, which the provider applies as a Magnum upgrade in place.
    assert old_c.inputs["cluster_template_id"] == f"<pythia-binder-template.id of {old_t.inputs['name']}>"
    assert new_c.inputs["cluster_template_id"] == f"<pythia-binder-template.id of {new_t.inputs['name']}>"


def test_kube_upgrade_changes_template_name(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["image"] = "ubuntu-noble-kube-v1.34.1-260301-1200"
    template = plan_cluster(cluster_config).resource(TEMPLATE)
    # One setting: the version in the name is the image's, so the two cannot disagree.
    assert template.inputs["name"].startswith("pythia-binder-v1.34.1-capi-0.16.0-")
    assert template.inputs["image"] == "ubuntu-noble-kube-v1.34.1-260301-1200"


def test_an_image_without_a_version_in_its_name_still_plans(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["image"] = "site-built-k8s-image"
    template = plan_cluster(cluster_config).resource(TEMPLATE)
    assert template.inputs["name"].startswith("pythia-binder-capi-0.16.0-")


def test_three_control_plane_servers_pass_magnums_load_balancer_check(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    """Magnum refuses master_count > 1 unless master_lb_enabled (attr_validator.validate_master_count),
    taking the cluster's own value or else the template's: the cluster sends none, the template true."""
    cluster_config["cluster"]["control_plane"]["count"] = 3
    layer = plan_cluster(cluster_config)
    cluster = layer.resource(CLUSTER)
    assert cluster.inputs["master_count"] == 3
    assert "master_lb_enabled" not in cluster.inputs
    assert layer.resource(TEMPLATE).inputs["master_lb_enabled"] is True


def test_a_cluster_made_by_the_earlier_program_is_not_replaced(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    """The earlier program sent create_timeout, floating_ip_enabled, master_lb_enabled and
    docker_volume_size (all ForceNew); dropping them must not plan a new cluster or node group."""
    from jetstream_binderhub.plan.compare import diff_resource

    layer = plan_cluster(cluster_config)
    cluster = layer.resource(CLUSTER)
    old = cluster.model_copy(
        update={
            "inputs": {
                **cluster.inputs,
                "create_timeout": 60,
                "floating_ip_enabled": False,
                "master_lb_enabled": False,
                "docker_volume_size": 50,
            }
        }
    )
    assert diff_resource("jetstream2", "p", "cluster", old, cluster) is None
    group = layer.resource(NODE_GROUP)
    old_group = group.model_copy(update={"inputs": {**group.inputs, "docker_volume_size": 50}})
    assert diff_resource("jetstream2", "p", "cluster", old_group, group) is None


def test_existing_template_is_referenced_not_managed(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    cluster_config["cluster"]["existing_template_id"] = "kubernetes-1-33-jammy"
    layer = plan_cluster(cluster_config)
    assert not [r for r in layer.resources if r.type == TEMPLATE]
    assert layer.resource(CLUSTER).inputs["cluster_template_id"] == "kubernetes-1-33-jammy"


def test_bad_config_stops_the_program_with_the_key(plan_cluster: PlanCluster) -> None:
    with pytest.raises(Exception, match=r"cluster\.control_plane\.count: must be odd"):
        plan_cluster({"cluster": {"name": "x", "control_plane": {"count": 2}}})


def test_program_refuses_plaintext_provider_credentials() -> None:
    """Under `pulumi up` the stack file is read by the engine, not by us: the program checks too."""
    from jetstream_binderhub.infra.program import cluster_program
    from jetstream_binderhub.plan.runner import run_layer

    config = {
        "jetstream-binderhub:cluster": '{"name": "x"}',
        "openstack:applicationCredentialSecret": "plain",
    }
    with pytest.raises(
        Exception, match="openstack:applicationCredentialSecret: is a credential stored in plain"
    ):
        run_layer(cluster_program, layer="cluster", project="jetstream-binderhub", stack="s", config=config)
    layer, _ = run_layer(
        cluster_program,
        layer="cluster",
        project="jetstream-binderhub",
        stack="s",
        config=config,
        secret_keys=["openstack:applicationCredentialSecret"],
    )
    assert layer.resource(CLUSTER).inputs["name"] == "x"


def test_default_worker_range_lives_on_the_group_not_in_the_template(
    plan_cluster: PlanCluster, cluster_config: dict[str, Any]
) -> None:
    """No template labels carry the range, so changing it touches no template (nothing to freeze); the
    program cannot set the group's own range and says how, in the plan and as a preview warning."""
    from jetstream_binderhub.config.cluster import cluster_notes
    from jetstream_binderhub.config.load import parse_cluster_stack

    before = plan_cluster(cluster_config)
    cluster_config["cluster"]["default_worker"] = {"flavor": "m3.quad", "min_count": 1, "max_count": 3}
    after = plan_cluster(cluster_config)

    assert before.resource(TEMPLATE).inputs == after.resource(TEMPLATE).inputs
    (note,) = cluster_notes(parse_cluster_stack(cluster_config).cluster)
    assert (
        "`openstack coe nodegroup update pythia-binder default-worker replace min_node_count=1 "
        "max_node_count=3`" in note
    )
