from __future__ import annotations

from pathlib import Path

import pytest

from jetstream_binderhub.engine.changes import (
    ChangeOp,
    Diagnostic,
    LayerChanges,
    ResourceChange,
    ValueChange,
    read_event_log,
)
from jetstream_binderhub.engine.markdown import COMMENT_LIMIT, comment_length, marker, render_markdown

EVENTS = Path(__file__).parent / "events"
MARKER = "<!-- jetstream-binderhub-preview:pythia -->"


def layer(fixture: str, name: str) -> LayerChanges:
    return read_event_log(EVENTS / fixture, layer=name)


def line_about(text: str, name: str) -> str:
    # Resource lines read "- <op> `name` (`type`) ..."; diagnostics name resources too, differently.
    found = [line for line in text.splitlines() if line.startswith("- ") and f" `{name}` (`" in line]
    assert len(found) == 1, found
    return found[0]


def test_first_line_is_the_stable_marker_and_the_table_comes_before_any_detail() -> None:
    text = render_markdown([layer("cluster_replace.jsonl", "cluster")], site="pythia")
    lines = text.splitlines()

    assert lines[0] == MARKER
    assert lines[0] == marker("pythia")
    table = lines.index("| Layer | Create | Update | Replace | Delete | Unchanged |")
    first_detail = next(i for i, line in enumerate(lines) if line.startswith("- "))
    assert table < first_detail
    assert "| `cluster` | 1 | 1 | ⚠️ **2** | 0 | 1 |" in lines


def test_summary_table_has_one_row_per_layer_with_its_counts() -> None:
    text = render_markdown(
        [layer("cluster_replace.jsonl", "cluster"), layer("hub_update.jsonl", "hub")], site="pythia"
    )

    assert "| `cluster` | 1 | 1 | ⚠️ **2** | 0 | 1 |" in text
    # Replaced Kubernetes provider, Helm release and Secret updated, a ConfigMap deleted.
    assert "| `hub` | 0 | 2 | ⚠️ **1** | 🗑️ **1** | 0 |" in text
    assert "> ⚠️ **3 replacements and 1 deletion.**" in text


def test_replacement_is_loud_and_names_the_property_that_forces_it() -> None:
    text = render_markdown([layer("cluster_replace.jsonl", "cluster")], site="pythia")

    line = line_about(text, "pythia-cluster")
    assert line.startswith("- ⚠️ **REPLACE** `pythia-cluster`")
    assert "forced by `masterFlavor`: `m3.medium` → `m3.large`" in line
    assert "also changes `clusterTemplateId`: `tmpl-old` → (known after apply)" in line
    template = line_about(text, "pythia-template")
    assert "forced by `image`" in template and "`labels.kube_tag`: `v1.33.2` → `v1.34.1`" in template


def test_replacements_are_listed_before_updates_and_creates() -> None:
    text = render_markdown([layer("cluster_replace.jsonl", "cluster")], site="pythia")
    details = [line for line in text.splitlines() if line.startswith("- ")]

    assert [line.split("`")[1] for line in details] == [
        "pythia-template",
        "pythia-cluster",
        "pythia-nodegroup-user",
        "pythia-nodegroup-gpu",
    ]
    assert "`maxNodeCount`: `4` → `8`" in details[2]


def test_delete_before_replace_and_replaced_kubernetes_provider_are_spelled_out() -> None:
    text = render_markdown(
        [layer("template_delete_first.jsonl", "cluster"), layer("hub_update.jsonl", "hub")], site="pythia"
    )

    assert "deleted **before** the new one exists" in line_about(text, "pythia-template")
    assert "every Kubernetes resource it manages is re-created" in line_about(text, "k8s")
    assert line_about(text, "old-banner").startswith("- 🗑️ **DELETE** `old-banner`")


