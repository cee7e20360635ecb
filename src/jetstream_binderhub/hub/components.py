"""The BinderHub layer's components: ingress with a fixed public IP, DNS, certificates, BinderHub.

Every Kubernetes resource is given the cluster's provider explicitly (`provider=` on its own options),
never through an ambient default: a Kubernetes resource created with the default provider would go to
whatever cluster the operator's kubeconfig points at.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, cast

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack

from jetstream_binderhub.config.hub import (
    BINDERHUB_CHART_REPO,
    CERT_MANAGER_CHART_REPO,
    TRAEFIK_CHART_REPO,
    HubStackConfig,
)
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub import values as v
from jetstream_binderhub.schemas import refusal

T = TypeVar("T")

TYPE_PREFIX = "jetstream-binderhub:hub"
HELM_HISTORY = 10
"""Release revisions Helm keeps; each is a Secret holding the full values, so unbounded history only grows."""


def _plainly(build: Callable[[], T]) -> T:
    """Run a values builder inside an apply; a config problem found only now (a node group missing from
    the live cluster) stops `pulumi up` with its one-line message instead of a traceback."""
    try:
        return build()
    except ConfigError as exc:
        raise pulumi.RunError(str(exc)) from None


def _k8s_opts(
    parent: pulumi.Resource, provider: k8s.Provider, depends_on: Sequence[pulumi.Resource] | None = None
) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, depends_on=list(depends_on or []) or None)


def _namespace(
    name: str, namespace: str, parent: pulumi.Resource, provider: k8s.Provider
) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        f"{name}-namespace", metadata={"name": namespace}, opts=_k8s_opts(parent, provider)
    )


@dataclass(frozen=True)
class IngressControllerArgs:
    """Inputs of :class:`IngressController`."""

    config: HubStackConfig
    node_group_labels: pulumi.Input[Mapping[str, str]]
    k8s_provider: k8s.Provider
    allow_replace: frozenset[str] = frozenset()
    """Logical names `up --allow-replace` named: the floating IP's `protect` is lifted when it is one."""


class IngressController(pulumi.ComponentResource):
    """Traefik behind an Octavia load balancer whose public address is a Pulumi-managed floating IP."""

    floating_ip: openstack.networking.FloatingIp
    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    address: pulumi.Output[str]

    def __init__(
        self, name: str, args: IngressControllerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:IngressController", name, None, opts)
        cfg = args.config
        ing = cfg.ingress
        # The address is allocated here rather than by the cloud controller so that it, and the DNS
        # records pointing at it, outlive the load balancer: deleting the Service or a chart upgrade that
        # renames it rebuilds the load balancer, which then takes this same address again.
        self.floating_ip = openstack.networking.FloatingIp(
            f"{name}-floating-ip",
            pool=ing.floating_ip_pool,
            description=f"BinderHub ingress {cfg.binderhub.host} / {cfg.binderhub.hub_host} (managed by Pulumi)",
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=ing.protect_floating_ip and f"{name}-floating-ip" not in args.allow_replace,
                # openstack-cloud-controller-manager associates it with the load balancer's VIP port. No
                # ignore_changes is needed for that: port_id and fixed_ip are Optional+Computed in the
                # provider (terraform-provider-openstack v3.4.0
                # openstack/resource_openstack_networking_floatingip_v2.go), so leaving them out of the
                # inputs keeps whatever the cloud set, and an update only moves the IP when they are set.
            ),
        )
        self.address = self.floating_ip.address
        self.namespace = _namespace(name, ing.namespace, self, args.k8s_provider)
        values = pulumi.Output.all(self.floating_ip.address, args.node_group_labels).apply(
            lambda resolved: _plainly(lambda: v.traefik_values(cfg, resolved[1], resolved[0]))
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=ing.release_name,
            chart="traefik",
            version=ing.chart_version,
            repository_opts={"repo": TRAEFIK_CHART_REPO},
            namespace=self.namespace.metadata.name,
            values=values,
            # Small and quick to start: a failed upgrade rolls back to the working controller.
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            max_history=HELM_HISTORY,
            opts=_k8s_opts(self, args.k8s_provider),
        )
        self.register_outputs({"address": self.address, "release": self.release.name})


