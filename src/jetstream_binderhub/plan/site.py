"""Plan a whole site offline: both layers, in dependency order, from the site's stack files."""

from __future__ import annotations

from pathlib import Path

from jetstream_binderhub.config.cluster import ClusterStackConfig, cluster_notes
from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.config.stackfile import (
    CLUSTER_PROJECT,
    HUB_PROJECT,
    HUB_PROJECT_DIR,
    StackFile,
    read_stack_file,
)
from jetstream_binderhub.errors import SiteNotFound
from jetstream_binderhub.naming import check_site_name
from jetstream_binderhub.plan.cost import estimate
from jetstream_binderhub.plan.model import Plan
from jetstream_binderhub.plan.warnings import (
    alert_delivery_warnings,
    allocation_warnings,
    capacity_warnings,
    gpu_minimum_warnings,
    shared_name_warnings,
)
from jetstream_binderhub.profiles import load_profile


def cluster_stack_path(project_dir: Path, site: str) -> Path:
    return project_dir / f"Pulumi.{check_site_name(site)}.yaml"


def hub_stack_path(project_dir: Path, site: str) -> Path:
    return project_dir / HUB_PROJECT_DIR / f"Pulumi.{check_site_name(site)}.yaml"


def load_cluster_file(project_dir: Path, site: str) -> tuple[StackFile, ClusterStackConfig]:
    path = cluster_stack_path(project_dir, site)
    if not path.is_file():
        sites = sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in project_dir.glob("Pulumi.*.yaml")
        )
        raise SiteNotFound(
            f"no site {site!r}: {path} does not exist (sites here: {', '.join(sites) or 'none'})"
        )
    stack_file = read_stack_file(path)
    return stack_file, parse_cluster_stack(stack_file.namespace(CLUSTER_PROJECT), source=str(path))


def plan_site(site: str, project_dir: Path = Path()) -> Plan:
    """Validate every layer's config first (nothing runs when any of it is wrong), then run the layers."""
    check_site_name(site)
    from jetstream_binderhub.infra.program import cluster_program
    from jetstream_binderhub.plan.runner import run_layer

    cluster_file, cluster_cfg = load_cluster_file(project_dir, site)
    hub = None
    hub_raw = None
    hub_path = hub_stack_path(project_dir, site)
    if hub_path.is_file():
        from jetstream_binderhub.hub.plan import HubLayerPlanner

        hub_file = read_stack_file(hub_path)
        hub_raw = hub_file.namespace(HUB_PROJECT)
        hub = HubLayerPlanner.load(site, hub_file, cluster_cfg)
    profile = load_profile(cluster_cfg.profile)
    warnings = [
        *capacity_warnings(cluster_cfg.cluster, profile),
        *gpu_minimum_warnings(cluster_cfg.cluster, profile),
        *shared_name_warnings(project_dir, site, cluster_cfg.cluster.name, hub_raw),
    ]
    if hub is None:
        warnings.insert(
            0,
            f"no BinderHub layer: {hub_path} does not exist, so only the cluster is planned (copy "
            f"{HUB_PROJECT_DIR}/Pulumi.jetstream2.yaml there to plan BinderHub too)",
        )

    cluster_plan, cluster_outputs = run_layer(
        cluster_program,
        layer="cluster",
        project=CLUSTER_PROJECT,
        stack=site,
        config=cluster_file.pulumi_config(),
        secret_keys=sorted(cluster_file.secret_keys),
    )
    layers = [cluster_plan]
    notes: list[str] = cluster_notes(cluster_cfg.cluster)
    if hub is not None:
        hub_plan, hub_notes = hub.run(cluster_outputs)
        layers.append(hub_plan)
        notes += hub_notes

    cost = estimate(cluster_cfg.cluster, profile)
    if hub is not None and hub.config.support.allocation is not None:
        warnings += allocation_warnings(cost, profile, hub.config.support.allocation)
    if hub is not None:
        warnings += alert_delivery_warnings(hub.config.support, site)
    return Plan(
        site=site,
        profile=profile.name,
        layers=layers,
        cost=cost,
        warnings=warnings,
        notes=notes,
    )
