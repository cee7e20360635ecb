"""What a site costs per hour in the cloud's allocation units, at its smallest and largest size."""

from __future__ import annotations

from jetstream_binderhub.config.cluster import ClusterConfig
from jetstream_binderhub.naming import DEFAULT_WORKER
from jetstream_binderhub.plan.model import CostEstimate, CostLine
from jetstream_binderhub.profiles import Profile


def estimate(cluster: ClusterConfig, profile: Profile) -> CostEstimate:
    """Control plane + default-worker + every node group, each at min and at max size.

    Custom flavors have no rate in the catalog: they are listed as unpriced rather than counted as 0,
    so the totals never look cheaper than they are without saying so.
    """
    cp = cluster.control_plane
    dw = cluster.default_worker
    rows = [
        ("control-plane", cp.flavor, cp.count, cp.count),
        (DEFAULT_WORKER, dw.flavor, dw.min_count, dw.max_count),
        *((g.name, g.flavor, g.min_count, g.upper) for g in cluster.node_groups),
    ]
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


def cost_change(base: CostEstimate | None, head: CostEstimate) -> str:
    """One line for a pull-request comment: the SU/hour at minimum and maximum size, before and after."""
    unit = head.unit

    def part(label: str, old: float | None, new: float) -> str:
        if old is None:
            return f"{label} {_fmt(new)} (new site)"
        delta = new - old
        if delta == 0:
            return f"{label} {_fmt(new)} (unchanged)"
        return f"{label} {_fmt(old)} -> {_fmt(new)} ({'+' if delta > 0 else ''}{_fmt(delta)})"

    line = (
        f"{unit}/hour: "
        + part("at minimum size", base.min_per_hour if base else None, head.min_per_hour)
        + "; "
        + part("at maximum size", base.max_per_hour if base else None, head.max_per_hour)
    )
    unpriced = sorted(set(head.unpriced) | set(base.unpriced if base else ()))
    if unpriced:
        line += f"; not priced (custom flavors): {', '.join(unpriced)}"
    return line
