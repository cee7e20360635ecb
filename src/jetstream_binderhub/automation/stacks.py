"""The boundary between a site and Pulumi's Automation API: one small protocol, one real implementation.

:class:`Site` only talks to :class:`LayerStack`. The real one, :class:`PulumiStacks`, drives
``pulumi.automation`` — a *local program* (the repository's `Pulumi.yaml`, `infra/` or `binderhub/`,
exactly what plain `pulumi up` runs) or an *inline program* (the same `cluster_program`/`hub_program`
functions, for sites built from a config object). Tests replace it with fakes that replay real engine
events and raise the Automation API's real exception types, so everything above this line runs
unchanged without the CLI.

Importing this module does not import Pulumi.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from jetstream_binderhub.automation.environment import PulumiCli, find_pulumi_cli
from jetstream_binderhub.automation.results import Layer

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent, Stack

OnEvent = Callable[["EngineEvent"], None]

STACK_TYPE = "pulumi:pulumi:Stack"
PROVIDER_PREFIX = "pulumi:providers:"


@dataclass(frozen=True)
class LayerSpec:
    """Everything needed to open one layer's stack."""

    layer: Layer
    project: str
    stack: str
    work_dir: Path
    program: Callable[[], None] | None = None
    """None: a local program (the work dir's Pulumi.yaml says what to run). Else an inline program."""
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Environment for every `pulumi` command, over the inherited one: the backend URL and whatever the
    site was given as `env` (a passphrase, OS_* credentials)."""
    secrets_provider: str | None = None
    """Secrets provider for stacks created now (None: passphrase on a DIY backend, Pulumi Cloud's own)."""

    @property
    def description(self) -> str:
        return f"{self.project}/{self.stack}"


@dataclass(frozen=True)
class StateResource:
    """One resource as the stack's state records it."""

    urn: str
    type: str
    protect: bool = False

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def bookkeeping(self) -> bool:
        """The stack itself and provider instances: no cloud object behind them."""
        return self.type == STACK_TYPE or self.type.startswith(PROVIDER_PREFIX)


class LayerStack(Protocol):
    """One layer's stack, opened. Methods raise the Automation API's own errors; Site translates them."""

    spec: LayerSpec

    def preview(self, on_event: OnEvent, *, plan: Path | None = None) -> None:
        """`plan`: save the previewed operations there as a Pulumi update plan (`--save-plan`)."""
        ...

    def up(self, on_event: OnEvent, *, plan: Path | None = None) -> None:
        """`plan`: apply only what that update plan allows (`--plan`); the engine refuses anything else."""
        ...

    def refresh(self, on_event: OnEvent) -> None: ...

    def destroy(self, on_event: OnEvent) -> None: ...

    def outputs(self) -> dict[str, tuple[Any, bool]]:
        """name -> (value, is_secret)."""
        ...

    def resources(self) -> list[StateResource]: ...

    def set_secret_config(self, key: str, value: str) -> None:
        """Store a config value encrypted with the stack's secrets provider (`pulumi config set --secret`)."""
        ...


class StackOpener(Protocol):
    """Opens a layer's stack: `create=True` creates it when missing, False raises StackNotFoundError."""

    def check(self) -> None:
        """Raise a domain error when the machinery behind the stacks is missing (the Pulumi CLI)."""
        ...

    def __call__(self, spec: LayerSpec, *, create: bool) -> LayerStack: ...


class PulumiStacks:
    """The real :class:`StackOpener`: the Pulumi CLI through ``pulumi.automation``.

    The CLI is looked for (and its version checked) once, before the first workspace is built:
    ``LocalWorkspace`` itself runs ``pulumi version`` and would fail with a bare FileNotFoundError.
    """

    def __init__(self, find_cli: Callable[[], PulumiCli] = find_pulumi_cli) -> None:
        self._find_cli = find_cli
        self._cli: PulumiCli | None = None

    def check(self) -> None:
        self.cli()

    def cli(self) -> PulumiCli:
        if self._cli is None:
            self._cli = self._find_cli()
        return self._cli

    def __call__(self, spec: LayerSpec, *, create: bool) -> LayerStack:
        self.cli()  # PulumiCliMissing/PulumiCliTooOld before Pulumi is touched
        from pulumi import automation as auto

        project_settings = None
        if spec.program is not None:
            spec.work_dir.mkdir(parents=True, exist_ok=True)
            project_settings = auto.ProjectSettings(
                name=spec.project,
                runtime="python",
                main=str(spec.work_dir),
                description=f"{spec.layer.value} layer of a jetstream-binderhub site (inline program)",
            )
        workspace = auto.LocalWorkspace(
            work_dir=str(spec.work_dir),
            program=spec.program,
            env_vars=dict(spec.env),
            secrets_provider=spec.secrets_provider,
            project_settings=project_settings,
        )
        stack = (
            auto.Stack.create_or_select(spec.stack, workspace)
            if create
            else auto.Stack.select(spec.stack, workspace)
        )
        return _AutomationStack(spec, stack)


class _AutomationStack:
    def __init__(self, spec: LayerSpec, stack: Stack) -> None:
        self.spec = spec
        self._stack = stack

    # color="never": diagnostics reach the summary without escape codes; secrets are never shown
    # (show_secrets only concerns the config echoed in the update summary, which we do not print).
    def preview(self, on_event: OnEvent, *, plan: Path | None = None) -> None:
        self._stack.preview(
            on_event=on_event, color="never", diff=False, plan=str(plan) if plan is not None else None
        )

    def up(self, on_event: OnEvent, *, plan: Path | None = None) -> None:
        self._stack.up(
            on_event=on_event,
            color="never",
            show_secrets=False,
            suppress_outputs=True,
            plan=str(plan) if plan is not None else None,
        )

    def refresh(self, on_event: OnEvent) -> None:
        self._stack.refresh(on_event=on_event, color="never", show_secrets=False, suppress_outputs=True)

    def destroy(self, on_event: OnEvent) -> None:
        self._stack.destroy(on_event=on_event, color="never", show_secrets=False, suppress_outputs=True)

    def outputs(self) -> dict[str, tuple[Any, bool]]:
        return {name: (out.value, out.secret) for name, out in self._stack.outputs().items()}

    def resources(self) -> list[StateResource]:
        deployment = self._stack.export_stack().deployment or {}
        return [
            StateResource(urn=r.get("urn", ""), type=r.get("type", ""), protect=bool(r.get("protect")))
            for r in deployment.get("resources") or []
        ]

    def set_secret_config(self, key: str, value: str) -> None:
        # Not `Stack.set_config`: the SDK puts the value at the end of the command line, where any local
        # user reads it with `ps`. `pulumi config set --secret KEY` without a value reads it from standard
        # input when that is not a terminal (pulumi/pulumi pkg/cmd/pulumi/config/config_set.go, which also
        # drops one trailing newline: none is sent).
        import subprocess

        from pulumi.automation import CommandResult
        from pulumi.automation.errors import create_command_error

        workspace = self._stack.workspace
        argv = [
            workspace.pulumi_command.command,
            "--non-interactive",
            "config",
            "set",
            key,
            "--secret",
            "--stack",
            self._stack.name,
        ]
        env = {**os.environ, **({"PULUMI_HOME": workspace.pulumi_home} if workspace.pulumi_home else {})}
        env.update(workspace.env_vars)
        proc = subprocess.run(
            argv, input=value, capture_output=True, text=True, cwd=workspace.work_dir, env=env, check=False
        )
        if proc.returncode != 0:
            raise create_command_error(
                CommandResult(stdout=proc.stdout, stderr=proc.stderr, code=proc.returncode)
            )
