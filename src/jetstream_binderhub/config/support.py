"""Configuration of the site's support pieces (the `support` key of the BinderHub layer).

What a binder needs to run for the length of an allocation besides BinderHub itself: the allocation's
budget the SU burn is measured against, and monitoring (Prometheus, Grafana, the budget alert). Every
piece can be switched off on its own.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.errors import Problem

if TYPE_CHECKING:
    from jetstream_binderhub.config.hub import HubStackConfig

PROMETHEUS_CHART_REPO = "https://prometheus-community.github.io/helm-charts"
PROMETHEUS_CHART_VERSION = "29.27.0"
GRAFANA_CHART_REPO = "https://grafana-community.github.io/helm-charts"
GRAFANA_CHART_VERSION = "12.11.1"
"""Grafana's chart moved from grafana/helm-charts to grafana-community/helm-charts in January 2026."""
GRAFANA_SECRET_KEY = "grafana_github_client_secret"
"""The secret config key of the GitHub OAuth app's client secret (Grafana's login)."""

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

    @property
    def grafana(self) -> GrafanaConfig | None:
        """Grafana's settings when it is installed."""
        mon = self.monitoring
        return mon.grafana if mon is not None and mon.enabled and mon.grafana.enabled else None


def required_secrets(support: SupportConfig) -> list[str]:
    """Secret keys the enabled support pieces cannot run without."""
    return [GRAFANA_SECRET_KEY] if support.grafana is not None else []


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
