"""The support component beside BinderHub: Prometheus, Grafana and the SU budget alert.

Values builders are pure functions of the typed config (tests call them directly); the component
declares the releases and the Secrets and ConfigMaps they are pointed at. No secret enters a values
mapping: Grafana's admin password and its GitHub client secret live in Kubernetes Secrets the chart
reads (`admin.existingSecret`, `envValueFrom`), and Alertmanager reads the webhook URL, the SMTP
password and the heartbeat's ping URL from files of a mounted Secret (`*_file` options), so the releases' values stay readable in a
plan.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_openstack as openstack
import pulumi_random as random

from jetstream_binderhub.burn import INSTANCE_TYPE_LABEL, sustainable_rate
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.config.support import (
    ALERTS_HEARTBEAT_SECRET_KEY,
    ALERTS_SMTP_PASSWORD_SECRET_KEY,
    ALERTS_WEBHOOK_SECRET_KEY,
    CRYPTNONO_CHART_REPO,
    GRAFANA_CHART_REPO,
    GRAFANA_SECRET_KEY,
    PROMETHEUS_CHART_REPO,
    AlertsConfig,
    AllocationConfig,
    HeartbeatConfig,
)
from jetstream_binderhub.naming import CONTROL_PLANE, NODE_GROUP_LABEL
from jetstream_binderhub.profiles import Profile, load_profile

TYPE_PREFIX = "jetstream-binderhub:hub"
HELM_HISTORY = 10

PROMETHEUS_RELEASE = "prometheus"
GRAFANA_RELEASE = "grafana"
PROMETHEUS_URL_TEMPLATE = "http://prometheus-server.{namespace}.svc.cluster.local"
"""The chart names the server Service `<release>-server` when the release name contains the chart name."""
GRAFANA_ADMIN_SECRET = "grafana-admin"
GRAFANA_OAUTH_SECRET = "grafana-github-oauth"
GRAFANA_OAUTH_KEY = "client-secret"
GRAFANA_TLS_SECRET = "grafana-tls"
DASHBOARDS_CONFIGMAP = "grafana-dashboards"
DASHBOARD_PROVIDER = "jetstream-binderhub"
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
"""z2jh's hub NetworkPolicy admits pods with this label (from other namespaces too, with
`hub.networkPolicy.interNamespaceAccessLabels: accept`; zero-to-jupyterhub-k8s templates/hub/netpol.yaml)."""

RULE_PREFIX = "jetstream_binderhub"

ALERTMANAGER_SECRET = "alertmanager-receivers"
ALERTMANAGER_SECRET_DIR = "/etc/alertmanager-receivers"
"""Beside, not under, the chart's /etc/alertmanager: that is a read-only ConfigMap volume, in which the
runtime could not create a mount point for the Secret."""
WEBHOOK_URL_FILE = "webhook-url"
SMTP_PASSWORD_FILE = "smtp-password"
HEARTBEAT_URL_FILE = "heartbeat-url"
RECEIVER_FILES = {
    ALERTS_WEBHOOK_SECRET_KEY: WEBHOOK_URL_FILE,
    ALERTS_SMTP_PASSWORD_SECRET_KEY: SMTP_PASSWORD_FILE,
    ALERTS_HEARTBEAT_SECRET_KEY: HEARTBEAT_URL_FILE,
}
"""The receivers' secret config keys and the files of the mounted Secret Alertmanager reads them from."""
RECEIVER = "site-operators"
HEARTBEAT_RECEIVER = "heartbeat"
HEARTBEAT_ALERT = "Watchdog"
"""kube-prometheus' name for the always-firing alert, which operators of other clusters will recognise."""
HEARTBEAT_LABELS = {"severity": "none", "purpose": "heartbeat"}
URGENT_ALERTS = ("BinderHubOrJupyterHubDown",)
"""Users cannot launch while these fire: reminded every few hours, not once a day."""


def _ksm_label(label: str) -> str:
    """kube-state-metrics' name for a node label in `kube_node_labels`: non-alphanumerics become `_`."""
    return "label_" + "".join(c if c.isalnum() else "_" for c in label)


FLAVOR_LABEL_KSM = _ksm_label(INSTANCE_TYPE_LABEL)
GROUP_LABEL_KSM = _ksm_label(NODE_GROUP_LABEL)


# --- the SU burn as Prometheus rules ----------------------------------------------------------------


