"""The `jetstream-binderhub` command: a thin layer over the library.

Commands import Pulumi and the providers inside their bodies so that `--help` and argument errors
stay fast (see scripts/benchmark.py). Every domain error becomes one line on stderr and its exit code
(docs/cli.md lists them); nothing the user can fix ends in a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError, SiteNotFound

if TYPE_CHECKING:
    from jetstream_binderhub.automation.progress import Progress
    from jetstream_binderhub.automation.results import Layer, LayerResult, SiteResult
    from jetstream_binderhub.automation.site import Site
    from jetstream_binderhub.ops.preflight import PreflightResult

app = typer.Typer(
    name="jetstream-binderhub",
    help="Stand up and run a BinderHub on Jetstream2 (OpenStack Magnum) with Pulumi.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Wide terminals get wide help (click stops at 80 columns otherwise).
    context_settings={"max_content_width": 120},
    # Click's plain help reflows docstring paragraphs and wraps instead of cutting values with '…';
    # Typer's rich mode kept the docstrings' line breaks and truncated long values at 80 columns.
    rich_markup_mode=None,
)

T = TypeVar("T")

INTERRUPTED_EXIT = 130


class LayerName(StrEnum):
    cluster = "cluster"
    binderhub = "binderhub"
    all = "all"


def _site_name(value: str) -> str:
    # Every command, before anything builds a path from the name (`../x` once wrote outside the sites).
    from jetstream_binderhub.naming import site_name_problem

    problem = site_name_problem(value)
    if problem is not None:
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    return value


SiteArg = Annotated[
    str,
    typer.Argument(
        help="Site name: the stack whose config is Pulumi.<site>.yaml (e.g. jetstream2).",
        metavar="SITE",
        show_default=False,
        callback=_site_name,
    ),
]
ProjectDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        "-C",
        help="Repository holding Pulumi.yaml (default: the nearest one above the current directory).",
        metavar="DIR",
        file_okay=False,
    ),
]
LayerOpt = Annotated[
    LayerName,
    typer.Option(
        "--layer",
        "-l",
        metavar="LAYER",
        help="Which layer: cluster (Magnum), binderhub (everything on Kubernetes) or all (cluster first).",
        case_sensitive=False,
    ),
]
BackendOpt = Annotated[
    str | None,
    typer.Option(
        "--backend",
        metavar="URL",
        help=(
            "Pulumi state backend: file://DIR, s3://BUCKET?... (Jetstream2's object store, see docs/cli.md) or "
            "https://api.pulumi.com. Default: $PULUMI_BACKEND_URL, else file://<repo>/.state."
        ),
        show_default=False,
    ),
]
SecretsProviderOpt = Annotated[
    str | None,
    typer.Option(
        "--secrets-provider",
        metavar="PROVIDER",
        help=(
            "Secrets provider for stacks created now: passphrase (default on file/S3 backends, needs "
            "PULUMI_CONFIG_PASSPHRASE_FILE or PULUMI_CONFIG_PASSPHRASE), default (Pulumi Cloud), or a KMS URL."
        ),
        show_default=False,
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress display; one summary line per layer.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="No progress display; print the result as JSON on stdout (for CI).")
]


@app.callback()
def _root() -> None:
    """Stand up and run a BinderHub on Jetstream2 (OpenStack Magnum) with Pulumi."""


def fail(lines: list[str], code: int) -> NoReturn:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def run_or_exit(fn: Callable[[], T], *, site_hint: str = "") -> T:
    """Turn domain errors into messages and exit codes; never a traceback for the user's mistakes.

    `site_hint` is added to a "no such site" error (see :func:`project_root`).
    """
    try:
        return fn()
    except SiteNotFound as exc:
        fail([f"error: {exc}{site_hint}"], exc.exit_code)
    except ConfigError as exc:
        where = f" in {exc.source}" if exc.source else ""
        fail([f"error: invalid configuration{where}:", *(f"  {line}" for line in exc.lines())], exc.exit_code)
    except JetstreamBinderHubError as exc:
        fail([f"error: {line}" for line in exc.error_lines or [str(exc)]], exc.exit_code)
    except KeyboardInterrupt:
        # Outside a running Pulumi command (those stop cleanly and raise Interrupted): nothing to stop.
        fail(["error: interrupted (Ctrl-C); nothing was left running"], INTERRUPTED_EXIT)


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` with the cluster layer's Pulumi.yaml."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file() and (candidate / "infra").is_dir():
            return candidate
    return here


def project_root(project_dir: Path | None) -> tuple[Path, str]:
    """The repository to work in, and what to add to a "no such site" error when it was guessed wrong."""
    if project_dir is not None:
        return project_dir, ""
    root = find_project_dir()
    if (root / "Pulumi.yaml").is_file():
        return root, ""
    return root, f"; {root} is not inside a jetstream-binderhub repository: run this there, or pass -C DIR"


# --- offline ------------------------------------------------------------------------------------


@app.command(short_help="Plan a site offline (no cloud, no credentials).")
def plan(
    site: SiteArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print the plan as JSON for machines.")] = False,
    compare: Annotated[
        str | None,
        typer.Option(
            "--compare",
            metavar="BASE",
            help=(
                "Show what changes from BASE (a git revision such as origin/main, a site file, or a project "
                "directory) to the working tree, as a pull-request comment. A plan of intent, not a diff "
                "against the live cloud."
            ),
            show_default=False,
        ),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown", metavar="FILE", help="With --compare: write the comment to FILE instead of stdout."
        ),
    ] = None,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Plan a site offline: run the real programs under Pulumi's mocks, no cloud or credentials needed.

    Shows every resource with its key inputs and options, the outputs (secrets masked) and the
    allocation cost at minimum and maximum size.
    """
    root, hint = project_root(project_dir)
    if compare is not None:
        _plan_compare(site, root, compare, markdown, json_output, hint)
        return
    if markdown is not None:
        fail(["error: --markdown needs --compare BASE (or use `preview --markdown` against the cloud)"], 2)
    from jetstream_binderhub.plan.render import render_json, render_text
    from jetstream_binderhub.plan.site import plan_site

    result = run_or_exit(lambda: plan_site(site, root), site_hint=hint)
    sys.stdout.write(render_json(result) if json_output else render_text(result))
    _planned_offline()


