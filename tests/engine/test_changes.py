from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation.events import EngineEvent

from jetstream_binderhub.engine.changes import (
    ChangeCollector,
    ChangeOp,
    EventStreamError,
    LayerChanges,
    ResourceChange,
    ValueChange,
    changes_from_events,
    clean_text,
    name_from_urn,
    parse_property_path,
    read_event_log,
)
from jetstream_binderhub.errors import JetstreamBinderHubError

EVENTS = Path(__file__).parent / "events"
CLUSTER_URN = (
    "urn:pulumi:pythia::jetstream-binderhub::jetstream-binderhub:infra:MagnumCluster"
    "$openstack:containerinfra/cluster:Cluster::pythia-cluster"
)


def event_lines(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EVENTS / name).read_text().splitlines() if line.strip()]


def by_name(layer: LayerChanges) -> dict[str, ResourceChange]:
    return {c.name: c for c in layer.changes}


def test_counts_fold_each_replacement_into_one_change_and_skip_bookkeeping() -> None:
    layer = read_event_log(EVENTS / "cluster_replace.jsonl", layer="cluster")

    assert layer.counts == {
        ChangeOp.CREATE: 1,
        ChangeOp.UPDATE: 1,
        ChangeOp.REPLACE: 2,
        ChangeOp.DELETE: 0,
        ChangeOp.IMPORT: 0,
        # The MagnumCluster component; the stack and the default provider are not counted.
        ChangeOp.SAME: 1,
    }
    # create-replacement, replace and delete-replaced of one URN are one replacement, not three changes.
    assert [c.name for c in layer.changes] == [
        "pythia-template",
        "pythia-cluster",
        "pythia-nodegroup-user",
        "pythia-nodegroup-gpu",
    ]
    assert all(c.layer == "cluster" for c in layer.changes)
    assert layer.missing == {}


def test_replacement_names_the_property_that_forces_it_with_its_values() -> None:
    cluster = by_name(read_event_log(EVENTS / "cluster_replace.jsonl", layer="cluster"))["pythia-cluster"]

    assert cluster.op is ChangeOp.REPLACE
    assert cluster.type == "openstack:containerinfra/cluster:Cluster"
    assert cluster.urn == CLUSTER_URN
    assert cluster.replace_causes == ["masterFlavor"]
    assert cluster.changed_keys == ["masterFlavor", "clusterTemplateId"]
    assert cluster.values["masterFlavor"] == ValueChange(old="m3.medium", new="m3.large")
    # The new template's id is unknown during preview; the engine's sentinel is not shown as a value.
    assert cluster.values["clusterTemplateId"] == ValueChange(old="tmpl-old", new="(known after apply)")
    assert cluster.delete_before_replace is False


def test_update_lists_changed_keys_and_create_lists_none() -> None:
    changes = by_name(read_event_log(EVENTS / "cluster_replace.jsonl", layer="cluster"))

    user = changes["pythia-nodegroup-user"]
    assert user.op is ChangeOp.UPDATE
    assert user.changed_keys == ["maxNodeCount"]
    assert user.values == {"maxNodeCount": ValueChange(old="4", new="8")}
    assert user.replace_causes == []
    gpu = changes["pythia-nodegroup-gpu"]
    assert (gpu.op, gpu.changed_keys) == (ChangeOp.CREATE, [])


def test_replace_causes_fall_back_to_keys_when_the_provider_gives_no_detailed_diff() -> None:
    group = by_name(read_event_log(EVENTS / "nodegroup_flavor.jsonl", layer="cluster"))[
        "pythia-nodegroup-user"
    ]

    assert group.op is ChangeOp.REPLACE
    assert group.replace_causes == ["flavorId"]
    assert group.changed_keys == ["flavorId"]


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [("template_create_first.jsonl", False), ("template_delete_first.jsonl", True)],
)
def test_replacement_order_is_read_from_the_step_order(fixture: str, expected: bool) -> None:
    template = by_name(read_event_log(EVENTS / fixture, layer="cluster"))["pythia-template"]

    assert template.op is ChangeOp.REPLACE
    assert template.delete_before_replace is expected
    assert template.replace_causes == ["image", "labels.kube_tag", "name"]


def test_replacement_order_is_unknown_when_only_the_logical_step_arrived() -> None:
    events = [
        e
        for e in event_lines("template_create_first.jsonl")
        if _op(e) not in ("create-replacement", "delete-replaced")
    ]

    template = by_name(changes_from_events("cluster", events))["pythia-template"]

    assert template.op is ChangeOp.REPLACE
    assert template.delete_before_replace is None


