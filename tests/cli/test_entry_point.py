"""The installed entry point itself, in a process of its own: what CliRunner cannot see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_real_entry_point_writes_the_whole_plan_before_it_leaves(repo_root: Path) -> None:
    # `main` skips the interpreter's teardown after an offline plan: everything must still reach a
    # pipe (block-buffered, as it is unless PYTHONUNBUFFERED says otherwise), and the exit status must be
    # the plan's.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run(
        [sys.executable, "-m", "jetstream_binderhub.cli", "plan", "jetstream2", "--json"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [layer["layer"] for layer in plan["layers"]] == ["cluster", "binderhub"]
    bad = subprocess.run(
        [sys.executable, "-m", "jetstream_binderhub.cli", "plan", "no-such-site"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "no-such-site" in bad.stderr
