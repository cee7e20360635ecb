"""The last check before `up` applies: refuse to lose what users depend on, and refuse a Kubernetes
upgrade nobody asked for.

Cluster layer: replacing the cluster destroys every user's hub and all in-cluster state; replacing a
node group kills every pod on it at once; deleting a template fails (Magnum refuses while a cluster
uses it) or strands the cluster. The project's own template replacement creates the new template first
and moves the cluster to it through an in-place upgrade; that is safe unless the new template carries a
new image or chart version, which the Cluster API driver rolls out to EVERY node group (magnum-capi-helm
``driver.py`` ``upgrade_cluster`` renders the template's one image for all groups; capi-helm-charts
replaces each group's nodes one at a time), killing the user sessions on each replaced node. Such an
upgrade needs ``--allow-upgrade``.

BinderHub layer: a replaced Kubernetes provider re-creates every Kubernetes resource it manages; a
replaced or deleted namespace takes everything in it; a replaced or deleted Helm release uninstalls the
service; a replaced floating IP changes the public address under the DNS records; a replaced or deleted
DNS record stops the hostname resolving.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass

from jetstream_binderhub.engine.changes import ChangeOp, LayerChanges, ResourceChange
from jetstream_binderhub.errors import JetstreamBinderHubError
from jetstream_binderhub.naming import (
    CLUSTER_TYPE,
    DNS_RECORD_TYPE,
    FLOATING_IP_TYPE,
    HELM_RELEASE_TYPE,
    K8S_PROVIDER_TYPE,
    NAMESPACE_TYPE,
    NODE_GROUP_TYPE,
    TEMPLATE_TYPE,
    snake_case,
)

ALLOW_FLAG = "--allow-replace"
ALLOW_UPGRADE_FLAG = "--allow-upgrade"
UPGRADE_TOKEN = "upgrade"
"""Danger name suffix (`<layer>:upgrade`) of a Kubernetes upgrade of the running cluster."""

_ROLLING_TEMPLATE_KEYS = ("image", "capi_helm_chart_version", "network_driver", "external_network_id")
"""Template settings that reach a running cluster: the driver reads the image, the chart version, the
network driver (the CNI) and the external network from the cluster's *current* template, every label
from the copy Magnum made at creation (magnum-capi-helm ``driver.py`` ``_get_image_details``,
``_get_chart_version``, ``_get_cni_type``, ``_update_helm_release``, ``_label``)."""

_CLUSTER_KEYS = {
    "master_flavor": "cluster.control_plane.flavor",
    "master_count": "cluster.control_plane.count",
    "flavor": "cluster.default_worker.flavor",
    "name": "cluster.name",
    "keypair": "cluster.keypair",
    "fixed_network": "cluster.fixed_network",
    "fixed_subnet": "cluster.fixed_subnet",
    "labels": "the cluster's labels (keep them on the template: cluster.extra_labels)",
}
"""Provider property of a Magnum cluster -> the configuration key that sets it."""

_NODE_GROUP_KEYS = {
    "name": "name",
    "flavor_id": "flavor",
    "labels": "labels",
    "role": "role",
}
"""Provider property of a node group -> the key of its entry under cluster.node_groups."""


@dataclass(frozen=True)
class Danger:
    """One change the guard refuses unless the user names it with --allow-replace."""

    layer: str
    urn: str
    type: str
    name: str
    op: ChangeOp
    causes: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return self.message


class GuardRefused(JetstreamBinderHubError):
    """`up` would destroy something users depend on; nothing has been applied."""

    exit_code = 3

    def __init__(self, dangers: Sequence[Danger]) -> None:
        self.dangers = list(dangers)
        super().__init__(
            f"refusing to apply {len(self.dangers)} dangerous change(s):\n"
            + "\n".join(f"  {d.message}" for d in self.dangers)
        )

    def lines(self) -> list[str]:
        return [d.message for d in self.dangers]


def _top(path: str) -> str:
    # The engine names properties as the provider schema does (masterFlavor); the offline plan uses the
    # Python names (master_flavor). Both must find the same configuration key.
    return snake_case(re.split(r"[.\[]", path, maxsplit=1)[0])


def _causes(change: ResourceChange) -> str:
    if not change.replace_causes:
        return "a change the engine did not attribute to a property"
    return ", ".join(change.replace_causes[:5]) + (" and more" if len(change.replace_causes) > 5 else "")


def _config_keys(change: ResourceChange, table: dict[str, str], prefix: str = "") -> str:
    keys = dict.fromkeys(prefix + table.get(_top(c), c) for c in change.replace_causes)
    return ", ".join(keys) or "the change"


def _group(change: ResourceChange) -> str:
    # Logical names are `<component>-nodegroup-<group>` (infra/magnum.py).
    return change.name.split("-nodegroup-", 1)[1] if "-nodegroup-" in change.name else change.name


def _allow(change: ResourceChange) -> str:
    return f"{ALLOW_FLAG} {change.name}"


def _cluster_message(change: ResourceChange) -> str:
    what = f"{change.layer}: Magnum cluster {change.name}"
    if change.op is ChangeOp.DELETE:
        return (
            f"{what} would be DELETED: every user's hub and all in-cluster state go with it. Put it back in the "
            "configuration (a renamed cluster or component is a delete plus a create), or pass "
            f"{_allow(change)} if removing the cluster is intended."
        )
    return (
        f"{what} would be REPLACED because {_causes(change)} forces a new cluster: every node, every user's "
        f"hub and all in-cluster state are destroyed and rebuilt. Revert {_config_keys(change, _CLUSTER_KEYS)}, "
        f"or pass {_allow(change)} if losing every user's hub is intended."
    )


def _node_group_message(change: ResourceChange) -> str:
    group = _group(change)
    what = f"{change.layer}: node group {change.name}"
    if change.op is ChangeOp.DELETE:
        return (
            f"{what} would be DELETED: its nodes and every pod on them go at once. If group {group} left "
            f"cluster.node_groups by mistake (or was renamed), put it back; otherwise pass {_allow(change)}."
        )
    keys = _config_keys(change, _NODE_GROUP_KEYS, prefix=f"cluster.node_groups[{group}].")
    return (
        f"{what} would be REPLACED because {_causes(change)} forces a new group (flavor, labels, role and "
        "name all do): every pod on it is killed at once. "
        f"Revert {keys}; to move users to another flavor without that, add a new group beside {group}, "
        f"then remove {group} once it is idle; or pass {_allow(change)} if killing its pods is intended."
    )


def _template_message(change: ResourceChange) -> str | None:
    what = f"{change.layer}: cluster template {change.name}"
    if change.op is ChangeOp.DELETE:
        return (
            f"{what} would be DELETED while the cluster may still use it: Magnum refuses, and the update "
            "stops half-way. If the cluster moves to cluster.existing_template_id in this same update (the "
            f"old template is deleted last), pass {_allow(change)}."
        )
    if change.delete_before_replace is False:
        # Created first: the cluster moves to the new template in place, then the old one is deleted.
        return None
    if change.delete_before_replace is None:
        return (
            f"{what} would be REPLACED (because {_causes(change)}) but the events do not show whether the new "
            "template is created before the old one is deleted; rerun the preview with the complete event "
            f"stream, or pass {_allow(change)}."
        )
    return (
        f"{what} would be deleted BEFORE its replacement exists (because {_causes(change)}): Magnum "
        "refuses to delete a template a cluster uses, and Pulumi then re-creates whatever depends on it. "
        "Keep delete_before_replace=False on the template (infra/magnum.py) so the new one is created first, "
        f"or pass {_allow(change)}."
    )


_HUB_RESOURCES = {
    K8S_PROVIDER_TYPE: (
        "Kubernetes provider",
        "every Kubernetes resource of the layer (namespaces, Helm releases, Secrets) is deleted and "
        "re-created with it: BinderHub, the ingress and every running session go down. The provider is "
        "keyed on the cluster's id, so this means the cluster stack now points at another cluster",
    ),
    NAMESPACE_TYPE: (
        "Kubernetes namespace",
        "everything in it goes with it: the release's pods, every running session, its Secrets and "
        "volumes (the hub's database)",
    ),
    HELM_RELEASE_TYPE: (
        "Helm release",
        "Helm uninstalls it (its pods, services and the volumes it owns) before anything comes back: the "
        "service is down and running sessions end",
    ),
    FLOATING_IP_TYPE: (
        "floating IP",
        "the public address changes or goes: the DNS records point at nothing until they follow, and "
        "every user's link breaks meanwhile (ingress.protect_floating_ip keeps it)",
    ),
    DNS_RECORD_TYPE: (
        "DNS record",
        "the hostname stops resolving until the record is back (and resolvers cache the gap for its ttl)",
    ),
}
"""Resource type of the BinderHub layer -> (what it is, what its replacement or deletion does)."""


def _hub_message(change: ResourceChange, noun: str, consequence: str) -> str:
    what = f"{change.layer}: {noun} {change.name}"
    if change.op is ChangeOp.DELETE:
        return (
            f"{what} would be DELETED: {consequence}. If it left the configuration by mistake (a renamed "
            f"component is a delete plus a create), put it back; otherwise pass {_allow(change)}."
        )
    return (
        f"{what} would be REPLACED because {_causes(change)} forces a new one: {consequence}. Revert that "
        f"change, or pass {_allow(change)} if the outage is intended."
    )


def rolling_keys(change: ResourceChange) -> list[str]:
    """The changed template settings that reach the running cluster (see _ROLLING_TEMPLATE_KEYS)."""
    return _rolling_keys(change)


def _rolling_keys(change: ResourceChange) -> list[str]:
    # `image` at the top; the chart version is a label (`labels.capi_helm_chart_version`).
    return [
        k
        for k in change.changed_keys
        if _top(k) in _ROLLING_TEMPLATE_KEYS or k.split(".")[-1] in _ROLLING_TEMPLATE_KEYS
    ]


def _upgrade_message(layer: LayerChanges) -> str | None:
    """Why this layer's update upgrades the running cluster, or None when it does not."""
    templates = [c for c in layer.changes if c.type == TEMPLATE_TYPE]
    moved = [
        c
        for c in layer.changes
        if c.type == CLUSTER_TYPE
        and c.op is ChangeOp.UPDATE
        and any(_top(k) == "cluster_template_id" for k in c.changed_keys)
    ]
    what = ""
    for template in templates:
        if template.op in (ChangeOp.REPLACE, ChangeOp.UPDATE) and (keys := _rolling_keys(template)):
            shown = []
            for key in keys:
                value = template.values.get(key)
                shown.append(f"{key} {value.old} → {value.new}" if value else key)
            what = "; ".join(shown)
            break
    else:
        if moved and not any(t.op is ChangeOp.REPLACE for t in templates):
            # Moving to another template (cluster.existing_template_id) upgrades to whatever it carries.
            what = "the cluster moves to another template"
    if not what:
        return None
    return (
        f"{layer.layer}: this update upgrades the running cluster ({what}): Magnum's Cluster API driver "
        "puts the template's one image on EVERY node group and replaces their nodes one at a time, so the "
        "sessions of users on each replaced node die. Drain launches first (docs/operations.md, "
        f'"Upgrading Kubernetes"), then pass {ALLOW_UPGRADE_FLAG}.'
    )


