"""`preview` shows the SU/hour change of the change it previews: through the real CLI and the real
Automation API SDK against the stand-in `pulumi` (fake_pulumi_cli.py), which writes recorded engine
events to the --event-log the SDK reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jetstream_binderhub.automation import Layer, Site
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.cli import app

EVENTS = Path(__file__).parents[1] / "engine" / "events"
MAX_COUNT_LINE = "SU/hour: at minimum size 22 (unchanged); at maximum size 166 -> 198 (+32)"


@pytest.fixture
def cli_env(ready_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OS_CLOUD", "OS_USERNAME", "OS_PASSWORD", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ready_env.items():
        monkeypatch.setenv(name, value)


def recorded(events: Path, recording: str) -> None:
    (events / "events-preview.jsonl").write_text((EVENTS / recording).read_text())


def test_preview_markdown_shows_the_su_per_hour_change_of_the_change(
    fake_cli: Path, project: Path, cli_env: None, tmp_path: Path
) -> None:
    recorded(fake_cli, "cost_max_count.jsonl")
    comment = tmp_path / "comment.md"

    result = CliRunner().invoke(
        app,
        ["preview", "jetstream2", "--layer", "cluster", "--markdown", str(comment), "-C", str(project)],
    )

    assert result.exit_code == 0, result.stderr
    text = comment.read_text()
    assert f"\n**Allocation:** {MAX_COUNT_LINE}\n" in text
    assert "| `cluster` | 0 | 1 | 0 | 0 | 3 |" in text
    # The terminal says it too, after the layer's summary.
    assert f"cluster: {MAX_COUNT_LINE}" in result.stdout
    assert "[secret]" not in text and "ciphertext" not in text


def test_preview_json_carries_the_cost_as_structured_fields(
    fake_cli: Path, project: Path, cli_env: None
) -> None:
    recorded(fake_cli, "cost_nodegroup_flavor.jsonl")

    result = CliRunner().invoke(
        app, ["preview", "jetstream2", "--layer", "cluster", "--json", "-C", str(project)]
    )

    assert result.exit_code == 0, result.stderr
    cost = json.loads(result.stdout)["layers"][0]["cost"]
    assert (cost["before"]["min_per_hour"], cost["before"]["max_per_hour"]) == (22, 166)
    assert (cost["after"]["min_per_hour"], cost["after"]["max_per_hour"]) == (38, 326)
    assert {line["group"]: line["flavor"] for line in cost["after"]["lines"]}["user-m3.large"] == "m3.xl"
    assert cost["line"] == "SU/hour: at minimum size 22 -> 38 (+16); at maximum size 166 -> 326 (+160)"


def test_an_autoscaled_default_worker_is_named_as_not_priced(
    project: Path, ready_env: dict[str, str]
) -> None:
    # Its range is set on Magnum's node group outside Pulumi and the program ignores the cluster's
    # node_count then: the engine does not know its size.
    path = project / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["jetstream-binderhub:cluster"]["default_worker"]["max_count"] = 3
    path.write_text(yaml.safe_dump(doc))
    events = [json.loads(line) for line in (EVENTS / "cost_max_count.jsonl").read_text().splitlines()]
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): events})

    result = Site.from_files("jetstream2", project, stacks=stacks, env=ready_env).preview("cluster")

    cost = result.layer(Layer.CLUSTER).cost
    assert cost is not None
    assert cost.line == (
        "SU/hour: at minimum size 18 (unchanged); at maximum size 162 -> 194 (+32); "
        "not priced: default-worker (autoscales in a range set outside Pulumi)"
    )
    assert result.cost_line == cost.line


def test_a_preview_that_lost_events_shows_no_cost(project: Path, ready_env: dict[str, str]) -> None:
    events = [json.loads(line) for line in (EVENTS / "cost_max_count.jsonl").read_text().splitlines()]
    summary = next(e for e in events if "summaryEvent" in e)
    summary["summaryEvent"]["resourceChanges"]["update"] = 2  # one update never arrived as an event
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): events})

    result = Site.from_files("jetstream2", project, stacks=stacks, env=ready_env).preview("cluster")

    changes = result.layer(Layer.CLUSTER).changes
    assert changes is not None and changes.missing == {"update": 1}
    assert result.cost_line is None


def test_the_hub_layer_alone_has_no_cost_line(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(events={(Layer.BINDERHUB, "preview"): t.hub_update()})

    result = Site.from_files("jetstream2", project, stacks=stacks, env=ready_env).preview("binderhub")

    assert result.cost_line is None
    assert "cost" not in result.to_json()["layers"][0]
