"""size: user nodes per flavor for a workshop, from the site's guarantees and the profile's catalog."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jetstream_binderhub.cli import app
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.ops.size import kubespawner_bytes, size_site

runner = CliRunner()


CLUSTER_FILE = """\
# A workshop site (test copy): the numbers below are the ones the assertions use.
config:
  jetstream-binderhub:profile: jetstream2
  jetstream-binderhub:cluster:
    name: pythia-binder
    control_plane:
      # 8 SU/h
      flavor: m3.medium
      count: 1
    default_worker:
      flavor: m3.quad   # 4 SU/h, the core group
      min_count: 1
      max_count: 1
    node_groups:
      # User servers and builds.
      - name: user-m3.large
        flavor: m3.large
        min_count: 1
        max_count: 10
        autoscale: true
    autoscaling: true
"""


@pytest.fixture
def project(project: Path) -> Path:
    """The shipped site's files with the sizes the assertions use, whatever the shipped site says today."""
    (project / "Pulumi.jetstream2.yaml").write_text(CLUSTER_FILE)
    edit_hub(project, cpu_guarantee=1, cpu_limit=4, memory_guarantee="4G", memory_limit="8G")
    path = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    bh = doc["config"]["jetstream-binderhub-hub:binderhub"]
    bh.setdefault("builder", {})["daemon_resources"] = {"cpu_request": 0.5, "memory_request": "1Gi"}
    bh.setdefault("limits", {})["total_quota"] = 120
    path.write_text(yaml.safe_dump(doc))
    return project


def edit_hub(project: Path, **resources: object) -> None:
    path = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    bh = doc["config"]["jetstream-binderhub-hub:binderhub"]
    bh["jupyterhub"]["user_resources"].update(resources)
    path.write_text(yaml.safe_dump(doc))


def test_an_m3_large_holds_14_users_of_4g_limited_by_memory(project: Path) -> None:
    result = size_site("jetstream2", project, users=60, hours=8)
    assert result.current is not None
    large = result.current
    # 60 GiB - 0.5 GiB system - 1 GiB builder daemon = 58.5 GiB; at 4 GiB (KubeSpawner's G) each: 14.
    assert (large.flavor, large.users_per_node, large.limited_by, large.nodes) == (
        "m3.large",
        14,
        "memory",
        5,
    )
    # control plane m3.medium (8) + default-worker m3.quad (4) + 5 x m3.large (16 each)
    assert (result.fixed_su_per_hour, large.user_su_per_hour, large.site_su_per_hour) == (12, 80, 92)
    assert large.workshop_su == 92 * 8
    assert result.covers is True and result.max_count == 10
    # The catalog's smallest flavor is below the driver's minimum; GPU and large-memory flavors are not candidates.
    names = [c.flavor for c in result.candidates]
    assert "m3.tiny" not in names and not any(n.startswith(("g3", "r3")) for n in names)


def test_cpu_guarantees_make_cpu_the_limit(project: Path) -> None:
    edit_hub(project, cpu_guarantee=2, cpu_limit=4, memory_guarantee="1G", memory_limit="8G")
    result = size_site("jetstream2", project, users=30)
    assert result.current is not None
    # 16 - 0.25 - 0.5 = 15.25 cores; 2 each: 7 users per node, 5 nodes for 30.
    assert (result.current.users_per_node, result.current.limited_by, result.current.nodes) == (7, "cpu", 5)
    assert result.current.workshop_su is None


def test_too_many_users_for_max_count_and_total_quota_are_both_said(project: Path) -> None:
    result = size_site("jetstream2", project, users=200)
    assert result.current is not None and result.current.nodes == 15
    assert result.covers is False
    assert any("total_quota is 120" in note for note in result.notes)


def test_write_raises_max_count_and_keeps_every_comment(project: Path) -> None:
    path = project / "Pulumi.jetstream2.yaml"
    before = path.read_text()
    code = runner.invoke(app, ["size", "jetstream2", "--users", "200", "--write", "-C", str(project)])
    assert code.exit_code == 0, code.output
    after = path.read_text()
    comments = [line.strip() for line in before.splitlines() if line.strip().startswith("#")]
    assert comments and all(c in after for c in comments)
    assert after.replace("max_count: 15", "max_count: 10") == before
    assert "wrote max_count 15" in code.stdout
    again = size_site("jetstream2", project, users=200)
    assert again.covers is True and again.max_count == 15


def test_write_changes_nothing_when_max_count_covers_it(project: Path) -> None:
    path = project / "Pulumi.jetstream2.yaml"
    before = path.read_text()
    code = runner.invoke(app, ["size", "jetstream2", "--users", "20", "--write", "-C", str(project)])
    assert code.exit_code == 0
    assert "nothing written" in code.stdout
    assert path.read_text() == before


def test_write_is_undone_when_the_file_would_no_longer_validate(project: Path) -> None:
    path = project / "Pulumi.jetstream2.yaml"
    text = (
        path.read_text()
        .replace("autoscaling: true", "autoscaling: false")
        .replace("max_count: 10\n        autoscale: true", "max_count: 1\n        autoscale: false")
    )
    path.write_text(text)
    code = runner.invoke(app, ["size", "jetstream2", "--users", "200", "--write", "-C", str(project)])
    assert code.exit_code == 2
    assert "autoscale is false" in code.stderr
    assert path.read_text() == text


def test_no_guarantee_at_all_is_a_config_error_naming_the_key(project: Path) -> None:
    edit_hub(project, cpu_guarantee=None, memory_guarantee=None)
    with pytest.raises(ConfigError, match=r"binderhub\.jupyterhub\.user_resources"):
        size_site("jetstream2", project, users=10)


def test_json_lists_candidates_and_assumptions(project: Path) -> None:
    code = runner.invoke(
        app, ["size", "jetstream2", "-n", "60", "--hours", "3", "--json", "-C", str(project)]
    )
    assert code.exit_code == 0, code.output
    data = json.loads(code.stdout)
    assert data["current"]["flavor"] == "m3.large" and data["current"]["workshop_su"] == 276
    assert data["assumptions"] and data["written"] is None


def test_the_builder_daemons_requests_come_off_every_user_node(project: Path) -> None:
    path = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["jetstream-binderhub-hub:binderhub"]["builder"]["daemon_resources"] = {
        "cpu_request": 2,
        "memory_request": "10G",
    }
    path.write_text(yaml.safe_dump(doc))
    result = size_site("jetstream2", project, users=60)
    assert result.current is not None
    # 60 GiB - 0.5 GiB - 10 GB (Kubernetes' G is 10^9) = 50.19 GiB: 12 users of 4 GiB.
    assert result.current.users_per_node == 12
    assert result.current.allocatable_cpu == 13.75


def test_kubespawner_reads_g_as_gibibytes() -> None:
    assert kubespawner_bytes("4G") == 4 * 2**30
    assert kubespawner_bytes("512M") == 512 * 2**20
    assert kubespawner_bytes("1.5Gi") == 1.5 * 2**30
