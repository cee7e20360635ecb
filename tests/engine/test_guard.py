from __future__ import annotations

import json
from pathlib import Path

import pytest

from jetstream_binderhub.engine.changes import (
    ChangeOp,
    LayerChanges,
    ResourceChange,
    changes_from_events,
    read_event_log,
)
from jetstream_binderhub.engine.guard import (
    CLUSTER_TYPE,
    NODE_GROUP_TYPE,
    TEMPLATE_TYPE,
    GuardRefused,
    check,
    find_dangerous,
)
from jetstream_binderhub.errors import JetstreamBinderHubError

EVENTS = Path(__file__).parent / "events"
CLUSTER_URN = (
    "urn:pulumi:pythia::jetstream-binderhub::jetstream-binderhub:infra:MagnumCluster"
    "$openstack:containerinfra/cluster:Cluster::pythia-cluster"
)


def layer(fixture: str) -> LayerChanges:
    return read_event_log(EVENTS / fixture, layer="cluster")


def test_cluster_replacement_is_refused_naming_resource_property_and_the_way_out() -> None:
    # The template's create-first replacement in the same preview is safe and not reported.
    dangers = find_dangerous([layer("cluster_replace.jsonl")], set(), allow_upgrade=True)

    assert [(d.name, d.op) for d in dangers] == [("pythia-cluster", ChangeOp.REPLACE)]
    danger = dangers[0]
    assert danger.urn == CLUSTER_URN
    assert danger.causes == ("masterFlavor",)
    assert "\n" not in danger.message
    assert (
        "Magnum cluster pythia-cluster would be REPLACED because masterFlavor forces a new cluster"
        in danger.message
    )
    assert "Revert cluster.control_plane.flavor, or pass --allow-replace pythia-cluster" in danger.message
    assert "losing every user's hub is intended" in danger.message


@pytest.mark.parametrize("allowed", ["pythia-cluster", CLUSTER_URN])
def test_allow_replace_by_logical_name_or_urn_lets_it_through(allowed: str) -> None:
    assert find_dangerous([layer("cluster_replace.jsonl")], {allowed}, allow_upgrade=True) == []


def test_allowing_one_resource_does_not_allow_another() -> None:
    dangers = find_dangerous(
        [layer("cluster_replace.jsonl")], {"pythia-template", "pythia-nodegroup-user"}, allow_upgrade=True
    )

    assert [d.name for d in dangers] == ["pythia-cluster"]


def test_template_created_before_the_old_one_is_deleted_is_safe_once_the_upgrade_is_allowed() -> None:
    template_only = layer("template_create_first.jsonl")
    assert template_only.counts[ChangeOp.REPLACE] == 1

    assert find_dangerous([template_only], set(), allow_upgrade=True) == []


def test_a_new_image_is_an_upgrade_that_rolls_every_group_and_needs_allow_upgrade() -> None:
    (danger,) = find_dangerous([layer("template_create_first.jsonl")], set())

    assert danger.name == "cluster:upgrade"
    assert "image ubuntu-jammy-kube-v1.33.2-250626-0848 → ubuntu-jammy-kube-v1.34.1-250626-0848" in (
        danger.message
    )
    assert "EVERY node group" in danger.message and "Drain launches first" in danger.message
    assert danger.message.endswith("then pass --allow-upgrade.")
    # --allow-replace does not stand in for it: the two are different decisions.
    assert find_dangerous([layer("template_create_first.jsonl")], {"cluster:upgrade", "pythia-template"})


def _template_change(*keys: str, op: ChangeOp = ChangeOp.REPLACE) -> ResourceChange:
    return ResourceChange(
        layer="cluster",
        urn="urn:pulumi:s::p::" + TEMPLATE_TYPE + "::pythia-template",
        op=op,
        changed_keys=list(keys),
        replace_causes=list(keys) if op is ChangeOp.REPLACE else [],
        delete_before_replace=False if op is ChangeOp.REPLACE else None,
    )


def _cluster_moves() -> ResourceChange:
    return ResourceChange(
        layer="cluster",
        urn="urn:pulumi:s::p::" + CLUSTER_TYPE + "::pythia-cluster",
        op=ChangeOp.UPDATE,
        changed_keys=["cluster_template_id"],
    )


def test_a_new_chart_version_is_an_upgrade_but_other_template_labels_are_not() -> None:
    chart = LayerChanges(
        layer="cluster",
        changes=[_template_change("labels.capi_helm_chart_version", "name"), _cluster_moves()],
    )
    labels = LayerChanges(
        layer="cluster", changes=[_template_change("labels.boot_volume_type", "name"), _cluster_moves()]
    )

    assert [d.name for d in find_dangerous([chart])] == ["cluster:upgrade"]
    assert "labels.capi_helm_chart_version" in find_dangerous([chart])[0].message
    assert find_dangerous([labels]) == []


