"""Run a layer's real Pulumi program under Pulumi's mock runtime and record what it declares.

Each run happens in an empty :class:`contextvars.Context`: the Pulumi SDK keeps its settings, config
and root stack in context variables, so two plans in one process (tests, `plan --compare`) never see
each other's resources.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Mapping
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from jetstream_binderhub.naming import CLUSTER_TYPE, snake_case
from jetstream_binderhub.plan.model import LayerPlan, PlannedOutput, PlannedResource
from jetstream_binderhub.redaction import redact

SECRET = "[secret]"

ComputedFn = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def placeholder(name: str, prop: str) -> str:
    """What a value the cloud decides looks like in a plan: it names where it will come from."""
    return f"<{name}.{prop}>"


def _cluster_outputs(name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiAddress": placeholder(name, "api_address"),
        "kubeconfig": rpc.wrap_rpc_secret({"raw_config": placeholder(name, "kubeconfig")}),
    }


COMPUTED: dict[str, ComputedFn] = {
    CLUSTER_TYPE: _cluster_outputs,
}
"""Per resource type, the outputs the cloud would compute that a program reads (wire names)."""


CallFn = Callable[[Mapping[str, Any]], dict[str, Any]]

CALLS: dict[str, CallFn] = {}
"""Per data-source token (e.g. `openstack:dns/getDnsZone:getDnsZone`), what the plan answers."""


def register_computed(type_token: str, fn: ComputedFn) -> None:
    """Let a layer teach the plan what its resources compute (used by the BinderHub layer)."""
    COMPUTED[type_token] = fn


def register_call(token: str, fn: CallFn) -> None:
    """Let a layer answer a data source offline with a placeholder that names what it looks up."""
    CALLS[token] = fn


def mask(value: Any) -> Any:
    """Replace every secret (wire-wrapped or an Output marked secret) by ``[secret]``."""
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, Mapping):
        return {str(k): mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        # The wire carries every number as a double; counts read better as integers.
        return int(value)
    if isinstance(value, pulumi.Resource):
        return f"<{value._name}>"  # type: ignore[attr-defined]
    return value


class _PlanMocks(pulumi_mocks.Mocks):
    def __init__(
        self, stack_outputs: Mapping[str, Mapping[str, Any]], secret_outputs: Mapping[str, list[str]]
    ):
        self.stack_outputs = stack_outputs
        self.secret_outputs = secret_outputs
        self.inputs: dict[tuple[str, str], dict[str, Any]] = {}
        self.options: dict[tuple[str, str], dict[str, Any]] = {}
        self.secret_values: frozenset[str] = frozenset()
        """Values of the run's secret config keys, masked wherever they appear in plain values."""
        self.thread_loops: set[asyncio.AbstractEventLoop] = set()
        """The event loops the SDK's mock monitor made in its executor threads (closed after the run)."""

    def _note_thread_loop(self) -> None:
        self.thread_loops.add(asyncio.get_event_loop_policy().get_event_loop())

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self._note_thread_loop()
        inputs = {snake_case(k): mask(v) for k, v in args.inputs.items()}
        self.inputs[(args.typ, args.name)] = redact(inputs, self.secret_values)
        if args.typ == "pulumi:pulumi:StackReference":
            ref = str(args.inputs.get("name", args.name))
            outputs = self.stack_outputs.get(ref)
            if outputs is None:
                raise LookupError(f"the offline plan has no outputs for stack reference {ref!r}")
            return ref, {
                "name": ref,
                "outputs": dict(outputs),
                "secretOutputNames": list(self.secret_outputs.get(ref, [])),
            }
        state = dict(args.inputs)
        computed = COMPUTED.get(args.typ)
        if computed is not None:
            state.update(computed(args.name, args.inputs))
        return self._id(args), state

    def _id(self, args: pulumi_mocks.MockResourceArgs) -> str:
        # A resource replaced on any change gets a new id with each new content; naming that content in the
        # placeholder lets a plan show that whatever references it (a cluster's template id) moves too.
        if (
            self.options.get((args.typ, args.name), {}).get("replace_on_changes") == ["*"]
            and "name" in args.inputs
        ):
            return f"<{args.name}.id of {args.inputs['name']}>"
        return placeholder(args.name, "id")

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self._note_thread_loop()
        answer = CALLS.get(args.token)
        if answer is None:
            raise NotImplementedError(f"the offline plan cannot answer the data source {args.token}")
        # The mock monitor iterates the failures list; None would crash it.
        return answer(args.args), []


def _name_of(res: Any) -> str | None:
    return getattr(res, "_name", None) if isinstance(res, pulumi.Resource) else None


