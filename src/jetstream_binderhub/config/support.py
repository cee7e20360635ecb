"""Configuration of the site's support pieces (the `support` key of the BinderHub layer).

What a binder needs to run for the length of an allocation besides BinderHub itself: the allocation's
budget the SU burn is measured against, and monitoring (Prometheus, Grafana, the budget alert). Every
piece can be switched off on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal, Self
from urllib.parse import urlparse

from pydantic import AfterValidator, EmailStr, Field, ValidationInfo, field_validator, model_validator

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.errors import Problem

if TYPE_CHECKING:
    from jetstream_binderhub.config.hub import HubStackConfig

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_CHART_VERSION = "29.27.0"
GRAFANA_CHART_REPO = "https://grafana-community.github.io/helm-charts"
GRAFANA_CHART_VERSION = "12.11.1"
"""Grafana's chart moved from grafana/helm-charts to grafana-community/helm-charts in January 2026."""
CRYPTNONO_CHART_REPO = "https://cryptnono.github.io/cryptnono/"
CRYPTNONO_CHART_VERSION = "0.3.2-0.dev.git.267.h766bf8f"
"""The version mybinder.org and 2i2c's support chart pin (the chart only publishes development versions)."""
CORE_PRIORITY_CLASS = "binderhub-core"
GRAFANA_SECRET_KEY = "grafana_github_client_secret"
"""The secret config key of the GitHub OAuth app's client secret (Grafana's login)."""
ALERTS_WEBHOOK_SECRET_KEY = "alerts_webhook_url"
"""The secret config key of the incoming webhook's URL: the URL is the credential (anyone holding it can
post to the channel), so it is never written in the site's YAML."""
ALERTS_SMTP_PASSWORD_SECRET_KEY = "alerts_smtp_password"
"""The secret config key of the SMTP password of `support.monitoring.alerts.email.username`."""
ALERTS_HEARTBEAT_SECRET_KEY = "alerts_heartbeat_url"
"""The secret config key of the dead man's switch's ping URL: whoever holds it can keep the switch quiet
while the site is down, so it is a credential like the webhook's."""

_EXACT_VERSION = r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"


def _hostname(value: str) -> str:
    # The BinderHub hosts' rule; imported late because config.hub imports this module.
    from jetstream_binderhub.config.hub import _hostname as check

    return check(value)


def _rfc1123_name(value: str) -> str:
    from jetstream_binderhub.config.hub import _rfc1123_name as check

    return check(value)


Hostname = Annotated[str, AfterValidator(_hostname)]
Name = Annotated[str, AfterValidator(_rfc1123_name)]


class AllocationConfig(Model):
    """The ACCESS allocation the site's nodes are charged to, as the operator last read it."""

    su_remaining: float = Field(
        ge=0,
        description=(
            "SUs left on the allocation on `as_of`, as the ACCESS allocations portal shows them. Update it (with "
            "`as_of`) now and then: burn projections start from it."
        ),
    )
    as_of: date = Field(description="The day `su_remaining` was read (YYYY-MM-DD).")
    end_date: date = Field(description="Last day of the allocation (YYYY-MM-DD); unspent SUs lapse after it.")
    resource: Literal["cpu", "large-memory", "gpu"] = Field(
        default="cpu",
        description=(
            "Which ACCESS resource the budget is for: Jetstream2 CPU, Large Memory and GPU are separate "
            "allocations, so only nodes of flavors drawing on this one count against it."
        ),
    )

    @field_validator("end_date")
    @classmethod
    def _after_as_of(cls, value: date, info: ValidationInfo) -> date:
        as_of = info.data.get("as_of")
        if as_of is not None and value <= as_of:
            raise ValueError(
                f"must be after as_of ({as_of}): an allocation that has ended has no budget to project against"
            )
        return value


class PrometheusConfig(Model):
    """The Prometheus server (prometheus-community `prometheus` chart) with node-exporter and kube-state-metrics."""

    chart_version: str = Field(
        default=PROMETHEUS_CHART_VERSION,
        pattern=_EXACT_VERSION,
        description="Exact prometheus chart version.",
    )
    retention_days: int = Field(
        default=90,
        ge=1,
        le=1825,
        description="Days of metrics kept (mybinder.org keeps 90). Longer needs a larger `storage_gb`.",
    )
    storage_gb: int = Field(
        default=50,
        ge=5,
        le=2000,
        description=(
            "Size of the Cinder volume holding the metrics. Jetstream2 counts volumes against the allocation's "
            "storage quota, not its SUs. Prometheus also stops at 90% of it, whatever `retention_days` says."
        ),
    )
    scrape_interval_seconds: int = Field(
        default=60, ge=10, le=300, description="How often every target is scraped and rules are evaluated."
    )