def protected_danger(change: ResourceChange) -> Danger:
    """The refusal for a replacement or deletion the engine itself stopped because the resource is
    `protect`ed: the engine fails the preview before the guard runs, so this is where the way out is said."""
    if change.type == CLUSTER_TYPE:
        base = _cluster_message(change) if change.op in (ChangeOp.REPLACE, ChangeOp.DELETE) else ""
        way_out = (
            "Pulumi stopped the preview because the cluster is protected: if losing it is intended, run up "
            f"with {_allow(change)}, which lifts protect on that one resource for that update (or set "
            "cluster.protect: false in the site's stack file)."
        )
    else:
        base = _message(change) or ""
        way_out = (
            f"Pulumi stopped the preview because {change.name} is protected: if that is intended, run up with "
            f"{_allow(change)}, which lifts protect on the cluster, a node group or the floating IP for "
            "that update; anything else: turn its protection off in the site's configuration first."
        )
    if not base:
        base = f"{change.layer}: {change.name} would be replaced or deleted."
    return Danger(
        layer=change.layer,
        urn=change.urn,
        type=change.type,
        name=change.name,
        op=change.op if change.op in (ChangeOp.REPLACE, ChangeOp.DELETE) else ChangeOp.REPLACE,
        causes=tuple(change.replace_causes),
        message=f"{base} {way_out}",
    )