_OFFLINE_PLAN_DONE: list[bool] = []


def _planned_offline() -> None:
    """Mark that an offline plan finished: nothing is left to clean up but the interpreter itself."""
    _OFFLINE_PLAN_DONE.append(True)


def _plan_compare(
    site: str, root: Path, base: str, markdown: Path | None, json_output: bool, hint: str
) -> None:
    from jetstream_binderhub.plan.compare import compare, render_comparison

    comparison = run_or_exit(lambda: compare(site, root, base), site_hint=hint)
    if json_output:
        data = {
            "site": site,
            "base": comparison.base_label,
            "head": comparison.head_label,
            "plan_of_intent": True,
            "layers": [layer.model_dump(mode="json") for layer in comparison.layers],
            "cost": comparison.cost.model_dump(mode="json"),
            "notes": comparison.notes,
        }
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    text = render_comparison(comparison)
    if markdown is not None:
        from jetstream_binderhub.automation.comment import write_comment

        write_comment(markdown, text)
        typer.echo(
            f"wrote the plan-of-intent comment for {site} ({comparison.title}) to {markdown}", err=True
        )
    elif not json_output:
        sys.stdout.write(text)


# --- against the cloud --------------------------------------------------------------------------


def _default_kubeconfig(site: str) -> Path:
    """Where `kubeconfig SITE` writes and `cost`/`upgrade` read the cluster's kubeconfig by default."""
    return Path(f"~/.kube/jetstream-binderhub-{site}.yaml").expanduser()


def _open_site(
    site: str,
    project_dir: Path | None,
    backend: str | None,
    secrets_provider: str | None,
    progress: Progress | None,
) -> Site:
    from jetstream_binderhub.automation.site import Site

    root, hint = project_root(project_dir)
    return run_or_exit(
        lambda: Site.from_files(
            site, root, backend=backend, secrets_provider=secrets_provider, progress=progress
        ),
        site_hint=hint,
    )


def _environment_ready(
    site: str,
    project_dir: Path | None,
    backend: str | None,
    secrets_provider: str | None,
    layer: LayerName,
) -> None:
    """Stop, naming every missing piece of the environment at once, before any check that reaches the cloud."""
    opened = _open_site(site, project_dir, backend, secrets_provider, None)
    run_or_exit(lambda: opened.check_environment_for(layer.value))


def _on_site(
    site: str,
    project_dir: Path | None,
    backend: str | None,
    secrets_provider: str | None,
    quiet: bool,
    json_output: bool,
    operation: Callable[[Site], SiteResult],
) -> SiteResult:
    """Open the site with the live display (unless quiet or JSON) and run one operation on it."""
    with _progress(quiet, json_output) as display:
        opened = _open_site(site, project_dir, backend, secrets_provider, display)

        def attempt() -> SiteResult:
            try:
                return operation(opened)
            except JetstreamBinderHubError as exc:
                if exc.partial is not None:
                    # A layer was applied before another failed: say what was done before the error.
                    _report_partial(exc, quiet=quiet, json_output=json_output)
                raise

        return run_or_exit(attempt)


def _report_partial(exc: JetstreamBinderHubError, *, quiet: bool, json_output: bool) -> None:
    partial: SiteResult = exc.partial
    if json_output:
        data = partial.to_json()
        data["error"] = {"message": str(exc), "exit_code": exc.exit_code}
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return
    for line in _summary_lines(partial):
        typer.echo(line)


