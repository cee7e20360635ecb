"""What the support pieces change in the BinderHub chart's own values, as pure functions of the config.

Kept apart from `hub.support` (which declares resources) so that `hub.values` can merge these without
importing Pulumi.
"""

from __future__ import annotations

from typing import Any

from jetstream_binderhub.config.hub import HubStackConfig


def binderhub_support_values(cfg: HubStackConfig) -> dict[str, Any]:
    """Overrides of the binderhub chart's values the enabled support pieces need (merged before extra_values)."""
    values: dict[str, Any] = {}
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
    return values
