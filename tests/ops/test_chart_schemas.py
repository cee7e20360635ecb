"""preflight checks the site's values against the schemas of the charts whose schema does not ship,
fetched from their Helm repositories (served on 127.0.0.1 with charts the tests build: fake_helm)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.cli import app
from jetstream_binderhub.ops.charts import (
    ChartRelease,
    ChartUnavailable,
    HelmRepositories,
    chart_schema,
    default_cache_dir,
)
from jetstream_binderhub.ops.preflight import Check, PreflightResult, preflight_site

from . import test_preflight
from .conftest import PROMETHEUS_SCHEMA, prometheus_archive
from .fake_helm import FakeHelm, chart_archive
from .fake_openstack import FakeOpenStack

cloud = test_preflight.cloud  # the stand-in cloud, with the site's charts in repositories on 127.0.0.1
project = test_preflight.project  # the shipped site at the sizes the cloud's quotas are set for

PROMETHEUS = "https://prometheus-community.github.io/helm-charts"
GRAFANA = "https://grafana-community.github.io/helm-charts"

runner = CliRunner()


def run(project: Path) -> PreflightResult:
    return preflight_site("jetstream2", project, env=dict(os.environ))


def charts(result: PreflightResult) -> dict[str, Check]:
    return {c.name.split()[0]: c for c in result.checks if c.area == "chart"}


def release(site_releases: list[ChartRelease], chart: str) -> ChartRelease:
    return next(r for r in site_releases if r.chart == chart)


def republish(helm: FakeHelm, repo: str, name: str, version: str, archive: bytes, **kw: str) -> None:
    local = "/" + repo.split("://", 1)[1].rstrip("/")
    helm.indexes[local]["entries"][name] = []
    helm.publish(repo, archive, name, version, **kw)


def test_each_unshipped_chart_gets_a_row_and_passing_values_pass(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm
) -> None:
    result = run(project)
    assert result.ok, result.failures
    rows = charts(result)
    # binderhub and dask-gateway ship their schemas (checked by `plan`): never downloaded.
    assert set(rows) == {"traefik", "cert-manager", "cryptnono", "prometheus", "grafana"}
    assert rows["prometheus"].name == "prometheus 29.27.0"
    assert rows["prometheus"].message == "values match its schema" and rows["prometheus"].checked
    assert rows["grafana"].message == "has no schema" and not rows["grafana"].checked
    assert not any("binderhub" in path or "dask" in path for path in helm.requests)


def test_a_refused_value_names_its_path_and_the_config_that_makes_it(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease]
) -> None:
    strict = {"type": "object", "properties": {"server": {"properties": {"retention": {"type": "integer"}}}}}
    version = release(site_releases, "prometheus").version
    republish(helm, PROMETHEUS, "prometheus", version, prometheus_archive(version, schema=strict))
    result = run(project)
    assert not result.ok
    (failure,) = result.failures
    assert failure.name == f"prometheus {version}"
    assert failure.message == (
        "the prometheus chart would refuse these values: server.retention: '90d' is not of type 'integer'; "
        "these values come from support.monitoring.prometheus"
    )


def test_a_subcharts_schema_checks_its_subtree_under_its_alias(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease]
) -> None:
    short = {"properties": {"metricLabelsAllowlist": {"items": {"type": "string", "maxLength": 10}}}}
    version = release(site_releases, "prometheus").version
    republish(
        helm, PROMETHEUS, "prometheus", version, prometheus_archive(version, state_metrics_schema=short)
    )
    (failure,) = run(project).failures
    assert "kube-state-metrics.metricLabelsAllowlist.0: 'nodes=[node.kubernetes.io" in failure.message
    assert "is too long" in failure.message
    # The pushgateway's schema refuses anything, but the site disables it: Helm leaves it out.
    assert "pushgateway" not in failure.message


def test_an_archive_that_does_not_match_its_digest_is_refused(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease], tmp_path: Path
) -> None:
    version = release(site_releases, "prometheus").version
    republish(helm, PROMETHEUS, "prometheus", version, prometheus_archive(version), digest="0" * 64)
    (failure,) = run(project).failures
    assert failure.message.startswith(f"not checked: the archive of prometheus {version} does not match")
    assert "refused" in failure.message
    assert not list((tmp_path / "chart-cache").rglob("prometheus-*")), "a refused archive is never cached"


def test_a_chart_the_repository_does_not_have_fails_in_one_line(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease]
) -> None:
    version = release(site_releases, "grafana").version
    helm.unpublish(GRAFANA, "grafana", version)
    result = run(project)
    (failure,) = result.failures
    assert failure.name == f"grafana {version}"
    assert failure.message == (
        f"not checked: {GRAFANA}/grafana-{version}.tgz answered 404; `up` fetches the chart from {GRAFANA} "
        "the same way"
    )


def test_a_second_run_reads_the_cache_and_asks_no_repository(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm
) -> None:
    run(project)
    assert helm.requests
    helm.requests.clear()
    result = run(project)
    assert result.ok and len(charts(result)) == 5
    assert helm.requests == []


def test_a_damaged_cache_entry_is_fetched_again(tmp_path: Path, helm: FakeHelm) -> None:
    repos = helm.repositories(tmp_path / "cache")
    first = repos.archive(PROMETHEUS, "prometheus", "29.27.0")
    (cached,) = (tmp_path / "cache").rglob("*.tgz")
    cached.write_bytes(first[:100])
    helm.requests.clear()
    assert repos.archive(PROMETHEUS, "prometheus", "29.27.0") == first
    assert any(path.endswith(".tgz") for path in helm.requests)


def test_an_archive_reaching_outside_the_chart_is_refused_unread() -> None:
    hostile = chart_archive(
        "evil", "1.0.0", schema={}, members={"../../etc/cron.d/x": b"* * * * * root sh\n"}
    )
    with pytest.raises(ChartUnavailable, match=r"has a member outside the chart \(\.\./\.\./etc/cron\.d/x\)"):
        chart_schema(hostile, "evil 1.0.0")


def test_unpacked_subchart_directories_are_read_too() -> None:
    archive = chart_archive(
        "parent",
        "1.0.0",
        schema=PROMETHEUS_SCHEMA,
        members={
            "parent/charts/child/Chart.yaml": b"apiVersion: v2\nname: child\nversion: 0.1.0\n",
            "parent/charts/child/values.schema.json": b'{"properties": {"size": {"type": "integer"}}}',
        },
    )
    spec = chart_schema(archive, "parent 1.0.0")
    from jetstream_binderhub.schemas import validate_chart_values

    (problem,) = validate_chart_values(spec, {"child": {"size": "big"}})
    assert str(problem) == "child.size: 'big' is not of type 'integer'"


def test_the_cli_prints_a_row_per_chart_and_exits_16_on_a_refusal(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    version = release(site_releases, "prometheus").version
    assert f"ok  {'chart':<14}{'prometheus ' + version:<24}values match its schema" in lines
    grafana = release(site_releases, "grafana").version
    assert f"--  {'chart':<14}{'grafana ' + grafana:<24}has no schema" in lines

    strict = {"properties": {"server": {"properties": {"retention": {"type": "integer"}}}}}
    republish(helm, PROMETHEUS, "prometheus", version, prometheus_archive(version, schema=strict))
    shutil.rmtree(tmp_path / "chart-cache")  # a pinned version's archive is cached for good
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 16, result.output
    assert f"error: preflight: chart prometheus {version}: the prometheus chart would refuse" in result.stderr


def test_the_default_cache_is_under_the_users_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert HelmRepositories.default().cache_dir == tmp_path / "jetstream-binderhub" / "charts"


def test_a_subchart_is_checked_with_the_parents_globals_and_only_while_enabled() -> None:
    from jetstream_binderhub.schemas import validate_chart_values

    child = chart_archive(
        "child",
        "0.1.0",
        values={"global": {"imageRegistry": "quay.io"}},
        schema={"properties": {"global": {"properties": {"imageRegistry": {"type": "string"}}}}},
    )
    dependencies = [{"name": "child", "version": "0.1.0", "condition": "child.enabled"}]
    spec = chart_schema(
        chart_archive("parent", "1.0.0", dependencies=dependencies, subcharts=[child]), "parent"
    )
    # Helm copies the parent's `global` into every subchart's values, over the subchart's own.
    (problem,) = validate_chart_values(spec, {"global": {"imageRegistry": 5}})
    assert str(problem) == "child.global.imageRegistry: 5 is not of type 'string'"
    assert validate_chart_values(spec, {"global": {"imageRegistry": 5}, "child": {"enabled": False}}) == []


def test_a_malformed_index_is_the_charts_row_not_a_traceback(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease]
) -> None:
    local = "/" + PROMETHEUS.split("://", 1)[1]
    helm.indexes.pop(local)
    helm.files[f"{local}/index.yaml"] = b"apiVersion: v1\nentries:\n  prometheus: [\n"
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 16, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    version = release(site_releases, "prometheus").version
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"error: preflight: chart prometheus {version}: not checked: the index of {PROMETHEUS} is not valid "
        "YAML at line 4, column 1"
    )


def test_a_malformed_chart_yaml_in_the_archive_is_the_charts_row(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, site_releases: list[ChartRelease]
) -> None:
    version = release(site_releases, "grafana").version
    broken = chart_archive(
        "grafana", version, members={"grafana/Chart.yaml": b"name: grafana\n\tversion: 1\n"}
    )
    republish(helm, GRAFANA, "grafana", version, broken)
    (failure,) = run(project).failures
    assert failure.name == f"grafana {version}"
    assert failure.message.startswith(
        f"not checked: grafana {version} grafana/Chart.yaml is not valid YAML at line 2, column 1"
    )
    assert "indented with a tab" in failure.message and "\n" not in failure.message


def test_an_unreadable_cache_entry_is_a_miss_and_an_unwritable_cache_is_skipped(
    tmp_path: Path, helm: FakeHelm
) -> None:
    # A directory where the archive should be: reading it fails as any user, root included.
    repos = helm.repositories(tmp_path / "cache")
    first = repos.archive(PROMETHEUS, "prometheus", "29.27.0")
    (cached,) = (tmp_path / "cache").rglob("*.tgz")
    cached.unlink()
    cached.mkdir()
    helm.requests.clear()
    assert repos.archive(PROMETHEUS, "prometheus", "29.27.0") == first
    assert any(path.endswith(".tgz") for path in helm.requests)

    # A cache under a regular file cannot be made: the chart is used from memory, every time.
    (tmp_path / "a-file").write_text("")
    uncached = helm.repositories(tmp_path / "a-file" / "cache")
    assert uncached.archive(PROMETHEUS, "prometheus", "29.27.0") == first


def test_the_check_runs_when_the_cache_cannot_be_written(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    monkeypatch.setattr(
        HelmRepositories, "default", classmethod(lambda cls: helm.repositories(default_cache_dir()))
    )
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 0, result.output
    assert "values match its schema" in result.stdout


def test_refused_credentials_are_said_before_any_chart_is_fetched(
    cloud: FakeOpenStack, project: Path, helm: FakeHelm
) -> None:
    cloud.cloud.accept_secret = "another"
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 5, result.output
    assert "refused the credentials (401)" in result.stderr
    assert helm.requests == []
