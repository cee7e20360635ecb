"""Shared fixtures. The one mocks fixture is `plan_cluster`: it runs the real cluster program under
Pulumi's mock runtime (preview=False, so apply callbacks run) through the same runner the CLI uses."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.automation.testing import READY_ENV
from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT
from jetstream_binderhub.plan.model import LayerPlan

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def shipped_cluster_config() -> dict[str, Any]:
    """The shipped jetstream2 site's cluster config, as a fresh mutable dict (namespace stripped)."""
    doc = yaml.safe_load((REPO_ROOT / "Pulumi.jetstream2.yaml").read_text())
    prefix = f"{CLUSTER_PROJECT}:"
    return copy.deepcopy(
        {k.removeprefix(prefix): v for k, v in doc["config"].items() if k.startswith(prefix)}
    )


@pytest.fixture
def cluster_config() -> dict[str, Any]:
    return shipped_cluster_config()


@pytest.fixture
def plan_cluster() -> Callable[[dict[str, Any]], LayerPlan]:
    from jetstream_binderhub.infra.program import cluster_program
    from jetstream_binderhub.plan.runner import run_layer

    def run(config: dict[str, Any], stack: str = "jetstream2") -> LayerPlan:
        flat = {
            f"{CLUSTER_PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()
        }
        layer, _ = run_layer(
            cluster_program, layer="cluster", project=CLUSTER_PROJECT, stack=stack, config=flat
        )
        return layer

    return run


@pytest.fixture
def site_dir(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the project skeleton with a site file written from a dict: for CLI tests on bad input."""

    def make(site: str = "jetstream2", cluster: dict[str, Any] | None = None, raw: str | None = None) -> Path:
        root = tmp_path / "project"
        if not root.exists():
            shutil.copytree(REPO_ROOT / "infra", root / "infra")
            shutil.copy(REPO_ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        text = raw
        if text is None:
            cfg = cluster if cluster is not None else shipped_cluster_config()
            text = yaml.safe_dump({"config": {f"{CLUSTER_PROJECT}:{k}": v for k, v in cfg.items()}})
        (root / f"Pulumi.{site}.yaml").write_text(text)
        return root

    return make


@pytest.fixture
def project(repo_root: Path, tmp_path: Path) -> Path:
    """For Site and CLI tests (no Pulumi CLI needed): the shipped site's two projects and stack files, copied so that state and writes stay in tmp."""
    dest = tmp_path / "repo"
    dest.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.jetstream2.yaml"):
        shutil.copy(repo_root / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(repo_root / "infra", dest / "infra", ignore=ignore)
    shutil.copytree(repo_root / "binderhub", dest / "binderhub", ignore=ignore)
    return dest


@pytest.fixture
def ready_env() -> dict[str, str]:
    return dict(READY_ENV)