def _timestamp(day: Any) -> int:
    return int(datetime.combine(day, time(0), tzinfo=UTC).timestamp())


def burn_rules(
    profile: Profile, allocation: AllocationConfig | None, window_days: int
) -> dict[str, list[dict[str, Any]]]:
    """Recording rules that price every node by its flavor, and the budget alerts.

    The flavor catalog becomes one constant series per flavor (`<prefix>:flavor_su_per_hour{flavor,
    resource}`), joined with kube-state-metrics' `kube_node_labels` on the flavor: the same arithmetic as
    `jetstream-binderhub cost`, in PromQL, so no exporter has to run.
    """
    p = RULE_PREFIX
    rules: list[dict[str, Any]] = [
        {
            "record": f"{p}:flavor_su_per_hour",
            "expr": f"vector({flavor.su_per_hour:g})",
            "labels": {"flavor": flavor.name, "resource": flavor.resource},
        }
        for flavor in profile.flavors
    ]
    node_labels = (
        f'label_replace(label_replace(kube_node_labels, "flavor", "$1", "{FLAVOR_LABEL_KSM}", "(.+)"), '
        f'"node_group", "$1", "{GROUP_LABEL_KSM}", "(.+)")'
    )
    rules += [
        {
            "record": f"{p}:node_su_per_hour",
            "expr": (
                f"max by (node, flavor, node_group) ({node_labels}) "
                f"* on (flavor) group_left (resource) {p}:flavor_su_per_hour"
            ),
        },
        {"record": f"{p}:su_per_hour", "expr": f"sum by (resource) ({p}:node_su_per_hour)"},
        {
            "record": f"{p}:node_group_su_per_hour",
            "expr": f'sum by (node_group, flavor, resource) (label_replace({p}:node_su_per_hour, "node_group", '
            f'"{CONTROL_PLANE}", "node_group", ""))',
        },
    ]
    alerts: list[dict[str, Any]] = [
        {
            "alert": "NodeFlavorUnpriced",
            "expr": (
                f"kube_node_labels unless on ({FLAVOR_LABEL_KSM}) label_replace({p}:flavor_su_per_hour, "
                f'"{FLAVOR_LABEL_KSM}", "$1", "flavor", "(.+)")'
            ),
            "for": "1h",
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Node {{ $labels.node }} has a flavor the SU burn does not know",
                "description": (
                    "Its flavor is missing from the site profile's catalog, so the SU burn leaves it out: "
                    "add the flavor to the profile (docs/operating.md)."
                ),
            },
        }
    ]
    if allocation is not None:
        res = allocation.resource
        rate = sustainable_rate(allocation)
        end = _timestamp(allocation.end_date + timedelta(days=1))
        rules += [
            {
                "record": f"{p}:allocation_sustainable_su_per_hour",
                "expr": f"vector({rate:.6g})",
                "labels": {"resource": res},
            },
            {
                "record": f"{p}:allocation_end_timestamp_seconds",
                "expr": f"vector({end})",
                "labels": {"resource": res},
            },
            {
                "record": f"{p}:allocation_su_remaining_estimate",
                # The reading minus what the recent average rate burned since it was taken.
                "expr": (
                    f'{allocation.su_remaining:g} - avg_over_time({p}:su_per_hour{{resource="{res}"}}[{window_days}d])'
                    f" * (time() - {_timestamp(allocation.as_of)}) / 3600"
                ),
                "labels": {"resource": res},
            },
        ]
        alerts += [
            {
                "alert": "AllocationRunsOutBeforeEndDate",
                "expr": (
                    f'avg_over_time({p}:su_per_hour{{resource="{res}"}}[{window_days}d]) '
                    f"> on (resource) {p}:allocation_sustainable_su_per_hour"
                ),
                "for": "1h",
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": f"At the last {window_days} days' SU burn the {res} allocation runs out before its end date",
                    "description": (
                        'Average burn {{ $value | printf "%.1f" }} SU/hour is above the sustainable '
                        f"{rate:.1f} SU/hour ({allocation.su_remaining:g} SU on {allocation.as_of}, ending "
                        f"{allocation.end_date}). Lower the user group's max_count, or ask for a supplement; "
                        "`jetstream-binderhub cost SITE` shows the nodes."
                    ),
                },
            },
            {
                "alert": "AllocationReadingStale",
                "expr": f"time() - {_timestamp(allocation.as_of)} > {60 * 86400}",
                "for": "1h",
                "labels": {"severity": "info"},
                "annotations": {
                    "summary": "support.allocation.su_remaining was read more than 60 days ago",
                    "description": (
                        "Update su_remaining and as_of from the ACCESS allocations portal so the projection "
                        "starts from the real balance."
                    ),
                },
            },
        ]
    return {
        "groups": [
            {"name": "jetstream-binderhub-su-burn", "rules": rules},
            {"name": "jetstream-binderhub-su-budget", "rules": alerts},
        ]
    }


