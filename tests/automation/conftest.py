from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def fake_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `pulumi` on PATH backed by fake_pulumi_cli.py; returns its scripted directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(f"#!{sys.executable}\n" + (HERE / "fake_pulumi_cli.py").read_text())
    script.chmod(0o755)
    scripted = tmp_path / "fake-pulumi"
    scripted.mkdir()
    monkeypatch.setenv("FAKE_PULUMI_DIR", str(scripted))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    return scripted
