"""`size`: how many user nodes, of which flavor, a workshop of N concurrent users needs, and what it costs.

A user fits on a node when the node's allocatable CPU and memory, after what every node runs anyway
and the image builder, still hold the user's *guarantees* (Kubernetes schedules on requests; limits
only cap a running user). The reserves are stated in :data:`ASSUMPTIONS`, printed with every answer.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError, Problem
from jetstream_binderhub.naming import CONTROL_PLANE, DEFAULT_WORKER
from jetstream_binderhub.profiles import Flavor, Profile

GIB = 2**30

SYSTEM_CPU = 0.25
"""Cores every node gives its daemonsets before users: calico-node's request in Calico's own manifest
(250m; projectcalico/calico `manifests/calico.yaml`), kube-proxy and the Cinder CSI node plugin request
none."""

SYSTEM_MEMORY = 0.5 * GIB
"""Memory every node keeps from users: the kubelet's default hard eviction threshold (memory.available
<100Mi) plus the daemonsets' working sets (calico-node, kube-proxy, Cinder CSI node plugin, the hub's
image puller); an estimate, check with `kubectl describe node` (Allocatable and Non-terminated Pods)."""

MAX_PODS = 110
"""The kubelet's default maxPods: a node holds at most this many pods whatever its size."""

ASSUMPTIONS = (
    f"per node, {SYSTEM_CPU:g} CPU and {SYSTEM_MEMORY / GIB:g} GiB for system daemonsets and the kubelet's "
    "eviction threshold (calico-node's 250m request; an estimate for the rest)",
    "per user node, the image builder daemonset's requests (binderhub.builder.daemon_resources)",
    "build pods are not reserved for: while one runs it takes its request's room from users",
    f"at most {MAX_PODS} pods per node (kubelet default), 3 of them system pods",
    "memory quantities as KubeSpawner reads them: K, M, G, T are powers of 1024",
    "flavor RAM as the catalog gives it, in GiB; the OS takes part of it before Kubernetes (see Allocatable)",
)

_BYTES = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]i?)?$")
_BYTES_KUBE = re.compile(r"^(\d+(?:\.\d+)?)(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_KUBE_FACTORS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_KUBE_FACTORS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class SizeError(JetstreamBinderHubError):
    exit_code = 2


def kubespawner_bytes(value: str) -> float:
    """KubeSpawner's ByteSpecification: K, M, G, T are powers of 1024 (jupyterhub/kubespawner traitlets)."""
    match = _BYTES.match(value)
    if match is None:
        raise ValueError(f"not a byte quantity: {value!r}")
    power = {"": 0, "K": 1, "M": 2, "G": 3, "T": 4}[(match.group(2) or "").removesuffix("i")]
    return float(match.group(1)) * 1024**power


def kube_bytes(value: str) -> float:
    """A Kubernetes memory quantity: k, M, G, T are powers of 1000, Ki, Mi, Gi, Ti of 1024."""
    match = _BYTES_KUBE.match(value)
    if match is None:
        raise ValueError(f"not a Kubernetes memory quantity: {value!r}")
    factor = _KUBE_FACTORS[match.group(2) or ""]
    return float(match.group(1)) * factor


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class FlavorFit(_Out):
    flavor: str
    vcpus: int
    ram_gb: float
    su_per_hour: float
    allocatable_cpu: float = Field(description="Cores left for users on one node after the reserves.")
    allocatable_memory_gib: float
    users_per_node: int
    limited_by: Literal["cpu", "memory", "pods"]
    nodes: int = Field(description="User nodes for the workshop's concurrent users.")
    user_su_per_hour: float
    site_su_per_hour: float = Field(description="User nodes plus everything else at its minimum size.")
    workshop_su: float | None = Field(description="site_su_per_hour times the workshop's hours.")


class SizeResult(_Out):
    site: str
    users: int
    hours: float | None
    unit: str
    user_group: str
    user_group_flavor: str
    cpu_guarantee: float | None
    memory_guarantee_gib: float | None
    fixed_su_per_hour: float = Field(description="Control plane and the other groups at their minimum.")
    candidates: list[FlavorFit]
    current: FlavorFit | None = Field(description="The user group's own flavor, when it is in the catalog.")
    max_count: int = Field(description="The user group's max_count today.")
    covers: bool | None = Field(description="Whether max_count holds the users on the current flavor.")
    total_quota: int | None
    notes: list[str] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=lambda: list(ASSUMPTIONS))