def test_no_secret_plaintext_reaches_the_comment() -> None:
    text = render_markdown(
        [layer("cluster_replace.jsonl", "cluster"), layer("hub_update.jsonl", "hub")], site="pythia"
    )

    assert "hunter2" not in text
    release = line_about(text, "binderhub")
    assert "`values.registry.password` (secret)" in release
    # Not marked secret by Pulumi, but named like one: the key is named, the value is not shown.
    assert release.endswith(", `values.hub.config.GitHubOAuthenticator.client_secret`")
    assert (
        "`values.config.BinderHub.image_prefix`: `quay.io/pythia/binder-` → `quay.io/pythia/binderhub-`"
        in release
    )
    assert "`stringData.password` (secret)" in line_about(text, "registry-credentials")


def test_no_colour_codes_reach_the_comment_and_failures_are_marked() -> None:
    text = render_markdown(
        [layer("hub_update.jsonl", "hub"), layer("failed_update.jsonl", "cluster")], site="pythia"
    )

    assert "\x1b" not in text
    assert "<{%" not in text
    # The message holds backticks of its own (`helm`), so its code span is fenced with two.
    assert (
        '⚠️ warning `hub` · `binderhub`: ``Helm release "binderhub" was created but has a failed status.'
        in text
    )
    assert "❌ **error** `cluster` · `pythia-cluster`: `updating pythia-cluster: Bad request" in text
    assert "| `cluster` ❌ failed |" in text
    assert "❌ **failed**" in line_about(text, "pythia-cluster")


def test_values_that_could_break_markdown_stay_inside_their_code_span() -> None:
    change = ResourceChange(
        layer="hub",
        urn="urn:pulumi:pythia::p::kubernetes:core/v1:ConfigMap::weird`name",
        op=ChangeOp.UPDATE,
        changed_keys=["data.a"],
        values={"data.a": ValueChange(old="x` <b>bold</b> `y", new="\x1b[31mred\x1b[0m")},
    )

    text = render_markdown([LayerChanges(layer="hub", changes=[change])], site="pythia")

    line = line_about(text.replace("``weird`name``", "`weird`name`"), "weird`name")
    assert "``x` <b>bold</b> `y``" in line
    assert "`red`" in line
    assert "\x1b" not in text


def _huge_layer(n: int) -> LayerChanges:
    changes = []
    for i in range(n):
        op = (ChangeOp.CREATE, ChangeOp.UPDATE)[i % 2]
        keys = [f"spec.template.spec.containers[{k}].env[{k}].valueFrom.secretKeyRef.name" for k in range(30)]
        changes.append(
            ResourceChange(
                layer="hub",
                urn=f"urn:pulumi:pythia::jetstream-binderhub-hub::kubernetes:apps/v1:Deployment::deployment-{i:05}",
                op=op,
                changed_keys=keys if op is ChangeOp.UPDATE else [],
                values={k: ValueChange(old="a" * 30, new="b" * 30) for k in keys}
                if op is ChangeOp.UPDATE
                else {},
            )
        )
    changes.insert(
        4321,
        ResourceChange(
            layer="hub",
            urn="urn:pulumi:pythia::jetstream-binderhub-hub::pulumi:providers:kubernetes::k8s",
            op=ChangeOp.REPLACE,
            replace_causes=["clusterIdentifier"],
            changed_keys=["clusterIdentifier"],
        ),
    )
    return LayerChanges(layer="hub", changes=changes, unchanged=17)


def test_a_huge_preview_is_trimmed_under_the_limit_keeping_table_marker_and_dangerous_lines() -> None:
    huge = _huge_layer(6000)
    cluster = layer("cluster_replace.jsonl", "cluster")

    text = render_markdown([cluster, huge], site="pythia")

    assert comment_length(text) < COMMENT_LIMIT
    assert len(text) < COMMENT_LIMIT
    assert text.splitlines()[0] == MARKER
    assert "| `hub` | 3,000 | 3,000 | ⚠️ **1** | 0 | 17 |" in text
    assert "| `cluster` | 1 | 1 | ⚠️ **2** | 0 | 1 |" in text
    trimmed = [line for line in text.splitlines() if line.startswith("> ✂️ Trimmed")]
    assert len(trimmed) == 1
    assert "resources of 6,005 not listed" in trimmed[0]
    # The replacements survive; creates are the first to go.
    assert "`k8s`" in text and "`pythia-cluster`" in text and "`pythia-template`" in text
    assert "more resources not listed (" in text
    listed_creates = text.count("🆕 create")
    listed_updates = text.count("✏️ update")
    assert listed_updates > 0 and listed_creates < 3000


