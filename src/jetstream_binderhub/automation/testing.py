"""Test doubles for code that drives a :class:`~jetstream_binderhub.automation.site.Site` without the
Pulumi CLI or a cloud: a scripted :class:`StackOpener` and builders of engine events.

The fake replays engine-event JSON — in the shape Pulumi writes it (`--event-log`, the gRPC event
stream) — through ``pulumi.automation.events.EngineEvent.from_json``, and raises the Automation API's
own exception types, so everything above the boundary (change collection, the replacement guard, error
translation, typed results) runs exactly as against the real CLI::

    stacks = FakeStacks(events={(Layer.CLUSTER, "preview"): [step("create", CLUSTER_TYPE, "c", new={})]})
    site = Site.from_files("jetstream2", repo, stacks=stacks, env=READY_ENV)
    assert site.preview("cluster").counts["cluster"]["create"] == 1

Importing this module imports ``pulumi.automation`` (not the CLI).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.automation import (
    CommandError,
    CommandResult,
    ConcurrentUpdateError,
    EngineEvent,
    StackNotFoundError,
)

from jetstream_binderhub.automation.results import Layer
from jetstream_binderhub.automation.stacks import LayerSpec, StateResource
from jetstream_binderhub.engine.changes import SECRET_SIG as ENGINE_SECRET_SIG
from jetstream_binderhub.engine.changes import SECRET_SIG_KEY
from jetstream_binderhub.naming import CLUSTER_TYPE, NODE_GROUP_TYPE, TEMPLATE_TYPE

SITE = "jetstream2"
SECRET_SIG = {SECRET_SIG_KEY: ENGINE_SECRET_SIG}

COMPONENT_TYPE = "jetstream-binderhub:infra:MagnumCluster"

_seq = itertools.count()


def secret(value: Any) -> dict[str, Any]:
    """A secret property value in the engine's serialised form with its plaintext inside: the worst
    case, which nothing downstream may print."""
    return {**SECRET_SIG, "plaintext": json.dumps(value)}


def urn(type_: str, name: str, project: str = "jetstream-binderhub") -> str:
    """The URN the cluster program gives a resource: Magnum resources are children of the component."""
    nested = project == "jetstream-binderhub" and type_.startswith("openstack:containerinfra/")
    qualified = f"{COMPONENT_TYPE}${type_}" if nested else type_
    return f"urn:pulumi:{SITE}::{project}::{qualified}::{name}"


def _event(**payload: Any) -> dict[str, Any]:
    return {"sequence": next(_seq), "timestamp": 1764140000, **payload}


def _state(type_: str, name: str, inputs: Mapping[str, Any] | None, project: str) -> dict[str, Any]:
    return {
        "type": type_,
        "urn": urn(type_, name, project),
        "id": "",
        "parent": "",
        "provider": "",
        "custom": True,
        "inputs": dict(inputs or {}),
        "outputs": {},
    }


def step(
    op: str,
    type_: str,
    name: str,
    *,
    old: Mapping[str, Any] | None = None,
    new: Mapping[str, Any] | None = None,
    detailed: Mapping[str, str] | None = None,
    planning: bool = True,
    project: str = "jetstream-binderhub",
) -> dict[str, Any]:
    """A resourcePreEvent: one engine step (create, update, replace, delete, ...)."""
    metadata: dict[str, Any] = {"op": op, "urn": urn(type_, name, project), "type": type_, "provider": ""}
    if old is not None:
        metadata["old"] = _state(type_, name, old, project)
    if new is not None:
        metadata["new"] = _state(type_, name, new, project)
    if detailed:
        metadata["detailedDiff"] = {k: {"diffKind": kind, "inputDiff": True} for k, kind in detailed.items()}
        metadata["diffs"] = sorted({k.split(".")[0] for k in detailed})
        replace = sorted({k.split(".")[0] for k, kind in detailed.items() if kind.endswith("-replace")})
        if replace:
            metadata["keys"] = replace
    return _event(resourcePreEvent={"metadata": metadata, "planning": planning})


def done(
    type_: str, name: str, op: str = "create", *, project: str = "jetstream-binderhub"
) -> dict[str, Any]:
    """The resOutputsEvent that ends a step."""
    metadata = {"op": op, "urn": urn(type_, name, project), "type": type_, "provider": ""}
    return _event(resOutputsEvent={"metadata": metadata, "planning": True})


def failed(type_: str, name: str, op: str = "update") -> dict[str, Any]:
    metadata = {"op": op, "urn": urn(type_, name), "type": type_, "provider": ""}
    return _event(resOpFailedEvent={"metadata": metadata, "status": 1, "steps": 0})


def diagnostic(
    message: str, severity: str = "error", resource: str | None = None, type_: str = CLUSTER_TYPE
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "color": "never", "severity": severity}
    if resource:
        body["urn"] = urn(type_, resource)
    return _event(diagnosticEvent=body)


def summary(**counts: int) -> dict[str, Any]:
    return _event(
        summaryEvent={
            "maybeCorrupt": False,
            "durationSeconds": 1,
            "resourceChanges": counts,
            "PolicyPacks": {},
        }
    )


def cancel() -> dict[str, Any]:
    return _event(cancelEvent={})


# --- scripted previews ---------------------------------------------------------------------------


def fresh_cluster() -> list[dict[str, Any]]:
    """A first preview of the cluster layer: everything is created."""
    return [
        step("create", COMPONENT_TYPE, "pythia-binder", new={}),
        step(
            "create",
            TEMPLATE_TYPE,
            "pythia-binder-template",
            new={"name": "pythia-binder-v1.33.2", "flavor": "m3.quad"},
        ),
        step(
            "create",
            CLUSTER_TYPE,
            "pythia-binder-cluster",
            new={"name": "pythia-binder", "masterFlavor": "m3.medium"},
        ),
        step(
            "create", NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large", new={"flavorId": "m3.large"}
        ),
        summary(create=4),
    ]


def cluster_replace() -> list[dict[str, Any]]:
    """The control-plane flavor changed: the provider forces a new cluster (an `update-replace` diff)."""
    old = {"name": "pythia-binder", "masterFlavor": "m3.medium", "nodeCount": 1}
    new = {"name": "pythia-binder", "masterFlavor": "m3.large", "nodeCount": 1}
    return [
        step(
            "create-replacement",
            CLUSTER_TYPE,
            "pythia-binder-cluster",
            old=old,
            new=new,
            detailed={"masterFlavor": "update-replace"},
        ),
        step(
            "replace",
            CLUSTER_TYPE,
            "pythia-binder-cluster",
            old=old,
            new=new,
            detailed={"masterFlavor": "update-replace"},
        ),
        step(
            "delete-replaced",
            CLUSTER_TYPE,
            "pythia-binder-cluster",
            old=old,
            new=new,
            detailed={"masterFlavor": "update-replace"},
        ),
        summary(replace=1, same=3),
    ]


def kube_upgrade() -> list[dict[str, Any]]:
    """A new image: the template is replaced create-first and the cluster moves to it in place."""
    old_t = {"name": "pythia-binder-v1.33.2-1a2b3c4d", "image": "ubuntu-jammy-kube-v1.33.2-250626-0848"}
    new_t = {"name": "pythia-binder-v1.34.1-9f8e7d6c", "image": "ubuntu-jammy-kube-v1.34.1-260301-1200"}
    detailed = {"image": "update-replace", "name": "update-replace"}
    template = "pythia-binder-template"
    return [
        step("create-replacement", TEMPLATE_TYPE, template, old=old_t, new=new_t, detailed=detailed),
        step("replace", TEMPLATE_TYPE, template, old=old_t, new=new_t, detailed=detailed),
        step(
            "update",
            CLUSTER_TYPE,
            "pythia-binder-cluster",
            old={"clusterTemplateId": "tmpl-old"},
            new={"clusterTemplateId": "tmpl-new"},
            detailed={"clusterTemplateId": "update"},
        ),
        step("delete-replaced", TEMPLATE_TYPE, template, old=old_t, new=new_t, detailed=detailed),
        summary(replace=1, update=1, same=2),
    ]


def nodegroup_resize() -> list[dict[str, Any]]:
    """A node group's maximum size changes in place: nothing dangerous."""
    return [
        step(
            "update",
            NODE_GROUP_TYPE,
            "pythia-binder-nodegroup-user-m3.large",
            old={"maxNodeCount": 10},
            new={"maxNodeCount": 12},
            detailed={"maxNodeCount": "update"},
        ),
        summary(update=1, same=3),
    ]


