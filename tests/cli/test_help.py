"""Help stays fast: no command's --help imports Pulumi (its import alone costs more than the budget)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.cli import app

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


OPS_COMMANDS = ["verify", "cost", "size", "preflight", "upgrade"]


def test_no_operations_help_imports_pulumi_or_a_network_client() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from jetstream_binderhub.cli import app\n"
        "runner = CliRunner()\n"
        f"for command in {OPS_COMMANDS!r}:\n"
        "    result = runner.invoke(app, [command, '--help'])\n"
        "    assert result.exit_code == 0, (command, result.output)\n"
        "heavy = ('pulumi', 'httpx', 'openstack', 'keystoneauth1', 'ruamel')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m.startswith('pulumi_')))\n"
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
    for command in COMMANDS + OPS_COMMANDS:
        assert command in proc.stdout


def _help_words() -> set[str]:
    """Every word of every command's own help texts, as the user should see it, whole."""
    import typer.main

    group = typer.main.get_group(app)
    words: set[str] = set()
    for command in group.commands.values():
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        # Shown defaults too: `[default: gh/binder-` / `examples/requirements/HEAD]` is as unusable.
        texts += [p.default for p in command.params if isinstance(p.default, str) and p.default]
        for text in texts:
            words.update(text.split())
    return words


@pytest.mark.parametrize("columns", ["80", "100", "140"])
def test_help_never_cuts_or_splits_a_word(columns: str) -> None:
    """`PULUMI_CONFIG_PASSPHRA…` or `jetstream-` / `binderhub-<site>.yaml` on two lines are unusable."""
    runner = CliRunner()
    shown: set[str] = set()
    for command in COMMANDS + OPS_COMMANDS:
        result = runner.invoke(app, [command, "--help"], env={"COLUMNS": columns})
        assert result.exit_code == 0, result.output
        assert "…" not in result.output and "..." not in result.output.replace("?...", ""), result.output
        shown.update(word.removesuffix("]") for word in result.output.split())
    root = runner.invoke(app, ["--help"], env={"COLUMNS": columns})
    assert "..." not in root.output.replace("[ARGS]...", ""), root.output
    assert sorted(_help_words() - shown) == []


def test_help_paragraphs_are_reflowed_not_broken_mid_sentence() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["up", "--help"], env={"COLUMNS": "80"})
    # The docstring's own line break fell after "stops after the"; the help must rewrap it.
    assert "Ctrl-C stops after the operations in flight." in " ".join(result.output.split())
    for line in result.output.splitlines():
        text = line.strip()
        if text.startswith("Ctrl-C") or text.endswith("stops after the"):
            assert not text.endswith("the"), line


@pytest.mark.parametrize("command", ["outputs", "kubeconfig"])
def test_read_only_commands_do_not_offer_a_secrets_provider(command: str) -> None:
    """They never create a stack, so `--secrets-provider ... for stacks created now` would mislead."""
    result = CliRunner().invoke(app, [command, "--help"])
    assert "--secrets-provider" not in result.output
