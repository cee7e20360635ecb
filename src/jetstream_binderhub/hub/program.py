"""The BinderHub layer's Pulumi program, shared by `pulumi up`, the Automation API and the offline plan."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.config import is_config_secret

# Imported for its side effect: teaches the offline plan what this layer's resources compute.
import jetstream_binderhub.hub.offline  # noqa: F401
from jetstream_binderhub.config.hub import (
    HUB_KEYS,
    SECRET_KEYS,
    HubStackConfig,
    parse_hub_stack,
    secret_problems,
)
from jetstream_binderhub.config.stackfile import HUB_PROJECT
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub import values as v
from jetstream_binderhub.hub.components import (
    BinderHub,
    BinderHubArgs,
    CertManager,
    CertManagerArgs,
    DesignateDns,
    DesignateDnsArgs,
    IngressController,
    IngressControllerArgs,
)

_STRING_KEYS = ("cluster_stack", "profile")


def read_hub_config() -> HubStackConfig:
    """This stack's config, validated; a bad value stops the program with one line per problem."""
    cfg = pulumi.Config(HUB_PROJECT)
    stack = pulumi.get_stack()
    raw: dict[str, Any] = {}
    for key in HUB_KEYS:
        if key in SECRET_KEYS:
            continue
        value = cfg.get(key) if key in _STRING_KEYS else cfg.get_object(key)
        if value is not None:
            raw[key] = value
    secret = {k for k in SECRET_KEYS if is_config_secret(f"{HUB_PROJECT}:{k}")}
    # Asking for a secret key with `get` makes Pulumi warn; only keys not known as secret are probed.
    present = secret | {k for k in SECRET_KEYS if k not in secret and cfg.get(k) is not None}
    try:
        problems = secret_problems(present, secret, stack)
        if problems:
            raise ConfigError(problems, source=f"stack {stack}")
        return parse_hub_stack(raw, source=f"stack {stack}")
    except ConfigError as exc:
        # RunError prints the message without a Python traceback.
        raise pulumi.RunError(str(exc)) from None


def dns_instructions(records: list[dict[str, Any]]) -> str:
    lines = [f"{r['name']} {r['ttl']} IN {r['type']} {r['value']}" for r in records]
    return "Create these records at your DNS provider:\n" + "\n".join(lines)


def hub_program() -> None:
    site = read_hub_config()
    cfg = pulumi.Config(HUB_PROJECT)
    stack_name = site.stack_reference(pulumi.get_stack())

    cluster = pulumi.StackReference("cluster-stack", stack_name=stack_name)
    labels = cluster.require_output("node_group_labels")
    provider = k8s.Provider(
        "cluster-k8s",
        # A secret raw kubeconfig from the cluster stack.
        kubeconfig=cluster.require_output("kubeconfig"),
        # Identity is the Magnum cluster, not the kubeconfig's text: rotated credentials then update the
        # provider in place instead of replacing every Kubernetes resource it manages.
        cluster_identifier=cluster.require_output("cluster_id").apply(str),
    )

    ingress = IngressController(
        "ingress", IngressControllerArgs(config=site, node_group_labels=labels, k8s_provider=provider)
    )
    certs = CertManager(
        "cert-manager", CertManagerArgs(config=site, node_group_labels=labels, k8s_provider=provider)
    )
    if site.dns.provider == "designate":
        DesignateDns("dns", DesignateDnsArgs(config=site, address=ingress.address))

    github_token = cfg.get_secret("github_token")
    binderhub = BinderHub(
        "binderhub",
        BinderHubArgs(
            config=site,
            node_group_labels=labels,
            k8s_provider=provider,
            registry_password=cfg.require_secret("registry_password"),
            github_token=github_token,
            depends_on=[certs.issuer, ingress.release],
        ),
    )

    if site.dask_gateway.enabled:
        from jetstream_binderhub.hub.dask_component import DaskGateway, DaskGatewayArgs

        DaskGateway(
            "dask-gateway",
            DaskGatewayArgs(
                config=site,
                node_group_labels=labels,
                k8s_provider=provider,
                namespace=binderhub.namespace.metadata.name,
                depends_on=[binderhub.release, ingress.release],
            ),
        )

    records = ingress.address.apply(lambda address: v.dns_records(site, address))
    pulumi.export("binderhub_url", f"https://{site.binderhub.host}")
    pulumi.export("jupyterhub_url", f"https://{site.binderhub.hub_host}")
    pulumi.export("ingress_ip", ingress.address)
    pulumi.export("dns_provider", site.dns.provider)
    pulumi.export("dns_names", site.dns_names())
    pulumi.export("dns_records", records)
    if site.dns.provider == "external":
        pulumi.export("dns_instructions", records.apply(dns_instructions))
    pulumi.export("letsencrypt", site.tls.acme_server)
    pulumi.export("chart_versions", v.chart_versions(site))
    pulumi.export("cluster_stack", stack_name)
