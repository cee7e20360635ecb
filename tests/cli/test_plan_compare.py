"""`plan --compare BASE` on real git revisions of a site file: the plan-of-intent comment, the
replacements it predicts, and that the base is planned by the base revision's own code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.cli import app
from jetstream_binderhub.engine.guard import find_dangerous
from jetstream_binderhub.plan.compare import compare

runner = CliRunner()


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip()


@pytest.fixture
def repo(repo_root: Path, tmp_path: Path) -> Path:
    """A git repository with the shipped site committed once (revision `base`)."""
    dest = tmp_path / "site-repo"
    dest.mkdir()
    shutil.copy(repo_root / "Pulumi.yaml", dest / "Pulumi.yaml")
    shutil.copy(repo_root / "Pulumi.jetstream2.yaml", dest / "Pulumi.jetstream2.yaml")
    shutil.copytree(repo_root / "infra", dest / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo_root / "binderhub", dest / "binderhub", ignore=shutil.ignore_patterns("__pycache__"))
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", ".")
    git(dest, "commit", "-q", "-m", "base")
    git(dest, "tag", "base")
    return dest


def edit_site(repo: Path, old: str, new: str) -> None:
    path = repo / "Pulumi.jetstream2.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_second_revision_shows_a_replaced_node_group_and_an_in_place_resize(repo: Path) -> None:
    edit_site(repo, "flavor: m3.large", "flavor: m3.xl")
    edit_site(repo, "max_count: 10", "max_count: 12")
    git(repo, "commit", "-q", "-am", "bigger user nodes")

    comparison = compare("jetstream2", repo, "base")
    cluster = next(layer for layer in comparison.layers if layer.layer == "cluster")
    by_name = {c.name: c for c in cluster.changes}
    group = by_name["pythia-binder-nodegroup-user-m3.large"]

    assert group.op.value == "replace"
    assert group.replace_causes == ["flavor_id"]
    assert group.values["flavor_id"].old == "m3.large" and group.values["flavor_id"].new == "m3.xl"
    assert "max_node_count" in group.changed_keys
    assert "pythia-binder-cluster" not in by_name, "nothing else changes"
    assert next(layer for layer in comparison.layers if layer.layer == "binderhub").has_changes is False
    # The same guard that protects `up` reads the comparison.
    dangers = find_dangerous(comparison.layers)
    assert [d.name for d in dangers] == ["pythia-binder-nodegroup-user-m3.large"]


def test_cli_writes_the_plan_of_intent_comment(repo: Path, tmp_path: Path) -> None:
    edit_site(repo, "count: 1\n", "count: 3\n")  # the control plane: forces a new cluster
    git(repo, "commit", "-q", "-am", "HA control plane")
    comment = tmp_path / "comment.md"

    result = runner.invoke(
        app, ["plan", "jetstream2", "--compare", "base", "--markdown", str(comment), "-C", str(repo)]
    )

    assert result.exit_code == 0, result.output
    text = comment.read_text()
    assert text.startswith("<!-- jetstream-binderhub-preview:jetstream2 -->\n"), (
        "same marker as the live preview"
    )
    assert "plan of intent" in text and "not a diff against the live cloud" in text
    assert "Plan of intent (base → working tree)" in text
    assert "| `cluster` | 0 | 0 | ⚠️ **1** | 0 |" in text
    assert "`pythia-binder-cluster`" in text and "`master_count`" in text


def test_the_comment_shows_the_su_per_hour_change(repo: Path) -> None:
    # The user group grows from 10 to 12 m3.large at most (16 SU/hour each) and to 2 at least.
    edit_site(repo, "max_count: 10", "max_count: 12")
    edit_site(repo, "min_count: 1\n        max_count", "min_count: 2\n        max_count")
    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "base", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "SU/hour:" in line)
    assert re.search(
        r"SU/hour: at minimum size (\d+) -> (\d+) \(\+16\); at maximum size (\d+) -> (\d+) \(\+32\)", line
    )


def test_an_unchanged_cost_says_so(repo: Path) -> None:
    comparison = compare("jetstream2", repo, "base")
    assert re.fullmatch(
        r"SU/hour: at minimum size \d+ \(unchanged\); at maximum size \d+ \(unchanged\)", comparison.notes[0]
    )


GPU_GROUP = """
      - name: gpu-g3.small
        flavor: g3.small
        min_count: 1
        max_count: 2
    autoscaling: true