def health_alerts(cfg: HubStackConfig) -> dict[str, list[dict[str, Any]]]:
    """What a year-long binder pages on besides the budget: its services, builds, disks and volumes."""
    ns = cfg.binderhub.namespace
    return {
        "groups": [
            {
                "name": "jetstream-binderhub-health",
                "rules": [
                    {
                        "alert": "BinderHubOrJupyterHubDown",
                        "expr": f'up{{namespace="{ns}", service=~"binder|hub"}} == 0',
                        "for": "5m",
                        "labels": {"severity": "critical"},
                        "annotations": {
                            "summary": "{{ $labels.service }} does not answer Prometheus's /metrics scrape",
                            "description": "Launches fail while it is down: check its pod (docs/operating.md).",
                        },
                    },
                    {
                        "alert": "BuildFailureRateHigh",
                        "expr": (
                            'sum(rate(binderhub_build_time_seconds_count{status="failure"}[1h])) '
                            "/ sum(rate(binderhub_build_time_seconds_count[1h])) > 0.5"
                        ),
                        "for": "30m",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "More than half of the builds of the last hour failed",
                            "description": "Often the registry (credentials, quota) or a full dind disk.",
                        },
                    },
                    {
                        "alert": "NodeRootDiskFilling",
                        "expr": (
                            'node_filesystem_avail_bytes{mountpoint="/", fstype!~"tmpfs|overlay"} '
                            '/ node_filesystem_size_bytes{mountpoint="/", fstype!~"tmpfs|overlay"} < 0.15'
                        ),
                        "for": "30m",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "Node {{ $labels.instance }} has less than 15% of its root disk free",
                            "description": "Image caches fill nodes; the image cleaner should be freeing them.",
                        },
                    },
                    {
                        "alert": "PersistentVolumeFilling",
                        "expr": "kubelet_volume_stats_available_bytes / kubelet_volume_stats_capacity_bytes < 0.1",
                        "for": "30m",
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "Volume {{ $labels.persistentvolumeclaim }} is more than 90% full",
                            "description": "Grow it in the config (Prometheus: support.monitoring.prometheus.storage_gb).",
                        },
                    },
                ],
            }
        ]
    }


def heartbeat_alerts() -> dict[str, list[dict[str, Any]]]:
    """The dead man's switch: an alert that fires as long as Prometheus evaluates rules at all.

    Prometheus keeps re-sending a firing alert to Alertmanager; when Prometheus stops, Alertmanager lets it
    resolve after a few minutes and stops pinging; when Alertmanager or the cluster stops, nothing pings.
    Either way the outside service hears nothing and alerts the team.
    """
    return {
        "groups": [
            {
                "name": "jetstream-binderhub-heartbeat",
                "rules": [
                    {
                        "alert": HEARTBEAT_ALERT,
                        "expr": "vector(1)",
                        "labels": dict(HEARTBEAT_LABELS),
                        "annotations": {
                            "summary": "Always firing: the pipeline from Prometheus to Alertmanager works",
                            "description": (
                                "Sent only to the dead man's switch service (support.monitoring.alerts."
                                "heartbeat), never to people. When the service stops receiving it, "
                                "monitoring is down: see docs/operating.md."
                            ),
                        },
                    }
                ],
            }
        ]
    }


# --- chart values -----------------------------------------------------------------------------------