@dataclass(frozen=True)
class CertManagerArgs:
    """Inputs of :class:`CertManager`."""

    config: HubStackConfig
    node_group_labels: pulumi.Input[Mapping[str, str]]
    k8s_provider: k8s.Provider


class CertManager(pulumi.ComponentResource):
    """cert-manager with its CRDs, and a Let's Encrypt ClusterIssuer answering HTTP-01 via the ingress."""

    namespace: k8s.core.v1.Namespace
    release: k8s.helm.v3.Release
    issuer: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: CertManagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:CertManager", name, None, opts)
        cfg = args.config
        tls = cfg.tls
        self.namespace = _namespace(name, tls.namespace, self, args.k8s_provider)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=tls.release_name,
            chart="cert-manager",
            version=tls.cert_manager_version,
            repository_opts={"repo": CERT_MANAGER_CHART_REPO},
            namespace=self.namespace.metadata.name,
            values=pulumi.Output.from_input(args.node_group_labels).apply(
                lambda labels: _plainly(lambda: v.cert_manager_values(cfg, labels))
            ),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            max_history=HELM_HISTORY,
            opts=_k8s_opts(self, args.k8s_provider),
        )
        # The ClusterIssuer's kind only exists once the release has installed the CRDs and the webhook
        # that validates it is ready (the release waits for that).
        self.issuer = k8s.apiextensions.CustomResource(
            f"{name}-issuer",
            api_version="cert-manager.io/v1",
            kind="ClusterIssuer",
            metadata={"name": tls.issuer_name},
            spec=v.cluster_issuer_spec(cfg),
            opts=_k8s_opts(self, args.k8s_provider, depends_on=[self.release]),
        )
        self.register_outputs({"issuer": tls.issuer_name, "release": self.release.name})


@dataclass(frozen=True)
class DesignateDnsArgs:
    """Inputs of :class:`DesignateDns`."""

    config: HubStackConfig
    address: pulumi.Input[str]


class DesignateDns(pulumi.ComponentResource):
    """A records for the BinderHub and JupyterHub hosts in the project's Designate zone."""

    zone_id: pulumi.Output[str]
    records: dict[str, openstack.dns.RecordSet]

    def __init__(self, name: str, args: DesignateDnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:DesignateDns", name, None, opts)
        cfg = args.config
        zone_name = cfg.dns.zone
        assert zone_name is not None, "parse_hub_stack resolves the zone for Designate"
        # Looked up, not managed: the zone belongs to the allocation and other records may live in it.
        zone = openstack.dns.get_dns_zone_output(name=zone_name, opts=pulumi.InvokeOutputOptions(parent=self))
        self.zone_id = zone.id
        self.records = {}
        for role, host in (("binderhub", cfg.binderhub.host), ("jupyterhub", cfg.binderhub.hub_host)):
            self.records[role] = openstack.dns.RecordSet(
                f"{name}-{role}",
                zone_id=self.zone_id,
                # Absolute names: without the trailing dot Designate would refuse the record.
                name=f"{host}.",
                type="A",
                records=[args.address],
                ttl=cfg.dns.ttl,
                description=f"{role} of the BinderHub site (managed by Pulumi)",
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"zone_id": self.zone_id, "names": [r.name for r in self.records.values()]})


