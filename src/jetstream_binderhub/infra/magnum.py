"""The Magnum cluster as one component: template, cluster, node groups, chained where the driver needs it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_openstack import containerinfra

from jetstream_binderhub.config.cluster import ClusterConfig
from jetstream_binderhub.naming import DEFAULT_WORKER, content_digest, node_group_label_value

COMPONENT_TYPE = "jetstream-binderhub:infra:MagnumCluster"


@dataclass(frozen=True)
class MagnumClusterArgs:
    """Inputs of :class:`MagnumCluster`: a validated cluster config with the profile's defaults filled in."""

    config: ClusterConfig
    allow_replace: frozenset[str] = frozenset()
    """Logical names `up --allow-replace` named: their `protect` is lifted for this update only."""


def template_labels(cfg: ClusterConfig) -> dict[str, str]:
    """Labels of the managed template. Kept on the template, never on the cluster: cluster labels are
    fixed at creation (Magnum answers HTTP 400 and the provider REPLACES the cluster), whereas a new
    template reaches a running cluster as an in-place upgrade."""
    dw = cfg.default_worker
    labels = {
        "auto_scaling_enabled": str(cfg.autoscaling).lower(),
        # The default-worker group takes its autoscaling range from these, not from its own counts.
        "min_node_count": str(dw.min_count),
        "max_node_count": str(dw.max_count),
        # The default dashboard leaves Jetstream2 clusters stuck in CREATE_IN_PROGRESS.
        "kube_dashboard_enabled": "false",
        "monitoring_enabled": "false",
        "prometheus_monitoring": "false",
        "influx_grafana_dashboard_enabled": "false",
    }
    if cfg.capi_helm_chart_version:
        labels["capi_helm_chart_version"] = cfg.capi_helm_chart_version
    if cfg.kube_tag:
        labels["kube_tag"] = cfg.kube_tag
    if cfg.boot_volume_size_gb:
        labels["boot_volume_size"] = str(cfg.boot_volume_size_gb)
    labels.update(cfg.extra_labels)
    return labels


def template_spec(cfg: ClusterConfig) -> dict[str, object]:
    """Every input of the managed template except its name; the name is derived from this."""
    return {
        "coe": "kubernetes",
        "image": cfg.image,
        "external_network_id": cfg.external_network,
        "fixed_network": cfg.fixed_network,
        "fixed_subnet": cfg.fixed_subnet,
        "flavor": cfg.default_worker.flavor,
        "master_flavor": cfg.control_plane.flavor,
        "network_driver": cfg.network_driver,
        "floating_ip_enabled": cfg.floating_ips,
        "master_lb_enabled": cfg.api_load_balancer,
        "docker_volume_size": cfg.docker_volume_size_gb,
        "keypair_id": cfg.keypair,
        "labels": template_labels(cfg),
    }


def template_name(cfg: ClusterConfig) -> str:
    """Deterministic and content-derived: any change to the template gives a new name, so Pulumi can
    create the new template before deleting the old one (Magnum refuses to edit a template in use)."""
    return (
        f"{cfg.name}-{cfg.kube_tag}-capi-{cfg.capi_helm_chart_version}-{content_digest(template_spec(cfg))}"
    )


