"""The `jetstream-binderhub` command: a thin layer over the library.

Commands import Pulumi and the providers inside their bodies so that `--help` and argument errors
stay fast (see scripts/benchmark.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer

from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError

app = typer.Typer(
    name="jetstream-binderhub",
    help="Stand up and run a BinderHub on Jetstream2 (OpenStack Magnum) with Pulumi.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

T = TypeVar("T")

SiteArg = Annotated[
    str,
    typer.Argument(
        help="Site name: the stack whose config is Pulumi.<site>.yaml (e.g. jetstream2).", show_default=False
    ),
]
ProjectDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        "-C",
        help="Repository holding Pulumi.yaml (default: the nearest one above the current directory).",
        file_okay=False,
    ),
]


@app.callback()
def _root() -> None:
    """Stand up and run a BinderHub on Jetstream2 (OpenStack Magnum) with Pulumi."""


def fail(lines: list[str], code: int) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def run_or_exit(fn: Callable[[], T]) -> T:
    """Turn domain errors into messages and exit codes; never a traceback for the user's mistakes."""
    try:
        return fn()
    except ConfigError as exc:
        where = f" in {exc.source}" if exc.source else ""
        fail([f"error: invalid configuration{where}:", *(f"  {line}" for line in exc.lines())], exc.exit_code)
    except JetstreamBinderHubError as exc:
        fail([f"error: {exc}"], exc.exit_code)


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` with the cluster layer's Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file() and (candidate / "infra").is_dir():
            return candidate
    return here


@app.command()
def plan(
    site: SiteArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as JSON for machines.")] = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Plan a site offline: run the real programs under Pulumi's mocks, no cloud or credentials needed.

    Shows every resource with its key inputs and options, the outputs (secrets masked) and the
    allocation cost at minimum and maximum size.
    """
    from jetstream_binderhub.plan.render import render_json, render_text
    from jetstream_binderhub.plan.site import plan_site

    root = project_dir or find_project_dir()
    result = run_or_exit(lambda: plan_site(site, root))
    sys.stdout.write(render_json(result) if json_output else render_text(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