def test_plain_delete_is_a_delete() -> None:
    changes = by_name(read_event_log(EVENTS / "template_delete.jsonl", layer="cluster"))

    assert changes["pythia-template"].op is ChangeOp.DELETE
    assert changes["pythia-template"].changed_keys == []
    assert changes["pythia-cluster"].op is ChangeOp.UPDATE


def test_engine_event_objects_give_the_same_result_as_json_dicts() -> None:
    lines = event_lines("hub_update.jsonl")
    collector = ChangeCollector(layer="hub")
    for line in lines:
        collector(EngineEvent.from_json(line))  # what Stack.preview(on_event=collector) passes

    assert collector.result() == changes_from_events("hub", lines)
    assert collector.result().counts[ChangeOp.UPDATE] == 2


def test_a_replaced_provider_is_reported_but_the_stack_and_same_providers_are_not() -> None:
    hub = read_event_log(EVENTS / "hub_update.jsonl", layer="hub")
    changes = by_name(hub)

    assert changes["k8s"].op is ChangeOp.REPLACE
    assert changes["k8s"].is_provider
    assert changes["k8s"].replace_causes == ["clusterIdentifier"]
    assert not any(c.type == "pulumi:pulumi:Stack" for c in hub.changes)
    cluster = read_event_log(EVENTS / "cluster_replace.jsonl", layer="cluster")
    assert not any(c.is_provider for c in cluster.changes)


def test_secret_values_never_enter_the_model() -> None:
    hub = read_event_log(EVENTS / "hub_update.jsonl", layer="hub")
    release = by_name(hub)["binderhub"]

    dumped = hub.model_dump_json()
    assert "hunter2" not in dumped
    assert "values.registry.password" in release.secret_keys
    assert "stringData.password" in by_name(hub)["registry-credentials"].secret_keys
    # Named like a secret but not marked one: the key is listed, the value is not shown.
    assert "values.hub.config.GitHubOAuthenticator.client_secret" in release.changed_keys
    assert "values.hub.config.GitHubOAuthenticator.client_secret" not in release.values
    # A short plain value is shown; a long one is not.
    assert release.values["values.config.BinderHub.image_prefix"] == ValueChange(
        old="quay.io/pythia/binder-", new="quay.io/pythia/binderhub-"
    )
    assert "values.config.BinderHub.banner_message" not in release.values
    # The old cluster's kubeconfig output holds a secret too; nothing of it is kept.
    assert (
        "hunter2" not in read_event_log(EVENTS / "cluster_replace.jsonl", layer="cluster").model_dump_json()
    )


def _step(op: str, urn: str, **metadata: Any) -> dict[str, Any]:
    return {
        "sequence": 0,
        "timestamp": 0,
        "resourcePreEvent": {"metadata": {"op": op, "urn": urn, **metadata}},
    }


def test_the_secret_placeholder_is_treated_as_a_secret_not_as_a_value() -> None:
    urn = "urn:pulumi:pythia::jetstream-binderhub-hub::kubernetes:core/v1:Secret::hub-token"
    old = {"type": "kubernetes:core/v1:Secret", "urn": urn, "inputs": {"data": "[secret]", "type": "Opaque"}}
    new = {
        "type": "kubernetes:core/v1:Secret",
        "urn": urn,
        "inputs": {"data": "[secret]", "type": "kubernetes.io/tls"},
    }
    diff = {
        "data.token": {"diffKind": "update", "inputDiff": True},
        "type": {"diffKind": "update", "inputDiff": True},
    }

    change = changes_from_events("hub", [_step("update", urn, old=old, new=new, detailedDiff=diff)]).changes[
        0
    ]

    assert change.secret_keys == ["data.token"]
    assert change.values == {"type": ValueChange(old="Opaque", new="kubernetes.io/tls")}


def test_stack_and_provider_plumbing_is_not_reported_unless_a_provider_is_replaced() -> None:
    def urn(type_: str, name: str) -> str:
        return f"urn:pulumi:pythia::jetstream-binderhub::{type_}::{name}"

    events = [
        _step("create", urn("pulumi:pulumi:Stack", "jetstream-binderhub-pythia")),
        _step("create", urn("pulumi:providers:openstack", "default_5_6_0")),
        _step("update", urn("pulumi:providers:kubernetes", "k8s"), diffs=["version"]),
        _step("delete", urn("pulumi:providers:openstack", "default_5_5_3")),
        _step("same", urn("pulumi:providers:random", "default_4_21_4")),
        _step("create", urn("random:index/randomPassword:RandomPassword", "hub-secret")),
    ]

    layer = changes_from_events("cluster", events)

    assert [c.name for c in layer.changes] == ["hub-secret"]
    assert layer.counts[ChangeOp.SAME] == 0


