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