def fit(
    flavor: Flavor,
    cpu: float | None,
    memory: float | None,
    users: int,
    *,
    builder: tuple[float, float],
    fixed: float,
    hours: float | None,
) -> FlavorFit | None:
    """How `flavor` holds `users` at these guarantees (bytes for memory), with the builder's requests
    (cores, bytes) taken first; None when not even one user fits."""
    alloc_cpu = flavor.vcpus - SYSTEM_CPU - builder[0]
    alloc_mem = flavor.ram_gb * GIB - SYSTEM_MEMORY - builder[1]
    limits: dict[Literal["cpu", "memory", "pods"], int] = {"pods": MAX_PODS - 3}
    if cpu:
        limits["cpu"] = math.floor(max(alloc_cpu, 0) / cpu + 1e-9)
    if memory:
        limits["memory"] = math.floor(max(alloc_mem, 0) / memory + 1e-9)
    limited_by = min(limits, key=lambda k: (limits[k], k != "cpu"))
    per_node = limits[limited_by]
    if per_node < 1:
        return None
    nodes = math.ceil(users / per_node)
    user_su = nodes * flavor.su_per_hour
    site_su = fixed + user_su
    return FlavorFit(
        flavor=flavor.name,
        vcpus=flavor.vcpus,
        ram_gb=flavor.ram_gb,
        su_per_hour=flavor.su_per_hour,
        allocatable_cpu=round(alloc_cpu, 3),
        allocatable_memory_gib=round(alloc_mem / GIB, 3),
        users_per_node=per_node,
        limited_by=limited_by,
        nodes=nodes,
        user_su_per_hour=user_su,
        site_su_per_hour=site_su,
        workshop_su=site_su * hours if hours is not None else None,
    )


def _fixed_su(cluster: ClusterStackConfig, profile: Profile, user_group: str) -> tuple[float, list[str]]:
    c = cluster.cluster
    rows = [(CONTROL_PLANE, c.control_plane.flavor, c.control_plane.count)]
    if user_group != DEFAULT_WORKER:
        rows.append((DEFAULT_WORKER, c.default_worker.flavor, c.default_worker.min_count))
    rows += [(g.name, g.flavor, g.min_count) for g in c.node_groups if g.name != user_group]
    total, notes = 0.0, []
    for name, flavor_name, count in rows:
        flavor = profile.flavor(flavor_name)
        if flavor is None:
            notes.append(f"{name} uses {flavor_name}, which has no rate in the catalog: not counted")
        else:
            total += flavor.su_per_hour * count
    return total, notes