def test_diagnostics_are_kept_without_colour_codes() -> None:
    hub = read_event_log(EVENTS / "hub_update.jsonl", layer="hub")

    assert [d.severity for d in hub.diagnostics] == ["warning"]
    message = hub.diagnostics[0].message
    assert message.startswith('Helm release "binderhub" was created but has a failed status.')
    assert "\x1b" not in message
    assert "<{%" not in message
    assert hub.failure_line() is None


def test_a_failed_update_is_summarised_in_one_line_naming_the_resource_and_cause() -> None:
    layer = read_event_log(EVENTS / "failed_update.jsonl", layer="cluster")

    line = layer.failure_line()
    assert line is not None
    assert "\n" not in line
    assert line.startswith("cluster: updating pythia-cluster: Bad request")
    assert "Cannot resize a cluster in UPDATE_IN_PROGRESS" in line
    assert "urn:pulumi" not in line
    assert by_name(layer)["pythia-cluster"].failed


def test_lost_events_show_up_as_missing_against_the_engine_summary() -> None:
    events = [e for e in event_lines("cluster_replace.jsonl") if not _about(e, "pythia-cluster")]

    layer = changes_from_events("cluster", events)

    assert layer.missing == {"replace": 1}


def test_a_bad_event_does_not_raise_in_the_callback_but_fails_the_result() -> None:
    events = event_lines("cluster_replace.jsonl")
    bad = copy.deepcopy(events[4])
    bad["resourcePreEvent"]["metadata"]["op"] = "teleport"
    collector = ChangeCollector(layer="cluster")
    for event in [*events[:4], bad, *events[5:]]:
        collector(event)  # the Automation API would only warn about an exception here, and lose the event

    with pytest.raises(EventStreamError, match="event 4") as raised:
        collector.result()
    assert isinstance(raised.value, JetstreamBinderHubError)


def test_event_log_tolerates_a_cut_last_line_but_not_garbage_inside(tmp_path: Path) -> None:
    text = (EVENTS / "template_delete.jsonl").read_text()
    cut = tmp_path / "cut.jsonl"
    cut.write_text(text + '{"sequence": 99, "timestamp": 17641')
    assert read_event_log(cut, layer="cluster") == read_event_log(
        EVENTS / "template_delete.jsonl", layer="cluster"
    )

    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n" + text)
    with pytest.raises(EventStreamError, match=r"broken\.jsonl:1"):
        read_event_log(broken, layer="cluster")


def test_model_is_constructible_without_events() -> None:
    change = ResourceChange(
        layer="cluster", urn=CLUSTER_URN, op=ChangeOp.REPLACE, replace_causes=["master_flavor"]
    )
    layer = LayerChanges(layer="cluster", changes=[change], unchanged=3)

    assert change.name == "pythia-cluster"
    assert change.type == "openstack:containerinfra/cluster:Cluster"
    assert layer.counts[ChangeOp.REPLACE] == 1
    assert layer.counts[ChangeOp.SAME] == 3
    assert layer.has_changes


def test_names_and_paths_parse_like_the_engine_writes_them() -> None:
    assert name_from_urn("urn:pulumi:s::p::a:b:C$d:e:F::name::with::colons") == "name::with::colons"
    assert parse_property_path('labels["capi.stackhpc.com/node-group"]') == [
        "labels",
        "capi.stackhpc.com/node-group",
    ]
    assert parse_property_path("spec.containers[0].image") == ["spec", "containers", 0, "image"]
    assert parse_property_path('a["unterminated') is None


def test_clean_text_removes_ansi_and_pulumi_colour_directives() -> None:
    assert (
        clean_text("<{%fg 1%}>\x1b[31;1merror\x1b[0m: \x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[")
        == "error: link "
    )


def _op(event: dict[str, object]) -> str | None:
    pre = event.get("resourcePreEvent")
    return pre["metadata"]["op"] if isinstance(pre, dict) else None


def _about(event: dict[str, object], name: str) -> bool:
    pre = event.get("resourcePreEvent")
    return isinstance(pre, dict) and pre["metadata"]["urn"].endswith(f"::{name}")


def test_redact_masks_known_values_anywhere_and_leaves_short_ones() -> None:
    from jetstream_binderhub.engine.changes import redact

    secrets = {"robot-token-123", "robot-token-123-extended", "abc"}
    data = {"a": ["x robot-token-123-extended y", 5], "robot-token-123": "abc def"}
    # The longer secret is masked whole, not left with a visible tail; three letters are not searched for.
    assert redact(data, secrets) == {"a": ["x [secret] y", 5], "[secret]": "abc def"}
    assert redact("nothing here", set()) == "nothing here"
