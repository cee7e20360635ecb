"""The progress display, fed engine events in Pulumi's JSON shape: done/total per layer, the operations
in flight with the Magnum note, elapsed time; line mode for CI logs. Never a value, so never a secret."""

from __future__ import annotations

import io

from pulumi.automation import EngineEvent
from rich.console import Console

from jetstream_binderhub.automation import Layer, LayerResult
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.automation.progress import ConsoleProgress


def feed(progress: ConsoleProgress, layer: Layer, events: list[dict[str, object]]) -> None:
    for event in events:
        progress.engine_event(layer, EngineEvent.from_json(event))


def render(progress: ConsoleProgress) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(progress._render())
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_live_panel_shows_counts_operations_in_flight_and_the_magnum_note() -> None:
    progress = ConsoleProgress(io.StringIO(), live=False, heartbeat=0)
    progress.layer_started(Layer.CLUSTER, "up", "jetstream-binderhub/jetstream2", expected=3)
    feed(
        progress,
        Layer.CLUSTER,
        [
            t.step("create", t.TEMPLATE_TYPE, "pythia-binder-template", new={}, planning=False),
            t.done(t.TEMPLATE_TYPE, "pythia-binder-template"),
            t.step(
                "create",
                t.CLUSTER_TYPE,
                "pythia-binder-cluster",
                new={"secret": t.secret("x")},
                planning=False,
            ),
        ],
    )
    text = render(progress)
    assert "cluster    up       jetstream-binderhub/jetstream2  1/3 resources" in text
    assert "creating pythia-binder-cluster (containerinfra/cluster:Cluster)" in text
    assert "note: Magnum clusters take 10+ minutes to create or upgrade" in text
    assert "pythia-binder-template" not in text, "finished resources leave the in-flight list"


def test_line_mode_for_ci_logs() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, live=False, heartbeat=0)
    progress.layer_started(Layer.CLUSTER, "destroy", "jetstream-binderhub/jetstream2", expected=2)
    feed(
        progress,
        Layer.CLUSTER,
        [
            t.step("delete", t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large", planning=False),
            t.failed(t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large", op="delete"),
        ],
    )
    progress.layer_finished(LayerResult(Layer.CLUSTER, "destroy", "jetstream-binderhub/jetstream2"))
    lines = out.getvalue().splitlines()
    assert any(
        line.endswith(
            "cluster: deleting pythia-binder-nodegroup-user-m3.large (containerinfra/nodeGroup:NodeGroup) — "
            "a Magnum node group takes about 5 minutes per node"
        )
        for line in lines
    )
    assert any("cluster: FAILED deleting pythia-binder-nodegroup-user-m3.large" in line for line in lines)
    assert lines[-1].endswith("cluster: destroy finished in 0s")


def test_preview_does_not_claim_to_create_anything() -> None:
    out = io.StringIO()
    progress = ConsoleProgress(out, live=False, heartbeat=0)
    progress.layer_started(Layer.CLUSTER, "preview", "jetstream-binderhub/jetstream2", expected=None)
    feed(progress, Layer.CLUSTER, t.fresh_cluster())
    assert "creating" not in out.getvalue()
