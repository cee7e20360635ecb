"""Help stays fast: no command's --help imports Pulumi (its import alone costs more than the budget)."""

from __future__ import annotations

import subprocess
import sys

COMMANDS = ["plan", "preview", "up", "destroy", "refresh", "outputs", "kubeconfig"]


def test_no_help_imports_pulumi() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from jetstream_binderhub.cli import app\n"
        "runner = CliRunner()\n"
        f"for command in {COMMANDS!r}:\n"
        "    result = runner.invoke(app, [command, '--help'])\n"
        "    assert result.exit_code == 0, (command, result.output)\n"
        "    assert '--layer' in result.output or command == 'plan', command\n"
        "print(sorted(m for m in sys.modules if m == 'pulumi' or m.startswith(('pulumi.', 'pulumi_'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_root_help_lists_every_command() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jetstream_binderhub.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in COMMANDS:
        assert command in proc.stdout