def prometheus_values(cfg: HubStackConfig, core: Mapping[str, str], profile: Profile) -> dict[str, Any]:
    """Values of the prometheus chart: server on the core group, kube-state-metrics exporting the node labels
    the SU burn joins on, the burn rules and the health alerts."""
    mon = cfg.support.monitoring
    assert mon is not None
    prom = mon.prometheus
    interval = f"{prom.scrape_interval_seconds}s"
    rules = burn_rules(profile, cfg.support.allocation, mon.burn_window_days)
    rules["groups"] += health_alerts(cfg)["groups"]
    alerts = cfg.support.alerts
    if alerts is not None and alerts.heartbeat is not None:
        rules["groups"] += heartbeat_alerts()["groups"]
    recording = {"groups": [g for g in rules["groups"] if all("record" in r for r in g["rules"])]}
    alerting = {"groups": [g for g in rules["groups"] if any("alert" in r for r in g["rules"])]}
    return {
        # Without a receiver Alertmanager would have no one to send to: it is left out and the plan warns.
        # With it on, the chart points Prometheus at the subchart's pods itself (prometheus 29.27.0
        # templates/cm.yaml, `alerting.alertmanagers` from pod discovery in the release's namespace).
        "alertmanager": alertmanager_values(cfg, alerts, core) if alerts else {"enabled": False},
        "prometheus-pushgateway": {"enabled": False},
        "kube-state-metrics": {
            "nodeSelector": dict(core),
            # kube_node_labels carries no label unless allowed; the burn needs the flavor and the group.
            "metricLabelsAllowlist": [f"nodes=[{INSTANCE_TYPE_LABEL},{NODE_GROUP_LABEL}]"],
        },
        "server": {
            "nodeSelector": dict(core),
            # JupyterHub's NetworkPolicy only admits labelled pods to /hub/metrics.
            "podLabels": {HUB_ACCESS_LABEL: "true"},
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "retention": f"{prom.retention_days}d",
            # Stop before the volume is full rather than crash on it.
            "retentionSize": f"{int(prom.storage_gb * 0.9)}GB",
            "persistentVolume": {"enabled": True, "size": f"{prom.storage_gb}Gi"},
            # One ReadWriteOnce Cinder volume cannot be mounted by the old and the new pod at once.
            "strategy": {"type": "Recreate"},
            **_priority(cfg),
        },
        "serverFiles": {"recording_rules.yml": recording, "alerting_rules.yml": alerting},
    }


def alertmanager_config(alerts: AlertsConfig) -> dict[str, Any]:
    """Alertmanager's own configuration (alertmanager.yml): one receiver holding every configured way of
    reaching the site's operators, and a route paced for a small team that is not on call.

    Credentials are read from the mounted Secret's files (`api_url_file`, `auth_password_file`, the
    heartbeat's `url_file`; prometheus/alertmanager v0.34.0 docs/configuration.md,
    notify/webhook/config.go), never written into this mapping.
    """
    receiver: dict[str, Any] = {"name": RECEIVER}
    if alerts.webhook is not None:
        receiver["slack_configs"] = [
            {
                "api_url_file": f"{ALERTMANAGER_SECRET_DIR}/{WEBHOOK_URL_FILE}",
                "send_resolved": alerts.webhook.send_resolved,
            }
        ]
    if (mail := alerts.email) is not None:
        email: dict[str, Any] = {
            "to": ", ".join(mail.to),
            "from": mail.from_address,
            "smarthost": mail.smarthost,
            "require_tls": mail.require_tls,
            "send_resolved": mail.send_resolved,
        }
        if mail.username is not None:
            email["auth_username"] = mail.username
            email["auth_password_file"] = f"{ALERTMANAGER_SECRET_DIR}/{SMTP_PASSWORD_FILE}"
        receiver["email_configs"] = [email]
    routes: list[dict[str, Any]] = []
    receivers = [receiver]
    if alerts.heartbeat is not None:
        routes.append(_heartbeat_route(alerts.heartbeat))
        receivers.append(
            {
                "name": HEARTBEAT_RECEIVER,
                "webhook_configs": [
                    {
                        "url_file": f"{ALERTMANAGER_SECRET_DIR}/{HEARTBEAT_URL_FILE}",
                        # A "resolved" post would count as a ping: when Prometheus stops, Alertmanager
                        # resolves the alert, and the switch must then hear nothing.
                        # (Without send_resolved nothing is posted for a group with only resolved alerts:
                        # prometheus/alertmanager v0.34.0 notify/retry_stage.go.)
                        "send_resolved": False,
                    }
                ],
            }
        )
    routes += [
        # Nobody can launch while these fire: remind every 3 hours.
        {"matchers": [f'alertname=~"{"|".join(URGENT_ALERTS)}"'], "repeat_interval": "3h"},
        # Housekeeping (the allocation reading is old): every 3 days. Kept under Alertmanager's
        # 120h `--data.retention`, past which it forgets what it sent and would repeat anyway
        # (prometheus/alertmanager v0.34.0 cmd/alertmanager/main.go, nflog/nflog.go `Log`).
        {"matchers": ['severity="info"'], "repeat_interval": "72h"},
    ]
    return {
        "receivers": receivers,
        "route": {
            "receiver": RECEIVER,
            # One message per kind of alert, not one per node or volume: a full disk on three nodes is
            # one problem to a team of volunteers.
            "group_by": ["alertname"],
            # Related alerts (a node going down fires several) arrive within a minute or two of each other.
            "group_wait": "2m",
            "group_interval": "15m",
            # The budget and the disks are fixed within a day, not within the hour: a daily reminder until
            # they are, rather than one every few hours that teaches the team to mute the channel.
            "repeat_interval": "24h",
            "routes": routes,
        },
    }


