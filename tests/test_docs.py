"""The Python in docs/*.md runs as written: every block compiles, defines or imports every name it uses,
and its imports resolve; blocks marked `<!-- snippet: run -->` are executed offline in a copy of the repo."""

from __future__ import annotations

import builtins
import importlib
import re
import shutil
import symtable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN_MARKER = "<!-- snippet: run -->"

ELSEWHERE = {"dask_gateway", "dask", "distributed"}
"""Packages of snippets meant for a notebook inside a binder, not for this project's environment."""

_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int
    code: str
    run: bool

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def snippets() -> list[Snippet]:
    found = []
    for page in sorted((REPO_ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            line = text.count("\n", 0, match.start()) + 1
            found.append(Snippet(page.name, line, match.group(1), before == RUN_MARKER))
    return found


SNIPPETS = snippets()


def _bound_and_used(table: symtable.SymbolTable) -> tuple[set[str], set[str]]:
    """Names the module binds, and names any scope reads from the module or builtins."""
    bound = {s.get_name() for s in table.get_symbols() if s.is_assigned() or s.is_imported()}
    bound |= {child.get_name() for child in table.get_children()}
    used: set[str] = set()
    stack = [table]
    while stack:
        scope = stack.pop()
        stack.extend(scope.get_children())
        for sym in scope.get_symbols():
            if not sym.is_referenced():
                continue
            if scope is table or sym.is_global():
                used.add(sym.get_name())
    return bound, used


def test_the_docs_have_python_snippets_and_one_runs() -> None:
    assert any(s.page == "python-api.md" for s in SNIPPETS)
    assert any(s.run for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=str)
def test_snippet_names_everything_it_uses_and_its_imports_resolve(snippet: Snippet) -> None:
    compile(snippet.code, str(snippet), "exec")
    bound, used = _bound_and_used(symtable.symtable(snippet.code, str(snippet), "exec"))
    undefined = sorted(used - bound - set(dir(builtins)))
    assert undefined == [], f"{snippet}: uses {undefined} without importing or defining them"
    for module in re.findall(r"^\s*(?:from\s+(\S+)\s+import|import\s+(\S+))", snippet.code, re.M):
        name = module[0] or module[1]
        if name.split(".")[0] not in ELSEWHERE:
            importlib.import_module(name)


@pytest.mark.parametrize("snippet", [s for s in SNIPPETS if s.run], ids=str)
def test_runnable_snippet_runs_offline_in_a_checkout(
    snippet: Snippet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("Pulumi.yaml", "Pulumi.jetstream2.yaml"):
        shutil.copy(REPO_ROOT / name, checkout / name)
    for name in ("infra", "binderhub"):
        shutil.copytree(REPO_ROOT / name, checkout / name, ignore=ignore)
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    exec(compile(snippet.code, str(snippet), "exec"), {"__name__": "__snippet__"})


def _command_lines() -> list[tuple[str, str]]:
    """(where, command line) of every `jetstream-binderhub ...` line in the docs' and README's code blocks."""
    pages = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    found = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S):
            for offset, line in enumerate(block.group(1).splitlines()):
                command = line.split(" #", 1)[0].strip()
                if command.startswith("jetstream-binderhub "):
                    where = f"{page.name}:{text.count(chr(10), 0, block.start()) + 2 + offset}"
                    found.append((where, command))
    return found


COMMAND_LINES = _command_lines()


def test_the_docs_show_commands() -> None:
    assert any("quickstart.md" in where for where, _ in COMMAND_LINES)


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_documented_command_lines_name_real_commands_and_options(where: str, line: str) -> None:
    """A quickstart that says `up --layers` or `deploy` would stop a newcomer at the first step."""
    import shlex

    import typer.main

    from jetstream_binderhub.cli import app

    words = shlex.split(line)
    commands = typer.main.get_group(app).commands
    assert words[1] in commands, f"{where}: no command {words[1]!r}"
    options = {name for param in commands[words[1]].params for name in getattr(param, "opts", [])}
    options |= {"--help"}
    for word in words[2:]:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in options, f"{where}: `{words[1]}` has no option {word}"


def test_the_quickstart_costs_are_the_shipped_sites() -> None:
    """The quickstart quotes the shipped site's SU rates; a change to its sizes must update them."""
    from jetstream_binderhub.plan.cost import estimate
    from jetstream_binderhub.plan.render import amount
    from jetstream_binderhub.plan.site import load_cluster_file
    from jetstream_binderhub.profiles import load_profile

    _, cluster = load_cluster_file(REPO_ROOT, "jetstream2")
    cost = estimate(cluster.cluster, load_profile(cluster.profile))
    text = " ".join((REPO_ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8").split())
    assert f"{amount(cost.min_per_hour)} SU/h at minimum size" in text
    assert f"{amount(cost.max_per_hour)} SU/h with all" in text
    assert f"about {round(cost.min_per_year, -3):,.0f} SU a year" in text
