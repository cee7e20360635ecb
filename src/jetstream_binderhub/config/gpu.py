"""Configuration of GPU servers for the repositories that ask for them (`jetstream-binderhub-hub:gpu`).

BinderHub without authentication has no profile a visitor could choose, so the choice is the
operator's: a list of repository patterns. BinderHub passes the repository URL of every launch to the
spawner (`user_options["repo_url"]`, binderhub/launcher.py), and a spawn hook sends matching launches
to the GPU node group with an `nvidia.com/gpu` limit. Every other pod of the site selects its own
group by `capi.stackhpc.com/node-group`, so nothing else lands on the GPU nodes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pydantic import Field, field_validator

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.errors import Problem


class GpuConfig(Model):
    """GPU user servers on a node group of GPU flavors (Jetstream2 g3: slices of an A100)."""

    node_group: str = Field(
        description=(
            "Node group of GPU flavors that runs only GPU servers (by name, as the cluster config writes it). "
            "Magnum cannot scale it below 1 node: its minimum is billed around the clock."
        )
    )
    repositories: tuple[str, ...] = Field(
        min_length=1,
        description=(
            "Regular expressions matched, ignoring case, at the start of the repository URL of a launch "
            r"(e.g. `https://github\.com/projectpythia/.*-gpu`); a match gets a GPU server, anything else a "
            "CPU one."
        ),
    )
    gpus_per_server: int = Field(
        default=1,
        ge=1,
        le=8,
        description="`nvidia.com/gpu` each GPU server is given (a g3 node has one virtual GPU).",
    )

    @field_validator("repositories")
    @classmethod
    def _regexes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({exc})") from None
        return value


def gpu_placement_problems(
    gpu: GpuConfig, others: Mapping[str, str], node_groups: Mapping[str, str] | None
) -> list[Problem]:
    """The GPU group must exist and belong to GPU servers alone.

    `others` maps the config keys of the other placements (core, user, Dask workers) to their groups.
    """
    key = "gpu.node_group"
    problems = [
        Problem(
            key,
            f"{gpu.node_group!r} is also {other}: every pod placed there would hold a GPU node, which is "
            "billed at GPU rates; give GPU servers a group of their own",
        )
        for other, group in others.items()
        if group == gpu.node_group
    ]
    if node_groups is not None and gpu.node_group not in node_groups:
        problems.append(
            Problem(key, f"unknown node group {gpu.node_group!r} (the cluster has: {', '.join(node_groups)})")
        )
    return problems