def _message(change: ResourceChange) -> str | None:
    if change.op not in (ChangeOp.REPLACE, ChangeOp.DELETE):
        return None
    if change.type == CLUSTER_TYPE:
        return _cluster_message(change)
    if change.type == NODE_GROUP_TYPE:
        return _node_group_message(change)
    if change.type == TEMPLATE_TYPE:
        return _template_message(change)
    if change.type in _HUB_RESOURCES:
        return _hub_message(change, *_HUB_RESOURCES[change.type])
    return None


def find_dangerous(
    layers: Sequence[LayerChanges], allow: Set[str] = frozenset(), *, allow_upgrade: bool = False
) -> list[Danger]:
    """Every replacement or deletion the guard refuses, except those `allow` names, and any Kubernetes
    upgrade of the running cluster unless `allow_upgrade`.

    `allow` holds what the user passed with --allow-replace: a resource's logical name or its URN.
    A layer whose event stream lost replace or delete steps is refused as a whole (the missing step may
    be the cluster); pass ``<layer>:incomplete`` to accept that.
    """
    dangers: list[Danger] = []
    for layer in layers:
        lost = {op: n for op, n in layer.missing.items() if op in ("replace", "delete")}
        token = f"{layer.layer}:incomplete"
        if lost and token not in allow:
            counts = ", ".join(f"{n} {op}" for op, n in sorted(lost.items()))
            dangers.append(
                Danger(
                    layer=layer.layer,
                    urn="",
                    type="",
                    name=token,
                    op=ChangeOp.REPLACE if "replace" in lost else ChangeOp.DELETE,
                    causes=(),
                    message=(
                        f"{layer.layer}: the engine counted {counts} step(s) that never arrived as events, so a "
                        f"cluster replacement could be hidden; rerun the preview, or pass {ALLOW_FLAG} {token}."
                    ),
                )
            )
        upgrade = None if allow_upgrade else _upgrade_message(layer)
        if upgrade is not None:
            dangers.append(
                Danger(
                    layer=layer.layer,
                    urn="",
                    type=TEMPLATE_TYPE,
                    name=f"{layer.layer}:{UPGRADE_TOKEN}",
                    op=ChangeOp.UPDATE,
                    causes=(),
                    message=upgrade,
                )
            )
        for change in layer.changes:
            if change.name in allow or change.urn in allow:
                continue
            message = _message(change)
            if message is not None:
                dangers.append(
                    Danger(
                        layer=layer.layer,
                        urn=change.urn,
                        type=change.type,
                        name=change.name,
                        op=change.op,
                        causes=tuple(change.replace_causes),
                        message=message,
                    )
                )
    return dangers


def check(
    layers: Sequence[LayerChanges], allow: Set[str] = frozenset(), *, allow_upgrade: bool = False
) -> None:
    """Raise GuardRefused when :func:`find_dangerous` finds anything."""
    dangers = find_dangerous(layers, allow, allow_upgrade=allow_upgrade)
    if dangers:
        raise GuardRefused(dangers)