def size(
    cluster: ClusterStackConfig,
    hub: HubStackConfig,
    profile: Profile,
    *,
    site: str,
    users: int,
    hours: float | None = None,
) -> SizeResult:
    """Nodes, SU/hour and SU for `users` concurrent users on each candidate flavor of the profile."""
    if users < 1:
        raise SizeError(f"--users: must be at least 1, got {users}")
    if hours is not None and hours <= 0:
        raise SizeError(f"--hours: must be positive, got {hours:g}")
    res = hub.binderhub.jupyterhub.user_resources
    if res.cpu_guarantee is None and res.memory_guarantee is None:
        raise ConfigError(
            [
                Problem(
                    "binderhub.jupyterhub.user_resources",
                    "sets neither cpu_guarantee nor memory_guarantee: without a guarantee Kubernetes packs "
                    "users without bound, so there is nothing to size by; set at least one",
                )
            ]
        )
    memory = kubespawner_bytes(res.memory_guarantee) if res.memory_guarantee else None
    daemon = hub.binderhub.builder.daemon_resources
    builder = (daemon.cpu_request, kube_bytes(daemon.memory_request))
    group_name = hub.placement.user_node_group
    c = cluster.cluster
    if group_name == DEFAULT_WORKER:
        group_flavor, max_count = c.default_worker.flavor, c.default_worker.max_count
    else:
        group = next(g for g in c.node_groups if g.name == group_name)
        group_flavor, max_count = group.flavor, group.upper
    fixed, notes = _fixed_su(cluster, profile, group_name)
    candidates = []
    for flavor in profile.flavors:
        if flavor.resource != "cpu" or flavor.on_request or profile.flavor_problem(flavor.name, node=True):
            continue
        found = fit(flavor, res.cpu_guarantee, memory, users, builder=builder, fixed=fixed, hours=hours)
        if found is not None:
            candidates.append(found)
    current_flavor = profile.flavor(group_flavor)
    current = None
    if current_flavor is None:
        notes.append(f"{group_name}'s flavor {group_flavor} is not in the catalog: no fit for it")
    else:
        current = next((f for f in candidates if f.flavor == group_flavor), None) or fit(
            current_flavor, res.cpu_guarantee, memory, users, builder=builder, fixed=fixed, hours=hours
        )
        if current is None:
            notes.append(f"not one user fits on {group_flavor} at these guarantees after the reserves")
    covers = current.nodes <= max_count if current is not None else None
    total_quota = hub.binderhub.limits.total_quota
    if total_quota is not None and total_quota < users:
        notes.append(
            f"binderhub.limits.total_quota is {total_quota}: BinderHub refuses launches beyond it, whatever "
            f"the nodes hold; raise it to at least {users}"
        )
    return SizeResult(
        site=site,
        users=users,
        hours=hours,
        unit=profile.su_unit,
        user_group=group_name,
        user_group_flavor=group_flavor,
        cpu_guarantee=res.cpu_guarantee,
        memory_guarantee_gib=round(memory / GIB, 3) if memory else None,
        fixed_su_per_hour=fixed,
        candidates=candidates,
        current=current,
        max_count=max_count,
        covers=covers,
        total_quota=total_quota,
        notes=notes,
    )


def size_site(site: str, project_dir: Path, *, users: int, hours: float | None = None) -> SizeResult:
    """`size` for a site of the repository: its cluster file, its BinderHub file and its profile."""
    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.stackfile import HUB_PROJECT, read_stack_file
    from jetstream_binderhub.plan.site import hub_stack_path, load_cluster_file
    from jetstream_binderhub.profiles import load_profile

    _, cluster = load_cluster_file(project_dir, site)
    hub_path = hub_stack_path(project_dir, site)
    if not hub_path.is_file():
        raise SizeError(
            f"size needs the site's BinderHub file for the per-user guarantees: {hub_path} does not exist"
        )
    hub = parse_hub_stack(
        read_stack_file(hub_path).namespace(HUB_PROJECT),
        source=str(hub_path),
        node_groups=cluster.cluster.label_values(),
    )
    return size(cluster, hub, load_profile(cluster.profile), site=site, users=users, hours=hours)


def write_max_count(site: str, project_dir: Path, result: SizeResult) -> Path | None:
    """Raise the user group's max_count in the cluster stack file to what the current flavor needs,
    keeping every comment. None when it already covers the users. The file is validated after."""
    from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, edit_stack_file
    from jetstream_binderhub.plan.site import cluster_stack_path, load_cluster_file

    if result.current is None:
        raise SizeError(
            f"cannot write max_count: no fit for {result.user_group}'s flavor {result.user_group_flavor}"
        )
    if result.covers:
        return None
    nodes = result.current.nodes

    def edit(config: Any) -> None:
        cluster = config[f"{CLUSTER_PROJECT}:cluster"]
        if result.user_group == DEFAULT_WORKER:
            group = cluster.setdefault("default_worker", {})
        else:
            index, group = next(
                (i, g)
                for i, g in enumerate(cluster.get("node_groups", []))
                if g.get("name") == result.user_group
            )
            if group.get("autoscale") is False:
                raise SizeError(
                    f"cluster.node_groups[{index}].autoscale is false: a group the autoscaler does not resize "
                    f"cannot grow to {nodes} nodes by max_count; set its min_count instead"
                )
        group["max_count"] = nodes

    path = cluster_stack_path(project_dir, site)
    edit_stack_file(path, edit, lambda: load_cluster_file(project_dir, site))
    return path