@contextmanager
def _progress(quiet: bool, json_output: bool) -> Iterator[Progress | None]:
    if quiet or json_output:
        yield None
        return
    from jetstream_binderhub.automation.progress import ConsoleProgress

    display = ConsoleProgress()
    try:
        yield display
    finally:
        display.close()


_LABELS = (
    ("create", "to create"),
    ("update", "to update"),
    ("replace", "to REPLACE"),
    ("delete", "to delete"),
)
_DONE_LABELS = (("create", "created"), ("update", "updated"), ("replace", "REPLACED"), ("delete", "deleted"))


def _summary_lines(result: SiteResult) -> list[str]:
    preview = result.operation == "preview"
    lines = []
    for layer in result.layers:
        if layer.skipped:
            lines.append(f"{layer.layer.value}: skipped: {layer.skipped}")
            continue
        counts = layer.counts
        labels = _LABELS if preview else _DONE_LABELS
        parts = [f"{counts.get(op, 0)} {label}" for op, label in labels]
        parts.append(f"{counts.get('same', 0)} unchanged")
        verb = {"preview": "would change", "up": "applied", "destroy": "destroyed", "refresh": "refreshed"}
        lines.append(
            f"{layer.layer.value} ({layer.stack}): {verb[result.operation]}: {', '.join(parts)} "
            f"[{layer.duration_seconds:.0f}s]"
        )
        if layer.cost is not None:
            lines.append(f"{layer.layer.value}: {layer.cost.line}")
    lines += [f"note: {note}" for note in result.all_notes]
    return lines


def _change_lines(result: SiteResult) -> list[str]:
    """Per-resource lines for a preview: replacements and deletions first, with the keys that change."""
    order = {"replace": 0, "delete": 1, "update": 2, "import": 3, "create": 4}
    mark = {"replace": "+-", "delete": "- ", "update": "~ ", "import": "= ", "create": "+ "}
    lines = []
    for layer in result.layers:
        if layer.changes is None:
            continue
        for change in sorted(layer.changes.changes, key=lambda c: order.get(c.op.value, 9)):
            if change.op.value not in order:
                continue
            text = f"  {mark[change.op.value]} {layer.layer.value}: {change.name} ({change.type})"
            if change.op.value == "replace":
                causes = ", ".join(change.replace_causes) or "a change the engine did not attribute"
                text += f"  REPLACED because of {causes}"
            elif change.changed_keys:
                text += f"  changes {', '.join(change.changed_keys[:8])}"
                if len(change.changed_keys) > 8:
                    text += f" and {len(change.changed_keys) - 8} more"
            lines.append(text)
    return lines


def _report(result: SiteResult, *, quiet: bool, json_output: bool) -> None:
    if json_output:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        return
    if not quiet and result.operation == "preview":
        for line in _change_lines(result):
            typer.echo(line)
    for line in _summary_lines(result):
        typer.echo(line)


@app.command(short_help="Preview what `up` would change in the cloud.")
def preview(
    site: SiteArg,
    layer: LayerOpt = LayerName.all,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            metavar="FILE",
            help="Also write a pull-request comment (summary table, changed keys, replacements marked) to FILE.",
        ),
    ] = None,
    backend: BackendOpt = None,
    secrets_provider: SecretsProviderOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Preview what `up` would change in the cloud, per layer (creates missing stacks, changes nothing)."""
    result = _on_site(
        site, project_dir, backend, secrets_provider, quiet, json_output, lambda s: s.preview(layer.value)
    )
    if markdown is not None:
        from jetstream_binderhub.automation.comment import render_comment, write_comment

        text = render_comment(result.layer_changes, site=site, notes=result.notes, cost=result.cost_line)
        write_comment(markdown, text)
        if not json_output:
            typer.echo(f"wrote the preview comment for {site} to {markdown}", err=True)
    _report(result, quiet=quiet, json_output=json_output)


@app.command(short_help="Create or update the site (cluster first).")
def up(
    site: SiteArg,
    layer: LayerOpt = LayerName.all,
    allow_replace: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-replace",
            metavar="NAME",
            help=(
                "Let `up` replace or delete this resource (logical name or URN, as the refusal names it). "
                "Repeat for several. Without it, replacing or deleting the cluster, a node group, a template in use, "
                "the Kubernetes provider, a namespace, a Helm release, the floating IP or a DNS record is refused."
            ),
        ),
    ] = None,
    allow_upgrade: Annotated[
        bool,
        typer.Option(
            "--allow-upgrade",
            help=(
                "Let `up` upgrade the running cluster (a new image or capi_helm_chart_version): it replaces "
                "every node group's nodes one at a time, ending the sessions on them. Drain launches first "
                "(docs/operations.md)."
            ),
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Apply without asking (for scripts and CI); without a terminal it is required.",
        ),
    ] = False,
    skip_preflight: Annotated[
        bool,
        typer.Option(
            "--skip-preflight",
            help="Do not check the allocation's quotas, DNS zone, credential and image first (`preflight SITE`).",
        ),
    ] = False,
    backend: BackendOpt = None,
    secrets_provider: SecretsProviderOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Create or update the site: preview each layer, refuse dangerous replacements, ask, then apply (cluster first).

    A new Magnum cluster takes 10+ minutes; node groups about 5 minutes per node. Ctrl-C stops after the
    operations in flight.
    """
    if not yes and not _stdin_is_terminal():
        # Pulumi's own rule: no confirmation without a terminal to ask on (`pulumi up` needs --yes there).
        fail(
            [
                "error: up shows what it will change and asks before applying, but there is no terminal to ask "
                "on: pass --yes to apply without asking (in CI: `jetstream-binderhub up SITE --yes`)"
            ],
            2,
        )
    if not skip_preflight:
        # Preflight needs only OpenStack credentials: say every other missing piece first, all at once,
        # rather than after the allocation was checked.
        _environment_ready(site, project_dir, backend, secrets_provider, layer)
        checked = _preflight(site, project_dir)
        if checked.held is not None and not json_output and (not quiet or not checked.ok):
            # The numbers in a shortfall count the running site's own share as room: say what it is.
            typer.echo(f"preflight: {checked.held.summary()}; credited back", err=True)
        _fail_preflight(
            checked, hint="(the cloud would refuse part of the site; fix these, or pass --skip-preflight)"
        )
        if not (quiet or json_output):
            typer.echo(f"preflight: {len(checked.checks)} checks passed", err=True)
    result = _on_site(
        site,
        project_dir,
        backend,
        secrets_provider,
        quiet,
        json_output,
        lambda s: s.up(
            layer.value,
            allow_replace=allow_replace or (),
            allow_upgrade=allow_upgrade,
            confirm=None if yes else _confirm_up(site, s.progress),
        ),
    )
    _report(result, quiet=quiet, json_output=json_output)


