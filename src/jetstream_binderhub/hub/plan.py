"""The BinderHub layer in the offline plan: validate first, then run the real program under mocks.

`HubLayerPlanner.load` does every check that can be done from the stack files alone (config, the
cluster's node groups and flavors, the chart schemas) before anything runs; `run` executes
`hub_program` with the cluster stack's reference answered from the cluster layer's planned outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jetstream_binderhub.config.cluster import ClusterConfig, ClusterStackConfig
from jetstream_binderhub.config.hub import (
    SECRET_KEYS,
    HubStackConfig,
    check_hub_stack,
    secret_problems,
    set_secret_command,
)
from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, SECRET_PLACEHOLDER, StackFile
from jetstream_binderhub.config.support import required_secrets, secret_value_problems
from jetstream_binderhub.errors import ConfigError, Problem
from jetstream_binderhub.hub.dask import dask_fit_problems, dask_notes, dask_schema_problems
from jetstream_binderhub.hub.gpu import gpu_fit_problems, gpu_notes
from jetstream_binderhub.naming import DEFAULT_WORKER
from jetstream_binderhub.plan.model import LayerPlan
from jetstream_binderhub.profiles import load_profile

LAYER = "binderhub"


def _group_flavor(cluster: ClusterConfig, group: str) -> str | None:
    if group == DEFAULT_WORKER:
        return cluster.default_worker.flavor
    return next((g.flavor for g in cluster.node_groups if g.name == group), None)


def _group_max(cluster: ClusterConfig, group: str) -> int | None:
    if group == DEFAULT_WORKER:
        return cluster.default_worker.max_count
    return next((g.upper for g in cluster.node_groups if g.name == group), None)


def cluster_fit_problems(cfg: HubStackConfig, cluster: ClusterStackConfig) -> list[Problem]:
    """What the cluster layer's config says cannot work: another profile, users larger than a node."""
    problems: list[Problem] = []
    if cfg.profile != cluster.profile:
        problems.append(
            Problem(
                "profile",
                f"{cfg.profile!r} differs from the cluster layer's profile {cluster.profile!r}; both layers of a "
                "site run on the same cloud",
            )
        )
    core_max = _group_max(cluster.cluster, cfg.placement.core_node_group)
    if core_max is not None and cfg.ingress.replicas > core_max:
        problems.append(
            Problem(
                "ingress.replicas",
                f"{cfg.ingress.replicas} controller pods on core group {cfg.placement.core_node_group!r} of at most "
                f"{core_max} node(s): they would share a node, and their disruption budget would stall draining "
                "it in an upgrade; raise that group's max_count or lower ingress.replicas",
            )
        )
    disruption = cfg.support.disruption
    if (
        core_max is not None
        and disruption is not None
        and disruption.enabled
        and disruption.binderhub_replicas > core_max
    ):
        # The same reason: the chart's budget (one unavailable) on pods sharing the only node.
        problems.append(
            Problem(
                "support.disruption.binderhub_replicas",
                f"{disruption.binderhub_replicas} BinderHub pods on core group {cfg.placement.core_node_group!r} of "
                f"at most {core_max} node(s): they would share a node, and the chart's disruption budget would "
                "stall draining it in an upgrade; raise that group's max_count or lower binderhub_replicas",
            )
        )
    flavor_name = _group_flavor(cluster.cluster, cfg.placement.user_node_group)
    flavor = load_profile(cluster.profile).flavor(flavor_name) if flavor_name else None
    if flavor is None:  # an unknown group is reported by the placement check; a custom flavor has no facts
        return problems
    res = cfg.binderhub.jupyterhub.user_resources
    key = "binderhub.jupyterhub.user_resources"
    where = f"a {flavor.name} node ({flavor.vcpus} vCPUs, {flavor.ram_gb:g} GB) of group {cfg.placement.user_node_group!r}"
    if res.cpu_guarantee is not None and res.cpu_guarantee > flavor.vcpus:
        problems.append(
            Problem(
                f"{key}.cpu_guarantee",
                f"{res.cpu_guarantee:g} cores never fit on {where}: no server could start",
            )
        )
    memory = res.memory_guarantee_bytes
    if memory is not None and memory > flavor.ram_gb * 2**30:
        problems.append(
            Problem(
                f"{key}.memory_guarantee",
                f"{res.memory_guarantee} never fits on {where}: no server could start",
            )
        )
    return problems