def _heartbeat_route(heartbeat: HeartbeatConfig) -> dict[str, Any]:
    """The first child route: Alertmanager stops at the first matching child unless it says `continue`
    (prometheus/alertmanager v0.34.0 dispatch/route.go `Match`), so the heartbeat never reaches the
    people's receiver, and no other alert carries its labels to reach the switch.

    Pace: a still-firing alert is only looked at every `group_interval`, and re-sent there if the last
    send is older than `repeat_interval` (docs/configuration.md `<route>`; notify/dedup_stage.go
    `needsUpdate`). The last send is stamped when it completed (nflog/nflog.go `Log`), a moment after
    its tick, so a repeat_interval equal to group_interval would skip every other tick and ping at twice
    the interval; half of it pings at every tick, i.e. every `interval_minutes`, which is what the
    service's period is set to.
    """
    minutes = heartbeat.interval_minutes
    return {
        "receiver": HEARTBEAT_RECEIVER,
        "matchers": [f'alertname="{HEARTBEAT_ALERT}"', *(f'{k}="{v}"' for k, v in HEARTBEAT_LABELS.items())],
        "group_wait": "0s",
        "group_interval": f"{minutes}m",
        "repeat_interval": f"{minutes * 30}s",
        "continue": False,
    }


def alertmanager_values(cfg: HubStackConfig, alerts: AlertsConfig, core: Mapping[str, str]) -> dict[str, Any]:
    """Values of the prometheus chart's alertmanager subchart (prometheus-community alertmanager 1.42,
    charts/alertmanager/values.yaml): a Cinder volume for silences and the notification log, on the core
    group, the receivers' credentials mounted from :data:`ALERTMANAGER_SECRET`."""
    return {
        "enabled": True,
        "nodeSelector": dict(core),
        # The notification log survives a restart, so a rescheduled pod does not resend everything.
        "persistence": {"enabled": True, "size": f"{alerts.storage_gb}Gi"},
        # A StatefulSet's volume claim keeps its Cinder volume across restarts; no Recreate needed.
        "extraSecretMounts": [
            {
                "name": "receivers",
                "mountPath": ALERTMANAGER_SECRET_DIR,
                "subPath": "",
                "secretName": ALERTMANAGER_SECRET,
                "readOnly": True,
            }
        ],
        "config": alertmanager_config(alerts),
        **_priority(cfg),
    }