def _stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def _confirm_up(site: str, display: object) -> Callable[[LayerResult], bool]:
    """Show a layer's checked preview and ask before applying it, as `pulumi up` does."""

    def confirm(preview: LayerResult) -> bool:
        from jetstream_binderhub.automation.results import SiteResult

        pause = getattr(display, "pause", None)
        if callable(pause):
            pause()  # the live panel would redraw over the question
        shown = SiteResult(site, "preview", (preview,))
        for line in [*_change_lines(shown), *_summary_lines(shown)]:
            typer.echo(line, err=True)
        try:
            answer = typer.confirm(
                f"Apply these changes to the {preview.layer.value} layer of {site}?", default=False, err=True
            )
        except (typer.Abort, EOFError):
            answer = False
        if not sys.stdin.isatty():
            typer.echo("", err=True)  # piped input is not echoed: end the prompt's line
        return answer

    return confirm


def _confirm_destroy(site: str) -> Callable[[list[Layer]], bool]:
    def confirm(layers: list[Layer]) -> bool:
        names = " then ".join(layer.value for layer in layers)
        typer.echo(f"This deletes the {names} layer(s) of site {site} and everything in them.", err=True)
        try:
            answer = typer.prompt(
                f"Type the site name ({site}) to confirm", default="", show_default=False, err=True
            )
        except (typer.Abort, EOFError):
            answer = ""
        if not sys.stdin.isatty():
            typer.echo("", err=True)  # piped input is not echoed: end the prompt's line
        return answer.strip() == site

    return confirm


@app.command(short_help="Delete the site (BinderHub layer first).")
def destroy(
    site: SiteArg,
    layer: LayerOpt = LayerName.all,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")
    ] = False,
    backend: BackendOpt = None,
    secrets_provider: SecretsProviderOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Delete the site's resources: the BinderHub layer first, then the cluster.

    Refuses the cluster layer while the BinderHub stack still holds resources, and while the cluster
    is protected (`cluster.protect: true`, the default).
    """
    confirm = None if yes else _confirm_destroy(site)
    result = _on_site(
        site,
        project_dir,
        backend,
        secrets_provider,
        quiet,
        json_output,
        lambda s: s.destroy(layer.value, confirm=confirm),
    )
    _report(result, quiet=quiet, json_output=json_output)


@app.command(short_help="Read every resource back from the cloud.")
def refresh(
    site: SiteArg,
    layer: LayerOpt = LayerName.all,
    backend: BackendOpt = None,
    secrets_provider: SecretsProviderOpt = None,
    quiet: QuietOpt = False,
    json_output: JsonOpt = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Read every resource back from the cloud into the state (after changes made outside Pulumi)."""
    result = _on_site(
        site, project_dir, backend, secrets_provider, quiet, json_output, lambda s: s.refresh(layer.value)
    )
    _report(result, quiet=quiet, json_output=json_output)


