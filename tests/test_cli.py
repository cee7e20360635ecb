"""The CLI as users drive it: through the real Typer app and its entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from jetstream_binderhub.cli import app

runner = CliRunner()


def test_plan_text_shows_tree_options_outputs_and_cost(repo_root: Path) -> None:
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(repo_root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "openstack:containerinfra/cluster:Cluster  pythia-binder-cluster  [protect;" in out
    assert "openstack:containerinfra/nodeGroup:NodeGroup  pythia-binder-nodegroup-user-m3.large" in out
    assert "ignore_changes=[docker_volume_size, node_count]; depends_on=[pythia-binder-cluster]" in out
    assert "labels.capi_helm_chart_version = 0.16.0" in out
    assert "kubeconfig = [secret]" in out
    assert "user-m3.large" in out and "user-m3-large" in out
    assert "at minimum size 22 SU/h" in out
    assert "at maximum size 166 SU/h" in out


def test_plan_json_is_the_same_plan(repo_root: Path) -> None:
    result = runner.invoke(app, ["plan", "jetstream2", "--json", "-C", str(repo_root)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    cluster = next(layer for layer in data["layers"] if layer["layer"] == "cluster")
    by_name = {r["name"]: r for r in cluster["resources"]}
    assert by_name["pythia-binder-cluster"]["options"]["protect"] is True
    assert by_name["pythia-binder-nodegroup-user-m3.large"]["inputs"]["max_node_count"] == 10
    outputs = {o["name"]: o for o in cluster["outputs"]}
    assert outputs["kubeconfig"] == {"name": "kubeconfig", "value": "[secret]", "secret": True}
    assert data["cost"]["min_per_hour"] == 22
    assert data["cost"]["max_per_hour"] == 166


def test_plan_finds_the_project_from_a_subdirectory(repo_root: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(repo_root / "docs")
    result = runner.invoke(app, ["plan", "jetstream2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["site"] == "jetstream2"


def test_bad_site_file_exits_2_naming_the_key(site_dir: Callable[..., Path]) -> None:
    root = site_dir(
        cluster={
            "cluster": {
                "name": "pythia",
                "control_plane": {"count": 2},
                "node_groups": [{"name": "users", "flavor": "m3.large", "min_count": 0}],
            }
        }
    )
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(root)])
    assert result.exit_code == 2
    assert "cluster.control_plane.count: must be odd" in result.output
    assert (
        "cluster.node_groups[0].min_count: must be at least 1: Magnum's Cluster API driver" in result.output
    )
    assert "Traceback" not in result.output
    assert "Layer cluster" not in result.output, "nothing is planned when the config is wrong"


def test_malformed_yaml_exits_2(site_dir: Callable[..., Path]) -> None:
    root = site_dir(raw="config:\n  jetstream-binderhub:cluster: [unclosed\n")
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(root)])
    assert result.exit_code == 2
    assert "not valid YAML at line" in result.output


def test_unknown_site_exits_2_and_lists_sites(site_dir: Callable[..., Path]) -> None:
    root = site_dir()
    result = runner.invoke(app, ["plan", "nowhere", "-C", str(root)])
    assert result.exit_code == 2
    assert "no site 'nowhere'" in result.output
    assert "sites here: jetstream2" in result.output


def test_entry_point_runs_and_help_lists_plan() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jetstream_binderhub.cli", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert "plan" in proc.stdout


def test_help_does_not_import_pulumi() -> None:
    code = "import sys; from jetstream_binderhub.cli import app; print('pulumi' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def test_plaintext_openstack_secret_in_site_file_is_refused(site_dir: Callable[..., Path]) -> None:
    root = site_dir(
        raw=(
            "config:\n"
            "  openstack:applicationCredentialSecret: s3cr3t-app-cred\n"
            "  jetstream-binderhub:cluster:\n"
            "    name: pythia\n"
        )
    )
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(root)])
    assert result.exit_code == 2
    assert "openstack:applicationCredentialSecret: is a credential stored in plain text" in result.output
    assert "s3cr3t-app-cred" not in result.output


def test_encrypted_openstack_secret_is_accepted_and_never_shown(site_dir: Callable[..., Path]) -> None:
    root = site_dir(
        raw=(
            "encryptionsalt: v1:abc\n"
            "config:\n"
            "  openstack:applicationCredentialSecret:\n"
            "    secure: v1:ZmFrZS1jaXBoZXJ0ZXh0\n"
            "  jetstream-binderhub:cluster:\n"
            "    name: pythia\n"
        )
    )
    result = runner.invoke(app, ["plan", "jetstream2", "--json", "-C", str(root)])
    assert result.exit_code == 0, result.output
    assert "ZmFrZS1jaXBoZXJ0ZXh0" not in result.output
