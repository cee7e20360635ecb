"""What a plan should say up front: things that are valid config but probably not what the user meant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from jetstream_binderhub.config.cluster import ClusterConfig
from jetstream_binderhub.config.hub import set_secret_command
from jetstream_binderhub.config.stackfile import (
    CLUSTER_PROJECT,
    HUB_PROJECT,
    HUB_PROJECT_DIR,
    read_stack_file,
)
from jetstream_binderhub.config.support import (
    ALERTS_HEARTBEAT_SECRET_KEY,
    ALERTS_WEBHOOK_SECRET_KEY,
    AllocationConfig,
    SupportConfig,
)
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.naming import DEFAULT_WORKER
from jetstream_binderhub.plan.model import CostEstimate
from jetstream_binderhub.plan.render import amount
from jetstream_binderhub.profiles import Profile


def capacity_warnings(cluster: ClusterConfig, profile: Profile) -> list[str]:
    """The vCPUs the cluster needs at maximum size, per allocation resource, against the profile's quota.

    A quota can be raised, so this is a warning: past it the autoscaler silently stops adding nodes.
    """
    groups = [
        ("control plane", cluster.control_plane.flavor, cluster.control_plane.count, None),
        (
            DEFAULT_WORKER,
            cluster.default_worker.flavor,
            cluster.default_worker.max_count,
            "cluster.default_worker",
        ),
        *(
            (g.name, g.flavor, g.upper, f"cluster.node_groups[{i}]")
            for i, g in enumerate(cluster.node_groups)
        ),
    ]
    need: dict[str, int] = {}
    biggest: dict[str, tuple[int, str, str | None, int]] = {}
    for name, flavor_name, count, key in groups:
        flavor = profile.flavor(flavor_name)
        if flavor is None:
            continue  # a custom flavor: its size is unknown here
        vcpus = flavor.vcpus * count
        need[flavor.resource] = need.get(flavor.resource, 0) + vcpus
        if vcpus > biggest.get(flavor.resource, (0, "", None, 0))[0]:
            biggest[flavor.resource] = (vcpus, name, key, count)
    warnings = []
    for resource, quota in sorted(profile.default_quota_vcpus.items()):
        vcpus = need.get(resource, 0)
        if vcpus <= quota:
            continue
        _, group, key, count = biggest[resource]
        where = f"{key}.max_count is {count:,}" if key else f"group {group!r} has {count:,} nodes"
        warnings.append(
            f"at maximum size the cluster needs {vcpus:,} vCPUs of {profile.name} {resource}, above the "
            f"largest default project quota ({quota:,} vCPUs): the autoscaler stops at the quota. {where}; "
            "lower it, or get the quota raised first"
        )
    return warnings


def allocation_warnings(cost: CostEstimate, profile: Profile, allocation: AllocationConfig) -> list[str]:
    """The allocation's remaining SUs (`support.allocation`) against the site's burn at its two sizes."""
    burn = cost.by_resource.get(allocation.resource)
    low, high = (burn.min_per_hour, burn.max_per_hour) if burn else (0.0, 0.0)
    unit = profile.su_unit
    left = allocation.su_remaining
    warnings = []
    hours_to_end = (allocation.end_date - allocation.as_of).days * 24
    if low > 0 and left / low < hours_to_end:
        runs_out = allocation.as_of + timedelta(hours=left / low)
        warnings.append(
            f"even at minimum size the site burns {amount(low)} {unit}/h of the {allocation.resource} allocation: "
            f"the {amount(left)} {unit} left on {allocation.as_of} (support.allocation) run out about {runs_out}, "
            f"before the allocation ends on {allocation.end_date}"
        )
    elif high > 0 and left / high < 24:
        warnings.append(
            f"at maximum size the site burns {amount(high)} {unit}/h of the {allocation.resource} allocation: the "
            f"{amount(left)} {unit} left (support.allocation) would last {left / high:.1f} hours; lower max_count"
        )
    return warnings


def _other_sites(project_dir: Path, site: str) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, cluster keys, hub keys) of the repository's other sites, as written; unreadable ones skipped
    (planning them reports their problems)."""
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        name = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        if name == site:
            continue
        try:
            cluster = read_stack_file(path).namespace(CLUSTER_PROJECT)
            hub_path = project_dir / HUB_PROJECT_DIR / path.name
            hub = read_stack_file(hub_path).namespace(HUB_PROJECT) if hub_path.is_file() else {}
        except ConfigError:
            continue
        yield name, cluster, hub


