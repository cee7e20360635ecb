"""Configuration of the cluster layer: the Magnum template, cluster and node groups."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.errors import REMOVED_KEY, Problem, described_pattern
from jetstream_binderhub.naming import (
    DEFAULT_WORKER,
    RFC1123_LABEL,
    RFC1123_SUBDOMAIN,
    node_group_label_value,
)
from jetstream_binderhub.profiles import Profile


def _rfc1123_label(value: str) -> str:
    if len(value) > 63 or not RFC1123_LABEL.match(value):
        raise ValueError(
            "must be an RFC 1123 label: lowercase letters, digits and '-', starting and ending with a letter "
            "or digit, at most 63 characters (Magnum and Kubernetes name objects after it)"
        )
    return value


def _rfc1123_subdomain(value: str) -> str:
    if len(value) > 63 or not RFC1123_SUBDOMAIN.match(value):
        raise ValueError(
            "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, "
            "at most 63 characters (RFC 1123)"
        )
    return value


def _at_least_one_node(value: int) -> int:
    if value < 1:
        raise ValueError(
            "must be at least 1: Magnum's Cluster API driver refuses empty node groups (launchpad magnum #2098002)"
        )
    return value


_KUBE_VERSION = re.compile(r"kube-?(v\d+\.\d+\.\d+)")
"""The Kubernetes version in a Magnum image's name (`ubuntu-jammy-kube-v1.33.2-250626-0848`)."""


def kube_version_of(image: str | None) -> str | None:
    """The Kubernetes version an image's name carries, or None. The driver itself reads the image's
    `kube_version` property (magnum-capi-helm `driver.py` `_get_kube_version`) and ignores `kube_tag`,
    so the version is derived from the image rather than set beside it, where it could go stale."""
    match = _KUBE_VERSION.search(image or "")
    return match.group(1) if match else None


def _refuse_removed(data: Any, removed: dict[str, str]) -> Any:
    """A key this project no longer takes: say why it went, rather than calling it unknown."""
    if isinstance(data, dict):
        for key, why in removed.items():
            if key in data:
                raise PydanticCustomError(
                    REMOVED_KEY, "is no longer a setting: {why}; delete it", {"key": key, "why": why}
                )
    return data


_REMOVED_CLUSTER_KEYS = {
    "kube_tag": (
        "the Kubernetes version comes from cluster.image (Magnum's Cluster API driver reads the image's "
        "kube_version property and ignores the kube_tag label)"
    ),
    "api_load_balancer": (
        "Magnum's Cluster API driver always puts the Kubernetes API behind a load balancer; the managed "
        "template says so (master_lb_enabled), which Magnum requires for control_plane.count 3"
    ),
    "floating_ips": "Magnum's Cluster API driver ignores floating_ip_enabled: nodes never get floating IPs",
    "docker_volume_size_gb": (
        "Magnum's Cluster API driver never reads docker_volume_size (boot_volume_size_gb sizes the disks)"
    ),
}
_REMOVED_GROUP_KEYS = {
    "docker_volume_size_gb": "Magnum's Cluster API driver never reads a node group's docker_volume_size",
}


MinCount = Annotated[int, AfterValidator(_at_least_one_node)]
ClusterName = Annotated[str, AfterValidator(_rfc1123_label)]
GroupName = Annotated[str, AfterValidator(_rfc1123_subdomain)]
Labels = dict[str, str]


class ControlPlane(Model):
    """The Kubernetes control plane Magnum runs on its own servers."""

    custom_flavor: bool = Field(
        default=False,
        description="Allow a flavor that is not in the site profile's catalog (no cost estimate).",
    )
    flavor: str = Field(default="m3.medium", description="Flavor of each control-plane server.")
    count: int = Field(
        default=1,
        ge=1,
        description=(
            "Control-plane servers. Changing it REPLACES the cluster. Use 1 or 3 (etcd needs a majority). "
            "Magnum accepts more than 1 only with the template's master_lb_enabled, which the managed "
            "template sets; an existing_template_id must have it too."
        ),
    )

    @field_validator("count")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(
                "must be odd: etcd keeps quorum with a majority of members, so an even count adds a "
                "server without adding tolerance to failure"
            )
        return value


