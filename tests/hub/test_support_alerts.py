"""Alerts reach a person: Alertmanager under Pulumi's mocks, its receivers' credentials kept secret."""

from __future__ import annotations

import json
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


def _rendered(run: Any) -> str:
    return render_text(run.plan) + render_json(run.plan) + json.dumps(run.plan.model_dump(mode="json"))


def test_a_webhook_turns_alertmanager_on_and_its_url_stays_a_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets=_secrets(alerts_webhook_url=WEBHOOK))
    am = _alertmanager(run)
    assert am["enabled"] is True
    # The receiver reads the URL from a file of the mounted Secret; the release's values never hold it.
    [receiver] = am["config"]["receivers"]
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
    # No sub-route sends elsewhere: the SU-burn alert and the health alerts all reach the operators.
    assert all(r.get("receiver", "site-operators") == "site-operators" for r in route["routes"])
    alerts = {
        r["alert"]
        for f in values["serverFiles"].values()
        for g in f["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert {"AllocationRunsOutBeforeEndDate", "BinderHubOrJupyterHubDown"} <= alerts
    down = next(r for r in route["routes"] if "BinderHubOrJupyterHubDown" in r["matchers"][0])
    assert down["repeat_interval"] == "3h" and route["repeat_interval"] == "24h"


def test_the_shipped_site_plans_the_webhook_and_names_its_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    run = plan_hub(hub_config, secrets={"registry_password": PASSWORD})
    assert _alertmanager(run)["enabled"] is True
    assert run.resource(SECRET, "support-alertmanager-receivers").inputs["string_data"] == "[secret]"
    assert any(
        note.startswith("alerts_webhook_url is not set yet (planned as [secret])")
        and "pulumi -C binderhub config set --secret alerts_webhook_url -s jetstream2" in note
        for note in run.notes
    )


def test_email_logs_in_with_a_password_that_stays_a_secret(
    plan_hub: PlanHub, hub_config: dict[str, Any]
) -> None:
    _alerts(hub_config).pop("webhook", None)
    _alerts(hub_config)["email"] = EMAIL
    run = plan_hub(hub_config, secrets=_secrets(alerts_smtp_password=SMTP_PASSWORD))
    am = _alertmanager(run)
    [receiver] = am["config"]["receivers"]
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
    [email] = _alertmanager(run)["config"]["receivers"][0]["email_configs"]
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


def test_the_program_refuses_a_webhook_url_sent_in_clear(hub_config: dict[str, Any]) -> None:
    # What `pulumi -C binderhub up` does with a decrypted http:// URL: one line naming the key, not the URL.
    clear = WEBHOOK.replace("https://", "http://")
    with pytest.raises(Exception, match=r"alerts_webhook_url: must be an https:// URL") as err:
        run_hub_program(hub_config, _secrets(alerts_webhook_url=clear))
    assert "T0PL4NTED" not in str(err.value)
    # `up` through the CLI reads the same text back from the engine as a config error (exit 2).
    from jetstream_binderhub.automation.failures import _program_config_error
    from jetstream_binderhub.engine.changes import Diagnostic, LayerChanges

    diagnostic = Diagnostic(severity="error", message=str(err.value))
    refused = _program_config_error(LayerChanges(layer="binderhub", diagnostics=[diagnostic]))
    assert refused is not None and refused.exit_code == 2
    assert [p.key for p in refused.problems] == ["alerts_webhook_url"]


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