def grafana_values(cfg: HubStackConfig, core: Mapping[str, str]) -> dict[str, Any]:
    """Values of the grafana chart: its own host with TLS, GitHub login for one organisation, no anonymous
    access, Prometheus as the data source and the repository's dashboards."""
    mon = cfg.support.monitoring
    grafana = cfg.support.grafana
    assert mon is not None and grafana is not None
    host = grafana.host
    return {
        "nodeSelector": dict(core),
        "admin": {
            "existingSecret": GRAFANA_ADMIN_SECRET,
            "userKey": "admin-user",
            "passwordKey": "admin-password",
        },
        "envValueFrom": {
            # Grafana reads GF_<SECTION>_<KEY> over grafana.ini: the secret never enters the values.
            "GF_AUTH_GITHUB_CLIENT_SECRET": {
                "secretKeyRef": {"name": GRAFANA_OAUTH_SECRET, "key": GRAFANA_OAUTH_KEY}
            }
        },
        "grafana.ini": {
            "server": {"root_url": f"https://{host}/"},
            "auth.anonymous": {"enabled": False},
            "auth.github": {
                "enabled": True,
                "allow_sign_up": True,
                "client_id": grafana.github_client_id,
                "scopes": "user:email,read:org",
                "auth_url": "https://github.com/login/oauth/authorize",
                "token_url": "https://github.com/login/oauth/access_token",
                "api_url": "https://api.github.com/user",
                "allowed_organizations": grafana.github_org,
            },
            "users": {"allow_sign_up": False, "auto_assign_org_role": "Viewer"},
            "analytics": {"check_for_updates": False, "reporting_enabled": False},
        },
        "ingress": {
            "enabled": True,
            "ingressClassName": cfg.ingress.class_name,
            "annotations": {"cert-manager.io/cluster-issuer": cfg.tls.issuer_name},
            "hosts": [host],
            "path": "/",
            "pathType": "Prefix",
            "tls": [{"hosts": [host], "secretName": GRAFANA_TLS_SECRET}],
        },
        "persistence": {"enabled": True, "type": "pvc", "size": f"{grafana.storage_gb}Gi"},
        **_priority(cfg),
        # A ReadWriteOnce volume: the new pod can only start once the old one let go of it.
        "deploymentStrategy": {"type": "Recreate"},
        "datasources": {
            "datasources.yaml": {
                "apiVersion": 1,
                "datasources": [
                    {
                        "name": "Prometheus",
                        "uid": "prometheus",
                        "type": "prometheus",
                        "access": "proxy",
                        "url": PROMETHEUS_URL_TEMPLATE.format(namespace=mon.namespace),
                        "isDefault": True,
                    }
                ],
            }
        },
        "dashboardProviders": {
            "dashboardproviders.yaml": {
                "apiVersion": 1,
                "providers": [
                    {
                        "name": DASHBOARD_PROVIDER,
                        "orgId": 1,
                        "folder": "BinderHub",
                        "type": "file",
                        # Edited in the repository, not clicked together: the UI cannot save over them.
                        "disableDeletion": True,
                        "editable": False,
                        "options": {"path": f"/var/lib/grafana/dashboards/{DASHBOARD_PROVIDER}"},
                    }
                ],
            }
        },
        "dashboardsConfigMaps": {DASHBOARD_PROVIDER: DASHBOARDS_CONFIGMAP},
    }


def _priority(cfg: HubStackConfig) -> dict[str, str]:
    priority = cfg.support.core_priority_class
    return {"priorityClassName": priority} if priority else {}


CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
"""containerd's socket on the cluster's Ubuntu nodes (capi-helm-charts images run containerd)."""


def cryptnono_values(cfg: HubStackConfig) -> dict[str, Any]:
    """Values of the cryptnono chart: the execwhacker detector on every node, looking containers up in
    containerd and in the builder's docker daemon, as mybinder.org and 2i2c configure it."""
    execwhacker: dict[str, Any] = {"enabled": True, "containerdHostPath": CONTAINERD_SOCKET}
    if cfg.binderhub.builder.type == "dind":
        # The binderhub chart's dind daemonset socket (dind.hostSocketDir / hostSocketName defaults).
        execwhacker["dockerHostPath"] = "/var/run/dind/docker.sock"
    mon = cfg.support.monitoring
    metrics = mon is not None and mon.enabled
    return {
        # The daemonset tolerates every NoSchedule taint by default: it must run where users run.
        "fetchKernelHeaders": {
            # 2i2c measured the init container: up to 600m and 1.6Gi for minutes; it is evictable.
            "resources": {
                "requests": {"cpu": "5m", "memory": "100Mi"},
                "limits": {"cpu": "800m", "memory": "2Gi"},
            }
        },
        "detectors": {"execwhacker": execwhacker},
        "metrics": {"enabled": metrics, "collector": {"enabled": metrics}},
        **_priority(cfg),
    }


def dashboards() -> dict[str, str]:
    """The dashboards shipped with the package (`jetstream_binderhub/dashboards/*.json`), file name -> JSON."""
    folder = resources.files("jetstream_binderhub") / "dashboards"
    found = {}
    for item in sorted(folder.iterdir(), key=lambda i: i.name):
        if item.name.endswith(".json"):
            text = item.read_text(encoding="utf-8")
            json.loads(text)  # a broken file fails the plan, not Grafana at runtime
            found[item.name] = text
    return found