class DefaultWorker(Model):
    """The `default-worker` node group Magnum always creates and never lets you delete.

    It takes its flavor from the cluster (fixed at creation: a change REPLACES the cluster) and its size
    from the cluster's node_count, and cannot be removed: size it as a real group (the shipped site runs
    the hub's core pods on it) rather than leave it idle.

    Its autoscaling range is the group's own min/max (magnum-capi-helm `driver.py` `_get_node_counts`),
    which Magnum's cluster API cannot set at creation; the template's min/max_node_count labels could,
    but Magnum copies labels into the cluster at creation and they then override the group forever. So
    the program leaves those labels out, and an autoscaled range is set once after creation with
    `openstack coe nodegroup update` (see :func:`cluster_notes`), where it stays changeable.
    """

    custom_flavor: bool = Field(
        default=False, description="Allow a flavor outside the site profile's catalog."
    )
    flavor: str = Field(
        default="m3.quad",
        description="Flavor of the default-worker nodes. Changing it REPLACES the cluster.",
    )
    min_count: MinCount = Field(
        default=1, description="Fewest nodes (Magnum's Cluster API driver refuses empty node groups)."
    )
    max_count: int = Field(
        default=1,
        ge=1,
        description=(
            "Most nodes the autoscaler may add (equal to min: fixed size). Above min_count, the range is set "
            "once after creation with `openstack coe nodegroup update` (the plan prints the command)."
        ),
    )
    count: int | None = Field(
        default=None,
        ge=1,
        description="Node count (Magnum's node_count, changed in place); defaults to min_count.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        _check_bounds(self.min_count, self.max_count, self.count)
        return self

    @property
    def autoscaled(self) -> bool:
        return self.max_count > self.min_count

    @property
    def initial_count(self) -> int:
        return self.count if self.count is not None else self.min_count


def _check_bounds(min_count: int, max_count: int, count: int | None) -> None:
    if max_count < min_count:
        raise ValueError(f"max_count ({max_count}) must be at least min_count ({min_count})")
    if count is not None and not min_count <= count <= max_count:
        raise ValueError(
            f"count ({count}) must lie between min_count ({min_count}) and max_count ({max_count})"
        )


class NodeGroup(Model):
    """A Magnum node group besides `default-worker` (e.g. the user pods' group)."""

    name: GroupName = Field(
        description=(
            "Node group name. Pods select it with `capi.stackhpc.com/node-group: <name lowercased, other "
            "characters turned into '-'>` (`user-m3.large` -> `user-m3-large`). Changing it REPLACES the group."
        )
    )
    custom_flavor: bool = Field(
        default=False, description="Allow a flavor outside the site profile's catalog."
    )
    flavor: str = Field(description="Flavor of this group's nodes. Changing it REPLACES the group.")
    min_count: MinCount = Field(
        default=1,
        description="Fewest nodes. At least 1: Magnum's Cluster API driver refuses empty node groups.",
    )
    max_count: int | None = Field(
        default=None, ge=1, description="Most nodes; defaults to min_count (a fixed-size group)."
    )
    count: int | None = Field(default=None, ge=1, description="Initial node count; defaults to min_count.")
    autoscale: bool | None = Field(
        default=None,
        description=(
            "Let the cluster autoscaler move the size between min_count and max_count. Defaults to true when "
            "they differ; the driver autoscales exactly the groups whose min and max differ."
        ),
    )
    role: str = Field(
        default="worker",
        pattern=described_pattern(
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        description="Magnum role (bookkeeping only: it does not reach the nodes). Changing it REPLACES the group.",
    )
    labels: Labels = Field(
        default_factory=dict,
        description="Extra Magnum labels for the group. They do not reach the nodes; changing them REPLACES the group.",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return _refuse_removed(data, _REMOVED_GROUP_KEYS)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        max_count = self.max_count if self.max_count is not None else self.min_count
        _check_bounds(self.min_count, max_count, self.count)
        if self.autoscale is True and max_count == self.min_count:
            raise ValueError(
                f"autoscale is on but min_count and max_count are both {self.min_count}: the driver only "
                "autoscales groups whose min and max differ; raise max_count"
            )
        if self.autoscale is False and max_count != self.min_count:
            raise ValueError(
                "autoscale is off but min_count and max_count differ: the driver would autoscale the group "
                "anyway; make them equal or turn autoscale on"
            )
        if node_group_label_value(self.name) == DEFAULT_WORKER:
            raise ValueError(
                f"name {self.name!r} collides with Magnum's own {DEFAULT_WORKER!r} group; configure that group "
                "under cluster.default_worker"
            )
        return self

    @property
    def upper(self) -> int:
        return self.max_count if self.max_count is not None else self.min_count

    @property
    def autoscaled(self) -> bool:
        return self.upper > self.min_count

    @property
    def initial_count(self) -> int:
        return self.count if self.count is not None else self.min_count

    @property
    def label_value(self) -> str:
        return node_group_label_value(self.name)


class ClusterConfig(Model):
    """The Magnum cluster of a site. Settings marked REPLACES destroy every user's hub when changed."""

    name: ClusterName = Field(description="Magnum cluster name. Changing it REPLACES the cluster.")
    image: str | None = Field(
        default=None,
        description=(
            "Glance image with Kubernetes for the template (default: the profile's); the Kubernetes version "
            "is the image's. A change upgrades the running cluster, rolling every node group: `up` needs "
            "--allow-upgrade."
        ),
    )
    capi_helm_chart_version: str | None = Field(
        default=None,
        pattern=described_pattern(
            r"^\d+\.\d+\.\d+$", "must be an exact version: three numbers without a 'v', e.g. 0.16.0"
        ),
        description=(
            "Template label `capi_helm_chart_version` (default: the profile's; autoscaling needs a match). "
            "A change upgrades the running cluster: `up` needs --allow-upgrade."
        ),
    )
    existing_template_id: str | None = Field(
        default=None,
        description=(
            "Use this existing Magnum template (name or UUID) instead of managing one; image, "
            "capi_helm_chart_version and labels are then the template's."
        ),
    )
    control_plane: ControlPlane = Field(default_factory=ControlPlane, description="Control-plane servers.")
    default_worker: DefaultWorker = Field(
        default_factory=DefaultWorker, description="Magnum's default-worker group."
    )
    autoscaling: bool = Field(
        default=True,
        description=(
            "Run the cluster autoscaler (template label `auto_scaling_enabled`). Fixed when the cluster is "
            "created: a change has no effect on a running cluster."
        ),
    )
    network_driver: Literal["calico", "flannel", "cilium"] = Field(
        default="calico", description="Pod network driver (calico supports Kubernetes network policies)."
    )
    external_network: str | None = Field(
        default=None, description="External network (default: the profile's)."
    )
    fixed_network: str | None = Field(
        default=None, description="Tenant network to join (default: the profile's, `auto_allocated_network`)."
    )
    fixed_subnet: str | None = Field(
        default=None, description="Subnet of fixed_network (default: the profile's)."
    )
    keypair: str | None = Field(default=None, description="Nova keypair for SSH to nodes (none by default).")
    boot_volume_size_gb: int | None = Field(
        default=None,
        ge=10,
        description=(
            "Boot from a volume of this size (label `boot_volume_size`). Fixed when the cluster is created: "
            "a change has no effect on a running cluster."
        ),
    )
    create_timeout_minutes: int = Field(
        default=60,
        ge=10,
        le=600,
        description=(
            "How long Pulumi waits for the cluster and each node group (a Jetstream2 cluster takes 10+ "
            "minutes). Not sent to Magnum: its Cluster API driver ignores create_timeout."
        ),
    )
    protect: bool = Field(
        default=True,
        description=(
            "Pulumi `protect` on the cluster and its node groups: losing the cluster loses every user's hub, "
            "losing a group kills every pod on it. `up --allow-replace NAME` lifts it for that one resource."
        ),
    )
    extra_labels: Labels = Field(
        default_factory=dict,
        description=(
            "More template labels (e.g. `boot_volume_type`). Magnum copies them into the cluster when it is "
            "created: a change has no effect on a running cluster."
        ),
    )
    node_groups: tuple[NodeGroup, ...] = Field(
        default=(),
        description="Node groups besides default-worker, created one after another (the driver races otherwise).",
    )

    @model_validator(mode="before")
    @classmethod
    def _removed(cls, data: Any) -> Any:
        return _refuse_removed(data, _REMOVED_CLUSTER_KEYS)

    @model_validator(mode="after")
    def _unique_groups(self) -> Self:
        seen: dict[str, str] = {}
        for group in self.node_groups:
            value = group.label_value
            if value in seen:
                raise ValueError(
                    f"node groups {seen[value]!r} and {group.name!r} both select as "
                    f"capi.stackhpc.com/node-group={value!r}; give them distinct names"
                )
            seen[value] = group.name
        if not self.autoscaling:
            auto = [g.name for g in self.node_groups if g.autoscaled]
            if self.default_worker.autoscaled:
                auto.insert(0, DEFAULT_WORKER)
            if auto:
                raise ValueError(
                    f"autoscaling is off but {', '.join(auto)} ask for it (min_count < max_count); turn "
                    "autoscaling on or make those sizes fixed"
                )
        return self

    @property
    def kube_version(self) -> str | None:
        """The Kubernetes version of the managed template's image (None: not in the image's name)."""
        return kube_version_of(self.image)

    def label_values(self) -> dict[str, str]:
        """Every group's name -> the `capi.stackhpc.com/node-group` value its nodes carry."""
        values = {DEFAULT_WORKER: DEFAULT_WORKER}
        values.update({g.name: g.label_value for g in self.node_groups})
        return values


class ClusterStackConfig(Model):
    """Everything the cluster stack reads from its Pulumi config (namespace `jetstream-binderhub`)."""

    profile: str = Field(
        default="jetstream2", description="Site profile: the cloud's flavors, networks and versions."
    )
    cluster: ClusterConfig = Field(description="The Magnum cluster.")


def profile_problems(cfg: ClusterStackConfig, profile: Profile) -> list[Problem]:
    """Checks that need the cloud's facts: flavors in the catalog, supported versions and drivers."""
    cluster = cfg.cluster
    problems: list[Problem] = []
    flavors: list[tuple[str, str, bool, bool]] = [
        (
            "cluster.control_plane.flavor",
            cluster.control_plane.flavor,
            cluster.control_plane.custom_flavor,
            False,
        ),
        (
            "cluster.default_worker.flavor",
            cluster.default_worker.flavor,
            cluster.default_worker.custom_flavor,
            True,
        ),
    ]
    flavors += [
        (f"cluster.node_groups[{i}].flavor", g.flavor, g.custom_flavor, True)
        for i, g in enumerate(cluster.node_groups)
    ]
    for key, name, custom, node in flavors:
        if not custom and (why := profile.flavor_problem(name, node=node)):
            problems.append(Problem(key, why))
    if cluster.network_driver not in profile.network_drivers:
        problems.append(
            Problem(
                "cluster.network_driver",
                f"{cluster.network_driver!r} is not offered by {profile.name} "
                f"(supported: {', '.join(profile.network_drivers)})",
            )
        )
    chart = cluster.capi_helm_chart_version
    if cluster.autoscaling and chart is not None and chart != profile.capi_helm_chart_version:
        problems.append(
            Problem(
                "cluster.capi_helm_chart_version",
                f"{chart!r} differs from the {profile.capi_helm_chart_version!r} that {profile.name}'s own "
                "templates use; the cluster autoscaler only works when they match. Remove the key to follow the "
                "profile, or set cluster.autoscaling: false",
            )
        )
    if cluster.existing_template_id is not None:
        for key in ("image", "capi_helm_chart_version"):
            if getattr(cluster, key) is not None:
                problems.append(
                    Problem(
                        f"cluster.{key}", "cannot be set with existing_template_id: the template decides it"
                    )
                )
    return problems


def resolve_defaults(cfg: ClusterStackConfig, profile: Profile) -> ClusterStackConfig:
    """Fill what the user left to the profile, so the program and the plan see concrete values."""
    cluster = cfg.cluster
    managed = cluster.existing_template_id is None
    update = {
        "image": cluster.image or (profile.default_image if managed else None),
        "capi_helm_chart_version": cluster.capi_helm_chart_version
        or (profile.capi_helm_chart_version if managed else None),
        "external_network": cluster.external_network or profile.external_network,
        "fixed_network": cluster.fixed_network or profile.fixed_network,
        "fixed_subnet": cluster.fixed_subnet or profile.fixed_subnet,
    }
    return cfg.model_copy(update={"cluster": cluster.model_copy(update=update)})


def cluster_notes(cluster: ClusterConfig) -> list[str]:
    """What the program cannot do itself and the user must do by hand, one line each."""
    notes: list[str] = []
    dw = cluster.default_worker
    if dw.autoscaled:
        notes.append(
            f"default-worker autoscales between {dw.min_count} and {dw.max_count} only once its range is set "
            f"on the group, after the cluster exists: `openstack coe nodegroup update {cluster.name} "
            f"{DEFAULT_WORKER} replace min_node_count={dw.min_count} max_node_count={dw.max_count}` "
            "(Magnum cannot take it at creation; until then the group stays at "
            f"{dw.initial_count} node(s)). Run it again after changing the range."
        )
    return notes