def _options(opts: pulumi.ResourceOptions | None) -> dict[str, Any]:
    if opts is None:
        return {}
    out: dict[str, Any] = {}
    if opts.protect:
        out["protect"] = True
    if opts.ignore_changes:
        out["ignore_changes"] = list(opts.ignore_changes)
    if opts.replace_on_changes:
        out["replace_on_changes"] = list(opts.replace_on_changes)
    if opts.delete_before_replace:
        out["delete_before_replace"] = True
    if opts.retain_on_delete:
        out["retain_on_delete"] = True
    depends = opts.depends_on
    if depends:
        items = depends if isinstance(depends, list | tuple) else [depends]
        names = [n for n in (_name_of(d) for d in items) if n]
        if names:
            out["depends_on"] = names
    if opts.provider is not None and (provider := _name_of(opts.provider)):
        out["provider"] = provider
    timeouts = opts.custom_timeouts
    if timeouts is not None:
        out["custom_timeouts"] = {
            k: v
            for k, v in (
                ("create", timeouts.create),
                ("update", timeouts.update),
                ("delete", timeouts.delete),
            )
            if v
        }
    return out


async def _resolve(value: Any) -> tuple[Any, bool]:
    out = pulumi.Output.from_input(value)
    return await out.future(), bool(await out.is_secret())


def run_layer(
    program: Callable[[], None],
    *,
    layer: str,
    project: str,
    stack: str,
    config: Mapping[str, str],
    secret_keys: list[str] | None = None,
    stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
    secret_outputs: Mapping[str, list[str]] | None = None,
) -> tuple[LayerPlan, dict[str, Any]]:
    """Run `program` under mocks (``preview=False``, so apply callbacks really run).

    Returns the layer's plan and its raw outputs (unmasked), which a later layer's StackReference
    is answered from.
    """
    mocks = _PlanMocks(stack_outputs or {}, secret_outputs or {})
    # A secret config value copied into a plain input or output is still that secret.
    mocks.secret_values = frozenset(config[key] for key in secret_keys or () if key in config)
    # The SDK runs on the thread's event loop, and its mock monitor makes one more in every executor thread;
    # it closes none of them. Left open, they are collected at interpreter exit after their self-pipes and
    # Python prints a traceback after a successful plan. Each run gets its own loop (so its own executor
    # threads) and closes every loop it caused.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from pulumi.runtime.settings import SETTINGS

    # The SDK's set of pending output tasks is one for the process, not per context, and a program's end
    # awaits all of it: a task an earlier run left there belongs to that run's closed loop and never
    # finishes, so this plan would hang on it. Pulumi's own mocks helper (`pulumi.runtime.mocks.test`)
    # starts from an empty set for the same reason.
    SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]  (a contextproperty)
    try:
        return contextvars.Context().run(
            _run, program, mocks, layer, project, stack, dict(config), list(secret_keys or [])
        )
    except BaseException:
        # A program that failed inside an apply leaves failed tasks in that set: let them go with this run.
        SETTINGS.outputs.clear()  # pyright: ignore[reportAttributeAccessIssue]  (a contextproperty)
        # The failure is raised once, here. Every resource waiting on the failed one holds it too, and
        # asyncio would print each of those as "never retrieved" with a traceback when it is collected.
        loop.set_exception_handler(_quiet_unretrieved)
        raise
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        asyncio.set_event_loop(None)
        loop.close()
        for worker_loop in mocks.thread_loops:
            worker_loop.close()


def _quiet_unretrieved(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not str(context.get("message", "")).endswith("exception was never retrieved"):
        loop.default_exception_handler(context)


def _run(
    program: Callable[[], None],
    mocks: _PlanMocks,
    layer: str,
    project: str,
    stack: str,
    config: dict[str, str],
    secret_keys: list[str],
) -> tuple[LayerPlan, dict[str, Any]]:
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi_mocks.set_mocks(mocks, project=project, stack=stack, preview=False)
    order: list[tuple[str, str, str | None, bool, dict[str, Any]]] = []

    def capture(args: pulumi.ResourceTransformationArgs) -> None:
        custom = isinstance(args.resource, pulumi.CustomResource)
        options = _options(args.opts)
        mocks.options[(args.type_, args.name)] = options
        order.append(
            (args.type_, args.name, _name_of(args.opts.parent) if args.opts else None, custom, options)
        )
        return None

    pulumi.runtime.register_stack_transformation(capture)
    _sync_await(run_pulumi_func(program))

    root = pulumi.runtime.get_root_resource()
    raw_outputs: dict[str, Any] = {}
    outputs: list[PlannedOutput] = []
    for name, value in sorted(getattr(root, "outputs", {}).items()):
        resolved, secret = _sync_await(_resolve(value))
        raw_outputs[name] = resolved
        shown = SECRET if secret else redact(mask(resolved), mocks.secret_values)
        outputs.append(PlannedOutput(name=name, value=shown, secret=secret))

    resources = [
        PlannedResource(
            layer=layer,
            type=type_,
            name=name,
            parent=parent,
            custom=custom,
            inputs=mocks.inputs.get((type_, name), {}),
            options=options,
        )
        for type_, name, parent, custom, options in order
    ]
    return LayerPlan(
        layer=layer, project=project, stack=stack, resources=resources, outputs=outputs
    ), raw_outputs
