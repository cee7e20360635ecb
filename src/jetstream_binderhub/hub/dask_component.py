"""The Dask Gateway component: the dask-gateway chart in the BinderHub namespace, and the network
policy that fences its schedulers and workers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import pulumi
import pulumi_kubernetes as k8s

from jetstream_binderhub.config.dask import DASK_CHART_REPO
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.components import HELM_HISTORY
from jetstream_binderhub.hub.dask import dask_gateway_values, fullname, network_policy_spec
from jetstream_binderhub.schemas import refusal

TYPE = "jetstream-binderhub:hub:DaskGateway"


def validated_values(cfg: HubStackConfig, labels: Mapping[str, str]) -> dict[str, object]:
    """The chart's values, refused with the chart's own reasons before Helm sees them."""
    try:
        values = dask_gateway_values(cfg, labels)
    except ConfigError as exc:
        if all(p.key.startswith("placement.") for p in exc.problems):
            # The BinderHub release needs the same groups and stops the update with this very message;
            # this release depends on it and is never created, so the problem is not reported twice.
            return {}
        raise pulumi.RunError(str(exc)) from None
    if message := refusal("dask-gateway", values):
        raise pulumi.RunError(message)
    return values


@dataclass(frozen=True)
class DaskGatewayArgs:
    """Inputs of :class:`DaskGateway`."""

    config: HubStackConfig
    node_group_labels: pulumi.Input[Mapping[str, str]]
    k8s_provider: k8s.Provider
    namespace: pulumi.Input[str]
    """The BinderHub namespace: the gateway mounts the api token from JupyterHub's Secret there."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """The BinderHub release (its `hub` Secret holds the token) and the ingress release (see below)."""


class DaskGateway(pulumi.ComponentResource):
    """dask-gateway pinned from the Dask Helm repository, behind the hub's proxy."""

    release: k8s.helm.v3.Release
    network_policy: k8s.networking.v1.NetworkPolicy

    def __init__(self, name: str, args: DaskGatewayArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        cfg = args.config
        dask = cfg.dask_gateway
        provider = args.k8s_provider
        values = pulumi.Output.from_input(args.node_group_labels).apply(
            lambda labels: validated_values(cfg, labels)
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=dask.release_name,
            chart="dask-gateway",
            version=dask.chart_version,
            repository_opts={"repo": DASK_CHART_REPO},
            namespace=args.namespace,
            values=values,
            # The chart bundles Traefik's CRDs (crds/traefik.yaml) beside its own DaskCluster CRD. Helm
            # installs a chart's crds/ only when absent and never upgrades them, and this release waits for
            # the ingress layer's Traefik, so Traefik's CRDs are the ingress chart's (newer) copies and the
            # gateway's are skipped; skip_crds would also drop the DaskCluster CRD the gateway needs.
            skip_crds=False,
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            max_history=HELM_HISTORY,
            opts=pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=list(args.depends_on) or None
            ),
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": f"{fullname(dask.release_name)}-clusters", "namespace": args.namespace},
            # Wire (camelCase) names, as the provider sends them; the SDK's TypedDict spells them in snake_case.
            spec=cast("k8s.networking.v1.NetworkPolicySpecArgsDict", network_policy_spec(dask)),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.register_outputs(
            {"release": self.release.name, "network_policy": self.network_policy.metadata.name}
        )
