"""The SU/hour change a live preview shows, priced from the engine's own states of the cluster's servers.

The recordings (events/cost_*.jsonl) are cluster-layer previews of the shipped site (control plane
m3.small, default-worker 1 x m3.quad, user-m3.large 1-10 x m3.large) in the shape `pulumi preview
--event-log` writes: every resource has a step, `same` steps included (pulumi/pulumi
pkg/engine/update.go `previewActions.OnResourceStepPre`), each with its old and new state.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.engine.changes import (
    ChangeOp,
    LayerChanges,
    ResourceChange,
    ServerCount,
    changes_from_events,
    read_event_log,
)
from jetstream_binderhub.engine.markdown import comment_length, render_markdown
from jetstream_binderhub.plan.cost import engine_cost, estimate
from jetstream_binderhub.profiles import load_profile

EVENTS = Path(__file__).parent / "events"
PROFILE = load_profile("jetstream2")
NODE_GROUP = "user-m3.large"


def events(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (EVENTS / name).read_text().splitlines() if line.strip()]


def line_of(layer: LayerChanges, **options: Any) -> str:
    cost = engine_cost(layer.servers, PROFILE, **options)
    assert cost is not None
    return cost.line


def test_an_unchanged_preview_says_unchanged_and_prices_the_site_as_its_configuration_does(
    cluster_config: dict[str, Any],
) -> None:
    layer = read_event_log(EVENTS / "cost_unchanged.jsonl", layer="cluster")
    cost = engine_cost(layer.servers, PROFILE)

    assert cost is not None
    assert cost.line == "SU/hour: at minimum size 22 (unchanged); at maximum size 166 (unchanged)"
    # The engine's view of the deployed site and the offline plan's estimate of its configuration agree:
    # 2 (m3.small control plane) + 4 (m3.quad default-worker) + 1..10 x 16 (m3.large).
    offline = estimate(parse_cluster_stack(cluster_config).cluster, PROFILE)
    assert cost.before is not None
    assert (cost.before.min_per_hour, cost.before.max_per_hour) == (22, 166)
    assert (cost.after.min_per_hour, cost.after.max_per_hour) == (offline.min_per_hour, offline.max_per_hour)
    assert {line.group for line in cost.after.lines} == {line.group for line in offline.lines}


def test_a_larger_maximum_changes_only_the_maximum() -> None:
    layer = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")

    assert line_of(layer) == ("SU/hour: at minimum size 22 (unchanged); at maximum size 166 -> 198 (+32)")


def test_a_node_group_flavor_change_prices_both_ends_at_the_new_flavor() -> None:
    layer = read_event_log(EVENTS / "cost_nodegroup_flavor.jsonl", layer="cluster")

    assert [(c.name, c.op) for c in layer.changes] == [
        ("pythia-binder-nodegroup-user-m3.large", ChangeOp.REPLACE)
    ]
    # m3.large (16 SU/h) -> m3.xl (32 SU/h), 1 to 10 nodes.
    assert line_of(layer) == ("SU/hour: at minimum size 22 -> 38 (+16); at maximum size 166 -> 326 (+160)")


def test_a_new_stack_is_a_new_site() -> None:
    layer = read_event_log(EVENTS / "cost_new_stack.jsonl", layer="cluster")
    cost = engine_cost(layer.servers, PROFILE)

    assert cost is not None and cost.before is None
    assert cost.line == "SU/hour: at minimum size 22 (new site); at maximum size 166 (new site)"


def test_a_cluster_created_beside_a_deleted_one_is_not_a_new_site() -> None:
    # A renamed cluster is a delete of the old resource and a create of a new one: both sides exist.
    renamed: list[dict[str, Any]] = []
    for event in events("cost_unchanged.jsonl"):
        meta = event.get("resourcePreEvent", {}).get("metadata", {})
        if meta.get("type") != "openstack:containerinfra/cluster:Cluster":
            renamed.append(event)
            continue
        gone = copy.deepcopy(event)
        gone["resourcePreEvent"]["metadata"].update(op="delete", new=None)
        made = copy.deepcopy(event)
        new = made["resourcePreEvent"]["metadata"]
        new["urn"] = new["urn"].replace("pythia-binder-cluster", "workshop-cluster")
        new["new"]["inputs"]["masterFlavor"] = "m3.medium"
        new.update(op="create", old=None)
        renamed += [made, gone]

    assert line_of(changes_from_events("cluster", renamed)) == (
        "SU/hour: at minimum size 22 -> 28 (+6); at maximum size 166 -> 172 (+6)"
    )


def with_gpu_group_removed_and_three_control_plane_servers() -> list[dict[str, Any]]:
    """The shipped site plus a deployed g3.small group (1-2 nodes) that the change deletes, while the
    control plane grows from 1 to 3 m3.small."""
    changed: list[dict[str, Any]] = []
    for event in events("cost_unchanged.jsonl"):
        meta = event.get("resourcePreEvent", event.get("resOutputsEvent", {})).get("metadata", {})
        if meta.get("type") == "openstack:containerinfra/cluster:Cluster":
            meta["op"] = "update"
            meta["new"]["inputs"]["masterCount"] = 3
        changed.append(event)
        if "resourcePreEvent" in event and meta.get("type") == "openstack:containerinfra/nodeGroup:NodeGroup":
            gpu = copy.deepcopy(event)
            old = gpu["resourcePreEvent"]["metadata"]
            old["urn"] = old["urn"].replace(NODE_GROUP, "gpu-g3.small")
            for state in (old["old"]["inputs"], old["old"]["outputs"]):
                state.update(name="gpu-g3.small", flavorId="g3.small", minNodeCount=1, maxNodeCount=2)
            old.update(op="delete", new=None)
            changed.append(gpu)
    return changed


def test_cpu_and_gpu_are_separate_allocations_and_each_gets_its_own_change() -> None:
    # A reviewer's case: one line adding m3 and g3 rates printed -4 while the CPU allocation's burn
    # goes up (2 more m3.small, 2 SU/h each) and the GPU allocation's goes down (a g3.small group, 8 SU/h).
    cost = engine_cost(
        changes_from_events("cluster", with_gpu_group_removed_and_three_control_plane_servers()).servers,
        PROFILE,
    )

    assert cost is not None
    assert cost.line == (
        "SU/hour (cpu): at minimum size 22 -> 26 (+4); at maximum size 166 -> 170 (+4); "
        "SU/hour (gpu): at minimum size 8 -> 0 (-8); at maximum size 16 -> 0 (-16)"
    )
    # --json carries the same figures per allocation; the totals keep adding every priced group.
    assert cost.before is not None
    assert {r: (t.min_per_hour, t.max_per_hour) for r, t in cost.before.by_resource.items()} == {
        "cpu": (22, 166),
        "gpu": (8, 16),
    }
    assert {r: (t.min_per_hour, t.max_per_hour) for r, t in cost.after.by_resource.items()} == {
        "cpu": (26, 170)
    }
    assert (cost.before.min_per_hour, cost.after.min_per_hour) == (30, 26)


def test_a_lower_maximum_is_a_negative_change() -> None:
    lowered = events("cost_max_count.jsonl")
    for event in lowered:
        new = event.get("resourcePreEvent", {}).get("metadata", {}).get("new") or {}
        if "maxNodeCount" in new.get("inputs", {}):
            new["inputs"]["maxNodeCount"] = 4

    assert line_of(changes_from_events("cluster", lowered)) == (
        "SU/hour: at minimum size 22 (unchanged); at maximum size 166 -> 70 (-96)"
    )


def test_what_is_deployed_is_read_from_the_cloud_reported_outputs_first() -> None:
    # The state's outputs are what Magnum reported at the last update or refresh; a group resized outside
    # Pulumi (openstack coe nodegroup update) is deployed at that size, whatever the inputs last sent.
    drifted = events("cost_unchanged.jsonl")
    for event in drifted:
        old = event.get("resourcePreEvent", {}).get("metadata", {}).get("old") or {}
        if "maxNodeCount" in old.get("outputs", {}):
            old["outputs"]["maxNodeCount"] = 8

    assert line_of(changes_from_events("cluster", drifted)) == (
        "SU/hour: at minimum size 22 (unchanged); at maximum size 134 -> 166 (+32)"
    )


def test_default_worker_that_autoscales_outside_pulumi_is_named_and_left_out_of_both_sides() -> None:
    layer = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")
    cost = engine_cost(
        layer.servers, PROFILE, not_priced={"default-worker": "autoscales in a range set outside Pulumi"}
    )

    assert cost is not None
    assert cost.line == (
        "SU/hour: at minimum size 18 (unchanged); at maximum size 162 -> 194 (+32); "
        "not priced: default-worker (autoscales in a range set outside Pulumi)"
    )


def test_a_size_the_states_do_not_hold_is_named_and_left_out_of_both_sides() -> None:
    hidden = events("cost_max_count.jsonl")
    for event in hidden:
        new = event.get("resourcePreEvent", {}).get("metadata", {}).get("new") or {}
        if "maxNodeCount" in new.get("inputs", {}):
            # A secret (or a value known only after apply) is never priced, and never shown.
            new["inputs"]["flavorId"] = {
                "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                "plaintext": '"m3.hidden-flavor"',
            }
    layer = changes_from_events("cluster", hidden)

    line = line_of(layer)
    assert line == (
        "SU/hour: at minimum size 6 (unchanged); at maximum size 6 (unchanged); "
        f"not priced: {NODE_GROUP} (its flavor or size is not in the engine's states)"
    )
    assert "hidden-flavor" not in layer.model_dump_json()


def test_events_without_the_cluster_say_its_servers_were_not_priced() -> None:
    only_group = [
        e
        for e in events("cost_max_count.jsonl")
        if "nodeGroup" in json.dumps(e.get("resourcePreEvent", {}).get("metadata", {}).get("type", ""))
    ]

    assert line_of(changes_from_events("cluster", only_group)) == (
        "SU/hour: at minimum size 16 (unchanged); at maximum size 160 -> 192 (+32); "
        "not priced: control-plane and default-worker (the cluster is not in the preview's events)"
    )


def test_servers_come_from_every_step_and_keep_no_secret() -> None:
    layer = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")
    servers = {s.group: s for s in layer.servers}

    assert set(servers) == {"control-plane", "default-worker", NODE_GROUP}
    assert servers["control-plane"].before == ServerCount(flavor="m3.small", min_count=1, max_count=1)
    assert servers[NODE_GROUP].after == ServerCount(flavor="m3.large", min_count=1, max_count=12)
    # The cluster's outputs carry its kubeconfig (a secret): nothing of it is kept.
    assert "ciphertext" not in layer.model_dump_json()
    assert "kubeconfig" not in layer.model_dump_json()


def test_the_hub_layer_has_no_servers_to_price() -> None:
    assert engine_cost(read_event_log(EVENTS / "hub_update.jsonl", layer="hub").servers, PROFILE) is None


# --- in the comment -------------------------------------------------------------------------------


def test_the_line_sits_under_the_summary_table() -> None:
    layer = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")
    text = render_markdown([layer], site="jetstream2", cost=line_of(layer))
    lines = text.splitlines()

    allocation = lines.index(
        "**Allocation:** SU/hour: at minimum size 22 (unchanged); at maximum size 166 -> 198 (+32)"
    )
    table = lines.index("| Layer | Create | Update | Replace | Delete | Unchanged |")
    first_detail = next(i for i, line in enumerate(lines) if line.startswith("- "))
    assert table < allocation < first_detail


def test_the_line_is_never_trimmed() -> None:
    base = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")
    cost = line_of(base)
    many = base.model_copy(
        update={
            "changes": [
                ResourceChange(
                    layer="cluster",
                    urn=f"urn:pulumi:jetstream2::jetstream-binderhub::openstack:compute/instance:Instance::vm-{i}",
                    op=ChangeOp.UPDATE,
                    changed_keys=[f"metadata.key{k}" for k in range(30)],
                )
                for i in range(200)
            ]
        }
    )
    text = render_markdown([many], site="jetstream2", cost=cost, max_chars=4_000)

    assert comment_length(text) <= 4_000
    assert "✂️ Trimmed" in text
    assert f"**Allocation:** {cost}\n" in text


def test_the_documented_example_comment_is_what_the_renderer_writes(repo_root: Path) -> None:
    from jetstream_binderhub.automation.comment import render_comment

    docs = (repo_root / "docs" / "cli.md").read_text(encoding="utf-8")
    examples = [
        b for b in re.findall(r"^```markdown\n(.*?)^```", docs, re.M | re.S) if "**Allocation:**" in b
    ]
    layer = read_event_log(EVENTS / "cost_max_count.jsonl", layer="cluster")

    assert examples == [render_comment([layer], site="jetstream2", cost=line_of(layer))]


@pytest.mark.parametrize("recording", ["cost_unchanged.jsonl", "cost_new_stack.jsonl"])
def test_servers_survive_the_redaction_round_trip(recording: str) -> None:
    layer = read_event_log(EVENTS / recording, layer="cluster")
    again = LayerChanges.model_validate(copy.deepcopy(layer.model_dump(mode="json")))

    assert again.servers == layer.servers