def _schema_problems(cfg: HubStackConfig, labels: Mapping[str, str]) -> list[Problem]:
    from jetstream_binderhub.hub.schema import validate_binderhub_values
    from jetstream_binderhub.hub.values import binderhub_values

    extra = cfg.binderhub.extra_values
    problems = []
    for found in validate_binderhub_values(binderhub_values(cfg, labels, github_token=False)):
        first = found.key.split(".", 1)[0]
        # A value the user wrote in extra_values is named there; anything else is ours to fix.
        key = "binderhub.extra_values" if first in extra or found.key == "(root)" else "binderhub"
        problems.append(Problem(key, f"the binderhub chart would refuse {found}"))
    return problems


@dataclass(frozen=True)
class HubLayerPlanner:
    """A validated BinderHub layer of one site, ready to run under mocks."""

    site: str
    config: HubStackConfig
    pulumi_config: Mapping[str, str]
    secret_keys: frozenset[str]
    stack_reference: str
    notes: tuple[str, ...]

    @classmethod
    def load(cls, site: str, stack_file: StackFile, cluster: ClusterStackConfig) -> HubLayerPlanner:
        """Validate the site's BinderHub config against itself, the cluster and the charts; raise
        ConfigError naming every bad key before anything runs."""
        source = str(stack_file.path)
        raw = stack_file.namespace(HUB_PROJECT)
        prefix = f"{HUB_PROJECT}:"
        secret = {k.removeprefix(prefix) for k in stack_file.secret_keys if k.startswith(prefix)}
        labels = cluster.cluster.label_values()

        cfg, problems = check_hub_stack(raw, node_groups=labels)
        problems += [
            Problem(k, f"is a cluster layer key; it belongs in Pulumi.{site}.yaml at the repository root")
            for k in stack_file.values
            if k.startswith(f"{CLUSTER_PROJECT}:")
        ]
        # A missing password is not an error here: the plan shows where it goes, and says how to set it.
        problems += [p for p in secret_problems(set(raw), secret, site) if p.key in raw]
        # Encrypted values are never decrypted here (`up` checks them); one in clear is checked now.
        problems += secret_value_problems(
            {k: v for k in SECRET_KEYS if isinstance(v := raw.get(k), str) and v != SECRET_PLACEHOLDER}
        )
        if cfg is not None:
            problems += cluster_fit_problems(cfg, cluster)
            problems += dask_fit_problems(cfg, cluster)
            problems += gpu_fit_problems(cfg, cluster)
            if not problems:
                problems += _schema_problems(cfg, labels)
                problems += dask_schema_problems(cfg, labels)
        if problems or cfg is None:
            raise ConfigError(problems, source)

        config = dict(stack_file.pulumi_config())
        secret_keys = set(stack_file.secret_keys)
        notes: list[str] = [*dask_notes(cfg, cluster), *gpu_notes(cfg, cluster)]
        for key in ("registry_password", *required_secrets(cfg.support)):
            if key in raw:
                continue
            # Planned as a secret placeholder so the plan shows where it goes; `up` would refuse to run.
            config[f"{prefix}{key}"] = SECRET_PLACEHOLDER
            secret_keys.add(f"{prefix}{key}")
            notes.append(
                f"{key} is not set yet (planned as [secret]); before `pulumi -C binderhub up` run "
                f"`{set_secret_command(key, site)}`"
            )
        if cfg.tls.acme_server == "staging":
            notes.append("Let's Encrypt staging: certificates will not be trusted by browsers")
        return cls(
            site=site,
            config=cfg,
            pulumi_config=config,
            secret_keys=frozenset(secret_keys),
            stack_reference=cfg.stack_reference(site),
            notes=tuple(notes),
        )

    def run(self, cluster_outputs: Mapping[str, Any]) -> tuple[LayerPlan, list[str]]:
        """Run `hub_program` under mocks with the cluster stack reference answered from `cluster_outputs`."""
        from jetstream_binderhub.hub.program import hub_program
        from jetstream_binderhub.plan.runner import run_layer

        layer, outputs = run_layer(
            hub_program,
            layer=LAYER,
            project=HUB_PROJECT,
            stack=self.site,
            config=self.pulumi_config,
            secret_keys=sorted(self.secret_keys),
            stack_outputs={self.stack_reference: cluster_outputs},
            secret_outputs={self.stack_reference: ["kubeconfig"]},
        )
        notes = list(self.notes)
        if "dns_instructions" in outputs:
            notes.append(
                "bring-your-own DNS: after `pulumi -C binderhub up`, create the records in the `dns_records` "
                "output (`pulumi -C binderhub stack output dns_instructions`)"
            )
        return layer, notes