HUB = "jetstream-binderhub-hub"


def hub_update(secret_value: str = "hunter2-registry-token") -> list[dict[str, Any]]:
    """The BinderHub release changes, including a secret value that must never be shown."""
    release = "kubernetes:helm.sh/v3:Release"
    return [
        step(
            "update",
            release,
            "binderhub-release",
            old={"version": "1.0.0-0.dev.git.3900", "values": {"password": secret("old-" + secret_value)}},
            new={"version": "1.0.0-0.dev.git.3958", "values": {"password": secret(secret_value)}},
            detailed={"version": "update", "values.password": "update"},
            project=HUB,
        ),
        step(
            "create",
            "kubernetes:core/v1:Secret",
            "binderhub-registry-push",
            new={"stringData": secret(secret_value)},
            project=HUB,
        ),
        summary(update=1, create=1, same=10),
    ]


# --- the fake stacks -------------------------------------------------------------------------------


def command_result(stderr: str, stdout: str = "", code: int = 255) -> CommandResult:
    return CommandResult(stdout=stdout, stderr=stderr, code=code)


def locked() -> ConcurrentUpdateError:
    return ConcurrentUpdateError(
        command_result(
            "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
            "or delete the lock file with `pulumi cancel`.\n  file:///state/.pulumi/locks/x.json: created by "
            "someone@laptop (pid 4242) at 2026-11-26T06:00:00Z"
        )
    )


