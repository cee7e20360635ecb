"""Names the Magnum driver and Kubernetes derive from ours, computed the way they compute them."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

NODE_GROUP_LABEL = "capi.stackhpc.com/node-group"
"""The node label the Magnum Cluster API driver puts on every node of a group.

Magnum's own node-group labels and roles never reach the nodes (azimuth capi-helm-charts#84), so this
is the only reliable selector for placing pods on a group.
"""

DEFAULT_WORKER = "default-worker"
"""The node group Magnum always creates from the template's flavor and the cluster's node_count."""

CONTROL_PLANE = "control-plane"
"""What cost estimates, the burn and rollouts call the cluster's control-plane servers (master_flavor x
master_count): their nodes carry no node-group label, only the control-plane role (burn.CONTROL_PLANE_ROLE)."""

# pulumi-openstack's type tokens of the Magnum resources: the plan, the guard, the preview and the
# progress display all recognise the cluster's resources by them.
CLUSTER_TYPE = "openstack:containerinfra/cluster:Cluster"
NODE_GROUP_TYPE = "openstack:containerinfra/nodeGroup:NodeGroup"
TEMPLATE_TYPE = "openstack:containerinfra/clusterTemplate:ClusterTemplate"

# Type tokens of the BinderHub layer's resources whose loss takes the hub down (the guard names them).
K8S_PROVIDER_TYPE = "pulumi:providers:kubernetes"
NAMESPACE_TYPE = "kubernetes:core/v1:Namespace"
HELM_RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
FLOATING_IP_TYPE = "openstack:networking/floatingIp:FloatingIp"
DNS_RECORD_TYPE = "openstack:dns/recordSet:RecordSet"

ALLOW_REPLACE_ENV = "JETSTREAM_BINDERHUB_ALLOW_REPLACE"
"""Logical names the user passed with `up --allow-replace`, comma-separated, for the program: a protected
resource named there loses `protect` for that one update so the engine lets the named replacement run."""


def allowed_replacements(value: str | None) -> frozenset[str]:
    """The names in ALLOW_REPLACE_ENV's value (URNs reduced to their logical name)."""
    names = (part.strip() for part in (value or "").split(","))
    return frozenset(name.rsplit("::", 1)[-1] for name in names if name)


_STACK_NAME_CHARS = re.compile(r"[A-Za-z0-9_.-]*")
MAX_SITE_NAME = 100


def site_name_problem(name: str) -> str | None:
    """Why `name` cannot be a site name, or None. A site name is a Pulumi stack name, so Pulumi's rule
    applies (pulumi/pulumi sdk/go/common/tokens/stack_name.go: letters, digits, `-`, `_`, `.`, at most
    100); it also names files and a directory (`Pulumi.<site>.yaml`, the generated site's work
    directory), so a name of periods only (`.`, `..`) is refused too."""
    if not name:
        return "a site name may not be empty"
    if len(name) > MAX_SITE_NAME:
        return f"a site name cannot exceed {MAX_SITE_NAME} characters (Pulumi's stack-name rule)"
    end = _STACK_NAME_CHARS.match(name).end()  # type: ignore[union-attr]  # `*` always matches
    if end != len(name):
        return (
            f"{name!r} is not a valid site name: a site name is a Pulumi stack name and may only contain "
            f"letters, digits, hyphens, underscores and periods (invalid character {name[end]!r} at position "
            f"{end})"
        )
    if set(name) == {"."}:
        return f"{name!r} is not a valid site name: it would name a directory, not a site"
    return None


def check_site_name(name: str) -> str:
    """`name`, or InvalidSiteName (exit 2) before any path is built from it."""
    from jetstream_binderhub.errors import InvalidSiteName

    problem = site_name_problem(name)
    if problem is not None:
        raise InvalidSiteName(problem)
    return name


RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
RFC1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def node_group_label_value(group_name: str) -> str:
    """The value of `capi.stackhpc.com/node-group` on the nodes of `group_name`.

    magnum-capi-helm's ``driver_utils.sanitized_name`` lowercases the name, turns each run of
    characters outside ``[a-z0-9]`` into one ``-`` and strips dashes at both ends, so
    ``user-m3.large`` becomes ``user-m3-large``.
    """
    return _NOT_ALNUM.sub("-", group_name.lower()).strip("-")


def snake_case(key: str) -> str:
    """A provider property's wire name (`masterFlavor`) as the Python SDK names it (`master_flavor`)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def content_digest(value: Any, length: int = 8) -> str:
    """A short, stable digest of JSON-able data: same content, same digest, on every machine."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
