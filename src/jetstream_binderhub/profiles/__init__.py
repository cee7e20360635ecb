"""Site profiles: the facts of one Magnum cloud, kept as data so a new cloud needs no code."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jetstream_binderhub.errors import ConfigError, Problem, problems_from_validation_error
from jetstream_binderhub.yamlio import safe_load


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


CPU_RESOURCE = "cpu"
"""The allocation a flavor draws on unless its profile says otherwise."""


class Flavor(_Frozen):
    """One Nova flavor of the cloud, with what it costs."""

    name: str = Field(description="Nova flavor name, as `openstack flavor list` shows it.")
    vcpus: int = Field(ge=1, description="Virtual CPUs.")
    ram_gb: float = Field(gt=0, description="Memory in GB.")
    disk_gb: int = Field(ge=0, description="Local root disk in GB.")
    su_per_hour: float = Field(ge=0, description="Allocation units charged per hour while the server exists.")
    resource: Literal["cpu", "large-memory", "gpu"] = Field(
        default=CPU_RESOURCE,
        description="Which allocation the flavor draws on (a separate ACCESS resource on Jetstream2).",
    )
    gpu_fraction: float = Field(
        default=0.0, ge=0, le=8, description="GPUs per server (a fraction for vGPU slices)."
    )
    on_request: bool = Field(default=False, description="Only available after asking the cloud's operators.")


class Profile(_Frozen):
    """What a Magnum cloud offers and expects; the defaults a site on it starts from."""

    name: str = Field(description="Profile name, used as `profile:` in a site's config.")
    description: str = Field(description="One line for humans.")
    external_network: str = Field(
        description="External (provider) network name or id for the cluster's router."
    )
    fixed_network: str | None = Field(description="Tenant network new clusters join by default.")
    fixed_subnet: str | None = Field(
        default=None, description="Subnet of `fixed_network`, when it has several."
    )
    capi_helm_chart_version: str = Field(
        description="The `capi_helm_chart_version` label of the cloud's own templates; autoscaling needs a match."
    )
    default_image: str = Field(
        description="Glance image with Kubernetes for new templates; its name carries the Kubernetes version."
    )
    network_drivers: tuple[str, ...] = Field(description="Network drivers the cloud's Magnum supports.")
    dns_zone_pattern: str | None = Field(
        default=None,
        description="Designate zone of a project; `{allocation}` is replaced by the allocation id.",
    )
    su_unit: str = Field(default="SU", description="Name of the allocation unit in cost estimates.")
    minimum_node_vcpus: int = Field(
        ge=1, description="Smallest vCPU count the Magnum driver accepts for a node."
    )
    minimum_node_ram_mb: int = Field(ge=1, description="Smallest RAM the Magnum driver accepts for a node.")
    flavors: tuple[Flavor, ...] = Field(description="The flavor catalog.")
    default_quota_vcpus: dict[Literal["cpu", "large-memory", "gpu"], int] = Field(
        default_factory=dict,
        description=(
            "vCPUs a project may run at once per allocation resource by default (the largest default of any "
            "allocation type); a plan warns when a site needs more at maximum size."
        ),
    )

    def flavor(self, name: str) -> Flavor | None:
        return next((f for f in self.flavors if f.name == name), None)

    def flavor_problem(self, name: str, *, node: bool) -> str | None:
        """Why `name` cannot be used here (None when it can); `node` applies the driver's minimum size."""
        flavor = self.flavor(name)
        if flavor is None:
            known = ", ".join(f.name for f in self.flavors)
            return (
                f"unknown flavor {name!r} for site profile {self.name!r} (known: {known}); "
                "set custom_flavor: true to use a flavor outside the catalog"
            )
        if node and (
            flavor.vcpus < self.minimum_node_vcpus or flavor.ram_gb * 1024 < self.minimum_node_ram_mb
        ):
            return (
                f"flavor {name!r} has {flavor.vcpus} vCPU / {flavor.ram_gb:g} GB; the Magnum Cluster API driver "
                f"refuses nodes below {self.minimum_node_vcpus} vCPUs and {self.minimum_node_ram_mb} MB"
            )
        return None


def available_profiles() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml") for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml")
    )


@cache
def load_profile(name: str) -> Profile:
    """The named profile shipped with the package; a ConfigError names the `profile` key when unknown."""
    if name not in available_profiles():
        raise ConfigError(
            [
                Problem(
                    "profile", f"unknown site profile {name!r} (available: {', '.join(available_profiles())})"
                )
            ]
        )
    raw = safe_load(resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
    try:
        return Profile.model_validate(raw)
    except ValidationError as exc:  # a broken shipped profile is a bug, but say where
        raise ConfigError(problems_from_validation_error(exc), source=f"profile {name}") from None