def _hosts(hub: dict[str, Any]) -> set[str]:
    binderhub = hub.get("binderhub")
    if not isinstance(binderhub, dict):
        return set()
    return {str(binderhub[k]).rstrip(".").lower() for k in ("host", "hub_host") if binderhub.get(k)}


def shared_name_warnings(
    project_dir: Path, site: str, cluster_name: str, hub: dict[str, Any] | None
) -> list[str]:
    """Another site of this repository that would create the same Magnum cluster name or DNS names.

    Typically a site copied from jetstream2 and not yet renamed. Two sites may live in different
    projects, so this warns rather than refuses.
    """
    mine = _hosts(hub or {})
    warnings = []
    for other, cluster, other_hub in _other_sites(project_dir, site):
        other_cluster = cluster.get("cluster")
        if isinstance(other_cluster, dict) and other_cluster.get("name") == cluster_name:
            warnings.append(
                f"site {other!r} (Pulumi.{other}.yaml) uses the same cluster.name {cluster_name!r}: in one "
                "OpenStack project the two sites' clusters and templates could not be told apart; give this "
                "site its own cluster.name"
            )
        if shared := sorted(mine & _hosts(other_hub)):
            warnings.append(
                f"site {other!r} ({HUB_PROJECT_DIR}/Pulumi.{other}.yaml) uses the same host names "
                f"({', '.join(shared)}): only one site can own a DNS name and its certificate; change "
                "binderhub.host and binderhub.hub_host"
            )
    return warnings


def gpu_minimum_warnings(cluster: ClusterConfig, profile: Profile) -> list[str]:
    """GPU groups whose minimum keeps GPU nodes billed around the clock.

    Magnum's Cluster API driver cannot scale a group to 0 (launchpad magnum #2098002), so a GPU group
    that exists is paid for at least at its minimum, used or not, from the GPU allocation.
    """
    groups = [
        (
            DEFAULT_WORKER,
            cluster.default_worker.flavor,
            cluster.default_worker.min_count,
            "cluster.default_worker",
        ),
        *(
            (g.name, g.flavor, g.min_count, f"cluster.node_groups[{i}]")
            for i, g in enumerate(cluster.node_groups)
        ),
    ]
    warnings = []
    for name, flavor_name, count, key in groups:
        flavor = profile.flavor(flavor_name)
        if flavor is None or flavor.resource != "gpu":
            continue
        hourly = flavor.su_per_hour * count
        warnings.append(
            f"GPU group {name!r} ({key}) keeps {count} {flavor.name} node{'s' if count > 1 else ''} billed all "
            f"day, used or not: {hourly:g} {profile.su_unit}/h, {hourly * 24:,.0f} {profile.su_unit} a day of the "
            "GPU allocation (Magnum cannot scale a group to 0); remove the group between courses"
        )
    return warnings


def alert_delivery_warnings(support: SupportConfig, site: str) -> list[str]:
    """Monitoring that evaluates alerts nobody receives: valid (Grafana still lists them), but a budget
    running out or a hub that is down would then go unnoticed until a user complains. And alerts that
    are delivered without a heartbeat: a stopped Prometheus or Alertmanager sends nothing, which looks
    exactly like a healthy site."""
    mon = support.monitoring
    if mon is None or not mon.enabled:
        return []
    if mon.alerts.delivers:
        if mon.alerts.heartbeat is not None:
            return []
        return [
            "nothing notices if Prometheus, Alertmanager or the cluster stops: alerts would then stop "
            "without a word, which looks like a healthy site; set support.monitoring.alerts.heartbeat and "
            "the ping URL of a dead man's switch service (e.g. healthchecks.io) with "
            f"`{set_secret_command(ALERTS_HEARTBEAT_SECRET_KEY, site)}` (docs/operating.md)"
        ]
    return [
        "alerts are evaluated but not delivered to anyone (no receiver, so Alertmanager is not installed): "
        "set support.monitoring.alerts.webhook and its URL with "
        f"`{set_secret_command(ALERTS_WEBHOOK_SECRET_KEY, site)}`, or support.monitoring.alerts.email "
        "(docs/operating.md)"
    ]
