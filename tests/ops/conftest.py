"""The Helm repositories `preflight` fetches the site's charts from, served on 127.0.0.1 (fake_helm)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jetstream_binderhub.ops.charts import ChartRelease, HelmRepositories, unshipped_releases

from .fake_helm import FakeHelm, chart_archive, serving

# Small schemas of our own, one trait each of what the real charts check.
TRAEFIK_SCHEMA = {
    "type": "object",
    "properties": {
        "deployment": {"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 0}}}
    },
}
CERT_MANAGER_SCHEMA = {
    "type": "object",
    "properties": {"crds": {"properties": {"enabled": {"type": "boolean"}}}},
}
CRYPTNONO_SCHEMA = {"type": "object", "properties": {"metrics": {"type": "object"}}}
PROMETHEUS_SCHEMA = {
    "type": "object",
    "properties": {
        "server": {
            "type": "object",
            "properties": {"retention": {"type": "string", "pattern": "^[0-9]+[smhdwy]$"}},
        }
    },
}
STATE_METRICS_SCHEMA = {
    "type": "object",
    "properties": {"metricLabelsAllowlist": {"type": "array", "items": {"type": "string"}}},
}
PUSHGATEWAY_SCHEMA = {"type": "object", "required": ["onlyCheckedWhenEnabled"]}
"""Refuses any values: the site disables the pushgateway, and Helm leaves a disabled subchart out."""


def prometheus_archive(
    version: str,
    *,
    schema: dict[str, Any] = PROMETHEUS_SCHEMA,
    state_metrics_schema: dict[str, Any] | None = None,
) -> bytes:
    """A prometheus chart with two subcharts as archives under charts/: kube-state-metrics (packaged
    under another name and aliased, as Chart.yaml's `alias` allows) and a disabled pushgateway."""
    state_metrics = chart_archive(
        "state-metrics",
        "6.1.0",
        values={"metricLabelsAllowlist": []},
        schema=state_metrics_schema or STATE_METRICS_SCHEMA,
    )
    pushgateway = chart_archive("prometheus-pushgateway", "3.4.0", schema=PUSHGATEWAY_SCHEMA)
    return chart_archive(
        "prometheus",
        version,
        values={"server": {"retention": "15d"}, "prometheus-pushgateway": {"enabled": True}},
        schema=schema,
        dependencies=[
            {
                "name": "state-metrics",
                "alias": "kube-state-metrics",
                "version": "6.1.0",
                "condition": "kube-state-metrics.enabled",
            },
            {
                "name": "prometheus-pushgateway",
                "version": "3.4.0",
                "condition": "prometheus-pushgateway.enabled",
            },
        ],
        subcharts=[state_metrics, pushgateway],
    )


def site_archive(release: ChartRelease) -> bytes:
    """A chart the shipped site's values pass (grafana's has no schema)."""
    schema = {"traefik": TRAEFIK_SCHEMA, "cert-manager": CERT_MANAGER_SCHEMA, "cryptnono": CRYPTNONO_SCHEMA}
    if release.chart == "prometheus":
        return prometheus_archive(release.version)
    return chart_archive(
        release.chart, release.version, values={"replicas": 1}, schema=schema.get(release.chart)
    )


@pytest.fixture(scope="session")
def site_releases(repo_root: Path) -> list[ChartRelease]:
    from jetstream_binderhub.plan.site import plan_site

    return unshipped_releases(plan_site("jetstream2", repo_root))


@pytest.fixture
def helm(
    site_releases: list[ChartRelease], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeHelm]:
    """Every chart of the shipped site in its repository, and `preflight` fetching from there into a
    cache of the test's own."""
    with serving() as fake:
        for release in site_releases:
            fake.publish(release.repo, site_archive(release), release.chart, release.version)
        repositories = fake.repositories(tmp_path / "chart-cache")
        monkeypatch.setattr(HelmRepositories, "default", classmethod(lambda cls: repositories))
        yield fake