@app.command(short_help="Print the stack outputs, secrets masked.")
def outputs(
    site: SiteArg,
    layer: LayerOpt = LayerName.all,
    json_output: Annotated[bool, typer.Option("--json", help="Print the outputs as JSON.")] = False,
    show_secrets: Annotated[
        bool,
        typer.Option(
            "--show-secrets",
            help="Print secret outputs (e.g. grafana_admin_password) in clear; the kubeconfig stays masked.",
        ),
    ] = False,
    backend: BackendOpt = None,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Print the site's stack outputs, secret ones masked unless --show-secrets (for the kubeconfig use
    `kubeconfig`)."""
    s = _open_site(site, project_dir, backend, None, None)
    found = run_or_exit(lambda: s.outputs(layer.value))
    from jetstream_binderhub.automation.results import Layer, LayerOutputs, Secret

    if layer is LayerName.all and s.has_layer(Layer.BINDERHUB) and Layer.BINDERHUB not in found:
        typer.echo(f"note: the BinderHub layer of {site} is not deployed yet (no stack)", err=True)

    def visible(out: LayerOutputs) -> dict[str, object]:
        values = out.masked()
        if show_secrets:
            # The kubeconfig has its own command that writes it to a 0600 file instead of a terminal.
            for name, value in out.values.items():
                if isinstance(value, Secret) and name != "kubeconfig":
                    values[name] = value.reveal()
        return values

    if show_secrets:
        typer.echo(
            f"warning: printing the secret outputs of {site} in clear; keep them off shared screens and logs",
            err=True,
        )
    if json_output:
        data = {name.value: visible(out) for name, out in found.items()}
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return
    for current, out in found.items():
        typer.echo(f"{current.value} ({out.stack}):")
        for name, value in sorted(visible(out).items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            typer.echo(f"  {name} = {shown}")


@app.command(short_help="Write the cluster's kubeconfig to a 0600 file.")
def kubeconfig(
    site: SiteArg,
    layer: LayerOpt = LayerName.cluster,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="File to write, created with mode 0600. Default: ~/.kube/jetstream-binderhub-<site>.yaml",
            dir_okay=False,
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the file if it exists.")] = False,
    backend: BackendOpt = None,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Write the cluster's kubeconfig to a file readable only by you; it is never printed."""
    if layer is not LayerName.cluster:
        fail([f"error: the kubeconfig is an output of the cluster layer, not of --layer {layer.value}"], 2)
    path = output or _default_kubeconfig(site)
    s = _open_site(site, project_dir, backend, None, None)
    written = run_or_exit(lambda: s.write_kubeconfig(path, overwrite=force))
    typer.echo(
        f"wrote the kubeconfig of {site} to {written} (mode 0600); use it with: export KUBECONFIG={written}"
    )


# --- operations ---------------------------------------------------------------------------------


def _site_url(site: str, project_dir: Path | None, backend: str | None) -> str:
    return _site_urls(site, project_dir, backend)[0]


def _site_urls(site: str, project_dir: Path | None, backend: str | None) -> tuple[str, str | None]:
    """The site's BinderHub URL and, when monitoring is deployed, its Grafana URL."""
    from jetstream_binderhub.automation.results import Layer

    s = _open_site(site, project_dir, backend, None, None)
    url = run_or_exit(s.url)
    if not url:
        fail(
            [
                f"error: site {site} has no BinderHub URL yet (no binderhub_url output): run "
                f"`jetstream-binderhub up {site}` first, or pass --url"
            ],
            4,
        )
    grafana = run_or_exit(lambda: s.outputs(Layer.BINDERHUB)[Layer.BINDERHUB].get("grafana_url"))
    return url, grafana if isinstance(grafana, str) and grafana else None


