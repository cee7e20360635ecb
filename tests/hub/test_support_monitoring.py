"""Monitoring under Pulumi's mocks: Prometheus with the SU burn rules, Grafana behind TLS and GitHub login."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jetstream_binderhub.config.hub import parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.hub.support import burn_rules, dashboards, prometheus_values
from jetstream_binderhub.profiles import load_profile

from .conftest import PlanHub, run_hub_program

RELEASE = "kubernetes:helm.sh/v3:Release"
CLIENT_SECRET = "pl4nted-grafana-0auth-secret-91c2"
PASSWORD = "pl4nted-Quay-r0bot-t0ken-7f3a9c"
LABELS = {"default-worker": "default-worker", "user-m3.large": "user-m3-large"}


def _all_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
    files = values["serverFiles"]
    return [r for f in files.values() for g in f["groups"] for r in g["rules"]]


def test_shipped_site_runs_prometheus_and_grafana_pinned_on_the_core_group(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config)
    prom = run.resource(RELEASE, "support-prometheus").inputs
    graf = run.resource(RELEASE, "support-grafana").inputs
    assert (prom["chart"], prom["version"], prom["namespace"]) == ("prometheus", "29.27.0", "support")
    assert prom["repository_opts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert (graf["chart"], graf["version"]) == ("grafana", "12.11.1")
    assert graf["repository_opts"] == {"repo": "https://grafana-community.github.io/helm-charts"}
    server = prom["values"]["server"]
    assert server["nodeSelector"] == {"capi.stackhpc.com/node-group": "default-worker"}
    assert (server["retention"], server["persistentVolume"]["size"], server["retentionSize"]) == (
        "90d",
        "50Gi",
        "45GB",
    )
    assert run.output("support_chart_versions") == {
        "prometheus": "29.27.0",
        "grafana": "12.11.1",
        "cryptnono": "0.3.2-0.dev.git.267.h766bf8f",
    }
    # JupyterHub lets the Prometheus pod (labelled, in another namespace) scrape /hub/metrics unauthenticated.
    hub = run.values()["jupyterhub"]["hub"]
    assert hub["networkPolicy"]["interNamespaceAccessLabels"] == "accept"
    assert hub["authenticatePrometheus"] is False
    assert server["podLabels"] == {"hub.jupyter.org/network-access-hub": "true"}


def test_grafana_is_behind_tls_with_github_login_and_never_anonymous(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(
        hub_config, secrets={"registry_password": PASSWORD, "grafana_github_client_secret": CLIENT_SECRET}
    )
    values = run.resource(RELEASE, "support-grafana").inputs["values"]
    host = "grafana.see240014.projects.jetstream-cloud.org"
    ingress = values["ingress"]
    assert ingress["hosts"] == [host] and ingress["tls"] == [{"hosts": [host], "secretName": "grafana-tls"}]
    assert ingress["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt-production"}
    assert ingress["ingressClassName"] == "traefik"
    ini = values["grafana.ini"]
    assert ini["auth.anonymous"] == {"enabled": False}
    assert ini["auth.github"]["allowed_organizations"] == "ProjectPythia"
    assert ini["server"]["root_url"] == f"https://{host}/"
    assert values["admin"]["existingSecret"] == "grafana-admin"
    # The generated admin password and the OAuth secret are Pulumi secrets, nowhere in the plan.
    assert run.output("grafana_admin_password") == "[secret]"
    assert (
        run.resource("kubernetes:core/v1:Secret", "support-grafana-github-oauth").inputs["string_data"]
        == "[secret]"
    )
    text = json.dumps(run.plan.model_dump(mode="json"))
    assert CLIENT_SECRET not in text and PASSWORD not in text
    password = run.resource("random:index/randomPassword:RandomPassword", "support-grafana-admin-password")
    assert password.inputs["length"] == 32
    record = run.resource("openstack:dns/recordSet:RecordSet", "support-grafana-dns").inputs
    assert record["name"] == f"{host}." and record["records"] == ["<ingress-floating-ip.address>"]
    assert run.output("grafana_url") == f"https://{host}"


def test_a_missing_grafana_secret_is_planned_as_a_secret_and_named(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets={"registry_password": PASSWORD})
    assert any(
        "grafana_github_client_secret is not set yet" in note
        and "pulumi -C binderhub config set --secret grafana_github_client_secret -s jetstream2" in note
        for note in run.notes
    )


def test_monitoring_switched_off_leaves_no_trace(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["support"]["monitoring"]["enabled"] = False
    run = plan_hub(hub_config)
    monitoring = ("support-namespace", "support-prometheus", "support-grafana")
    assert not [r for r in run.layer.resources if r.name.startswith(monitoring)]
    assert "authenticatePrometheus" not in run.values()["jupyterhub"].get("hub", {})
    hub_config["support"]["monitoring"]["enabled"] = True
    hub_config["support"]["monitoring"]["grafana"]["enabled"] = False
    run = plan_hub(hub_config)
    names = {r.name for r in run.layer.resources}
    assert "support-prometheus" in names and "support-grafana" not in names
    assert not any(n.startswith("support-grafana") for n in names)
    assert not any(note.startswith("grafana_github_client_secret") for note in run.notes)


def test_grafana_host_must_be_its_own_and_inside_the_zone(hub_config: dict[str, Any]) -> None:
    hub_config["support"]["monitoring"]["grafana"]["host"] = "grafana.example.org"
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub_config)
    assert err.value.lines() == [
        "support.monitoring.grafana.host: 'grafana.example.org' is not inside the Designate zone "
        "'see240014.projects.jetstream-cloud.org.'; Designate only holds records under its zone "
        "(e.g. grafana.see240014.projects.jetstream-cloud.org)"
    ]
    hub_config["support"]["monitoring"]["grafana"]["host"] = hub_config["binderhub"]["hub_host"]
    with pytest.raises(ConfigError, match="Grafana needs a host of its own"):
        parse_hub_stack(hub_config)
    hub_config["support"]["monitoring"]["grafana"]["github_org"] = "Project Pythia"
    with pytest.raises(ConfigError, match="github_org: must be a GitHub organisation name"):
        parse_hub_stack(hub_config)


def test_burn_rules_price_every_catalog_flavor_and_alert_on_the_sustainable_rate(
    hub_config: dict[str, Any],
) -> None:
    cfg = parse_hub_stack(hub_config)
    assert cfg.support.allocation is not None
    rules = burn_rules(load_profile("jetstream2"), cfg.support.allocation, 3)
    flat = [r for g in rules["groups"] for r in g["rules"]]
    rates = {
        r["labels"]["flavor"]: r["expr"]
        for r in flat
        if r.get("record") == "jetstream_binderhub:flavor_su_per_hour"
    }
    assert rates["m3.large"] == "vector(16)" and rates["g3.large"] == "vector(32)"
    assert len(rates) == len(load_profile("jetstream2").flavors)
    node = next(r for r in flat if r.get("record") == "jetstream_binderhub:node_su_per_hour")["expr"]
    assert "label_node_kubernetes_io_instance_type" in node and "label_capi_stackhpc_com_node_group" in node
    sustainable = next(
        r for r in flat if r.get("record") == "jetstream_binderhub:allocation_sustainable_su_per_hour"
    )
    # 600,000 SU from 2026-11-27 to the end of 2027-09-30: 308 days.
    assert float(sustainable["expr"].removeprefix("vector(").removesuffix(")")) == pytest.approx(
        600_000 / (308 * 24)
    )
    alert = next(r for r in flat if r.get("alert") == "AllocationRunsOutBeforeEndDate")
    assert "[3d]" in alert["expr"] and "allocation_sustainable_su_per_hour" in alert["expr"]
    # Without a budget there is nothing to alert on, but the burn is still recorded.
    bare = [r for g in burn_rules(load_profile("jetstream2"), None, 3)["groups"] for r in g["rules"]]
    assert not any(r.get("alert", "").startswith("Allocation") for r in bare)
    assert any(r.get("record") == "jetstream_binderhub:su_per_hour" for r in bare)


def test_prometheus_values_carry_the_alerts(hub_config: dict[str, Any]) -> None:
    cfg = parse_hub_stack(hub_config)
    values = prometheus_values(
        cfg, {"capi.stackhpc.com/node-group": "default-worker"}, load_profile("jetstream2")
    )
    assert {r.get("alert") for r in _all_rules(values)} >= {
        "AllocationRunsOutBeforeEndDate",
        "BinderHubOrJupyterHubDown",
        "NodeRootDiskFilling",
    }


def test_dashboards_ship_as_package_data_and_query_the_recorded_burn() -> None:
    boards = dashboards()
    assert set(boards) == {"binderhub.json", "su-burn.json"}
    docs = {name: json.loads(text) for name, text in boards.items()}
    assert len({d["uid"] for d in docs.values()}) == 2
    exprs = [t["expr"] for d in docs.values() for p in d["panels"] for t in p["targets"]]
    assert any("jetstream_binderhub:su_per_hour" in e for e in exprs)
    assert any("binderhub_build_time_seconds" in e for e in exprs)
    assert all(
        t["datasource"]["uid"] == "prometheus"
        for d in docs.values()
        for p in d["panels"]
        for t in p["targets"]
    )


def test_the_program_itself_refuses_grafana_without_its_client_secret(hub_config: dict[str, Any]) -> None:
    # What plain `pulumi -C binderhub up` does, without the offline planner in front of it.
    with pytest.raises(Exception, match="grafana_github_client_secret: is not set") as err:
        run_hub_program(hub_config, {"registry_password": PASSWORD})
    assert "pulumi -C binderhub config set --secret grafana_github_client_secret -s jetstream2" in str(
        err.value
    )
    assert PASSWORD not in str(err.value)
