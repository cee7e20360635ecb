"""The BinderHub layer's Pulumi program, shared by `pulumi up`, the Automation API and the offline plan."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.runtime.config import get_config, is_config_secret

# Imported for its side effect: teaches the offline plan what this layer's resources compute.
import jetstream_binderhub.hub.offline  # noqa: F401
from jetstream_binderhub.config.hub import (
    HUB_KEYS,
    SECRET_KEYS,
    HubStackConfig,
    parse_hub_stack,
    secret_problems,
    set_secret_command,
)
from jetstream_binderhub.config.stackfile import HUB_PROJECT, SECRET_PLACEHOLDER
from jetstream_binderhub.config.support import CHECKED_SECRET_KEYS, required_secrets, secret_value_problems
from jetstream_binderhub.errors import ConfigError, Problem
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
from jetstream_binderhub.hub.support import Support, SupportArgs, support_chart_versions
from jetstream_binderhub.naming import ALLOW_REPLACE_ENV, allowed_replacements

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
        site = parse_hub_stack(raw, source=f"stack {stack}")
        missing = [
            Problem(key, f"is not set: the support pieces need it; run `{set_secret_command(key, stack)}`")
            for key in required_secrets(site.support)
            if key not in present
        ]
        if missing:
            raise ConfigError(missing, source=f"stack {stack}")
        # Pulumi has decrypted the secrets for this run: the only place their values can be checked.
        # (The offline plan runs this program with a placeholder for secrets it cannot decrypt.)
        # Only the checked ones are read into plain strings: the registry password and tokens are not.
        values = {k: str(get_config(f"{HUB_PROJECT}:{k}")) for k in present & CHECKED_SECRET_KEYS}
        known = {k: v for k, v in values.items() if v != SECRET_PLACEHOLDER}
        if bad := secret_value_problems(known):
            raise ConfigError(bad, source=f"stack {stack}")
        return site
    except ConfigError as exc:
        # RunError prints the message without a Python traceback.
        raise pulumi.RunError(str(exc)) from None


def dns_instructions(records: list[dict[str, Any]]) -> str:
    lines = [f"{r['name']} {r['ttl']} IN {r['type']} {r['value']}" for r in records]
    return "Create these records at your DNS provider:\n" + "\n".join(lines)


def _require_kubeconfig(value: object) -> str:
    """The cluster stack's kubeconfig, or a one-line stop: pulumi-kubernetes loads $KUBECONFIG or
    ~/.kube/config when its kubeconfig is "" (provider/pkg/provider/provider.go, and the Python SDK does
    the same for None), which would install BinderHub into whatever cluster the laptop points at."""
    if not isinstance(value, str) or not value.strip():
        raise pulumi.RunError(
            "the cluster stack's `kubeconfig` output is empty: Magnum has not returned credentials for the "
            "cluster yet (check `openstack coe cluster show <name>`, then `jetstream-binderhub refresh <site> "
            "--layer cluster`); refusing to fall back to $KUBECONFIG or ~/.kube/config"
        )
    return value


def hub_program(allow_replace: Collection[str] | None = None) -> None:
    """The BinderHub layer. `allow_replace`: names whose `protect` is lifted for this update (an inline
    program gets them as an argument; a local one from ALLOW_REPLACE_ENV, set by `up --allow-replace`)."""
    allowed = (
        frozenset(allow_replace)
        if allow_replace is not None
        else allowed_replacements(os.environ.get(ALLOW_REPLACE_ENV))
    )
    site = read_hub_config()
    cfg = pulumi.Config(HUB_PROJECT)
    stack_name = site.stack_reference(pulumi.get_stack())

    cluster = pulumi.StackReference("cluster-stack", stack_name=stack_name)
    labels = cluster.require_output("node_group_labels")
    provider = k8s.Provider(
        "cluster-k8s",
        # A secret raw kubeconfig from the cluster stack, refused when empty: the provider would take ""
        # (and the SDK None) as unset and fall back to the operator's own kubeconfig.
        # (get_output: a missing output is the same refusal, not a KeyError from require_output.)
        kubeconfig=pulumi.Output.secret(cluster.get_output("kubeconfig").apply(_require_kubeconfig)),
        # Identity is the Magnum cluster, not the kubeconfig's text: rotated credentials then update the
        # provider in place instead of replacing every Kubernetes resource it manages.
        cluster_identifier=cluster.require_output("cluster_id").apply(str),
    )

    ingress = IngressController(
        "ingress",
        IngressControllerArgs(
            config=site, node_group_labels=labels, k8s_provider=provider, allow_replace=allowed
        ),
    )
    certs = CertManager(
        "cert-manager", CertManagerArgs(config=site, node_group_labels=labels, k8s_provider=provider)
    )
    if site.dns.provider == "designate":
        DesignateDns("dns", DesignateDnsArgs(config=site, address=ingress.address))

    # Before BinderHub: its pods name the core PriorityClass, which must exist when they are admitted.
    # (Traefik's, created earlier, are retried by their ReplicaSet until the class exists.)
    grafana = site.support.grafana
    support = Support(
        "support",
        SupportArgs(
            config=site,
            node_group_labels=labels,
            k8s_provider=provider,
            address=ingress.address,
            secrets={key: cfg.require_secret(key) for key in required_secrets(site.support)},
            depends_on=[certs.issuer, ingress.release],
        ),
    )

    github_token = cfg.get_secret("github_token")
    binderhub = BinderHub(
        "binderhub",
        BinderHubArgs(
            config=site,
            node_group_labels=labels,
            k8s_provider=provider,
            registry_password=cfg.require_secret("registry_password"),
            github_token=github_token,
            depends_on=[certs.issuer, ingress.release, *support.core_dependencies],
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
    if versions := support_chart_versions(site):
        pulumi.export("support_chart_versions", versions)
    if grafana is not None:
        pulumi.export("grafana_url", f"https://{grafana.host}")
        # A Pulumi secret, shown only by `jetstream-binderhub outputs SITE --show-secrets`.
        pulumi.export("grafana_admin_password", support.grafana_admin_password)
        if site.dns.provider == "external":
            pulumi.export(
                "support_dns_records",
                ingress.address.apply(
                    lambda address: [
                        {"name": f"{grafana.host}.", "type": "A", "ttl": site.dns.ttl, "value": address}
                    ]
                ),
            )
