"""Mistakes a newcomer makes first, through the real CLI: each gets a message that says what to fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from jetstream_binderhub.cli import app

runner = CliRunner()


def plan(root: Path, site: str = "jetstream2", *extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["plan", site, "-C", str(root), *extra])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_yaml_error_gives_the_parsers_reason_line_and_column(site_dir: Callable[..., Path]) -> None:
    root = site_dir(raw="config:\n  jetstream-binderhub:cluster: [unclosed\n")
    code, out = plan(root)
    assert code == 2
    assert "not valid YAML at line 3, column 1: " in out
    assert "expected ',' or ']'" in out  # the parser's reason (libyaml says "did not find expected ...")
    assert "while parsing a flow sequence at line 2" in out
    assert "Pulumi.jetstream2.yaml" in out
    assert "tab" not in out


def test_yaml_error_from_a_tab_says_tab(site_dir: Callable[..., Path]) -> None:
    root = site_dir(raw="config:\n  jetstream-binderhub:cluster:\n\tname: pythia\n")
    code, out = plan(root)
    assert code == 2
    assert "line 3, column 1" in out
    assert "indented with a tab: YAML indents with spaces only" in out


def test_file_without_config_key_says_so(site_dir: Callable[..., Path]) -> None:
    root = site_dir(raw="jetstream-binderhub:cluster:\n  name: pythia\n")
    code, out = plan(root)
    assert code == 2
    assert "has no top-level `config:` key" in out
    assert "indent 'jetstream-binderhub:cluster'" in out
    assert "required key is missing" not in out


def test_pattern_error_says_in_words_what_is_expected(project: Path) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    hub_file.write_text(hub_file.read_text().replace("allocation: see240014", "allocation: SEE240014"))
    code, out = plan(project)
    assert code == 2
    assert f"invalid configuration in {hub_file}" in out
    assert "dns.allocation: must be the allocation id in lowercase letters" in out
    assert "or set dns.zone instead (got 'SEE240014')" in out
    assert "should match pattern" not in out


def test_unknown_profile_names_the_file(site_dir: Callable[..., Path]) -> None:
    root = site_dir(cluster={"profile": "aws", "cluster": {"name": "pythia"}})
    code, out = plan(root)
    assert code == 2
    assert f"invalid configuration in {root / 'Pulumi.jetstream2.yaml'}:" in out
    assert "profile: unknown site profile 'aws' (available: jetstream2" in out


@pytest.mark.parametrize("command", sorted(typer.main.get_group(app).commands))
def test_no_site_outside_the_repository_mentions_dash_c(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    required = {
        "up": ["--yes"],
        "size": ["--users", "10"],
        "upgrade": ["--image", "x", "--yes"],
    }  # options without which typer stops first
    result = runner.invoke(app, [command, "jetstream2", *required.get(command, [])])
    assert result.exit_code == 2
    assert "no site 'jetstream2'" in result.output
    assert "not inside a jetstream-binderhub repository: run this there, or pass -C DIR" in result.output


def test_no_site_inside_the_repository_does_not_talk_about_dash_c(site_dir: Callable[..., Path]) -> None:
    code, out = plan(site_dir(), "nowhere")
    assert code == 2
    assert "sites here: jetstream2" in out and "-C" not in out