"""


def test_cpu_and_gpu_allocations_each_get_their_own_su_per_hour_change(repo: Path) -> None:
    # A base with a GPU group; the change removes it and grows the control plane from 1 to 3 m3.small.
    edit_site(repo, "\n    autoscaling: true\n", GPU_GROUP)
    git(repo, "commit", "-q", "-am", "a GPU group")
    git(repo, "tag", "with-gpu")
    edit_site(repo, GPU_GROUP, "\n    autoscaling: true\n")
    edit_site(repo, "count: 1\n", "count: 3\n")

    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "with-gpu", "-C", str(repo)])

    assert result.exit_code == 0, result.output
    assert (
        "SU/hour (cpu): at minimum size 22 -> 26 (+4); at maximum size 166 -> 170 (+4); "
        "SU/hour (gpu): at minimum size 8 -> 0 (-8); at maximum size 16 -> 0 (-16)"
    ) in result.stdout

    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "with-gpu", "--json", "-C", str(repo)])

    assert result.exit_code == 0, result.output
    cost = json.loads(result.stdout)["cost"]
    assert cost["before"]["by_resource"] == {
        "cpu": {
            "min_per_hour": 22,
            "max_per_hour": 166,
            "groups": ["control-plane", "default-worker", "user-m3.large"],
        },
        "gpu": {"min_per_hour": 8, "max_per_hour": 16, "groups": ["gpu-g3.small"]},
    }
    assert cost["after"]["by_resource"] == {
        "cpu": {
            "min_per_hour": 26,
            "max_per_hour": 170,
            "groups": ["control-plane", "default-worker", "user-m3.large"],
        }
    }
    assert cost["line"].startswith("SU/hour (cpu): ")


def test_cli_prints_to_stdout_and_json(repo: Path) -> None:
    edit_site(repo, "max_count: 10", "max_count: 12")
    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "base", "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert "✏️ update `pythia-binder-nodegroup-user-m3.large`" in result.stdout

    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "base", "--json", "-C", str(repo)])
    data = json.loads(result.stdout)
    assert data["plan_of_intent"] is True
    cluster = next(layer for layer in data["layers"] if layer["layer"] == "cluster")
    assert [c["op"] for c in cluster["changes"]] == ["update"]


def test_a_site_new_in_the_pull_request_is_all_creates(repo: Path) -> None:
    shutil.copy(repo / "Pulumi.jetstream2.yaml", repo / "Pulumi.workshop.yaml")
    comparison = compare("workshop", repo, "base")
    cluster = comparison.layers[0]
    assert {c.op.value for c in cluster.changes} == {"create"}
    assert any("does not exist at base" in note for note in comparison.notes)


def test_an_invalid_base_is_refused(repo: Path) -> None:
    edit_site(repo, "count: 1\n", "count: 2\n")
    git(repo, "commit", "-q", "-am", "broken")
    git(repo, "tag", "broken")
    edit_site(repo, "count: 2\n", "count: 1\n")
    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "broken", "-C", str(repo)])
    assert result.exit_code == 2
    assert "the site's config at broken does not plan" in result.stderr


def tag_old_code(repo: Path, plan: dict[str, Any]) -> None:
    """Tag `old-code`: a revision whose package is only a `cli.py` printing `plan`, as older code's
    `plan --json` would, then leave the working tree without it."""
    stub = repo / "src" / "jetstream_binderhub"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "cli.py").write_text(f"import json\nprint(json.dumps({plan!r}))\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "old code")
    git(repo, "tag", "old-code")
    shutil.rmtree(repo / "src")


def test_the_base_is_planned_by_its_own_code(repo: Path) -> None:
    """A revision that carries the package plans with that package (here a stub that declares one
    resource), so a pull request changing a component is compared with what the old code declared."""
    plan = {
        "site": "jetstream2",
        "profile": "jetstream2",
        "layers": [
            {
                "layer": "cluster",
                "project": "jetstream-binderhub",
                "stack": "jetstream2",
                "resources": [
                    {
                        "layer": "cluster",
                        "type": "openstack:containerinfra/cluster:Cluster",
                        "name": "old-code-cluster",
                        "parent": None,
                        "custom": True,
                        "inputs": {},
                        "options": {},
                    }
                ],
                "outputs": [],
            }
        ],
        "cost": {"unit": "SU", "lines": [], "min_per_hour": 0, "max_per_hour": 0},
        "notes": [],
    }
    tag_old_code(repo, plan)

    comparison = compare("jetstream2", repo, "old-code")
    cluster = {c.name: c.op.value for c in comparison.layers[0].changes}
    assert cluster["old-code-cluster"] == "delete"
    assert cluster["pythia-binder-cluster"] == "create"


def test_a_base_planned_by_code_that_did_not_record_allocations_is_split_by_the_catalog(repo: Path) -> None:
    """Code older than `CostLine.resource` printed cost lines without it: its GPU group is still priced on
    the GPU allocation rather than dropped from every allocation."""
    lines = [
        {
            "group": "control-plane",
            "flavor": "m3.small",
            "min_count": 1,
            "max_count": 1,
            "su_per_hour_each": 2,
        },
        {
            "group": "gpu-g3.small",
            "flavor": "g3.small",
            "min_count": 1,
            "max_count": 2,
            "su_per_hour_each": 8,
        },
    ]
    plan = {
        "site": "jetstream2",
        "profile": "jetstream2",
        "layers": [],
        "cost": {"unit": "SU", "lines": lines, "min_per_hour": 10, "max_per_hour": 18},
        "notes": [],
    }
    tag_old_code(repo, plan)

    comparison = compare("jetstream2", repo, "old-code")

    assert comparison.notes[0] == (
        "SU/hour (cpu): at minimum size 2 -> 22 (+20); at maximum size 2 -> 166 (+164); "
        "SU/hour (gpu): at minimum size 8 -> 0 (-8); at maximum size 16 -> 0 (-16)"
    )


def test_compare_against_a_site_file(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "Pulumi.other.yaml"
    other.write_text((repo / "Pulumi.jetstream2.yaml").read_text().replace("max_count: 10", "max_count: 4"))
    result = runner.invoke(app, ["plan", "jetstream2", "--compare", str(other), "-C", str(repo)])
    assert result.exit_code == 0, result.output
    assert "max_node_count" in result.stdout and "`4` → `10`" in result.stdout


def test_compare_against_nothing_sensible(repo: Path) -> None:
    result = runner.invoke(app, ["plan", "jetstream2", "--compare", "no-such-ref", "-C", str(repo)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --compare no-such-ref: unknown base: not a revision of the git")
    assert "invalid configuration" not in result.stderr


def test_markdown_without_compare_is_a_usage_error(repo: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "jetstream2", "--markdown", str(tmp_path / "x.md"), "-C", str(repo)])
    assert result.exit_code == 2
    assert "--markdown needs --compare" in result.stderr


def _comment(repo: Path, tmp_path: Path) -> str:
    git(repo, "commit", "-q", "-am", "change")
    comment = tmp_path / "comment.md"
    result = runner.invoke(
        app, ["plan", "jetstream2", "--compare", "base", "--markdown", str(comment), "-C", str(repo)]
    )
    assert result.exit_code == 0, result.output
    return comment.read_text()


def _line(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("- ") and f"`{name}`" in line)


def test_a_label_fixed_at_creation_is_said_to_have_no_effect_on_the_running_cluster(
    repo: Path, tmp_path: Path
) -> None:
    edit_site(repo, "    autoscaling: true\n", "    autoscaling: true\n    boot_volume_size_gb: 40\n")
    text = _comment(repo, tmp_path)

    template = _line(text, "pythia-binder-template")
    assert "`labels.boot_volume_size`: fixed when the cluster was created" in template
    assert "**no effect on the running cluster**" in template
    assert "upgrades the running cluster" not in template
    assert "✏️ update `pythia-binder-cluster`" in text and "cluster_template_id" in text
    comparison = compare("jetstream2", repo, "base")
    assert find_dangerous(comparison.layers) == [], "a new template the cluster moves to harms nobody"


def test_a_new_image_is_called_an_upgrade_and_needs_allow_upgrade(repo: Path, tmp_path: Path) -> None:
    edit_site(
        repo,
        "    control_plane:\n",
        "    image: ubuntu-jammy-kube-v1.34.1-260301-1200\n    control_plane:\n",
    )
    text = _comment(repo, tmp_path)

    template = _line(text, "pythia-binder-template")
    assert "**upgrades the running cluster**: every node group's nodes are replaced one at a time" in template
    assert "`--allow-upgrade`" in template
    comparison = compare("jetstream2", repo, "base")
    assert [d.name for d in find_dangerous(comparison.layers)] == ["cluster:upgrade"]


def test_a_default_worker_flavor_change_is_said_to_replace_the_cluster(repo: Path, tmp_path: Path) -> None:
    edit_site(repo, "flavor: m3.quad", "flavor: m3.medium")
    text = _comment(repo, tmp_path)

    cluster = _line(text, "pythia-binder-cluster")
    assert cluster.startswith("- ⚠️ **REPLACE** `pythia-binder-cluster`")
    assert "`flavor` is `default-worker`'s, fixed when the cluster is created: a new cluster" in cluster


def test_an_autoscaled_default_worker_range_says_how_to_set_it(repo: Path, tmp_path: Path) -> None:
    path = repo / "Pulumi.jetstream2.yaml"
    text = path.read_text()
    old = "      flavor: m3.quad\n      min_count: 1\n      max_count: 1\n"
    assert old in text
    path.write_text(text.replace(old, "      flavor: m3.quad\n      min_count: 1\n      max_count: 3\n"))
    comment = _comment(repo, tmp_path)

    assert "No changes." in comment, "nothing Pulumi sends changes: the range lives on the group"
    assert (
        "`openstack coe nodegroup update pythia-binder default-worker replace min_node_count=1 "
        "max_node_count=3`" in comment
    )


def test_a_longer_wait_is_no_change_to_the_cluster(repo: Path) -> None:
    """create_timeout is ForceNew in the provider and ignored by the driver: the wait is Pulumi's alone,
    so changing it must not plan a new cluster (it once did)."""
    edit_site(repo, "create_timeout_minutes: 60", "create_timeout_minutes: 120")
    git(repo, "commit", "-q", "-am", "wait longer")

    comparison = compare("jetstream2", repo, "base")
    cluster = next(layer for layer in comparison.layers if layer.layer == "cluster")
    assert cluster.has_changes is False
    assert find_dangerous(comparison.layers) == []


def test_a_new_flavor_shows_what_up_would_refuse_and_the_safe_sequence(repo: Path) -> None:
    edit_site(repo, "flavor: m3.large", "flavor: m3.xl")
    first = compare("jetstream2", repo, "base")
    refusals = [n for n in first.notes if n.startswith("`up` would refuse this")]
    assert len(refusals) == 1
    assert "add a new group beside user-m3.large, then remove user-m3.large once it is idle" in refusals[0]

    # The safe sequence: a new group beside the old one is only a create, which `up` lets through...
    edit_site(repo, "flavor: m3.xl", "flavor: m3.large")
    path = repo / "Pulumi.jetstream2.yaml"
    text = path.read_text()
    marker = "    node_groups:\n"
    beside = (
        "      - name: user-m3.xl\n        flavor: m3.xl\n        min_count: 1\n        max_count: 4\n"
        "        autoscale: true\n"
    )
    path.write_text(text.replace(marker, marker + beside, 1))
    second = compare("jetstream2", repo, "base")
    assert not [n for n in second.notes if n.startswith("`up` would refuse this")]
    ops = {c.name: c.op.value for layer in second.layers for c in layer.changes}
    assert ops.get("pythia-binder-nodegroup-user-m3.xl") == "create"