def support_chart_versions(cfg: HubStackConfig) -> dict[str, str]:
    versions: dict[str, str] = {}
    mon = cfg.support.monitoring
    if mon is not None and mon.enabled:
        versions["prometheus"] = mon.prometheus.chart_version
        if mon.grafana.enabled:
            versions["grafana"] = mon.grafana.chart_version
    crypt = cfg.support.cryptnono
    if crypt is not None and crypt.enabled:
        versions["cryptnono"] = crypt.chart_version
    return versions


# --- the component ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupportArgs:
    """Inputs of :class:`Support`."""

    config: HubStackConfig
    node_group_labels: pulumi.Input[Mapping[str, str]]
    k8s_provider: k8s.Provider
    address: pulumi.Input[str]
    """The ingress's public address, for Grafana's DNS record."""
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """The stack's secrets the enabled pieces need (`required_secrets`), by config key, as Pulumi secrets
    (`Config.require_secret`): Grafana's GitHub client secret, the Alertmanager receivers' credentials."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must exist first (the ClusterIssuer for Grafana's certificate, the ingress class)."""


def _core(cfg: HubStackConfig, labels: Mapping[str, str]) -> dict[str, str]:
    from jetstream_binderhub.hub.components import _plainly
    from jetstream_binderhub.hub.values import node_selector

    return _plainly(lambda: node_selector(cfg, labels, "core"))