class GrafanaConfig(Model):
    """Grafana on its own host, GitHub login for one organisation, dashboards from the repository."""

    enabled: bool = Field(default=True, description="Install Grafana (Prometheus alone has no login).")
    chart_version: str = Field(
        default=GRAFANA_CHART_VERSION,
        pattern=_EXACT_VERSION,
        description="Exact grafana chart version (grafana-community/helm-charts).",
    )
    host: Hostname = Field(
        description="Public host name of Grafana, e.g. grafana.cis230085.projects.jetstream-cloud.org."
    )
    github_org: str = Field(
        min_length=1,
        max_length=39,
        description=(
            "GitHub organisation whose members may log in (as viewers). Everyone else is refused; there is no "
            "anonymous access."
        ),
    )
    github_client_id: str = Field(
        min_length=1,
        description=(
            "Client ID of the GitHub OAuth app (callback URL https://<host>/login/github). Its client secret is "
            f"the secret key `{GRAFANA_SECRET_KEY}`."
        ),
    )
    storage_gb: int = Field(
        default=10, ge=1, le=500, description="Cinder volume for Grafana's database (users, preferences)."
    )

    @field_validator("github_org")
    @classmethod
    def _org_name(cls, value: str) -> str:
        if not all(c.isalnum() or c == "-" for c in value) or value.startswith("-"):
            raise ValueError(
                "must be a GitHub organisation name as in its URL (letters, digits and '-'), e.g. ProjectPythia"
            )
        return value


