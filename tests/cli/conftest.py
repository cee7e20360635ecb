"""Fixtures for Site tests: a copy of the repository's projects and an environment that passes
every preflight check. Nothing here needs the Pulumi CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jetstream_binderhub.automation.testing import READY_ENV


@pytest.fixture
def project(repo_root: Path, tmp_path: Path) -> Path:
    """The shipped site's two projects and stack files, copied so that state and writes stay in tmp."""
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