@app.command(short_help="Smoke-test the live BinderHub: health, launch, ready.")
def verify(
    site: SiteArg,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="BinderHub base URL, http(s)://HOST, optionally with :PORT and a /PATH (default: the site's binderhub_url output).",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        str,
        typer.Option(
            "--repo",
            metavar="PROVIDER/SPEC",
            show_default=False,
            help="Repository to launch, as in a launch URL. Default: gh/binder-examples/requirements/HEAD",
        ),
    ] = "gh/binder-examples/requirements/HEAD",
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS", help="Give up after this long in all.")
    ] = 900.0,
    stop_server: Annotated[
        bool,
        typer.Option("--stop-server", help="Shut the launched server down afterwards, with its own token."),
    ] = False,
    grafana_url: Annotated[
        str | None,
        typer.Option(
            "--grafana-url",
            help="Grafana base URL to check as well (default: the site's grafana_url output, when --url is not given).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    backend: BackendOpt = None,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Smoke-test the live BinderHub: /health, then launch a repository and follow it to ready or failed.
    Then, when the site has Grafana, check that it answers and refuses anonymous users.

    Exit codes: 0 ready, 10 unhealthy, 11 build failed, 12 launch failed, 13 timed out,
    14 unreachable, 15 refused (rate limit, authentication, repository not allowed),
    17 Grafana lets anonymous users in, 18 Grafana does not answer.
    """
    from jetstream_binderhub.ops.verify import check_grafana, grafana_base_url
    from jetstream_binderhub.ops.verify import verify as run_verify

    if url is not None:
        target, grafana_target = url, grafana_url
    else:
        target, site_grafana = _site_urls(site, project_dir, backend)
        grafana_target = grafana_url if grafana_url is not None else site_grafana
    if grafana_target is not None:
        # A bad --grafana-url is refused before a launch that can take minutes.
        run_or_exit(lambda: grafana_base_url(grafana_target))
    result = run_or_exit(lambda: run_verify(target, repo, timeout=timeout, stop_server=stop_server))
    grafana = None if grafana_target is None else run_or_exit(lambda: check_grafana(grafana_target))
    if json_output:
        data = result.to_json()
        if grafana is not None:
            data["grafana"] = {**grafana.model_dump(mode="json"), "exit_code": grafana.exit_code}
            if result.exit_code == 0:
                data["exit_code"] = grafana.exit_code
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        typer.echo(f"verify {result.url} with {result.repo}")
        if result.health is not None:
            states = ", ".join(
                f"{c.service} {'ok' if c.ok else ('FAILING' if c.counted else 'not ok (not counted)')}"
                for c in result.health.checks
            )
            typer.echo(f"health: {'ok' if result.health.ok else 'UNHEALTHY'} ({states})")
        for phase in result.phases:
            took = f"{phase.seconds:6.1f}s" if phase.seconds is not None else "       "
            typer.echo(f"  {phase.phase:<10} at {phase.at_seconds:6.1f}s {took}  {phase.message[:90]}")
        if result.exit_code == 0:
            typer.echo(result.message)
            if result.server_stopped:
                typer.echo("server stopped")
    if result.stop_problem:
        typer.echo(f"warning: the server was not stopped: {result.stop_problem}", err=True)
    if grafana is not None and grafana.exit_code == 0 and not json_output:
        typer.echo(grafana.message)
    if result.exit_code != 0:
        extra = [] if grafana is None or grafana.exit_code == 0 else [f"error: grafana: {grafana.message}"]
        fail([f"error: verify: {result.message}", *extra], result.exit_code)
    if grafana is not None and grafana.exit_code != 0:
        fail([f"error: grafana: {grafana.message}"], grafana.exit_code)


@app.command(short_help="SU burn of the live nodes against the allocation.")
def cost(
    site: SiteArg,
    kubeconfig_path: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            help="Kubeconfig of the site's cluster (default: ~/.kube/jetstream-binderhub-<site>.yaml, as `kubeconfig` writes it).",
            dir_okay=False,
        ),
    ] = None,
    nodes_file: Annotated[
        Path | None,
        typer.Option(
            "--nodes",
            metavar="FILE",
            help="Read the nodes from FILE (`kubectl get nodes -o json`) instead of the live cluster.",
            dir_okay=False,
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the burn as JSON.")] = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """SU burn now: the nodes that exist priced by flavor, and whether the allocation lasts to its end date.

    Reads the nodes from the live cluster, the flavor rates from the site's profile and the allocation's
    remaining SUs and end date from `support.allocation` in binderhub/Pulumi.<site>.yaml.
    """
    from datetime import UTC, datetime

    from jetstream_binderhub.burn import burn_report, render_burn

    root, hint = project_root(project_dir)
    path = kubeconfig_path or _default_kubeconfig(site)
    report = run_or_exit(
        lambda: burn_report(site, root, kubeconfig=path, nodes_file=nodes_file, now=datetime.now(UTC)),
        site_hint=hint,
    )
    if json_output:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_burn(report))


@app.command(short_help="Size a workshop: user nodes per flavor, SU per hour.")
def size(
    site: SiteArg,
    users: Annotated[
        int, typer.Option("--users", "-n", min=1, help="Concurrent users to hold.", show_default=False)
    ],
    hours: Annotated[
        float | None,
        typer.Option(
            "--hours", min=0.01, help="Length of the workshop, for its SU total.", show_default=False
        ),
    ] = None,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Raise the user group's max_count in the site file to hold them (comments kept)."
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """How many user nodes of each flavor hold N concurrent users at the guarantees each user gets, what
    that costs per hour and for the workshop, and whether the user group's max_count is enough.

    Offline: reads the site's files and profile only.
    """
    from jetstream_binderhub.ops.size import size_site, write_max_count

    root, hint = project_root(project_dir)
    result = run_or_exit(lambda: size_site(site, root, users=users, hours=hours), site_hint=hint)
    written = run_or_exit(lambda: write_max_count(site, root, result)) if write else None
    if json_output:
        data = result.model_dump(mode="json")
        data["written"] = str(written) if written else None
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        return
    unit = result.unit
    guarantees = " / ".join(
        part
        for part in (
            f"{result.cpu_guarantee:g} CPU" if result.cpu_guarantee else "",
            f"{result.memory_guarantee_gib:g} GiB" if result.memory_guarantee_gib else "",
        )
        if part
    )
    span = f" for {result.hours:g} h" if result.hours else ""
    typer.echo(
        f"{site}: {result.users} concurrent users{span}, each guaranteed {guarantees}; user group "
        f"{result.user_group} ({result.user_group_flavor}); the rest of the site {result.fixed_su_per_hour:g} {unit}/h"
    )
    header = f"  {'flavor':<11}{'users/node':>11}  {'limit':<7}{'nodes':>6}{'user ' + unit + '/h':>12}{'site ' + unit + '/h':>12}"
    if result.hours:
        header += f"{unit + ' total':>12}"
    typer.echo(header)
    for f in result.candidates:
        mark = "*" if f.flavor == result.user_group_flavor else " "
        line = (
            f"{mark} {f.flavor:<11}{f.users_per_node:>11}  {f.limited_by:<7}{f.nodes:>6}"
            f"{f.user_su_per_hour:>12g}{f.site_su_per_hour:>12g}"
        )
        if f.workshop_su is not None:
            line += f"{f.workshop_su:>12g}"
        typer.echo(line)
    if result.current is not None:
        verdict = "covers it" if result.covers else f"is too small: {result.current.nodes} needed"
        typer.echo(
            f"{result.user_group}: max_count {result.max_count} {verdict} "
            f"({result.current.nodes} x {result.user_group_flavor}, * above)"
        )
    for note in result.notes:
        typer.echo(f"note: {note}")
    if write:
        if written:
            typer.echo(f"wrote max_count {result.current.nodes if result.current else '?'} to {written}")
        else:
            typer.echo("nothing written: max_count already covers it")
    typer.echo("assumptions:")
    for line in result.assumptions:
        typer.echo(f"  - {line}")


@app.command(short_help="Upgrade Kubernetes (a new image or chart version) after draining user sessions.")
def upgrade(
    site: SiteArg,
    image: Annotated[
        str | None,
        typer.Option(
            "--image",
            metavar="IMAGE",
            help="The new cluster.image: a Glance image whose name carries the Kubernetes version.",
            show_default=False,
        ),
    ] = None,
    chart_version: Annotated[
        str | None,
        typer.Option(
            "--chart-version",
            metavar="VERSION",
            help="The new cluster.capi_helm_chart_version (e.g. 0.16.0); alone or with --image.",
            show_default=False,
        ),
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(
            "--deadline",
            metavar="MINUTES",
            help=(
                "Wait at most this long for running sessions to end; then the upgrade ends the rest. "
                "Default 60; on a re-run, the recorded deadline unless given (counted from the wait's start)."
            ),
            show_default=False,
        ),
    ] = None,
    rollout_timeout: Annotated[
        float | None,
        typer.Option(
            "--rollout-timeout",
            metavar="MINUTES",
            help=(
                "Follow the nodes at most this long until every node of before the apply is replaced and "
                "all are Ready. "
                "Default 120; on a re-run, the recorded one unless given (counted from the rollout's start)."
            ),
            show_default=False,
        ),
    ] = None,
    kubeconfig_path: Annotated[
        Path | None,
        typer.Option(
            "--kubeconfig",
            metavar="FILE",
            help=(
                "Kubeconfig to follow the rollout with (default: ~/.kube/jetstream-binderhub-<site>.yaml, "
                "as `kubeconfig SITE` writes it)."
            ),
            show_default=False,
        ),
    ] = None,
    skip_preflight: Annotated[
        bool,
        typer.Option(
            "--skip-preflight",
            help="Do not check the allocation, the new image and chart version on the cloud first.",
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes", "-y", help="Apply each layer without asking; without a terminal it is required."
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="BinderHub base URL to count sessions on (default: the site's binderhub_url output).",
            show_default=False,
        ),
    ] = None,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the result as JSON on stdout; the steps go to stderr."),
    ] = False,
    backend: BackendOpt = None,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Upgrade the cluster to a new image and/or capi_helm_chart_version without cutting sessions
    short: preflight the allocation, set BinderHub's total_quota to 0 (no new launches), wait for the
    running sessions to end or the deadline, apply the new template (it rolls every node group),
    follow the nodes until every one of before the apply is replaced and all are Ready, and restore
    the quota.

    Each finished step is recorded in .state/upgrade-SITE.json: run the same command again after an
    interruption and it resumes at the first unfinished step.
    """
    from jetstream_binderhub.ops.rollout import read_node_list
    from jetstream_binderhub.ops.upgrade import upgrade_site
    from jetstream_binderhub.ops.verify import read_health

    if not yes and not _stdin_is_terminal():
        fail(
            [
                "error: upgrade shows each layer's changes and asks before applying, but there is no terminal "
                "to ask on: pass --yes to apply without asking"
            ],
            2,
        )
    root, hint = project_root(project_dir)
    kubeconfig_file = kubeconfig_path or _default_kubeconfig(site)
    opened: list[Site] = []

    def site_handle() -> Site:
        if not opened:
            opened.append(_open_site(site, project_dir, backend, None, None))
        return opened[0]

    def apply(layer: Layer, allow_upgrade: bool) -> None:
        s = site_handle()
        result = s.up(
            layer.value,
            allow_upgrade=allow_upgrade,
            confirm=None if yes else _confirm_up(site, s.progress),
        )
        for line in _summary_lines(result):
            say(f"  {line}")

    def say(line: str) -> None:
        typer.echo(line, err=json_output)

    def check_cloud(new_image: str | None, new_chart: str | None) -> None:
        checked = _preflight(site, project_dir, upgrade_to=(new_image, new_chart))
        _fail_preflight(
            checked,
            hint="(the cloud would refuse the upgrade; nothing was drained. Fix these, or pass --skip-preflight)",
        )
        say(f"preflight: {len(checked.checks)} checks passed (the rollout's extra server counted)")

    target: list[str] = [url] if url is not None else []

    def health() -> object:
        if not target:
            target.append(_site_url(site, project_dir, backend))
        return read_health(target[0])

    result = run_or_exit(
        lambda: upgrade_site(
            site,
            root,
            image,
            chart_version=chart_version,
            apply=apply,
            read_health=health,
            read_nodes=lambda: read_node_list(kubeconfig_file),
            # As in `up`, every missing piece at once; with --skip-preflight and on a re-run too, as
            # the drain and the restore need Pulumi as much as the apply does.
            check_environment=lambda: site_handle().check_environment_for(),
            preflight=None if skip_preflight else check_cloud,
            deadline_minutes=deadline,
            rollout_minutes=rollout_timeout,
            say=say,
        ),
        site_hint=hint,
    )
    if json_output:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


@app.command(short_help="Check the allocation holds the site at its largest size.")
def preflight(
    site: SiteArg,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    project_dir: ProjectDirOpt = None,
) -> None:
    """Quotas minus usage (instances, cores, RAM, volumes, floating IPs, security groups, load balancers)
    against the site at its maximum size; the Designate zone, the application credential, the image and
    the capi_helm_chart_version on the cloud. Exit 16 naming what falls short. A site already deployed
    is part of the usage: what its cluster holds (servers, volumes, load balancers, floating IPs,
    security groups) is found in the cloud and credited back, and named above the table.

    Needs OpenStack credentials (OS_CLOUD or an openrc), nothing of Pulumi.
    """
    result = _preflight(site, project_dir)
    if json_output:
        data = result.model_dump(mode="json")
        data["ok"] = result.ok
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        _print_preflight(result)
    _fail_preflight(result, hint="")


def _preflight(
    site: str, project_dir: Path | None, upgrade_to: tuple[str | None, str | None] | None = None
) -> PreflightResult:
    import os

    from jetstream_binderhub.ops.preflight import preflight_site

    root, hint = project_root(project_dir)
    return run_or_exit(
        lambda: preflight_site(site, root, env=os.environ, upgrade_to=upgrade_to), site_hint=hint
    )


def _print_preflight(result: PreflightResult) -> None:
    typer.echo(f"preflight {result.site} against {result.auth_url} (project {result.project_id})")
    held = result.held
    if held is not None:
        # Why `free` is more than limit minus in use: the running site's own share is credited back.
        typer.echo(f"{held.summary()}; credited back against what the site needs")
    typer.echo(f"    {'':<14}{'':<24}{'need':>10}{'free':>10}{'limit':>10}{'in use':>10}{'credited':>10}")
    for c in result.checks:
        mark = "-- " if c.ok and not c.checked else "ok " if c.ok else "NO "
        if c.need is None:
            # A name as long as its column (a chart's dev version) still gets a space before its message.
            typer.echo(f"{mark} {c.area:<14}{c.name + ' ':<24}{c.message}")
            continue
        free = "unlimited" if c.free is None else f"{c.free:.0f}"
        limit = "-" if c.limit is None else f"{c.limit:.0f}"
        own = "-" if c.held is None else f"{c.held:.0f}"
        typer.echo(
            f"{mark} {c.area:<14}{c.name:<24}{c.need:>10.0f}{free:>10}{limit:>10}{c.used or 0:>10.0f}{own:>10}"
        )


def _fail_preflight(result: PreflightResult, hint: str) -> None:
    if result.ok:
        return
    fail(
        [f"error: preflight: {c.area} {c.name}: {c.message}" for c in result.failures]
        + ([hint] if hint else []),
        16,
    )


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        if _OFFLINE_PLAN_DONE and exc.code in (0, None):
            # Tearing down the interpreter after a plan (pulumi-kubernetes' type modules, the mock
            # runtime's objects) costs about 0.3 s of CPU, a quarter of the command; a finished
            # offline plan has written everything and holds no resource, so it leaves at once.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        raise


if __name__ == "__main__":
    main()