class Support(pulumi.ComponentResource):
    """Monitoring of the site: Prometheus with the SU burn rules and alerts, Grafana with the dashboards."""

    priority_class: k8s.scheduling.v1.PriorityClass | None
    core_dependencies: list[pulumi.Resource]
    """What pods running at core priority must wait for."""
    cryptnono: k8s.helm.v3.Release | None
    namespace: k8s.core.v1.Namespace | None
    prometheus: k8s.helm.v3.Release | None
    alertmanager_secret: k8s.core.v1.Secret | None
    grafana: k8s.helm.v3.Release | None
    grafana_admin_password: pulumi.Output[str] | None
    dns_record: openstack.dns.RecordSet | None

    def __init__(self, name: str, args: SupportArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Support", name, None, opts)
        cfg = args.config
        provider = args.k8s_provider
        mon = cfg.support.monitoring
        self.namespace = self.prometheus = self.grafana = None
        self.alertmanager_secret = None
        self.grafana_admin_password = None
        self.dns_record = None
        self.priority_class = self.cryptnono = None

        def k8s_opts(depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
            priority = [self.priority_class] if self.priority_class is not None else []
            return pulumi.ResourceOptions(
                parent=self, provider=provider, depends_on=[*priority, *depends_on] or None
            )

        disruption = cfg.support.disruption
        if disruption is not None and cfg.support.core_priority_class is not None:
            self.priority_class = k8s.scheduling.v1.PriorityClass(
                f"{name}-core-priority",
                metadata={"name": cfg.support.core_priority_class},
                value=disruption.core_priority,
                global_default=False,
                description="Hub, proxy, BinderHub, ingress and monitoring: user servers (priority 0) yield to them.",
                opts=pulumi.ResourceOptions(parent=self, provider=provider),
            )
        crypt = cfg.support.cryptnono
        if crypt is not None and crypt.enabled:
            crypt_ns = k8s.core.v1.Namespace(
                f"{name}-cryptnono-namespace", metadata={"name": crypt.namespace}, opts=k8s_opts()
            )
            self.cryptnono = k8s.helm.v3.Release(
                f"{name}-cryptnono",
                name="cryptnono",
                chart="cryptnono",
                version=crypt.chart_version,
                repository_opts={"repo": CRYPTNONO_CHART_REPO},
                namespace=crypt_ns.metadata.name,
                values=cryptnono_values(cfg),
                atomic=True,
                cleanup_on_fail=True,
                # The init container fetches kernel headers on every node before the detectors start.
                timeout=900,
                max_history=HELM_HISTORY,
                opts=k8s_opts(),
            )

        if mon is not None and mon.enabled:
            profile = load_profile(cfg.profile)
            self.namespace = k8s.core.v1.Namespace(
                f"{name}-namespace", metadata={"name": mon.namespace}, opts=k8s_opts()
            )
            namespace = self.namespace.metadata.name
            labels = pulumi.Output.from_input(args.node_group_labels)
            if cfg.support.alerts is not None:
                self.alertmanager_secret = self._alertmanager_secret(name, args, namespace, k8s_opts)
            self.prometheus = k8s.helm.v3.Release(
                f"{name}-prometheus",
                name=PROMETHEUS_RELEASE,
                chart="prometheus",
                version=mon.prometheus.chart_version,
                repository_opts={"repo": PROMETHEUS_CHART_REPO},
                namespace=namespace,
                values=labels.apply(
                    lambda lv: _validated("prometheus", prometheus_values(cfg, _core(cfg, lv), profile))
                ),
                atomic=True,
                cleanup_on_fail=True,
                timeout=900,
                max_history=HELM_HISTORY,
                opts=k8s_opts([self.alertmanager_secret] if self.alertmanager_secret else []),
            )
            if cfg.support.grafana is not None:
                self._grafana(name, args, namespace, labels, k8s_opts)
        self.core_dependencies = [self.priority_class] if self.priority_class is not None else []
        self.register_outputs(
            {
                "prometheus": self.prometheus.name if self.prometheus else None,
                "cryptnono": self.cryptnono.name if self.cryptnono else None,
                "grafana": self.grafana.name if self.grafana else None,
            }
        )

    def _alertmanager_secret(
        self, name: str, args: SupportArgs, namespace: pulumi.Output[str], k8s_opts: Any
    ) -> k8s.core.v1.Secret:
        """The receivers' credentials, from the stack's secrets, as files Alertmanager reads."""
        return k8s.core.v1.Secret(
            f"{name}-alertmanager-receivers",
            metadata={"name": ALERTMANAGER_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={
                file: args.secrets[key] for key, file in RECEIVER_FILES.items() if key in args.secrets
            },
            opts=k8s_opts(),
        )

    def _grafana(
        self,
        name: str,
        args: SupportArgs,
        namespace: pulumi.Output[str],
        labels: pulumi.Output[Mapping[str, str]],
        k8s_opts: Any,
    ) -> None:
        cfg = args.config
        grafana = cfg.support.grafana
        assert grafana is not None
        # Generated once and kept in the state: the same password on every run, never in the stack file.
        password = random.RandomPassword(
            f"{name}-grafana-admin-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.grafana_admin_password = pulumi.Output.secret(password.result)
        admin = k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata={"name": GRAFANA_ADMIN_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": self.grafana_admin_password},
            opts=k8s_opts(),
        )
        oauth = k8s.core.v1.Secret(
            f"{name}-grafana-github-oauth",
            metadata={"name": GRAFANA_OAUTH_SECRET, "namespace": namespace},
            type="Opaque",
            string_data={GRAFANA_OAUTH_KEY: args.secrets[GRAFANA_SECRET_KEY]},
            opts=k8s_opts(),
        )
        board_data = dashboards()
        boards = k8s.core.v1.ConfigMap(
            f"{name}-grafana-dashboards",
            metadata={"name": DASHBOARDS_CONFIGMAP, "namespace": namespace},
            data=board_data,
            opts=k8s_opts(),
        )
        self.grafana = k8s.helm.v3.Release(
            f"{name}-grafana",
            name=GRAFANA_RELEASE,
            chart="grafana",
            version=grafana.chart_version,
            repository_opts={"repo": GRAFANA_CHART_REPO},
            namespace=namespace,
            values=labels.apply(lambda lv: grafana_values(cfg, _core(cfg, lv))),
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
            max_history=HELM_HISTORY,
            opts=k8s_opts([*args.depends_on, admin, oauth, boards]),
        )
        if cfg.dns.provider == "designate":
            zone = openstack.dns.get_dns_zone_output(
                name=cfg.dns.zone, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            self.dns_record = openstack.dns.RecordSet(
                f"{name}-grafana-dns",
                zone_id=zone.id,
                name=f"{grafana.host}.",
                type="A",
                records=[args.address],
                ttl=cfg.dns.ttl,
                description="grafana of the BinderHub site (managed by Pulumi)",
                opts=pulumi.ResourceOptions(parent=self),
            )


def _validated(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    from jetstream_binderhub.schemas import available, refusal

    if chart in available() and (message := refusal(chart, values)):
        raise pulumi.RunError(message)
    return values