def test_a_small_budget_still_keeps_the_table_and_says_what_was_cut() -> None:
    text = render_markdown([layer("cluster_replace.jsonl", "cluster")], site="pythia", max_chars=900)

    assert comment_length(text) <= 900
    assert text.startswith(MARKER + "\n")
    assert "| `cluster` | 1 | 1 | ⚠️ **2** | 0 | 1 |" in text
    assert "> ✂️ Trimmed" in text
    assert "of 4 not listed" in text


def test_plan_of_intent_says_it_is_not_a_diff_against_the_live_cloud() -> None:
    change = ResourceChange(
        layer="cluster",
        urn="urn:pulumi:pythia::jetstream-binderhub::openstack:containerinfra/cluster:Cluster::pythia-cluster",
        op=ChangeOp.REPLACE,
        replace_causes=["master_flavor"],
        changed_keys=["master_flavor"],
        values={"master_flavor": ValueChange(old="m3.medium", new="m3.large")},
    )
    layers = [LayerChanges(layer="cluster", changes=[change])]

    intent = render_markdown(layers, site="pythia", plan_of_intent=True)
    live = render_markdown(layers, site="pythia")

    heading = intent.splitlines()[1]
    assert heading.startswith("## ")
    assert "plan of intent" in heading and "offline plan" in heading
    assert "not a diff against the live cloud" in heading
    assert intent.splitlines()[0] == live.splitlines()[0] == MARKER
    assert "plan of intent" not in live
    assert "forced by `master_flavor`: `m3.medium` → `m3.large`" in intent


def test_no_changes_says_so() -> None:
    text = render_markdown(
        [layer("template_delete_first.jsonl", "cluster").model_copy(update={"changes": []})], site="x"
    )

    assert "No changes." in text
    assert "| `cluster` | 0 | 0 | 0 | 0 | 2 |" in text


def test_many_diagnostics_are_capped() -> None:
    diags = [Diagnostic(severity="warning", message=f"deprecated field {i}") for i in range(50)]

    text = render_markdown([LayerChanges(layer="hub", diagnostics=diags)], site="pythia")

    assert text.count("⚠️ warning") == 10
    assert "40 warnings more in the workflow log" in text


@pytest.mark.parametrize("site", ["", "a -->", "x\ny", "<b>"])
def test_a_site_that_could_break_the_marker_is_refused(site: str) -> None:
    with pytest.raises(ValueError, match="site"):
        render_markdown([], site=site)


def test_template_created_before_the_old_one_is_deleted_reads_as_an_upgrade() -> None:
    def template(delete_first: bool | None) -> LayerChanges:
        change = ResourceChange(
            layer="cluster",
            urn="urn:pulumi:s::p::jetstream-binderhub:infra:MagnumCluster$openstack:containerinfra/clusterTemplate:ClusterTemplate::t",
            type="openstack:containerinfra/clusterTemplate:ClusterTemplate",
            name="t",
            op=ChangeOp.REPLACE,
            replace_causes=["image"],
            changed_keys=["image"],
            delete_before_replace=delete_first,
        )
        return LayerChanges(layer="cluster", changes=[change])

    safe = line_about(render_markdown([template(False)], site="s"), "t")
    assert "the new template is created first and the cluster moves to it in place" in safe
    risky = line_about(render_markdown([template(True)], site="s"), "t")
    assert "deleted **before** the new one exists" in risky
    assert "created first" not in risky


def test_a_live_template_replacement_says_what_reaches_the_running_cluster() -> None:
    text = render_markdown([layer("template_create_first.jsonl", "cluster")], site="pythia")

    template = line_about(text, "pythia-template")
    assert "**upgrades the running cluster**" in template and "`--allow-upgrade`" in template
    # The driver ignores kube_tag, and any other label is frozen into the cluster at creation.
    assert "`labels.kube_tag`: fixed when the cluster was created, **no effect on the running cluster**" in (
        template
    )
