"""What the support pieces change in the BinderHub and Traefik charts' own values, as pure functions.

Kept apart from `hub.support` (which declares resources) so that `hub.values` can merge these without
importing Pulumi.
"""

from __future__ import annotations

from typing import Any

from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.helm_values import deep_merge


def _image_cleaner(cfg: HubStackConfig) -> dict[str, Any]:
    ic = cfg.support.image_cleaner
    # The chart's thresholds are integers: percent, or bytes with `absolute` (mybinder.org: 40e9 / 10e9).
    scale = 1 if ic.threshold_type == "relative" else 10**9
    return {
        "enabled": ic.enabled,
        "cordon": ic.cordon,
        "imageGCThresholdType": ic.threshold_type,
        "imageGCThresholdHigh": int(ic.high * scale),
        "imageGCThresholdLow": int(ic.low * scale),
    }


def binderhub_support_values(cfg: HubStackConfig) -> dict[str, Any]:
    """Overrides of the binderhub chart's values the enabled support pieces need (merged before extra_values)."""
    values: dict[str, Any] = {"imageCleaner": _image_cleaner(cfg)}
    mon = cfg.support.monitoring
    if mon is not None and mon.enabled:
        values["jupyterhub"] = {
            "hub": {
                # /hub/metrics answers Prometheus without a token (mybinder.org does the same); what it shows
                # is counts, and the NetworkPolicy still only admits labelled pods.
                "authenticatePrometheus": False,
                # Prometheus runs in its own namespace: let labelled pods of other namespaces through
                # (zero-to-jupyterhub-k8s templates/hub/netpol.yaml).
                "networkPolicy": {"interNamespaceAccessLabels": "accept"},
            }
        }
    disruption = cfg.support.disruption
    priority = cfg.support.core_priority_class
    if disruption is not None and priority is not None:
        core = {"extraPodSpec": {"priorityClassName": priority}}
        values = deep_merge(
            values,
            {
                # The chart's own budget (pdb, maxUnavailable 1) keeps one of these answering through a drain.
                "replicas": disruption.binderhub_replicas,
                **core,
                # The hub and the proxy run one pod each by design (JupyterHub is not replicated), so a budget
                # demanding one available would stop every drain; they get priority instead, and move.
                "jupyterhub": {"hub": core, "proxy": {"chp": core}},
            },
        )
    return values


def traefik_support_values(cfg: HubStackConfig) -> dict[str, Any]:
    """Overrides of the Traefik chart's values: core priority (its disruption budget comes with
    `ingress.replicas` above 1, in `hub.values.traefik_values`)."""
    priority = cfg.support.core_priority_class
    return {"priorityClassName": priority} if priority else {}
