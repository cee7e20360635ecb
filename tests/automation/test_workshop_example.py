"""docs/examples/workshop_site.py works: its config validates, it previews both layers, and without
the Pulumi CLI it stops with one line and exit code 5."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from jetstream_binderhub.automation import Layer
from jetstream_binderhub.automation import testing as t


@pytest.fixture
def example(repo_root: Path) -> ModuleType:
    path = repo_root / "docs" / "examples" / "workshop_site.py"
    spec = importlib.util.spec_from_file_location("workshop_site", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workshop_site_previews_both_layers(
    example: ModuleType, tmp_path: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        existing=set(),
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        },
    )
    site = example.workshop_site(
        "summer", users=60, work_dir=tmp_path / "summer", env=ready_env, stacks=stacks
    )
    result = site.preview()

    assert [r.layer for r in result.layers] == [Layer.CLUSTER, Layer.BINDERHUB]
    cluster = yaml.safe_load((tmp_path / "summer" / "cluster" / "Pulumi.summer.yaml").read_text())
    group = cluster["config"]["jetstream-binderhub:cluster"]["node_groups"][0]
    assert group["max_count"] == 5, "60 users at about 14 per m3.large"
    hub = yaml.safe_load((tmp_path / "summer" / "binderhub" / "Pulumi.summer.yaml").read_text())
    assert (
        hub["config"]["jetstream-binderhub-hub:binderhub"]["host"]
        == "summer.cis230085.projects.jetstream-cloud.org"
    )


def test_without_the_cli_the_example_names_every_missing_piece_one_line_each(
    repo_root: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OS_", "PULUMI_"))},
        "HOME": str(tmp_path),
        "PATH": str(empty),
    }
    proc = subprocess.run(
        [sys.executable, str(repo_root / "docs" / "examples" / "workshop_site.py")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 5
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == (
        "error: the Pulumi CLI (`pulumi`) is not on PATH: install it from https://www.pulumi.com/docs/install/ "
        "(the offline `plan` command needs no CLI)"
    )
    assert [line.split(":", 2)[1].strip() for line in lines[1:]] == [
        "no passphrase for the stacks' secrets",
        "no OpenStack credentials",
    ], "every missing piece in one run, in the order a user fixes them"