class MagnumCluster(pulumi.ComponentResource):
    """A Magnum (Cluster API driver) Kubernetes cluster with its template and extra node groups."""

    template: containerinfra.ClusterTemplate | None
    cluster: containerinfra.Cluster
    node_groups: dict[str, containerinfra.NodeGroup]
    kubeconfig: pulumi.Output[str]
    node_group_labels: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: MagnumClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        cfg = args.config

        def protect(resource_name: str) -> bool:
            # Replacing a protected resource fails in the engine; the guard already asked the user, and
            # Pulumi allows lifting protect and replacing in one update (pulumi/pulumi
            # pkg/resource/deploy/step_generator.go: only old.Protect && new.Protect refuses).
            return cfg.protect and resource_name not in args.allow_replace

        if cfg.existing_template_id is None:
            spec = template_spec(cfg)
            self.template = containerinfra.ClusterTemplate(
                f"{name}-template",
                name=template_name(cfg),
                public=False,
                hidden=False,
                **{k: v for k, v in spec.items() if v is not None},  # type: ignore[arg-type]
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # The provider would PATCH the template in place, which Magnum refuses while a cluster
                    # uses it. Replacing instead (create first, delete last) moves the cluster to the new
                    # template through an in-place upgrade, then removes the old one once it is free.
                    replace_on_changes=["*"],
                    delete_before_replace=False,
                ),
            )
            template_id: pulumi.Input[str] = self.template.id
        else:
            self.template = None
            template_id = cfg.existing_template_id

        timeout = f"{cfg.create_timeout_minutes}m"
        dw = cfg.default_worker
        # Flavors, master count, networks and keypair are set from plain config values, never from the
        # template's outputs: those are unknown while a template is being replaced, and an unknown
        # ForceNew input makes the provider plan to REPLACE the cluster.
        cluster_name = f"{name}-cluster"
        self.cluster = containerinfra.Cluster(
            cluster_name,
            name=cfg.name,
            cluster_template_id=template_id,
            master_count=cfg.control_plane.count,
            master_flavor=cfg.control_plane.flavor,
            flavor=dw.flavor,
            node_count=dw.initial_count,
            keypair=cfg.keypair,
            fixed_network=cfg.fixed_network,
            fixed_subnet=cfg.fixed_subnet,
            floating_ip_enabled=cfg.floating_ips,
            master_lb_enabled=cfg.api_load_balancer,
            docker_volume_size=cfg.docker_volume_size_gb,
            create_timeout=cfg.create_timeout_minutes,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect(cluster_name),
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete="30m"),
                # The autoscaler owns the default-worker size; fighting it would shrink a busy hub.
                ignore_changes=["node_count"] if dw.autoscaled else None,
            ),
        )

        self.node_groups = {}
        previous: pulumi.Resource = self.cluster
        for group in cfg.node_groups:
            ignore = ["image_id"]
            if group.autoscaled:
                ignore.append("node_count")
            node_group_name = f"{name}-nodegroup-{group.name}"
            node_group = containerinfra.NodeGroup(
                node_group_name,
                cluster_id=self.cluster.id,
                name=group.name,
                flavor_id=group.flavor,
                node_count=group.initial_count,
                min_node_count=group.min_count,
                max_node_count=group.upper,
                role=group.role,
                labels=group.labels or None,
                docker_volume_size=group.docker_volume_size_gb,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # As the cluster: replacing a group kills every pod on it at once, so the engine
                    # refuses it too unless `up --allow-replace` names this group.
                    protect=protect(node_group_name),
                    # The driver races when groups are created concurrently (launchpad magnum #2097946):
                    # each group waits for the one before it, nothing else is serialised.
                    depends_on=[previous],
                    # image_id follows the template; left to Pulumi it would REPLACE every group (all user
                    # pods at once) on each Kubernetes upgrade. Groups are upgraded with Magnum's rolling
                    # `openstack coe cluster upgrade --nodegroup` instead (docs/operations.md).
                    ignore_changes=ignore,
                    custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete="30m"),
                ),
            )
            self.node_groups[group.name] = node_group
            previous = node_group

        raw_config = self.cluster.kubeconfig.apply(lambda kc: (kc or {}).get("raw_config", ""))
        self.kubeconfig = pulumi.Output.secret(raw_config)
        labels: dict[str, pulumi.Input[str]] = {DEFAULT_WORKER: DEFAULT_WORKER}
        for group_name, ng in self.node_groups.items():
            labels[group_name] = ng.name.apply(node_group_label_value)
        self.node_group_labels = pulumi.Output.from_input(labels)  # type: ignore[assignment]

        self.register_outputs(
            {
                "cluster_id": self.cluster.id,
                "api_address": self.cluster.api_address,
                "kubeconfig": self.kubeconfig,
                "node_group_labels": self.node_group_labels,
            }
        )
