"""What a site costs per hour in the cloud's allocation units, at its smallest and largest size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from jetstream_binderhub.config.cluster import ClusterConfig
from jetstream_binderhub.naming import CONTROL_PLANE, DEFAULT_WORKER
from jetstream_binderhub.plan.model import CostChange, CostEstimate, CostLine, ResourceCost
from jetstream_binderhub.profiles import CPU_RESOURCE, Profile

if TYPE_CHECKING:
    from jetstream_binderhub.engine.changes import ServerGroup

_Row = tuple[str, str, int, int]
"""(group, flavor, servers at minimum size, servers at maximum size)."""


def estimate(cluster: ClusterConfig, profile: Profile) -> CostEstimate:
    """Control plane + default-worker + every node group, each at min and at max size.

    Custom flavors have no rate in the catalog: they are listed as unpriced rather than counted as 0,
    so the totals never look cheaper than they are without saying so.
    """
    cp = cluster.control_plane
    dw = cluster.default_worker
    rows = [
        (CONTROL_PLANE, cp.flavor, cp.count, cp.count),
        (DEFAULT_WORKER, dw.flavor, dw.min_count, dw.max_count),
        *((g.name, g.flavor, g.min_count, g.upper) for g in cluster.node_groups),
    ]
    return _priced(rows, profile)


def _priced(rows: Sequence[_Row], profile: Profile) -> CostEstimate:
    lines: list[CostLine] = []
    unpriced: list[str] = []
    low = high = 0.0
    for group, flavor_name, lo, hi in rows:
        flavor = profile.flavor(flavor_name)
        rate = flavor.su_per_hour if flavor else None
        if rate is None:
            unpriced.append(group)
        else:
            low += rate * lo
            high += rate * hi
        lines.append(
            CostLine(
                group=group,
                flavor=flavor_name,
                min_count=lo,
                max_count=hi,
                su_per_hour_each=rate,
                resource=flavor.resource if flavor else None,
            )
        )
    return CostEstimate(
        unit=profile.su_unit, lines=lines, min_per_hour=low, max_per_hour=high, unpriced=unpriced
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


def cost_change(
    base: CostEstimate | None, head: CostEstimate, *, not_priced: Mapping[str, str] | None = None
) -> str:
    """One line for a pull-request comment: the SU/hour at minimum and maximum size, before and after,
    per allocation the site draws on (`SU/hour (cpu): ...; SU/hour (gpu): ...`); a site on the CPU
    allocation alone reads `SU/hour: ...`. One sum over allocations would hide a change: a GPU group
    removed while the control plane grows reads as a saving, though the CPU allocation burns faster.

    `not_priced` names groups left out of both totals, each with why (custom flavors say so themselves).
    """
    unit = head.unit

    def part(label: str, old: float | None, new: float) -> str:
        if old is None:
            return f"{label} {_fmt(new)} (new site)"
        delta = new - old
        if delta == 0:
            return f"{label} {_fmt(new)} (unchanged)"
        return f"{label} {_fmt(old)} -> {_fmt(new)} ({'+' if delta > 0 else ''}{_fmt(delta)})"

    old_totals = base.by_resource if base else {}
    new_totals = head.by_resource
    resources = sorted(set(old_totals) | set(new_totals))
    if set(resources) <= {CPU_RESOURCE}:
        resources = [CPU_RESOURCE]
    none = ResourceCost(min_per_hour=0, max_per_hour=0, groups=[])
    parts = []
    for resource in resources:
        old = old_totals.get(resource, none) if base else None
        new = new_totals.get(resource, none)
        label = f"{unit}/hour" if resources == [CPU_RESOURCE] else f"{unit}/hour ({resource})"
        parts.append(
            f"{label}: "
            + part("at minimum size", None if old is None else old.min_per_hour, new.min_per_hour)
            + "; "
            + part("at maximum size", None if old is None else old.max_per_hour, new.max_per_hour)
        )
    line = "; ".join(parts)
    unpriced = sorted(set(head.unpriced) | set(base.unpriced if base else ()))
    if unpriced:
        line += f"; not priced (custom flavors): {', '.join(unpriced)}"
    if not_priced:
        line += "; not priced: " + ", ".join(f"{group} ({why})" for group, why in sorted(not_priced.items()))
    return line


NOT_IN_STATES = "its flavor or size is not in the engine's states"
NO_CLUSTER = "the cluster is not in the preview's events"


def engine_cost(
    servers: Sequence[ServerGroup], profile: Profile, *, not_priced: Mapping[str, str] | None = None
) -> CostChange | None:
    """The SU/hour change of a live preview, priced from the engine's own states of the cluster's and node
    groups' servers (engine.changes.LayerChanges.servers) with the profile's flavor catalog: what is
    deployed now against what the change makes, including a change not yet applied.

    A group in `not_priced` (the caller knows the engine's view of it is not its size), or whose flavor or
    counts the states do not hold on a side where it exists, is left out of BOTH totals and named: a
    one-sided omission would show a change that is not there. None when the states hold no servers at
    all (the events carried no cluster).
    """
    if not servers:
        return None
    left_out = dict(not_priced or {})
    for server in servers:
        sides = [s for s in (server.before, server.after) if s is not None]
        if server.group not in left_out and not all(s.known for s in sides):
            left_out[server.group] = NOT_IN_STATES
    if not any(server.group == CONTROL_PLANE for server in servers):
        # Only node groups reached us: the cluster's own servers would be silently missing from both totals.
        left_out[f"{CONTROL_PLANE} and {DEFAULT_WORKER}"] = NO_CLUSTER
    before: list[_Row] = []
    after: list[_Row] = []
    for server in servers:
        if server.group in left_out:
            continue
        for side, rows in ((server.before, before), (server.after, after)):
            if side is not None and side.flavor and side.min_count is not None and side.max_count is not None:
                rows.append((server.group, side.flavor, side.min_count, side.max_count))
    # A new site: nothing of it exists before the change (every resource is created).
    new_site = all(server.before is None for server in servers)
    base = None if new_site else _priced(before, profile)
    head = _priced(after, profile)
    return CostChange(
        before=base,
        after=head,
        not_priced=left_out,
        line=cost_change(base, head, not_priced=left_out),
    )
