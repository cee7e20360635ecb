"""Configuration of Dask Gateway beside BinderHub (`jetstream-binderhub-hub:dask_gateway`).

A binder gets one pod; with the gateway on, a notebook can start a Dask cluster whose workers run the
binder's own image. The gateway has per-cluster limits of its own (`c.ClusterConfig`); the number of
clusters per user and the maximum lifetime are added by this project (see hub/dask.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.errors import Problem, described_pattern

DASK_CHART_REPO = "https://helm.dask.org"
DASK_GATEWAY_CHART_VERSION = "2026.3.0"

_EXACT_VERSION = described_pattern(
    r"^\d+\.\d+\.\d+$", "must be an exact version: three numbers without a 'v', e.g. 0.16.0"
)
_QUANTITY = re.compile(r"^(\d+(\.\d+)?)([KMGT]i?)?$")
_FACTORS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_FACTORS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def memory_bytes(value: str) -> float:
    """Bytes in a Kubernetes-style quantity such as 4G or 3.5Gi (already validated)."""
    match = _QUANTITY.match(value)
    assert match is not None
    return float(match.group(1)) * _FACTORS[match.group(3) or ""]


def _memory(value: str) -> str:
    if not _QUANTITY.match(value):
        raise ValueError(
            "must be a byte quantity such as 4G, 512M or 3.5Gi (what Kubernetes and the gateway accept)"
        )
    return value


Memory = Annotated[str, AfterValidator(_memory)]


class DaskLimits(Model):
    """What one user of a binder may take. Every launch of a binder is a new JupyterHub user, so the
    whole site is bounded by the worker node group's max_count and `total_clusters`, not by these."""

    cores_per_cluster: float = Field(
        default=8,
        gt=0,
        description=(
            "Most cores one cluster may request, scheduler included (the gateway's "
            "`c.ClusterConfig.cluster_max_cores`); scaling beyond it is refused."
        ),
    )
    memory_per_cluster: Memory = Field(
        default="32G",
        description="Most memory one cluster may request, scheduler included (`cluster_max_memory`).",
    )
    clusters_per_user: int = Field(
        default=1,
        ge=1,
        le=10,
        description="Clusters one user may have pending or running at once; another `new_cluster()` is refused.",
    )
    total_clusters: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Clusters on the whole site at once (unset: no site-wide cap besides the node group's size). "
            "Binder users are anonymous, so this is the knob that bounds a busy workshop."
        ),
    )
    idle_timeout_minutes: int = Field(
        default=30,
        ge=5,
        le=24 * 60,
        description="Stop a cluster with no client connected and no work for this long (`c.ClusterConfig.idle_timeout`).",
    )
    max_lifetime_hours: float = Field(
        default=8,
        gt=0,
        le=72,
        description=(
            "Stop any cluster this old, busy or not: its scheduler pod's activeDeadlineSeconds, after which "
            "the gateway's controller tears the cluster down."
        ),
    )

    @model_validator(mode="after")
    def _idle_within_lifetime(self) -> Self:
        if self.idle_timeout_minutes > self.max_lifetime_hours * 60:
            raise ValueError(
                f"idle_timeout_minutes ({self.idle_timeout_minutes}) exceeds max_lifetime_hours "
                f"({self.max_lifetime_hours:g} h): the lifetime would always stop a cluster first"
            )
        return self


class DaskGatewayConfig(Model):
    """Dask Gateway beside BinderHub: `from dask_gateway import Gateway; Gateway().new_cluster()` in any binder."""

    enabled: bool = Field(default=False, description="Install Dask Gateway and wire every binder to it.")
    chart_version: str = Field(
        default=DASK_GATEWAY_CHART_VERSION,
        pattern=_EXACT_VERSION,
        description="Exact dask-gateway chart version from https://helm.dask.org.",
    )
    release_name: str = Field(
        default="dask-gateway",
        pattern=described_pattern(
            r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
            "must be lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        max_length=40,
        description=(
            "Helm release name; the gateway's services are named after it (`traefik-<name>`, `api-<name>` "
            "when it contains `dask-gateway`). It is installed in the BinderHub namespace."
        ),
    )
    worker_node_group: str | None = Field(
        default=None,
        description=(
            "Node group of the Dask workers (default: placement.user_node_group). A group of their own "
            "autoscales from 1: Magnum cannot scale a group to 0, so its minimum is billed all day."
        ),
    )
    worker_cores: float = Field(
        default=1, gt=0, le=64, description="Cores each worker requests and is limited to."
    )
    worker_memory: Memory = Field(
        default="3.5G",
        description="Memory each worker requests and is limited to (m3 flavors: 3.75 GB a core).",
    )
    scheduler_cores: float = Field(
        default=0.5, gt=0, le=8, description="Cores the scheduler requests (limited to twice that)."
    )
    scheduler_memory: Memory = Field(
        default="2G", description="Memory the scheduler requests and is limited to."
    )
    limits: DaskLimits = Field(default_factory=DaskLimits, description="Per-user and site-wide limits.")

    @model_validator(mode="after")
    def _one_worker_fits(self) -> Self:
        cores_left = self.limits.cores_per_cluster - self.scheduler_cores
        memory_left = memory_bytes(self.limits.memory_per_cluster) - memory_bytes(self.scheduler_memory)
        if cores_left < self.worker_cores:
            raise ValueError(
                f"limits.cores_per_cluster ({self.limits.cores_per_cluster:g}) leaves {cores_left:g} cores after "
                f"the scheduler, less than one worker's {self.worker_cores:g}: no cluster could have a worker"
            )
        if memory_left < memory_bytes(self.worker_memory):
            raise ValueError(
                f"limits.memory_per_cluster ({self.limits.memory_per_cluster}) leaves less than one worker's "
                f"{self.worker_memory} after the scheduler's {self.scheduler_memory}: no cluster could have a worker"
            )
        return self

    @property
    def max_workers(self) -> int:
        """Workers one cluster can reach, as the gateway computes it from the cluster limits."""
        by_cores = (self.limits.cores_per_cluster - self.scheduler_cores) // self.worker_cores
        by_memory = (memory_bytes(self.limits.memory_per_cluster) - memory_bytes(self.scheduler_memory)) // (
            memory_bytes(self.worker_memory)
        )
        return int(min(by_cores, by_memory))


def dask_placement_problems(dask: DaskGatewayConfig, node_groups: Mapping[str, str]) -> list[Problem]:
    """The worker group must be one of the cluster's groups (by name, as the cluster config writes it)."""
    if not dask.enabled or dask.worker_node_group is None or dask.worker_node_group in node_groups:
        return []
    by_label = {label: name for name, label in node_groups.items()}
    hint = ""
    if dask.worker_node_group in by_label:
        hint = (
            f"; {dask.worker_node_group!r} is the label value of group {by_label[dask.worker_node_group]!r}"
        )
    return [
        Problem(
            "dask_gateway.worker_node_group",
            f"unknown node group {dask.worker_node_group!r} (the cluster has: {', '.join(node_groups)}){hint}",
        )
    ]


def worker_group(dask: DaskGatewayConfig, user_node_group: str) -> str:
    return dask.worker_node_group or user_node_group
