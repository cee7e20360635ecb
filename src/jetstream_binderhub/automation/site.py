"""A site — its cluster stack and its BinderHub stack — driven through Pulumi's Automation API.

    site = Site.from_files("jetstream2")            # Pulumi.jetstream2.yaml + binderhub/Pulumi.jetstream2.yaml
    result = site.preview()                         # both layers, cluster first
    result.counts                                   # {"cluster": {"create": 4, ...}, "binderhub": {...}}
    site.up(allow_replace={"pythia-binder-nodegroup-user-m3.large"})
    site.outputs()[Layer.CLUSTER]["kubeconfig"]     # a Secret: repr is [secret]

A repository site runs the *local programs* — the same `Pulumi.yaml`, `infra/`, `binderhub/` and stack
files that plain `pulumi up` uses. A site built with :meth:`Site.from_config` runs the same program
functions *inline*, with stack files the site writes into its own work directory. Either way there is
one copy of each program. Stacks are created when missing (`preview` and `up`); the other operations
need an existing stack and say so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from jetstream_binderhub.automation.environment import (
    Backend,
    default_state_dir,
    require_cloud_login,
    require_openstack_credentials,
    require_passphrase,
    resolve_backend,
    secret_env_values,
)
from jetstream_binderhub.automation.errors import (
    DestroyRefused,
    EnvironmentIncomplete,
    EnvironmentNotReady,
    NotConfirmed,
    StackNotFound,
)
from jetstream_binderhub.automation.failures import translate
from jetstream_binderhub.automation.interrupt import SigintAcks, forward_sigint, run_interruptibly
from jetstream_binderhub.automation.progress import NullProgress, Progress
from jetstream_binderhub.automation.results import (
    Layer,
    LayerChoice,
    LayerOutputs,
    LayerResult,
    Operation,
    Secret,
    SiteResult,
    layers_for,
    wrap_outputs,
)
from jetstream_binderhub.automation.stacks import LayerSpec, LayerStack, PulumiStacks, StackOpener
from jetstream_binderhub.config.stackfile import (
    CLUSTER_PROJECT,
    HUB_PROJECT,
    HUB_PROJECT_DIR,
    StackFile,
    read_stack_file,
)
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError, Problem, SiteNotFound
from jetstream_binderhub.naming import (
    ALLOW_REPLACE_ENV,
    CLUSTER_TYPE,
    FLOATING_IP_TYPE,
    NODE_GROUP_TYPE,
    allowed_replacements,
    check_site_name,
)
from jetstream_binderhub.yamlio import safe_load

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent

    from jetstream_binderhub.config.cluster import ClusterStackConfig
    from jetstream_binderhub.config.hub import HubStackConfig
    from jetstream_binderhub.engine.changes import LayerChanges
    from jetstream_binderhub.plan.model import CostChange

PROJECTS = {Layer.CLUSTER: CLUSTER_PROJECT, Layer.BINDERHUB: HUB_PROJECT}


PROTECT_KEYS = {
    CLUSTER_TYPE: "cluster.protect",
    NODE_GROUP_TYPE: "cluster.protect",
    FLOATING_IP_TYPE: "ingress.protect_floating_ip",
}
"""Resource type -> the config key that puts `protect` on it, for the message that says how to lift it."""

URL_OUTPUTS = ("binderhub_url", "url")
"""Output names of the BinderHub layer that hold the public URL, in order of preference."""

GENERATED_HEADER = (
    "# Written by jetstream_binderhub.automation.Site.from_config; it is rewritten on every run.\n"
    "# Secrets (`secure:`) set through Pulumi are kept.\n"
)

OPENSTACK_AUTH_KEYS = ("openstack:cloud", "openstack:authUrl")
"""Provider settings in a stack file that make OS_* variables unnecessary."""


def _program(layer: Layer, allow_replace: frozenset[str] = frozenset()) -> Callable[[], None]:
    # Imported only when a layer runs inline: both import Pulumi and the providers.
    if layer is Layer.CLUSTER:
        from jetstream_binderhub.infra.program import cluster_program

        return functools.partial(cluster_program, allow_replace=allow_replace)
    from jetstream_binderhub.hub.program import hub_program

    return functools.partial(hub_program, allow_replace=allow_replace)


@dataclass(frozen=True)
class SiteLayout:
    """Where a site's two Pulumi projects live, and whether their programs run local or inline."""

    cluster_dir: Path
    hub_dir: Path
    inline: bool
    project_dir: Path | None = None
    """The repository root, for repository sites (its `.state/` is the default local backend)."""

    @classmethod
    def repository(cls, root: Path) -> SiteLayout:
        root = root.resolve()
        return cls(cluster_dir=root, hub_dir=root / HUB_PROJECT_DIR, inline=False, project_dir=root)

    @classmethod
    def generated(cls, work_dir: Path) -> SiteLayout:
        work_dir = work_dir.expanduser().resolve()
        return cls(cluster_dir=work_dir / "cluster", hub_dir=work_dir / HUB_PROJECT_DIR, inline=True)

    def work_dir(self, layer: Layer) -> Path:
        return self.cluster_dir if layer is Layer.CLUSTER else self.hub_dir

    def stack_file(self, layer: Layer, site: str) -> Path:
        return self.work_dir(layer) / f"Pulumi.{check_site_name(site)}.yaml"


