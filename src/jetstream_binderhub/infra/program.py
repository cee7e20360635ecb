"""The cluster layer's Pulumi program, shared by `pulumi up`, the Automation API and the offline plan."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import pulumi
from pulumi.runtime.config import is_config_secret

from jetstream_binderhub.config.cluster import ClusterStackConfig, cluster_notes
from jetstream_binderhub.config.load import CLUSTER_KEYS, parse_cluster_stack
from jetstream_binderhub.config.stackfile import (
    CLUSTER_PROJECT,
    SENSITIVE_PROVIDER_KEYS,
    plaintext_credential_problems,
)
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.infra.magnum import MagnumCluster, MagnumClusterArgs
from jetstream_binderhub.naming import ALLOW_REPLACE_ENV, allowed_replacements


def read_cluster_config() -> ClusterStackConfig:
    """This stack's config, validated; a bad value stops the program with one line per problem."""
    cfg = pulumi.Config(CLUSTER_PROJECT)
    raw: dict[str, Any] = {}
    for key in CLUSTER_KEYS:
        value = cfg.get_object(key) if key == "cluster" else cfg.get(key)
        if value is not None:
            raw[key] = value
    try:
        problems = plaintext_credential_problems(
            [
                k
                for k in SENSITIVE_PROVIDER_KEYS
                if pulumi.Config("openstack").get(k.split(":")[1]) is not None
            ],
            [k for k in SENSITIVE_PROVIDER_KEYS if is_config_secret(k)],
        )
        if problems:
            raise ConfigError(problems, source=f"stack {pulumi.get_stack()}")
        return parse_cluster_stack(raw, source=f"stack {pulumi.get_stack()}")
    except ConfigError as exc:
        # RunError prints the message without a Python traceback.
        raise pulumi.RunError(str(exc)) from None


def cluster_program(allow_replace: Collection[str] | None = None) -> None:
    """The cluster layer. `allow_replace`: names whose `protect` is lifted for this update (an inline
    program gets them as an argument; a local one from ALLOW_REPLACE_ENV, set by `up --allow-replace`)."""
    site = read_cluster_config()
    allowed = (
        frozenset(allow_replace)
        if allow_replace is not None
        else allowed_replacements(os.environ.get(ALLOW_REPLACE_ENV))
    )
    cluster = MagnumCluster(site.cluster.name, MagnumClusterArgs(config=site.cluster, allow_replace=allowed))
    # A warning reaches the preview's output and its pull-request comment, where the user acts on it.
    for note in cluster_notes(site.cluster):
        pulumi.log.warn(note)
    pulumi.export("profile", site.profile)
    pulumi.export("cluster_name", cluster.cluster.name)
    pulumi.export("cluster_id", cluster.cluster.id)
    pulumi.export("template_id", cluster.cluster.cluster_template_id)
    pulumi.export("api_address", cluster.cluster.api_address)
    pulumi.export("kubeconfig", cluster.kubeconfig)
    pulumi.export("node_group_labels", cluster.node_group_labels)
