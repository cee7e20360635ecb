"""The Magnum cluster as one component: template, cluster, node groups, chained where the driver needs it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_openstack import containerinfra

from jetstream_binderhub.config.cluster import ClusterConfig
from jetstream_binderhub.naming import DEFAULT_WORKER, content_digest, node_group_label_value

COMPONENT_TYPE = "jetstream-binderhub:infra:MagnumCluster"

_IGNORED_CLUSTER_INPUTS = ("create_timeout", "floating_ip_enabled", "master_lb_enabled", "docker_volume_size")
"""Cluster inputs earlier versions of this program sent and this one does not. Each is ForceNew in the
provider (terraform-provider-openstack `resource_openstack_containerinfra_cluster_v1.go`): a cluster
created with them must never be planned for replacement because they left the program. With
ignore_changes the engine keeps the values in the state instead of diffing them away."""

_IGNORED_GROUP_INPUTS = ("docker_volume_size",)
"""The same for node groups (ForceNew there too; the driver never read it)."""


@dataclass(frozen=True)
class MagnumClusterArgs:
    """Inputs of :class:`MagnumCluster`: a validated cluster config with the profile's defaults filled in."""

    config: ClusterConfig
    allow_replace: frozenset[str] = frozenset()
    """Logical names `up --allow-replace` named: their `protect` is lifted for this update only."""


def template_labels(cfg: ClusterConfig) -> dict[str, str]:
    """Labels of the managed template. Never set on the cluster (ForceNew there: the provider would
    REPLACE it). Magnum copies the template's labels into the cluster when it creates it and an upgrade
    never updates that copy (magnum `api/controllers/v1/cluster.py` `_post`), and the driver merges the
    copy over the current template's labels (magnum-capi-helm `driver.py` `_label`): so a label change
    only affects clusters created afterwards. The chart version is the exception: the driver reads it
    from the current template (`_get_chart_version`), as it does the image and the network driver."""
    labels = {
        "auto_scaling_enabled": str(cfg.autoscaling).lower(),
        # No min_node_count/max_node_count: in the cluster's frozen copy they would override the
        # default-worker group's own range for good (driver.py `_get_node_counts`), where the group's
        # own min/max stay changeable through Magnum's node-group API (config.cluster.DefaultWorker).
        # The default dashboard leaves Jetstream2 clusters stuck in CREATE_IN_PROGRESS.
        "kube_dashboard_enabled": "false",
        "monitoring_enabled": "false",
        "prometheus_monitoring": "false",
        "influx_grafana_dashboard_enabled": "false",
    }
    if cfg.capi_helm_chart_version:
        labels["capi_helm_chart_version"] = cfg.capi_helm_chart_version
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
        # The driver always builds an API load balancer (driver.py: `enableLoadBalancer: True`) and
        # ignores this flag, but Magnum's API refuses master_count > 1 without it (magnum
        # `api/attr_validator.py` `validate_master_count`) and copies it into the cluster from here.
        "master_lb_enabled": True,
        "keypair_id": cfg.keypair,
        "labels": template_labels(cfg),
    }


def template_name(cfg: ClusterConfig) -> str:
    """Deterministic and content-derived: any change to the template gives a new name, so Pulumi can
    create the new template before deleting the old one (Magnum refuses to edit a template in use)."""
    version = f"{cfg.kube_version}-" if cfg.kube_version else ""
    return f"{cfg.name}-{version}capi-{cfg.capi_helm_chart_version}-{content_digest(template_spec(cfg))}"


class MagnumCluster(pulumi.ComponentResource):
    """A Magnum (Cluster API driver) Kubernetes cluster with its template and extra node groups."""

    template: containerinfra.ClusterTemplate | None
    cluster: containerinfra.Cluster
    node_groups: dict[str, containerinfra.NodeGroup]
    kubeconfig: pulumi.Output[str | None]
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
            # Not sent: create_timeout (the driver ignores it; Pulumi's own timeouts below do the waiting),
            # floating_ip_enabled, master_lb_enabled and docker_volume_size (the driver ignores them;
            # Magnum takes master_lb_enabled from the template). `_IGNORED_CLUSTER_INPUTS` covers them.
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=protect(cluster_name),
                custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete="30m"),
                ignore_changes=[*_IGNORED_CLUSTER_INPUTS, *(["node_count"] if dw.autoscaled else [])],
            ),
        )

        self.node_groups = {}
        previous: pulumi.Resource = self.cluster
        for group in cfg.node_groups:
            ignore = [*_IGNORED_GROUP_INPUTS]
            if group.autoscaled:
                # The autoscaler owns the size; fighting it would shrink a busy group.
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
                # No image_id: the driver renders the template's image for every group and ignores the
                # group's own (driver.py `_update_helm_release`), and it is ForceNew in the provider. It
                # is Optional+Computed, so leaving it unset never produces a diff: nothing to ignore.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # As the cluster: replacing a group kills every pod on it at once, so the engine
                    # refuses it too unless `up --allow-replace` names this group.
                    protect=protect(node_group_name),
                    # The driver races when groups are created concurrently (launchpad magnum #2097946):
                    # each group waits for the one before it, nothing else is serialised.
                    depends_on=[previous],
                    ignore_changes=ignore,
                    custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout, delete="30m"),
                ),
            )
            self.node_groups[group.name] = node_group
            previous = node_group

        # A missing kubeconfig stays missing (None), never "": pulumi-kubernetes treats an empty kubeconfig as
        # unset and loads $KUBECONFIG or ~/.kube/config instead (provider/pkg/provider/provider.go), so ""
        # would point the BinderHub layer at whatever cluster the operator's laptop knows.
        raw_config = self.cluster.kubeconfig.apply(lambda kc: (kc or {}).get("raw_config") or None)
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