def test_moving_to_another_existing_template_is_an_upgrade() -> None:
    moved = LayerChanges(layer="cluster", changes=[_cluster_moves()])

    (danger,) = find_dangerous([moved])
    assert "the cluster moves to another template" in danger.message
    assert find_dangerous([moved], allow_upgrade=True) == []


def test_template_deleted_before_its_replacement_is_refused() -> None:
    dangers = find_dangerous([layer("template_delete_first.jsonl")], set(), allow_upgrade=True)

    assert [(d.name, d.op) for d in dangers] == [("pythia-template", ChangeOp.REPLACE)]
    assert "deleted BEFORE its replacement exists" in dangers[0].message
    assert "image, labels.kube_tag, name" in dangers[0].message
    assert "--allow-replace pythia-template" in dangers[0].message


def test_template_replacement_of_unknown_order_is_refused() -> None:
    events = [
        json.loads(line)
        for line in (EVENTS / "template_create_first.jsonl").read_text().splitlines()
        if '"op":"create-replacement"' not in line and '"op":"delete-replaced"' not in line
    ]

    dangers = find_dangerous([changes_from_events("cluster", events)], set(), allow_upgrade=True)

    assert [d.name for d in dangers] == ["pythia-template"]
    assert "do not show whether the new template is created before" in dangers[0].message


def test_template_delete_is_refused_unless_allowed() -> None:
    dangers = find_dangerous([layer("template_delete.jsonl")], set(), allow_upgrade=True)

    assert [(d.name, d.op) for d in dangers] == [("pythia-template", ChangeOp.DELETE)]
    assert "cluster template pythia-template would be DELETED" in dangers[0].message
    assert "cluster.existing_template_id" in dangers[0].message
    assert find_dangerous([layer("template_delete.jsonl")], {"pythia-template"}, allow_upgrade=True) == []


def test_node_group_replacement_names_the_property_the_config_key_and_the_way_round() -> None:
    dangers = find_dangerous([layer("nodegroup_flavor.jsonl")], set(), allow_upgrade=True)

    assert [d.name for d in dangers] == ["pythia-nodegroup-user"]
    message = dangers[0].message
    assert "node group pythia-nodegroup-user would be REPLACED because flavorId forces a new group" in message
    assert "Revert cluster.node_groups[user].flavor" in message
    assert "flavor, labels, role and name" in message
    # The driver ignores --nodegroup on upgrade (it moves every group), so that is no way round.
    assert "--nodegroup" not in message
    assert "add a new group beside user" in message
    assert "--allow-replace pythia-nodegroup-user" in message


def test_node_group_and_cluster_deletes_are_refused_but_updates_never_are() -> None:
    deleted = [
        ResourceChange(layer="cluster", urn=CLUSTER_URN, op=ChangeOp.DELETE),
        ResourceChange(
            layer="cluster",
            urn="urn:pulumi:s::p::" + NODE_GROUP_TYPE + "::pythia-nodegroup-gpu",
            op=ChangeOp.DELETE,
        ),
        ResourceChange(
            layer="cluster",
            urn="urn:pulumi:s::p::" + NODE_GROUP_TYPE + "::pythia-nodegroup-user",
            op=ChangeOp.UPDATE,
            changed_keys=["flavorId"],
        ),
    ]

    dangers = find_dangerous([LayerChanges(layer="cluster", changes=deleted)], set())

    assert [(d.name, d.op) for d in dangers] == [
        ("pythia-cluster", ChangeOp.DELETE),
        ("pythia-nodegroup-gpu", ChangeOp.DELETE),
    ]
    assert "every user's hub" in dangers[0].message
    assert "group gpu" in dangers[1].message


def test_offline_plan_property_names_map_to_the_same_config_keys() -> None:
    # A diff of two offline plans names properties as the Python SDK does (snake_case).
    change = ResourceChange(
        layer="cluster",
        urn="urn:pulumi:s::p::" + CLUSTER_TYPE + "::pythia-cluster",
        op=ChangeOp.REPLACE,
        replace_causes=["master_count"],
    )

    (danger,) = find_dangerous([LayerChanges(layer="cluster", changes=[change])], set())

    assert "Revert cluster.control_plane.count" in danger.message