class WebhookReceiverConfig(Model):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat, Zulip's Slack integration) the
    alerts are posted to. Its URL is the secret key `alerts_webhook_url`, not a key of this file."""

    send_resolved: bool = Field(
        default=True, description="Also post when an alert stops firing, so nobody chases a fixed problem."
    )


class EmailReceiverConfig(Model):
    """E-mail through an SMTP server the site may send from (the institution's, or a mail service's)."""

    smarthost: str = Field(
        description=(
            "SMTP server as host:port, e.g. smtp.example.org:587 (587: STARTTLS, 465: TLS from the start)."
        )
    )
    from_address: EmailStr = Field(description="Sender address (the SMTP server must accept it as sender).")
    to: list[EmailStr] = Field(
        min_length=1, description="Who gets the alerts, e.g. [binder-admins@example.org]."
    )
    username: str | None = Field(
        default=None,
        min_length=1,
        description=(
            f"SMTP login, when the server wants one; its password is the secret key `{ALERTS_SMTP_PASSWORD_SECRET_KEY}`."
        ),
    )
    require_tls: bool = Field(
        default=True,
        description="Refuse to send (and to log in) without STARTTLS; only a relay inside the cloud may go without.",
    )
    send_resolved: bool = Field(default=True, description="Also mail when an alert stops firing.")

    @field_validator("smarthost")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(
                "must be host:port, e.g. smtp.example.org:587: Alertmanager does not guess the port "
                "(587 for STARTTLS, 465 for TLS from the start)"
            )
        if "/" in value or " " in value:
            raise ValueError("must be host:port without a scheme or path, e.g. smtp.example.org:587")
        return value


class HeartbeatConfig(Model):
    """A dead man's switch: an alert that always fires is sent to a ping URL of an outside service
    (healthchecks.io, Cronitor, ...), which alerts the team when the pings stop, i.e. when Prometheus,
    Alertmanager or the whole cluster is down. The URL is the secret key `alerts_heartbeat_url`."""

    interval_minutes: int = Field(
        default=5,
        description=(
            "How often Alertmanager pings the service. Set the service's period to this and its grace time "
            "well above it (at least twice, and 10 minutes or more: a rescheduled Alertmanager pod takes a "
            "few minutes to ping again)."
        ),
    )

    @field_validator("interval_minutes")
    @classmethod
    def _interval(cls, value: int) -> int:
        if value < 1:
            raise ValueError(
                "must be at least 1: Alertmanager cannot ping more often than once a minute reliably (the "
                "interval is also the time a ping may take)"
            )
        if value > 60:
            raise ValueError(
                "must be at most 60: a switch that hears from the site once in hours lets an outage go "
                "unnoticed for as long"
            )
        return value


class AlertsConfig(Model):
    """Alertmanager, which sends the firing alerts to the people who run the site. Without a receiver it is
    not installed: the alerts are then only listed in Grafana and Prometheus."""

    webhook: WebhookReceiverConfig | None = Field(
        default=None,
        description=(
            "Post alerts to a Slack-compatible incoming webhook; its https:// URL is the secret key "
            f"`{ALERTS_WEBHOOK_SECRET_KEY}`."
        ),
    )
    email: EmailReceiverConfig | None = Field(default=None, description="Mail alerts through an SMTP server.")
    heartbeat: HeartbeatConfig | None = Field(
        default=None,
        description=(
            "Ping a dead man's switch service, so that a stopped Prometheus, Alertmanager or cluster is "
            f"noticed; its https:// ping URL is the secret key `{ALERTS_HEARTBEAT_SECRET_KEY}` (unset: a dead "
            "monitoring stack is silent; the plan warns)."
        ),
    )
    storage_gb: int = Field(
        default=1,
        ge=1,
        le=20,
        description=(
            "Cinder volume for Alertmanager's silences and what it already sent (so a restart does not send "
            "everything again). A few MB are used; 1 GB is Cinder's smallest volume."
        ),
    )

    @property
    def delivers(self) -> bool:
        """Whether any receiver is configured: only then is Alertmanager installed."""
        return self.webhook is not None or self.email is not None

    @model_validator(mode="after")
    def _heartbeat_with_a_receiver(self) -> Self:
        if self.heartbeat is not None and not self.delivers:
            raise ValueError(
                "heartbeat needs webhook or email as well: it tells the team that alerting works, which "
                "only matters when alerts reach someone (without a receiver Alertmanager is not installed)"
            )
        return self


class MonitoringConfig(Model):
    """Prometheus and Grafana, and the alerts a year-long binder needs."""

    enabled: bool = Field(default=True, description="Install the monitoring stack.")
    namespace: Name = Field(default="support", description="Namespace of Prometheus and Grafana.")
    prometheus: PrometheusConfig = Field(
        default_factory=PrometheusConfig, description="The Prometheus server."
    )
    grafana: GrafanaConfig = Field(description="Grafana, behind the ingress with TLS and GitHub login.")
    burn_window_days: int = Field(
        default=3,
        ge=1,
        le=30,
        description=(
            "The budget alert compares the average SU burn over this many days with the sustainable rate of "
            "`support.allocation` (a workshop day alone does not fire it)."
        ),
    )
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig,
        description="Where firing alerts are sent (unset: nowhere; the plan warns).",
    )


class CryptnonoConfig(Model):
    """cryptnono: kills processes that mine cryptocurrency, on every node (as mybinder.org and 2i2c run it)."""

    enabled: bool = Field(default=True, description="Install cryptnono's daemonset.")
    chart_version: str = Field(
        default=CRYPTNONO_CHART_VERSION, pattern=_EXACT_VERSION, description="Exact cryptnono chart version."
    )
    namespace: Name = Field(default="cryptnono", description="Namespace of the daemonset.")


class ImageCleanerConfig(Model):
    """The BinderHub chart's image cleaner for the builder's image store (the dind or pink daemon's)."""

    enabled: bool = Field(
        default=True,
        description="Delete the builder's least recently used images when its disk passes `high` (chart default: on).",
    )
    threshold_type: Literal["relative", "absolute"] = Field(
        default="relative",
        description="`relative`: `high`/`low` are percent of the disk holding the image store; `absolute`: GB used.",
    )
    high: float = Field(
        default=80, gt=0, description="Start deleting images above this (percent, or GB used)."
    )
    low: float = Field(default=60, ge=0, description="Stop once usage is below this (percent, or GB used).")
    cordon: bool = Field(
        default=True,
        description="Cordon the node while cleaning, so no build lands on a daemon that is deleting images.",
    )

    @field_validator("high", "low")
    @classmethod
    def _percent(cls, value: float, info: ValidationInfo) -> float:
        if info.data.get("threshold_type", "relative") == "relative" and value > 100:
            raise ValueError("is a percentage with threshold_type relative (at most 100)")
        return value

    @field_validator("low")
    @classmethod
    def _below_high(cls, value: float, info: ValidationInfo) -> float:
        high = info.data.get("high")
        if high is not None and value >= high:
            raise ValueError(
                f"must be below high ({high:g}): the cleaner deletes images from high down to low"
            )
        return value


class DisruptionConfig(Model):
    """Keep the hub, proxy, BinderHub and Traefik running through node drains; user pods yield to them."""

    enabled: bool = Field(default=True, description="Create the priority class and the disruption budgets.")
    core_priority: int = Field(
        default=10000,
        ge=1,
        le=1_000_000_000,
        description=(
            f"Value of the `{CORE_PRIORITY_CLASS}` PriorityClass given to the hub, proxy, BinderHub, Traefik, "
            "Prometheus and cryptnono (mybinder.org's value). User servers keep priority 0, so the scheduler "
            "evicts them first when a core pod has nowhere to go."
        ),
    )
    binderhub_replicas: int = Field(
        default=1,
        ge=1,
        le=10,
        description=(
            "BinderHub pods. With 2 or more (on a core group of as many nodes) the chart's disruption budget "
            "(one unavailable at a time) keeps one answering while a node drains."
        ),
    )


class SupportConfig(Model):
    """Pieces that keep a public binder healthy and inside its budget for a year."""

    allocation: AllocationConfig | None = Field(
        default=None,
        description=(
            "The allocation's remaining SUs and end date; without it `cost` shows the burn rate only and no "
            "budget alert is made."
        ),
    )
    monitoring: MonitoringConfig | None = Field(
        default=None,
        description="Prometheus and Grafana with the BinderHub dashboards and the SU budget alert (unset: none).",
    )
    cryptnono: CryptnonoConfig | None = Field(default=None, description="Crypto-mining killer (unset: none).")
    image_cleaner: ImageCleanerConfig = Field(
        default_factory=ImageCleanerConfig, description="Disk hygiene of the image builder's daemon."
    )
    disruption: DisruptionConfig | None = Field(
        default=None, description="Priority class and disruption budgets for node drains (unset: none)."
    )

    @property
    def core_priority_class(self) -> str | None:
        """The PriorityClass core pods run with, when disruption handling is on."""
        return CORE_PRIORITY_CLASS if self.disruption is not None and self.disruption.enabled else None

    @property
    def grafana(self) -> GrafanaConfig | None:
        """Grafana's settings when it is installed."""
        mon = self.monitoring
        return mon.grafana if mon is not None and mon.enabled and mon.grafana.enabled else None

    @property
    def alerts(self) -> AlertsConfig | None:
        """Alertmanager's settings when it is installed: monitoring is on and a receiver is configured."""
        mon = self.monitoring
        return mon.alerts if mon is not None and mon.enabled and mon.alerts.delivers else None


def required_secrets(support: SupportConfig) -> list[str]:
    """Secret keys the enabled support pieces cannot run without."""
    keys = [GRAFANA_SECRET_KEY] if support.grafana is not None else []
    alerts = support.alerts
    if alerts is not None:
        if alerts.webhook is not None:
            keys.append(ALERTS_WEBHOOK_SECRET_KEY)
        if alerts.email is not None and alerts.email.username is not None:
            keys.append(ALERTS_SMTP_PASSWORD_SECRET_KEY)
        if alerts.heartbeat is not None:
            keys.append(ALERTS_HEARTBEAT_SECRET_KEY)
    return keys


def support_volumes(support: SupportConfig) -> dict[str, int]:
    """The Cinder volumes (what -> GB) the enabled support pieces claim through their charts' volume
    claims: they count against the project's volume quota (not its SUs)."""
    mon = support.monitoring
    if mon is None or not mon.enabled:
        return {}
    volumes = {"Prometheus": mon.prometheus.storage_gb}
    if support.grafana is not None:
        volumes["Grafana"] = support.grafana.storage_gb
    if support.alerts is not None:
        volumes["Alertmanager"] = support.alerts.storage_gb
    return volumes


_URL_PURPOSES = {
    ALERTS_WEBHOOK_SECRET_KEY: "the incoming webhook's URL from the chat's settings",
    ALERTS_HEARTBEAT_SECRET_KEY: "the ping URL the dead man's switch service shows for the check",
}
CHECKED_SECRET_KEYS = frozenset(_URL_PURPOSES)
"""The secret keys whose values `secret_value_problems` reads."""


def secret_value_problems(values: Mapping[str, str]) -> list[Problem]:
    """What is wrong with the secret values that are known in clear (`pulumi up` decrypts them; the offline
    plan never does). The message never repeats the value: it is the credential."""
    problems = []
    for key, purpose in _URL_PURPOSES.items():
        url = values.get(key)
        if url is None:
            continue
        parsed = urlparse(url.strip())
        if parsed.scheme != "https" or not parsed.hostname:
            problems.append(
                Problem(
                    key,
                    f"must be an https:// URL ({purpose}): the URL is the credential, and alerts name the "
                    "site's hosts, so neither is sent in clear text",
                )
            )
    return problems


def support_problems(cfg: HubStackConfig) -> list[Problem]:
    """What the support pieces need from the rest of the site: Grafana's host beside the BinderHub ones."""
    grafana = cfg.support.grafana
    if grafana is None:
        return []
    key = "support.monitoring.grafana.host"
    if grafana.host in (cfg.binderhub.host, cfg.binderhub.hub_host):
        return [Problem(key, "is already BinderHub's or JupyterHub's host; Grafana needs a host of its own")]
    zone = cfg.dns.zone
    if cfg.dns.provider == "designate" and zone and not grafana.host.endswith("." + zone.rstrip(".")):
        return [
            Problem(
                key,
                f"{grafana.host!r} is not inside the Designate zone {zone!r}; Designate only holds records under "
                f"its zone (e.g. grafana.{zone.rstrip('.')})",
            )
        ]
    return []