def not_found(stack: str = "jetstream2") -> StackNotFoundError:
    return StackNotFoundError(command_result(f"error: no stack named '{stack}' found"))


@dataclass
class FakeStacks:
    """Scripted stacks. `events[(layer, op)]` is replayed; `errors[(layer, op)]` raised after it."""

    events: dict[tuple[Layer, str], list[Any]] = field(default_factory=dict)
    errors: dict[tuple[Layer, str], BaseException] = field(default_factory=dict)
    resources: dict[Layer, list[StateResource]] = field(default_factory=dict)
    outputs: dict[Layer, dict[str, tuple[Any, bool]]] = field(default_factory=dict)
    existing: set[Layer] = field(default_factory=lambda: set(Layer))
    check_error: BaseException | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)
    opened: list[tuple[LayerSpec, bool]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    during: dict[tuple[Layer, str], Callable[[], None]] = field(default_factory=dict)
    plans: list[tuple[str, str, Path]] = field(default_factory=list)
    """(layer, op, path) of every update plan a preview saved or an up applied."""

    def check(self) -> None:
        if self.check_error is not None:
            raise self.check_error

    def __call__(self, spec: LayerSpec, *, create: bool) -> FakeStack:
        self.opened.append((spec, create))
        if (spec.layer, "open") in self.errors:
            raise self.errors[(spec.layer, "open")]
        if spec.layer not in self.existing:
            if not create:
                raise not_found(spec.stack)
            self.existing.add(spec.layer)
        return FakeStack(spec, self)


class FakeStack:
    def __init__(self, spec: LayerSpec, script: FakeStacks) -> None:
        self.spec = spec
        self._script = script

    def _run(self, op: str, on_event: Callable[[EngineEvent], None], plan: Path | None = None) -> None:
        layer = self.spec.layer
        self._script.calls.append((layer.value, op))
        if plan is not None:
            self._script.plans.append((layer.value, op, plan))
            if op == "preview":
                plan.write_text(json.dumps({"resourcePlans": {}}))  # what `--save-plan` leaves behind
            elif not plan.is_file():
                raise CommandError(command_result(f"error: open {plan}: no such file or directory"))
        for event in self._script.events.get((layer, op), []):
            # Dicts are parsed as the Automation API parses the engine's JSON; anything else is handed
            # over as it is (to test what happens with an event nobody can read).
            on_event(EngineEvent.from_json(event) if isinstance(event, dict) else event)
        if (layer, op) in self._script.during:
            self._script.during[(layer, op)]()
        if (layer, op) in self._script.errors:
            raise self._script.errors[(layer, op)]
        if op == "destroy":
            self._script.resources[layer] = []

    def preview(self, on_event: Callable[[EngineEvent], None], *, plan: Path | None = None) -> None:
        self._run("preview", on_event, plan)

    def up(self, on_event: Callable[[EngineEvent], None], *, plan: Path | None = None) -> None:
        self._run("up", on_event, plan)

    def refresh(self, on_event: Callable[[EngineEvent], None]) -> None:
        self._run("refresh", on_event)

    def destroy(self, on_event: Callable[[EngineEvent], None]) -> None:
        self._run("destroy", on_event)

    def outputs(self) -> dict[str, tuple[Any, bool]]:
        self._script.calls.append((self.spec.layer.value, "outputs"))
        if (self.spec.layer, "outputs") in self._script.errors:
            raise self._script.errors[(self.spec.layer, "outputs")]
        return dict(self._script.outputs.get(self.spec.layer, {}))

    def resources(self) -> list[StateResource]:
        return list(self._script.resources.get(self.spec.layer, []))

    def set_secret_config(self, key: str, value: str) -> None:
        self._script.calls.append((self.spec.layer.value, f"set-secret {key}"))
        self._script.secrets[key] = value


READY_ENV: Mapping[str, str] = {
    "PULUMI_CONFIG_PASSPHRASE": "correct horse battery staple",
    "OS_AUTH_URL": "https://js2.jetstream-cloud.org:5000/v3/",
    "OS_APPLICATION_CREDENTIAL_ID": "0123abcd",
    "OS_APPLICATION_CREDENTIAL_SECRET": "very-secret-app-cred",
}
"""An environment where every preflight check passes (values are placeholders, never printed)."""


def cluster_resources(protect: bool = True) -> list[StateResource]:
    return [
        StateResource(
            urn=f"urn:pulumi:{SITE}::jetstream-binderhub::pulumi:pulumi:Stack::x", type="pulumi:pulumi:Stack"
        ),
        StateResource(urn=urn(TEMPLATE_TYPE, "pythia-binder-template"), type=TEMPLATE_TYPE),
        StateResource(urn=urn(CLUSTER_TYPE, "pythia-binder-cluster"), type=CLUSTER_TYPE, protect=protect),
    ]


def hub_resources() -> list[StateResource]:
    return [
        StateResource(
            urn="urn:pulumi:jetstream2::jetstream-binderhub-hub::pulumi:pulumi:Stack::x",
            type="pulumi:pulumi:Stack",
        ),
        StateResource(
            urn="urn:pulumi:jetstream2::jetstream-binderhub-hub::pulumi:providers:kubernetes::k8s",
            type="pulumi:providers:kubernetes",
        ),
        StateResource(
            urn="urn:pulumi:jetstream2::jetstream-binderhub-hub::openstack:networking/floatingIp:FloatingIp::ingress-floating-ip",
            type="openstack:networking/floatingIp:FloatingIp",
        ),
    ]