@dataclass(frozen=True)
class BinderHubArgs:
    """Inputs of :class:`BinderHub`."""

    config: HubStackConfig
    node_group_labels: pulumi.Input[Mapping[str, str]]
    k8s_provider: k8s.Provider
    registry_password: pulumi.Input[str]
    github_token: pulumi.Input[str] | None = None
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must exist before BinderHub starts (the issuer for its certificates, the ingress class)."""


def _validated_values(
    cfg: HubStackConfig, labels: Mapping[str, str], github_token: bool
) -> dict[str, object]:
    values = _plainly(lambda: v.binderhub_values(cfg, labels, github_token=github_token))
    if message := refusal("binderhub", values):
        raise pulumi.RunError(message)
    return values


class BinderHub(pulumi.ComponentResource):
    """The binderhub chart (with its JupyterHub), and the Secrets it is pointed at instead of given."""

    namespace: k8s.core.v1.Namespace
    push_secret: k8s.core.v1.Secret
    pull_secret: k8s.core.v1.Secret | None
    github_secret: k8s.core.v1.Secret | None
    builder_policy: k8s.networking.v1.NetworkPolicy | None
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: BinderHubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:BinderHub", name, None, opts)
        cfg = args.config
        bh = cfg.binderhub
        reg = bh.registry
        provider = args.k8s_provider
        self.namespace = _namespace(name, bh.namespace, self, provider)
        namespace = self.namespace.metadata.name

        docker_config = pulumi.Output.secret(
            pulumi.Output.from_input(args.registry_password).apply(
                lambda password: v.docker_config_json(reg.auth_url, reg.username, password)
            )
        )
        self.push_secret = k8s.core.v1.Secret(
            f"{name}-registry-push",
            metadata={"name": v.PUSH_SECRET, "namespace": namespace},
            type="Opaque",
            # Build pods mount it at /root/.docker/config.json (BinderHub's push_secret); the BinderHub pod
            # reads it through DockerRegistry.docker_config_path.
            string_data={"config.json": docker_config},
            opts=_k8s_opts(self, provider),
        )
        self.pull_secret = None
        if reg.pulls_need_secret:
            self.pull_secret = k8s.core.v1.Secret(
                f"{name}-registry-pull",
                metadata={"name": v.PULL_SECRET, "namespace": namespace},
                type="kubernetes.io/dockerconfigjson",
                string_data={".dockerconfigjson": docker_config},
                opts=_k8s_opts(self, provider),
            )
        self.github_secret = None
        if args.github_token is not None:
            self.github_secret = k8s.core.v1.Secret(
                f"{name}-github-token",
                metadata={"name": v.GITHUB_SECRET, "namespace": namespace},
                type="Opaque",
                string_data={v.GITHUB_SECRET_KEY: pulumi.Output.secret(args.github_token)},
                opts=_k8s_opts(self, provider),
            )

        self.builder_policy = None
        if bh.builder.network_policy:
            # The chart has no policy of its own for these pods (its `networkPolicy` key is a placeholder,
            # helm-chart/binderhub/schema.yaml), so the layer brings one.
            self.builder_policy = k8s.networking.v1.NetworkPolicy(
                f"{name}-builder-policy",
                metadata={"name": v.BUILDER_POLICY, "namespace": namespace},
                # Wire (camelCase) names, as the provider sends them; the SDK's TypedDict spells them in snake_case.
                spec=cast("k8s.networking.v1.NetworkPolicySpecArgsDict", v.builder_network_policy_spec()),
                opts=_k8s_opts(self, provider),
            )

        has_token = args.github_token is not None
        values = pulumi.Output.from_input(args.node_group_labels).apply(
            lambda labels: _validated_values(cfg, labels, has_token)
        )
        # The fence exists before the first build pod can start.
        secrets = [
            s
            for s in (self.push_secret, self.pull_secret, self.github_secret, self.builder_policy)
            if s is not None
        ]
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=bh.release_name,
            chart="binderhub",
            version=bh.chart_version,
            repository_opts={"repo": BINDERHUB_CHART_REPO},
            namespace=namespace,
            values=values,
            # helm.v3.Release runs the chart's hooks, which JupyterHub relies on (helm.v4.Chart drops them).
            atomic=bh.atomic,
            cleanup_on_fail=True,
            timeout=bh.timeout_minutes * 60,
            max_history=HELM_HISTORY,
            opts=_k8s_opts(self, provider, depends_on=[*args.depends_on, *secrets]),
        )
        self.register_outputs({"release": self.release.name, "namespace": namespace})
