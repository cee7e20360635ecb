"""The mock runner as the CLI uses it: a plan leaves nothing running behind it."""

from __future__ import annotations

import asyncio
from asyncio import base_events
from typing import Any

import pytest

from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT
from jetstream_binderhub.infra.program import cluster_program
from jetstream_binderhub.plan.runner import run_layer


def test_a_plan_closes_every_event_loop_it_caused(monkeypatch: pytest.MonkeyPatch) -> None:
    # An unclosed loop is collected at interpreter exit and Python prints a traceback after a
    # successful `plan`; the SDK makes one per executor thread, so count every loop created.
    created: list[asyncio.AbstractEventLoop] = []
    original = base_events.BaseEventLoop.__init__

    def record(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        created.append(self)

    monkeypatch.setattr(base_events.BaseEventLoop, "__init__", record)
    config = {
        f"{CLUSTER_PROJECT}:cluster": '{"name": "x", "node_groups": [{"name": "a", "flavor": "m3.large"}]}'
    }
    for _ in range(2):  # a second plan in the same process (plan --compare) must work after the first
        layer, _ = run_layer(
            cluster_program, layer="cluster", project=CLUSTER_PROJECT, stack="s", config=config
        )
        assert layer.resource("nodeGroup:NodeGroup").inputs["name"] == "a"
    assert created, "the runner made no event loop at all: this test would not see a leak"
    assert [loop for loop in created if not loop.is_closed()] == []


def test_an_output_left_pending_by_an_earlier_run_never_stalls_the_next_plan() -> None:
    # Pulumi keeps its pending outputs in one set for the whole process (not per context), and the SDK
    # awaits all of them at the end of a program. A task left there by an earlier run belongs to that
    # run's closed loop and can never finish: the next plan hung on it (or, with other timing, failed
    # with "Event loop is closed"), now and then, in the test suite.
    import threading

    from pulumi.runtime.settings import SETTINGS

    dead = asyncio.new_event_loop()
    stale = dead.create_future()
    dead.close()
    SETTINGS.outputs.add(stale)  # pyright: ignore[reportAttributeAccessIssue]  (a contextproperty)
    config = {
        f"{CLUSTER_PROJECT}:cluster": '{"name": "x", "node_groups": [{"name": "a", "flavor": "m3.large"}]}'
    }
    planned: list[Any] = []

    def plan() -> None:
        layer, _ = run_layer(
            cluster_program, layer="cluster", project=CLUSTER_PROJECT, stack="s", config=config
        )
        planned.append(layer)

    # In a thread, so that a hang fails the test instead of stalling the suite.
    worker = threading.Thread(target=plan, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert planned, "the plan waited for an output of an earlier run's closed loop"
    assert planned[0].resource("nodeGroup:NodeGroup").inputs["name"] == "a"
