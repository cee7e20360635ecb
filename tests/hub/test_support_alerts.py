"""Alerts reach a person: Alertmanager under Pulumi's mocks, its receivers' credentials kept secret."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from jetstream_binderhub.config.hub import parse_hub_stack
from jetstream_binderhub.errors import ConfigError
from jetstream_binderhub.plan.render import render_json, render_text

from .conftest import PlanHub, run_hub_program

RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
WEBHOOK = "https://hooks.slack.com/services/T0PL4NTED/B0W3BH00K/pl4ntedW3bh00kT0ken"
SMTP_PASSWORD = "pl4nted-smtp-p4ssw0rd-e41b"
HEARTBEAT = "https://hc-ping.com/pl4nted-he4rtbe4t-uuid-0c7d"
PASSWORD = "pl4nted-Quay-r0bot-t0ken-7f3a9c"
CLIENT_SECRET = "pl4nted-grafana-0auth-secret-91c2"
EMAIL = {
    "smarthost": "smtp.ucar.edu:587",
    "from_address": "binder-alerts@ucar.edu",
    "to": ["projectpythia@ucar.edu", "pythia-ops@ucar.edu"],
    "username": "binder-alerts",
}


def _secrets(**more: str) -> dict[str, str]:
    return {"registry_password": PASSWORD, "grafana_github_client_secret": CLIENT_SECRET, **more}


def _alertmanager(run: Any) -> dict[str, Any]:
    return run.resource(RELEASE, "support-prometheus").inputs["values"]["alertmanager"]


def _alerts(hub_config: dict[str, Any]) -> dict[str, Any]:
    return hub_config["support"]["monitoring"].setdefault("alerts", {})


def _receiver(am: dict[str, Any], name: str = "site-operators") -> dict[str, Any]:
    [receiver] = [r for r in am["config"]["receivers"] if r["name"] == name]
    return receiver


def _routed(route: dict[str, Any], labels: dict[str, str], inherited: str = "") -> list[str]:
    """The receivers an alert with `labels` is sent to, as Alertmanager walks its route tree: depth first,
    stopping at the first matching child unless it says `continue` (prometheus/alertmanager dispatch/route.go)."""

    def matches(matcher: str) -> bool:
        name, op, value = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', matcher).groups()  # type: ignore[union-attr]
        got = labels.get(name, "")
        return {"=": got == value, "!=": got != value, "=~": re.fullmatch(value, got) is not None}[op]

    if not all(matches(m) for m in route.get("matchers", [])):
        return []
    receiver = route.get("receiver", inherited)
    found: list[str] = []
    for child in route.get("routes", []):
        hit = _routed(child, labels, receiver)
        found += hit
        if hit and not child.get("continue", False):
            break
    return found or [receiver]


def _alert_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r for f in values["serverFiles"].values() for g in f["groups"] for r in g["rules"] if "alert" in r
    ]


def _rendered(run: Any) -> str:
    return render_text(run.plan) + render_json(run.plan) + json.dumps(run.plan.model_dump(mode="json"))


def test_a_webhook_turns_alertmanager_on_and_its_url_stays_a_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK))
    am = _alertmanager(run)
    assert am["enabled"] is True
    # The receiver reads the URL from a file of the mounted Secret; the release's values never hold it.
    receiver = _receiver(am)
    assert receiver["slack_configs"] == [
        {"api_url_file": "/etc/alertmanager-receivers/webhook-url", "send_resolved": True}
    ]
    assert "email_configs" not in receiver
    [mount] = am["extraSecretMounts"]
    assert (mount["secretName"], mount["mountPath"]) == (
        "alertmanager-receivers",
        "/etc/alertmanager-receivers",
    )
    secret = run.resource(SECRET, "support-alertmanager-receivers")
    assert secret.inputs["metadata"]["name"] == "alertmanager-receivers"
    assert secret.inputs["string_data"] == "[secret]"
    # The release waits for the Secret it mounts; Alertmanager's volume and placement follow the config.
    prometheus = run.resource(RELEASE, "support-prometheus")
    assert "support-alertmanager-receivers" in prometheus.options["depends_on"]
    assert am["persistence"] == {"enabled": True, "size": "1Gi"}
    assert am["nodeSelector"] == {"capi.stackhpc.com/node-group": "default-worker"}
    assert am["priorityClassName"] == "binderhub-core"
    text = _rendered(run)
    assert WEBHOOK not in text and "T0PL4NTED" not in text
    assert not any("alerts_webhook_url" in note for note in run.notes)


def test_every_alert_goes_to_the_receiver_and_a_down_hub_is_repeated_sooner(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK))
    values = run.resource(RELEASE, "support-prometheus").inputs["values"]
    route = values["alertmanager"]["config"]["route"]
    assert route["receiver"] == "site-operators" and route["group_by"] == ["alertname"]
    # The SU-burn alert and the health alerts all reach the operators (the heartbeat alone goes elsewhere).
    rules = _alert_rules(values)
    for rule in rules:
        if rule["alert"] != "Watchdog":
            assert _routed(route, {"alertname": rule["alert"], **rule["labels"]}) == ["site-operators"]
    alerts = {r["alert"] for r in rules}
    assert {"AllocationRunsOutBeforeEndDate", "BinderHubOrJupyterHubDown"} <= alerts
    down = next(r for r in route["routes"] if "BinderHubOrJupyterHubDown" in r["matchers"][0])
    assert down["repeat_interval"] == "3h" and route["repeat_interval"] == "24h"


def test_the_shipped_site_plans_the_webhook_and_names_its_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets={"registry_password": PASSWORD})
    assert _alertmanager(run)["enabled"] is True
    assert run.resource(SECRET, "support-alertmanager-receivers").inputs["string_data"] == "[secret]"
    for key in ("alerts_webhook_url", "alerts_heartbeat_url"):
        assert any(
            note.startswith(f"{key} is not set yet (planned as [secret])")
            and f"pulumi -C binderhub config set --secret {key} -s jetstream2" in note
            for note in run.notes
        ), key


def test_email_logs_in_with_a_password_that_stays_a_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    _alerts(hub_config).pop("webhook", None)
    _alerts(hub_config)["email"] = dict(EMAIL)
    run = plan_hub(hub_config, secrets=_secrets(alerts_smtp_password=SMTP_PASSWORD))
    am = _alertmanager(run)
    receiver = _receiver(am)
    assert receiver["email_configs"] == [
        {
            "to": "projectpythia@ucar.edu, pythia-ops@ucar.edu",
            "from": "binder-alerts@ucar.edu",
            "smarthost": "smtp.ucar.edu:587",
            "require_tls": True,
            "send_resolved": True,
            "auth_username": "binder-alerts",
            "auth_password_file": "/etc/alertmanager-receivers/smtp-password",
        }
    ]
    assert "slack_configs" not in receiver
    assert SMTP_PASSWORD not in _rendered(run)
    assert run.resource(SECRET, "support-alertmanager-receivers").inputs["string_data"] == "[secret]"
    # A relay that takes mail without a login needs no password secret.
    del _alerts(hub_config)["email"]["username"]
    run = plan_hub(hub_config, secrets=_secrets())
    [email] = _receiver(_alertmanager(run))["email_configs"]
    assert "auth_password_file" not in email and "auth_username" not in email
    assert not any("alerts_smtp_password" in note for note in run.notes)


def test_without_a_receiver_alertmanager_stays_off(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    hub_config["support"]["monitoring"].pop("alerts")
    run = plan_hub(hub_config, secrets=_secrets())
    assert _alertmanager(run) == {"enabled": False}
    assert not [r for r in run.layer.resources if r.name == "support-alertmanager-receivers"]
    assert not any("alerts_" in note for note in run.notes)


@pytest.mark.parametrize(
    ("email", "key", "words"),
    [
        ({**EMAIL, "to": ["projectpythia.ucar.edu"]}, "to[0]", "@-sign"),
        ({**EMAIL, "from_address": "binder-alerts"}, "from_address", "@-sign"),
        ({**EMAIL, "smarthost": "smtp.ucar.edu"}, "smarthost", "must be host:port"),
        ({**EMAIL, "smarthost": "smtp://smtp.ucar.edu:587"}, "smarthost", "without a scheme"),
        ({**EMAIL, "to": []}, "to", "at least 1"),
    ],
)
def test_bad_email_settings_are_named(
    hub_config: dict[str, Any], email: dict[str, Any], key: str, words: str
) -> None:
    _alerts(hub_config)["email"] = email
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub_config)
    [line] = err.value.lines()
    assert line.startswith(f"support.monitoring.alerts.email.{key}: ") and words in line


@pytest.mark.parametrize(
    ("key", "url", "token"),
    [("alerts_webhook_url", WEBHOOK, "T0PL4NTED"), ("alerts_heartbeat_url", HEARTBEAT, "he4rtbe4t")],
)
def test_the_program_refuses_a_url_sent_in_clear(
    hub_config: dict[str, Any], key: str, url: str, token: str
) -> None:
    # What `pulumi -C binderhub up` does with a decrypted http:// URL: one line naming the key, not the URL.
    secrets = _secrets(alerts_webhook_url=WEBHOOK, alerts_heartbeat_url=HEARTBEAT)
    secrets[key] = url.replace("https://", "http://")
    with pytest.raises(Exception, match=rf"{key}: must be an https:// URL") as err:
        run_hub_program(hub_config, secrets)
    assert token not in str(err.value)
    # `up` through the CLI reads the same text back from the engine as a config error (exit 2).
    from jetstream_binderhub.automation.failures import _program_config_error
    from jetstream_binderhub.engine.changes import Diagnostic, LayerChanges

    diagnostic = Diagnostic(severity="error", message=str(err.value))
    refused = _program_config_error(LayerChanges(layer="binderhub", diagnostics=[diagnostic]))
    assert refused is not None and refused.exit_code == 2
    assert [p.key for p in refused.problems] == [key]


@pytest.mark.parametrize(
    ("key", "config"),
    [
        ("alerts_webhook_url", {}),
        ("alerts_smtp_password", {"webhook": None, "email": EMAIL}),
        ("alerts_heartbeat_url", {}),
    ],
)
def test_the_program_itself_refuses_a_receiver_without_its_secret(
    hub_config: dict[str, Any], key: str, config: dict[str, Any]
) -> None:
    # What plain `pulumi -C binderhub up` does, without the offline planner in front of it: the missing key
    # is named before Alertmanager is declared with a receiver whose credential file would be absent.
    for name, value in config.items():
        if value is None:
            _alerts(hub_config).pop(name, None)
        else:
            _alerts(hub_config)[name] = value
    secrets = _secrets(
        alerts_webhook_url=WEBHOOK, alerts_smtp_password=SMTP_PASSWORD, alerts_heartbeat_url=HEARTBEAT
    )
    del secrets[key]
    with pytest.raises(Exception, match=rf"{key}: is not set") as err:
        run_hub_program(hub_config, secrets)
    assert f"pulumi -C binderhub config set --secret {key} -s jetstream2" in str(err.value)
    assert all(value not in str(err.value) for value in secrets.values())


def test_a_site_built_in_python_refuses_a_webhook_url_sent_in_clear(
    cluster_config: dict[str, Any], hub_config: dict[str, Any], tmp_path: Path
) -> None:
    from jetstream_binderhub.automation.site import Site

    with pytest.raises(ConfigError) as err:
        Site.from_config(
            "jetstream2",
            cluster_config,
            hub_config,
            hub_secrets={
                "registry_password": PASSWORD,
                "alerts_webhook_url": "http://chat.example.org/hook/x1",
            },
            work_dir=tmp_path,
        )
    [line] = err.value.lines()
    assert line.startswith("alerts_webhook_url: must be an https:// URL") and "chat.example.org" not in line


# --- the heartbeat: a dead monitoring stack must not be silent ---------------------------------------


def test_the_watchdog_pings_only_the_heartbeat_and_nothing_else_does(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK, alerts_heartbeat_url=HEARTBEAT))
    values = run.resource(RELEASE, "support-prometheus").inputs["values"]
    route = values["alertmanager"]["config"]["route"]
    rules = _alert_rules(values)
    [watchdog] = [r for r in rules if r["alert"] == "Watchdog"]
    assert watchdog["expr"] == "vector(1)" and "for" not in watchdog
    # The always-firing alert reaches the switch and never the people; no other alert reaches the switch.
    assert _routed(route, {"alertname": "Watchdog", **watchdog["labels"]}) == ["heartbeat"]
    others = [r for r in rules if r["alert"] != "Watchdog"]
    assert others and all(
        _routed(route, {"alertname": r["alert"], **r["labels"]}) == ["site-operators"] for r in others
    )
    # Even an operator's own alert that borrowed the name (without the labels) goes to the people.
    assert _routed(route, {"alertname": "Watchdog", "severity": "warning"}) == ["site-operators"]
    am = values["alertmanager"]
    assert _receiver(am, "heartbeat") == {
        "name": "heartbeat",
        # A resolved post would count as a ping when Prometheus stops.
        "webhook_configs": [
            {"url_file": "/etc/alertmanager-receivers/heartbeat-url", "send_resolved": False}
        ],
    }
    assert "webhook_configs" not in _receiver(am)
    # Re-sent at every group_interval tick: repeat_interval below group_interval (the shipped 5 minutes).
    [beat] = [r for r in route["routes"] if r.get("receiver") == "heartbeat"]
    assert (beat["group_wait"], beat["group_interval"], beat["repeat_interval"]) == ("0s", "5m", "150s")
    assert "heartbeat-url" not in json.dumps(_receiver(am))


def test_the_heartbeat_url_stays_a_secret(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    _alerts(hub_config)["heartbeat"] = {"interval_minutes": 2}
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK, alerts_heartbeat_url=HEARTBEAT))
    assert HEARTBEAT not in _rendered(run) and "he4rtbe4t" not in _rendered(run)
    assert run.resource(SECRET, "support-alertmanager-receivers").inputs["string_data"] == "[secret]"
    assert not any("alerts_heartbeat_url" in note for note in run.notes)
    route = _alertmanager(run)["config"]["route"]
    [beat] = [r for r in route["routes"] if r.get("receiver") == "heartbeat"]
    assert (beat["group_interval"], beat["repeat_interval"]) == ("2m", "60s")
    # The typed config never holds the URL either: it is not one of its keys.
    cfg = parse_hub_stack(hub_config)
    assert "alerts_heartbeat_url" not in json.dumps(cfg.model_dump(mode="json"))


def test_without_a_heartbeat_nobody_gets_the_watchdog(plan_hub: PlanHub, hub_config: dict[str, Any]) -> None:
    # An always-firing alert without its switch would reach the people's channel every day.
    del _alerts(hub_config)["heartbeat"]
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK))
    values = run.resource(RELEASE, "support-prometheus").inputs["values"]
    assert not [r for r in _alert_rules(values) if r["alert"] == "Watchdog"]
    assert [r["name"] for r in values["alertmanager"]["config"]["receivers"]] == ["site-operators"]
    assert not any("alerts_heartbeat_url" in note for note in run.notes)


@pytest.mark.parametrize(
    ("alerts", "key", "words"),
    [
        ({"heartbeat": {}}, "support.monitoring.alerts", "heartbeat needs webhook or email as well"),
        (
            {"webhook": {}, "heartbeat": {"interval_minutes": 0}},
            "support.monitoring.alerts.heartbeat.interval_minutes",
            "at least 1",
        ),
        (
            {"webhook": {}, "heartbeat": {"interval_minutes": 90}},
            "support.monitoring.alerts.heartbeat.interval_minutes",
            "at most 60",
        ),
        (
            {"webhook": {}, "heartbeat": {"every": 5}},
            "support.monitoring.alerts.heartbeat.every",
            "unknown key",
        ),
    ],
)
def test_bad_heartbeat_settings_are_named(
    hub_config: dict[str, Any], alerts: dict[str, Any], key: str, words: str
) -> None:
    hub_config["support"]["monitoring"]["alerts"] = alerts
    with pytest.raises(ConfigError) as err:
        parse_hub_stack(hub_config)
    [line] = err.value.lines()
    assert line.startswith(f"{key}: ") and words in line