def test_a_replaced_kubernetes_provider_is_refused_but_a_deleted_config_map_is_not() -> None:
    hub = read_event_log(EVENTS / "hub_update.jsonl", layer="binderhub")
    assert hub.counts[ChangeOp.REPLACE] == 1 and hub.counts[ChangeOp.DELETE] == 1

    (danger,) = find_dangerous([hub], set())

    assert (danger.name, danger.op, danger.type) == ("k8s", ChangeOp.REPLACE, "pulumi:providers:kubernetes")
    assert "binderhub: Kubernetes provider k8s would be REPLACED" in danger.message
    assert "every Kubernetes resource of the layer" in danger.message
    assert "--allow-replace k8s" in danger.message
    assert find_dangerous([hub], {"k8s"}) == [], "the ConfigMap's delete is not the guard's business"


def _hub_change(type_: str, name: str, op: ChangeOp, causes: list[str] | None = None) -> ResourceChange:
    return ResourceChange(
        layer="binderhub",
        urn=f"urn:pulumi:s::jetstream-binderhub-hub::{type_}::{name}",
        op=op,
        replace_causes=causes or [],
    )


@pytest.mark.parametrize(
    ("type_", "name", "noun", "why"),
    [
        (
            "kubernetes:core/v1:Namespace",
            "binderhub-namespace",
            "Kubernetes namespace",
            "every running session",
        ),
        ("kubernetes:helm.sh/v3:Release", "binderhub-release", "Helm release", "Helm uninstalls it"),
        (
            "openstack:networking/floatingIp:FloatingIp",
            "ingress-floating-ip",
            "floating IP",
            "public address",
        ),
        ("openstack:dns/recordSet:RecordSet", "dns-binderhub", "DNS record", "stops resolving"),
    ],
)
@pytest.mark.parametrize("op", [ChangeOp.REPLACE, ChangeOp.DELETE])
def test_the_hubs_namespaces_releases_floating_ip_and_dns_records_are_guarded(
    type_: str, name: str, noun: str, why: str, op: ChangeOp
) -> None:
    change = _hub_change(type_, name, op, ["metadata.name"] if op is ChangeOp.REPLACE else None)
    layer_changes = LayerChanges(layer="binderhub", changes=[change])

    (danger,) = find_dangerous([layer_changes], set())

    verb = "REPLACED because metadata.name forces a new one" if op is ChangeOp.REPLACE else "DELETED"
    assert f"binderhub: {noun} {name} would be {verb}" in danger.message
    assert why in danger.message
    assert f"--allow-replace {name}" in danger.message
    assert "\n" not in danger.message
    assert find_dangerous([layer_changes], {name}) == []
    assert find_dangerous([layer_changes], {change.urn}) == []


def test_updates_and_creates_in_the_hub_layer_pass() -> None:
    changes = [
        _hub_change("kubernetes:helm.sh/v3:Release", "binderhub-release", ChangeOp.UPDATE),
        _hub_change("openstack:dns/recordSet:RecordSet", "dns-binderhub", ChangeOp.CREATE),
        _hub_change("kubernetes:core/v1:Secret", "binderhub-registry-push", ChangeOp.REPLACE),
    ]
    assert find_dangerous([LayerChanges(layer="binderhub", changes=changes)], set()) == []


def test_lost_events_are_refused_because_the_missing_step_could_be_the_cluster() -> None:
    incomplete = LayerChanges(layer="cluster", missing={"replace": 1})

    (danger,) = find_dangerous([incomplete], set())

    assert danger.name == "cluster:incomplete"
    assert "never arrived as events" in danger.message
    assert find_dangerous([incomplete], {"cluster:incomplete"}) == []
    assert find_dangerous([LayerChanges(layer="cluster", missing={"create": 2})], set()) == []


def test_check_raises_guard_refused_with_exit_code_3_carrying_the_dangers() -> None:
    with pytest.raises(GuardRefused) as raised:
        check([layer("cluster_replace.jsonl"), layer("nodegroup_flavor.jsonl")], set(), allow_upgrade=True)

    error = raised.value
    assert isinstance(error, JetstreamBinderHubError)
    assert error.exit_code == 3
    assert [d.name for d in error.dangers] == ["pythia-cluster", "pythia-nodegroup-user"]
    assert error.lines() == [d.message for d in error.dangers]
    assert str(error).startswith("refusing to apply 2 dangerous change(s):")
    check(
        [layer("template_create_first.jsonl")], set(), allow_upgrade=True
    )  # nothing dangerous: returns quietly


def test_a_new_network_driver_reaches_the_running_cluster_and_is_refused_like_an_upgrade() -> None:
    # The driver reads the CNI from the current template (driver.py _get_network_driver).
    cni = LayerChanges(
        layer="cluster", changes=[_template_change("network_driver", "name"), _cluster_moves()]
    )

    (danger,) = find_dangerous([cni])
    assert "network_driver" in danger.message
