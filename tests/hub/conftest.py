"""Fixtures for the BinderHub layer: the shipped site's config and the layer planned under mocks.

`plan_hub` goes through the same path as `jetstream-binderhub plan`: the real cluster program runs
under Pulumi's mocks (preview=False) and its outputs answer the BinderHub program's StackReference
through `HubLayerPlanner`. Secrets can be planted in clear (as `pulumi up` would see them decrypted)
to prove they never reach a plan.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.config.load import parse_cluster_stack
from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, StackFile
from jetstream_binderhub.hub.plan import HubLayerPlanner
from jetstream_binderhub.plan.cost import estimate
from jetstream_binderhub.plan.model import LayerPlan, Plan, PlannedResource
from jetstream_binderhub.profiles import load_profile

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB_SITE_FILE = REPO_ROOT / "binderhub" / "Pulumi.jetstream2.yaml"


def shipped_hub_config() -> dict[str, Any]:
    """The shipped jetstream2 site's BinderHub config, namespace stripped, as a fresh mutable dict."""
    doc = yaml.safe_load(HUB_SITE_FILE.read_text())
    prefix = f"{HUB_PROJECT}:"
    return copy.deepcopy(
        {k.removeprefix(prefix): v for k, v in doc["config"].items() if k.startswith(prefix)}
    )


def hub_stack_file(
    hub: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    plain: Mapping[str, Any] | None = None,
    site: str = "jetstream2",
) -> StackFile:
    """A stack file as `read_stack_file` would return it, except that `secrets` hold real values."""
    values = {f"{HUB_PROJECT}:{k}": v for k, v in hub.items()}
    values.update({f"{HUB_PROJECT}:{k}": v for k, v in (secrets or {}).items()})
    values.update(dict(plain or {}))
    return StackFile(
        path=Path(f"binderhub/Pulumi.{site}.yaml"),
        values=values,
        secret_keys=frozenset(f"{HUB_PROJECT}:{k}" for k in (secrets or {})),
    )


@dataclass(frozen=True)
class HubRun:
    layer: LayerPlan
    notes: list[str]
    plan: Plan
    """Both layers as `plan_site` assembles them, for the text and JSON renderers."""

    def resource(self, type_suffix: str, name: str | None = None) -> PlannedResource:
        return self.layer.resource(type_suffix, name)

    def output(self, name: str) -> Any:
        return self.layer.output(name).value

    def values(self, release: str = "binderhub-release") -> dict[str, Any]:
        return self.layer.resource("helm.sh/v3:Release", release).inputs["values"]


PlanHub = Callable[..., HubRun]


def run_hub_program(
    hub: Mapping[str, Any], secrets: Mapping[str, str], plain: Mapping[str, str] | None = None
) -> None:
    """The BinderHub program alone, as plain `pulumi -C binderhub up` runs it: no offline planner in front,
    `secrets` as Pulumi hands them over decrypted, `plain` as values stored in plain text."""
    from jetstream_binderhub.hub.program import hub_program
    from jetstream_binderhub.plan.runner import run_layer

    config = {f"{HUB_PROJECT}:{k}": json.dumps(v) for k, v in hub.items()}
    config.update({f"{HUB_PROJECT}:{k}": v for k, v in {**secrets, **(plain or {})}.items()})
    run_layer(
        hub_program,
        layer="binderhub",
        project=HUB_PROJECT,
        stack="jetstream2",
        config=config,
        secret_keys=[f"{HUB_PROJECT}:{k}" for k in secrets],
    )


@pytest.fixture
def hub_config() -> dict[str, Any]:
    return shipped_hub_config()


@pytest.fixture
def plan_hub(cluster_config: dict[str, Any]) -> PlanHub:
    from jetstream_binderhub.infra.program import cluster_program
    from jetstream_binderhub.plan.runner import run_layer

    def run(
        hub: Mapping[str, Any],
        *,
        secrets: Mapping[str, str] | None = None,
        plain: Mapping[str, Any] | None = None,
        cluster: dict[str, Any] | None = None,
        cluster_outputs: Mapping[str, Any] | None = None,
        site: str = "jetstream2",
    ) -> HubRun:
        cluster_raw = cluster if cluster is not None else cluster_config
        cluster_cfg = parse_cluster_stack(cluster_raw)
        planner = HubLayerPlanner.load(site, hub_stack_file(hub, secrets, plain, site), cluster_cfg)
        flat = {
            f"{CLUSTER_PROJECT}:{k}": v if isinstance(v, str) else json.dumps(v)
            for k, v in cluster_raw.items()
        }
        cluster_plan, outputs = run_layer(
            cluster_program, layer="cluster", project=CLUSTER_PROJECT, stack=site, config=flat
        )
        layer, notes = planner.run(cluster_outputs if cluster_outputs is not None else outputs)
        profile = load_profile(cluster_cfg.profile)
        plan = Plan(
            site=site,
            profile=profile.name,
            layers=[cluster_plan, layer],
            cost=estimate(cluster_cfg.cluster, profile),
            notes=notes,
        )
        return HubRun(layer=layer, notes=notes, plan=plan)

    return run