def default_work_dir(site: str) -> Path:
    """Where :meth:`Site.from_config` keeps a site's generated stack files by default."""
    return Path("~/.jetstream-binderhub/sites").expanduser() / check_site_name(site)


class Site:
    """One site: a cluster stack and (when configured) a BinderHub stack, operated in dependency order."""

    def __init__(
        self,
        name: str,
        layout: SiteLayout,
        *,
        backend: str | None = None,
        secrets_provider: str | None = None,
        env: Mapping[str, str] | None = None,
        stacks: StackOpener | None = None,
        progress: Progress | None = None,
        secret_config: Mapping[Layer, Mapping[str, str]] | None = None,
    ) -> None:
        self.name = check_site_name(name)
        self.layout = layout
        self.env: Mapping[str, str] = os.environ if env is None else env
        # What the caller gave is what Pulumi must run with too (over the inherited environment), or a
        # passphrase that passed the checks would never reach the CLI.
        self._forward_env: dict[str, str] = {} if env is None else dict(env)
        self.backend: Backend = resolve_backend(backend, self.env, default_state_dir(layout.project_dir))
        self.secrets_provider = secrets_provider
        self.progress: Progress = progress or NullProgress()
        self._stacks: StackOpener = stacks or PulumiStacks()
        self._pending_secrets = {layer: dict(values) for layer, values in (secret_config or {}).items()}
        # Values known to be secret, masked in every result even where the engine reports them in clear.
        self._known_secrets = secret_env_values(self.env) | {
            value for values in self._pending_secrets.values() for value in values.values()
        }

    def __repr__(self) -> str:
        kind = "inline" if self.layout.inline else "repository"
        return f"Site(name={self.name!r}, {kind}, backend={self.backend.display!r})"

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def from_files(cls, name: str, project_dir: Path | None = None, **options: Any) -> Site:
        """The site whose stack files are `Pulumi.<name>.yaml` (and `binderhub/Pulumi.<name>.yaml`) in a
        checkout of this repository. The files are validated now, before Pulumi is involved."""
        from jetstream_binderhub.plan.site import load_cluster_file

        check_site_name(name)
        layout = SiteLayout.repository(project_dir or Path.cwd())
        # SiteNotFound / ConfigError with every problem
        _, cluster_cfg = load_cluster_file(layout.cluster_dir, name)
        site = cls(name, layout, **options)
        if site.has_layer(Layer.BINDERHUB):
            site._validate_hub_file(cluster_cfg)
        return site

    @classmethod
    def from_config(
        cls,
        name: str,
        cluster: ClusterStackConfig | Mapping[str, Any],
        hub: HubStackConfig | Mapping[str, Any] | None = None,
        *,
        hub_secrets: Mapping[str, str] | None = None,
        work_dir: Path | None = None,
        **options: Any,
    ) -> Site:
        """A site built from config objects (or plain dicts of the stack files' keys, without namespace).

        The config is validated now. Its stack files are written to `work_dir` (default
        ``~/.jetstream-binderhub/sites/<name>``) so Pulumi keeps the secrets provider's salt next to
        them; the programs run inline, so no checkout of the repository is needed. `hub_secrets` holds
        the BinderHub layer's secret keys (`registry_password`, `github_token`); they are stored
        encrypted by Pulumi, never written in plain text.
        """
        from jetstream_binderhub.config.load import parse_cluster_stack

        check_site_name(name)  # before the work directory is derived from it
        cluster_raw = _as_raw(cluster)
        cluster_cfg = parse_cluster_stack(cluster_raw, source=f"site {name} (cluster)")
        layout = SiteLayout.generated(work_dir or default_work_dir(name))
        _write_stack_file(layout.stack_file(Layer.CLUSTER, name), CLUSTER_PROJECT, cluster_raw)
        secrets: dict[Layer, dict[str, str]] = {}
        if hub is not None:
            from jetstream_binderhub.config.hub import SECRET_KEYS, parse_hub_stack

            hub_raw = _as_raw(hub)
            parse_hub_stack(
                hub_raw, source=f"site {name} (binderhub)", node_groups=cluster_cfg.cluster.label_values()
            )
            unknown = sorted(set(hub_secrets or {}) - set(SECRET_KEYS))
            if unknown:
                raise ConfigError(
                    [
                        Problem(
                            k, f"not a secret key of the BinderHub layer (expected: {', '.join(SECRET_KEYS)})"
                        )
                        for k in unknown
                    ],
                    source=f"site {name} (binderhub secrets)",
                )
            from jetstream_binderhub.config.support import secret_value_problems

            if bad := secret_value_problems(hub_secrets or {}):
                raise ConfigError(bad, source=f"site {name} (binderhub secrets)")
            _write_stack_file(layout.stack_file(Layer.BINDERHUB, name), HUB_PROJECT, hub_raw)
            secrets[Layer.BINDERHUB] = {f"{HUB_PROJECT}:{k}": v for k, v in (hub_secrets or {}).items()}
        elif hub_secrets:
            raise ConfigError([Problem("hub_secrets", "given without a hub config")], source=f"site {name}")
        return cls(name, layout, secret_config=secrets, **options)

    def _validate_hub_file(self, cluster_cfg: ClusterStackConfig) -> None:
        # The offline plan's own validation: the live run refuses exactly what `plan` refuses.
        from jetstream_binderhub.hub.plan import HubLayerPlanner

        path = self.layout.stack_file(Layer.BINDERHUB, self.name)
        HubLayerPlanner.load(self.name, read_stack_file(path), cluster_cfg)

    # --- what the site has --------------------------------------------------------------------

    def has_layer(self, layer: Layer) -> bool:
        """The cluster layer always; the BinderHub layer when the site has its stack file."""
        if layer is Layer.CLUSTER:
            return True
        work_dir = self.layout.work_dir(layer)
        project_file = self.layout.inline or (work_dir / "Pulumi.yaml").is_file()
        return project_file and self.layout.stack_file(layer, self.name).is_file()

    def _layers(self, choice: Layer | LayerChoice, *, reverse: bool = False) -> tuple[list[Layer], list[str]]:
        notes: list[str] = []
        layers = []
        for layer in layers_for(choice, reverse=reverse):
            if self.has_layer(layer):
                layers.append(layer)
            elif choice == "all":
                notes.append(
                    f"no BinderHub layer for site {self.name} ({self.layout.stack_file(layer, self.name)} does not exist)"
                )
            else:
                raise SiteNotFound(
                    f"site {self.name} has no {layer.value} layer: {self.layout.stack_file(layer, self.name)} does not exist"
                )
        return layers, notes

    def _stack_file(self, layer: Layer) -> StackFile | None:
        path = self.layout.stack_file(layer, self.name)
        return read_stack_file(path) if path.is_file() else None

    def spec(self, layer: Layer, *, allow_replace: Collection[str] = ()) -> LayerSpec:
        """How to open `layer`'s stack. `allow_replace` reaches the program (as an argument inline, as
        ALLOW_REPLACE_ENV for a local program), which lifts `protect` on exactly those resources."""
        allowed = allowed_replacements(",".join(allow_replace))
        env = {**self._forward_env, "PULUMI_BACKEND_URL": self.backend.url}
        if allowed:
            env[ALLOW_REPLACE_ENV] = ",".join(sorted(allowed))
        return LayerSpec(
            layer=layer,
            project=PROJECTS[layer],
            stack=self.name,
            work_dir=self.layout.work_dir(layer),
            program=_program(layer, allowed) if self.layout.inline else None,
            env=env,
            secrets_provider=self.secrets_provider,
        )

    # --- preflight ----------------------------------------------------------------------------

    def check_environment_for(self, layer: Layer | LayerChoice = "all") -> None:
        """:meth:`check_environment` for the layers `layer` names, as `up` checks them: for commands
        that must know the machine can apply before they ask the cloud or change a file."""
        self.check_environment(self._layers(layer)[0], cloud=True)

    def check_environment(self, layers: Collection[Layer], *, cloud: bool) -> None:
        """Everything the machine must provide, in the order a user fixes it: the Pulumi CLI, the
        backend login, the secrets passphrase, and (for operations that reach OpenStack) credentials.

        Every missing piece is reported at once (EnvironmentIncomplete) rather than one per run."""
        checks: list[Callable[[], object]] = [
            self._stacks.check,
            lambda: require_cloud_login(self.env, self.backend),
        ]
        providers = {
            self.secrets_provider or (stack_file.secrets_provider if stack_file else None)
            for layer in layers
            for stack_file in [self._stack_file(layer)]
        }
        checks += [
            functools.partial(require_passphrase, self.env, self.backend, provider)
            for provider in sorted(providers, key=str)
        ]
        if cloud:
            in_files = any(
                key in stack_file.values
                for layer in layers
                if (stack_file := self._stack_file(layer)) is not None
                for key in OPENSTACK_AUTH_KEYS
            )
            if not in_files:
                checks.append(lambda: require_openstack_credentials(self.env))
        missing: list[EnvironmentNotReady] = []
        for check in checks:
            try:
                check()
            except EnvironmentNotReady as exc:
                if str(exc) not in {str(m) for m in missing}:
                    missing.append(exc)
        if len(missing) == 1:
            raise missing[0]
        if missing:
            raise EnvironmentIncomplete(missing)

    # --- operations ---------------------------------------------------------------------------

    def preview(self, layer: Layer | LayerChoice = "all") -> SiteResult:
        """What `up` would change, per layer, from the engine's events. Creates missing stacks.

        With both layers, the BinderHub preview is skipped while the cluster does not exist yet (the
        cluster's own preview creates it): the hub's program reads the cluster's outputs.
        """
        layers, notes = self._layers(layer)
        self.check_environment(layers, cloud=True)
        results: list[LayerResult] = []
        for current in layers:
            if current is Layer.BINDERHUB and results and _creates_cluster(results[-1]):
                reason = (
                    "the cluster does not exist yet; preview the BinderHub layer after `up --layer cluster`"
                )
                results.append(
                    LayerResult(current, "preview", self.spec(current).description, skipped=reason)
                )
                notes.append(f"binderhub: preview skipped: {reason}")
                continue
            result = self._run(current, "preview")
            if current is Layer.CLUSTER:
                result = dataclasses.replace(result, cost=self._preview_cost(result.changes))
            results.append(result)
        return SiteResult(self.name, "preview", tuple(results), tuple(notes))

    def _preview_cost(self, changes: LayerChanges | None) -> CostChange | None:
        """The SU/hour change of the cluster layer's preview: the engine's states of the servers, priced
        with the site profile's flavor catalog.

        default-worker's autoscaling range lives on Magnum's node group, outside any Pulumi resource
        (config.cluster.DefaultWorker), and the program then ignores the cluster's node_count: the engine
        does not know that group's size, so it is named as not priced instead of priced at a guess."""
        path = self.layout.stack_file(Layer.CLUSTER, self.name)
        if changes is None or changes.missing or not path.is_file():
            # With steps lost (the comment's ⛔ line says so) some resources' states are missing too: any
            # total would be low without saying so.
            return None
        from jetstream_binderhub.config.load import parse_cluster_stack
        from jetstream_binderhub.naming import DEFAULT_WORKER
        from jetstream_binderhub.plan.cost import engine_cost
        from jetstream_binderhub.profiles import load_profile

        cfg = parse_cluster_stack(read_stack_file(path).namespace(CLUSTER_PROJECT), source=str(path))
        not_priced = (
            {DEFAULT_WORKER: "autoscales in a range set outside Pulumi"}
            if cfg.cluster.default_worker.autoscaled
            else {}
        )
        return engine_cost(changes.servers, load_profile(cfg.profile), not_priced=not_priced)

    def up(
        self,
        layer: Layer | LayerChoice = "all",
        *,
        allow_replace: Collection[str] = (),
        allow_upgrade: bool = False,
        confirm: Callable[[LayerResult], bool] | None = None,
    ) -> SiteResult:
        """Preview each layer, refuse dangerous replacements and deletions (see
        :func:`jetstream_binderhub.engine.guard.find_dangerous`) unless `allow_replace` names them, and a
        Kubernetes upgrade of the running cluster (it rolls every node group) unless `allow_upgrade`, then
        apply it. Cluster first, so the BinderHub preview sees the cluster's new outputs.

        The checked preview is saved as a Pulumi update plan and the update applies exactly that plan:
        anything that changed in between (the cloud, the config, another update) makes the engine refuse
        the step the guard did not see (:class:`PlanViolated`) instead of applying it unchecked.

        `confirm` is asked with each layer's checked preview before that layer is applied (not when the
        preview changes nothing); a false answer raises NotConfirmed. None: no question (the caller
        decided, as `up --yes`)."""
        layers, notes = self._layers(layer)
        self.check_environment(layers, cloud=True)
        allow = frozenset(allow_replace)
        results: list[LayerResult] = []
        for current in layers:
            with self._reporting_partial("up", layers, results, notes):
                self._up_layer(current, allow, allow_upgrade, confirm, results)
        return SiteResult(self.name, "up", tuple(results), tuple(notes))

    def _up_layer(
        self,
        current: Layer,
        allow: frozenset[str],
        allow_upgrade: bool,
        confirm: Callable[[LayerResult], bool] | None,
        results: list[LayerResult],
    ) -> None:
        from jetstream_binderhub.engine.guard import GuardRefused, find_dangerous

        stack = self._open(current, create=True, allow_replace=allow)
        with _plan_dir() as plans:
            plan = plans / f"{current.value}.plan.json"
            preview = self._run(current, "preview", stack=stack, plan=plan)
            assert preview.changes is not None
            dangers = find_dangerous([preview.changes], allow, allow_upgrade=allow_upgrade)
            if dangers:
                raise GuardRefused(dangers)
            if confirm is not None and preview.changes.has_changes and not confirm(preview):
                applied = " and ".join(r.layer.value for r in results)
                raise NotConfirmed(
                    f"up of site {self.name} was not confirmed: nothing of its {current.value} layer was "
                    "applied"
                    + (f" (the {applied} layer was)" if applied else "")
                    + " (--yes skips the question)"
                )
            expected = sum(1 for c in preview.changes.changes if c.op != "same")
            results.append(self._run(current, "up", expected=expected, stack=stack, plan=plan))

    def refresh(self, layer: Layer | LayerChoice = "all") -> SiteResult:
        """Read every resource back from the cloud into the state (drift shows in the engine counts)."""
        layers, notes = self._layers(layer)
        self.check_environment(layers, cloud=True)
        results: list[LayerResult] = []
        for current in layers:
            with self._reporting_partial("refresh", layers, results, notes):
                results.append(self._run(current, "refresh"))
        return SiteResult(self.name, "refresh", tuple(results), tuple(notes))

    def destroy(
        self, layer: Layer | LayerChoice = "all", *, confirm: Callable[[list[Layer]], bool] | None = None
    ) -> SiteResult:
        """Destroy the BinderHub layer, then the cluster. Refuses — before destroying anything — while a
        layer holds protected resources (the cluster, the hub's floating IP) and refuses the cluster
        while the BinderHub stack still holds resources.

        `confirm` is asked (with the layers, in the order they go) after those checks and before the
        first deletion; a false answer raises NotConfirmed. None: no question (the caller decided)."""
        layers, notes = self._layers(layer, reverse=True)
        self.check_environment(layers, cloud=True)
        # Every check before the first deletion: a hub destroyed for a cluster that then refuses to go
        # would be the worst of both.
        for current in layers:
            self._refuse_protected(current)
        if Layer.CLUSTER in layers and Layer.BINDERHUB not in layers:
            self._refuse_while_hub_holds_resources()
        if confirm is not None and not confirm(layers):
            raise NotConfirmed(
                f"destroy of site {self.name} was not confirmed; nothing was deleted (--yes skips the question)"
            )
        results: list[LayerResult] = []
        for current in layers:
            with self._reporting_partial("destroy", layers, results, notes):
                if current is Layer.CLUSTER and Layer.BINDERHUB in layers:
                    self._refuse_while_hub_holds_resources()
                stack = self._open(current, create=False)
                expected = sum(1 for r in stack.resources() if not r.bookkeeping)
                results.append(self._run(current, "destroy", expected=expected, stack=stack))
        return SiteResult(self.name, "destroy", tuple(results), tuple(notes))

    @contextlib.contextmanager
    def _reporting_partial(
        self, operation: Operation, layers: list[Layer], results: list[LayerResult], notes: list[str]
    ) -> Iterator[None]:
        """When a layer fails after another one was applied, the error carries what was done
        (``exc.partial``): a script must learn that the cluster changed although the hub failed."""
        try:
            yield
        except JetstreamBinderHubError as exc:
            if results:
                failed = next((layer for layer in layers if layer not in {r.layer for r in results}), None)
                exc.partial = SiteResult(
                    self.name, operation, tuple(results), tuple(notes), failed_layer=failed
                )
            raise

    def _refuse_protected(self, layer: Layer) -> None:
        """Pulumi refuses to delete a protected resource half-way through a destroy; refuse up front,
        naming the setting that lifts the protection."""
        try:
            stack = self._open(layer, create=False)
        except StackNotFound:
            if layer is Layer.BINDERHUB:
                return  # never deployed: nothing to destroy (the destroy itself says so otherwise)
            raise
        protected = [r for r in stack.resources() if r.protect]
        if not protected:
            return
        names = ", ".join(r.name for r in protected)
        keys = sorted({PROTECT_KEYS.get(r.type, "") for r in protected} - {""})
        where = (
            str(self.layout.stack_file(layer, self.name)) if not self.layout.inline else "the site's config"
        )
        how = (
            f"set {' and '.join(f'{k}: false' for k in keys)} in {where}, run `jetstream-binderhub up {self.name} "
            f"--layer {layer.value}`, then destroy again"
            if keys
            else f"lift it with `pulumi state unprotect` in {self.layout.work_dir(layer)}, then destroy again"
        )
        raise DestroyRefused(
            f"refusing to destroy the {layer.value} layer of {self.name}: {names} is protected; if losing it is "
            f"intended, {how}"
        )

    def _refuse_while_hub_holds_resources(self) -> None:
        if not self.has_layer(Layer.BINDERHUB):
            return
        try:
            hub = self._open(Layer.BINDERHUB, create=False)
        except StackNotFound:
            return
        held = [r for r in hub.resources() if not r.bookkeeping]
        if held:
            raise DestroyRefused(
                f"refusing to destroy the cluster layer of {self.name}: its BinderHub stack still holds "
                f"{len(held)} resource(s) (floating IP, DNS records, releases); destroy that first: "
                f"`jetstream-binderhub destroy {self.name} --layer binderhub` (or --layer all)"
            )

    def outputs(self, layer: Layer | LayerChoice = "all") -> dict[Layer, LayerOutputs]:
        """Each layer's stack outputs; secret outputs are :class:`Secret` (shown as ``[secret]``).

        With `all`, a BinderHub stack that does not exist yet is left out of the result."""
        layers, _ = self._layers(layer)
        self.check_environment(layers, cloud=False)
        found: dict[Layer, LayerOutputs] = {}
        for current in layers:
            try:
                stack = self._open(current, create=False)
            except StackNotFound:
                if layer == "all" and current is Layer.BINDERHUB:
                    continue  # a site whose hub is not deployed yet still has cluster outputs
                raise
            raw = self._call(current, "outputs", stack.outputs)
            # A plain output that copied a known secret value keeps it masked (secret ones are wrapped).
            from jetstream_binderhub.engine.changes import redact

            raw = {
                k: (v if secret else redact(v, self._known_secrets), secret) for k, (v, secret) in raw.items()
            }
            found[current] = wrap_outputs(current, stack.spec.description, raw)
        return found

    def kubeconfig(self) -> Secret[str]:
        """The cluster's kubeconfig (the cluster layer's `kubeconfig` output), wrapped as a Secret."""
        outputs = self.outputs(Layer.CLUSTER)[Layer.CLUSTER]
        value = outputs.get("kubeconfig")
        raw = value.reveal() if isinstance(value, Secret) else value
        if not raw:
            raise StackNotFound(
                f"the cluster layer of {self.name} has no kubeconfig yet: run `jetstream-binderhub up {self.name} "
                "--layer cluster` first"
            )
        return Secret(str(raw))

    def write_kubeconfig(self, path: Path, *, overwrite: bool = False) -> Path:
        """Write the kubeconfig to `path`, readable by the owner only (0600). Never prints it."""
        return write_private_file(path, self.kubeconfig(), overwrite=overwrite)

    def url(self) -> str | None:
        """The BinderHub's public URL, once the BinderHub layer is up."""
        if not self.has_layer(Layer.BINDERHUB):
            return None
        outputs = self.outputs(Layer.BINDERHUB)[Layer.BINDERHUB]
        for name in URL_OUTPUTS:
            value = outputs.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    # --- running one layer --------------------------------------------------------------------

    def _open(self, layer: Layer, *, create: bool, allow_replace: Collection[str] = ()) -> LayerStack:
        spec = self.spec(layer, allow_replace=allow_replace)
        self.backend.prepare()
        stack = self._call(layer, "select", lambda: self._stacks(spec, create=create))
        pending = self._pending_secrets.pop(layer, {})
        for key, value in pending.items():
            self._call(layer, "config", lambda key=key, value=value: stack.set_secret_config(key, value))
        return stack

    def _call(self, layer: Layer, operation: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except JetstreamBinderHubError:
            raise
        except Exception as exc:
            error = translate(exc, self.spec(layer), operation=operation, backend=self.backend.display)
            if error is None:
                raise
            raise error from None

    def _run(
        self,
        layer: Layer,
        operation: Operation,
        *,
        expected: int | None = None,
        stack: LayerStack | None = None,
        plan: Path | None = None,
    ) -> LayerResult:
        from jetstream_binderhub.engine.changes import ChangeCollector

        stack = stack or self._open(layer, create=operation in ("preview", "up"))
        spec = stack.spec
        collector = ChangeCollector(layer.value, secrets=self._known_secrets)
        progress = self.progress

        acks = SigintAcks()

        def on_event(event: EngineEvent) -> None:
            acks.see(event)
            collector(event)
            # A display problem must not stop the engine (nor make the Automation API print a warning).
            with contextlib.suppress(Exception):
                progress.engine_event(layer, event)

        progress.layer_started(layer, operation, spec.description, expected)
        start = time.monotonic()
        command = getattr(stack, operation)
        # Only preview (saves it) and up (applies it) take an update plan.
        run = (lambda: command(on_event, plan=plan)) if plan is not None else (lambda: command(on_event))
        try:
            run_interruptibly(
                run,
                what=f"{operation} of the {layer.value} layer ({spec.description})",
                on_stopping=progress.note,
                forward=functools.partial(forward_sigint, acknowledged=acks.next_within),
            )
        except JetstreamBinderHubError:
            raise
        except Exception as exc:
            try:
                changes = collector.result()
            except JetstreamBinderHubError:
                changes = None
            error = translate(exc, spec, operation=operation, backend=self.backend.display, changes=changes)
            if error is None:
                raise
            raise error from None
        from jetstream_binderhub.engine.changes import EventStreamError

        try:
            changes = collector.result()
            problem = None
        except EventStreamError as exc:
            if operation == "preview":
                raise  # a preview nobody can read must not feed the guard or a pull-request comment
            # The change itself went through; failing now would read as if it had not.
            changes, problem = (
                None,
                f"{layer.value}: {operation} succeeded but its events could not be read ({exc})",
            )
        result = LayerResult(
            layer=layer,
            operation=operation,
            stack=spec.description,
            changes=changes,
            duration_seconds=time.monotonic() - start,
            problem=problem,
        )
        progress.layer_finished(result)
        return result


@contextlib.contextmanager
def _plan_dir() -> Iterator[Path]:
    """A directory only the user can read, removed afterwards: an update plan holds the stack's
    resource inputs (secrets stay encrypted in it, the rest does not)."""
    path = Path(tempfile.mkdtemp(prefix="jetstream-binderhub-plan-"))
    try:
        path.chmod(0o700)  # mkdtemp's mode already; stated because the promise depends on it
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _creates_cluster(result: LayerResult) -> bool:
    changes = result.changes
    return changes is not None and any(c.type == CLUSTER_TYPE and c.op == "create" for c in changes.changes)


def _as_raw(config: Any) -> dict[str, Any]:
    """A config model or mapping as the stack file's keys (no namespace), JSON types only."""
    from pydantic import BaseModel

    if isinstance(config, BaseModel):
        # Only what the caller set: defaults left to the profile keep following the profile.
        return config.model_dump(mode="json", exclude_unset=True)
    if isinstance(config, Mapping):
        return dict(config)
    raise TypeError(f"expected a config model or a mapping, got {type(config).__name__}")


def _write_stack_file(path: Path, namespace: str, raw: Mapping[str, Any]) -> None:
    """Write `raw` as the stack's config, keeping Pulumi's own keys (encryption salt, secrets provider)
    and the secrets it stored (`secure:` values) from an earlier run."""
    doc: dict[str, Any] = {}
    if path.is_file():
        loaded = safe_load(path.read_text(encoding="utf-8")) or {}
        doc = loaded if isinstance(loaded, dict) else {}
    old = doc.get("config") or {}
    config = {k: v for k, v in old.items() if isinstance(v, dict) and set(v) == {"secure"}}
    config.update({f"{namespace}:{key}": value for key, value in raw.items()})
    doc["config"] = config
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GENERATED_HEADER + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def write_private_file(path: Path, content: Secret[str], *, overwrite: bool = False) -> Path:
    """Write a secret to `path` with mode 0600 from the first byte: the file is created with that mode
    (never chmod-ed after the content is in), and replaced atomically when `overwrite` is set. A
    symbolic link at `path`, dangling or not, counts as an existing file and is replaced, never followed:
    the secret must not land wherever the link points."""
    from jetstream_binderhub.automation.errors import OutputFileExists, OutputFileUnwritable

    path = path.expanduser()
    if os.path.lexists(path) and not overwrite:
        what = "a symbolic link" if path.is_symlink() else "a file"
        raise OutputFileExists(
            f"{path} already exists ({what}): pass --force to replace it, or choose another --output"
        )
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if os.path.lexists(path) else path
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)  # the umask may only remove bits; make the mode exact
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content.reveal())
        if target != path:
            target.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            if target != path:
                target.unlink()
        raise OutputFileUnwritable(
            f"cannot write {path}: {exc.strerror or type(exc).__name__}; choose another --output"
        ) from None
    return path
