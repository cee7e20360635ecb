"""What `plan` says up front, and how it keeps its layout, through the real CLI on copies of the shipped site."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from jetstream_binderhub.cli import app

runner = CliRunner()


def plan(root: Path, site: str = "jetstream2") -> str:
    result = runner.invoke(app, ["plan", site, "-C", str(root)])
    assert result.exit_code == 0, result.output
    return result.output


def warnings_before_the_plan(out: str) -> list[str]:
    head = out.split("\nLayer cluster", 1)[0]
    return [line[4:] for line in head.splitlines() if line.startswith("  ! ")]


def set_allocation(project: Path, su_remaining: int) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(hub_file.read_text())
    support = doc["config"].setdefault("jetstream-binderhub-hub:support", {})
    support["allocation"] = {
        "su_remaining": su_remaining,
        "as_of": "2026-11-27",
        "end_date": "2027-09-30",
        "resource": "cpu",
    }
    hub_file.write_text(yaml.safe_dump(doc))


def test_the_shipped_site_plans_without_warnings(project: Path) -> None:
    out = plan(project)
    assert "Warnings:" not in out
    assert warnings_before_the_plan(out) == []


def test_an_implausible_max_count_warns_and_costs_print_as_numbers(project: Path) -> None:
    site_file = project / "Pulumi.jetstream2.yaml"
    site_file.write_text(site_file.read_text().replace("max_count: 10\n", "max_count: 100000\n"))
    set_allocation(project, 600000)
    out = plan(project)
    warning, allocation = warnings_before_the_plan(out)
    assert "needs 1,600,006 vCPUs" in warning and "default project quota (200 vCPUs)" in warning
    # 600,000 SU against 1,600,006 SU/h.
    assert "the 600,000 SU left (support.allocation) would last 0.4 hours; lower max_count" in allocation
    assert "cluster.node_groups[0].max_count is 100,000" in warning
    assert "at maximum size 1,600,006 SU/h" in out
    assert not re.search(r"\de[+-]\d", out), "a cost in scientific notation"


def test_a_site_at_the_quota_does_not_warn(project: Path) -> None:
    # 2 + 4 + 13 * 16 = 214 vCPUs is above 200; 12 groups' worth (198) is not.
    site_file = project / "Pulumi.jetstream2.yaml"
    text = site_file.read_text()
    site_file.write_text(text.replace("max_count: 10\n", "max_count: 12\n"))
    assert warnings_before_the_plan(plan(project)) == []
    site_file.write_text(text.replace("max_count: 10\n", "max_count: 13\n"))
    assert "needs 214 vCPUs" in warnings_before_the_plan(plan(project))[0]


def test_a_missing_binderhub_file_is_said_before_the_plan(project: Path) -> None:
    (project / "binderhub" / "Pulumi.jetstream2.yaml").unlink()
    [warning] = warnings_before_the_plan(plan(project))
    assert warning.startswith("no BinderHub layer: ")
    assert "binderhub/Pulumi.jetstream2.yaml does not exist, so only the cluster is planned" in warning


def test_a_copied_site_warns_about_the_same_cluster_name_and_hosts(project: Path) -> None:
    shutil.copy(project / "Pulumi.jetstream2.yaml", project / "Pulumi.copy.yaml")
    shutil.copy(project / "binderhub" / "Pulumi.jetstream2.yaml", project / "binderhub" / "Pulumi.copy.yaml")
    warnings = warnings_before_the_plan(plan(project, "copy"))
    assert len(warnings) == 2
    assert (
        "site 'jetstream2' (Pulumi.jetstream2.yaml) uses the same cluster.name 'pythia-binder'" in warnings[0]
    )
    assert "hub.see240014.projects.jetstream-cloud.org" in warnings[1]
    assert "change binderhub.host and binderhub.hub_host" in warnings[1]
    # The other way round too, and a renamed copy is quiet.
    assert len(warnings_before_the_plan(plan(project, "jetstream2"))) == 2
    copy = project / "Pulumi.copy.yaml"
    copy.write_text(copy.read_text().replace("name: pythia-binder", "name: other-binder"))
    hub_copy = project / "binderhub" / "Pulumi.copy.yaml"
    hub_copy.write_text(
        hub_copy.read_text().replace("binder.see", "binder2.see").replace("hub.see", "hub2.see")
    )
    assert warnings_before_the_plan(plan(project, "copy")) == []


def test_multi_line_outputs_keep_the_tree_layout(project: Path) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(hub_file.read_text())
    doc["config"]["jetstream-binderhub-hub:dns"] = {"provider": "external"}
    hub_file.write_text(yaml.safe_dump(doc))
    out = plan(project)
    body = out.split("\nLayer cluster", 1)[1].split("\n", 1)[1].split("\nCost estimate", 1)[0]
    assert "dns_instructions =\n" in body
    for line in body.splitlines():
        assert line == "" or line.startswith("  ") or line.startswith("Layer "), line
    assert "      | binder.see240014.projects.jetstream-cloud.org. 300 IN A " in body


def test_an_allocation_the_minimum_size_outspends_warns(project: Path) -> None:
    set_allocation(project, 1000)
    [warning] = warnings_before_the_plan(plan(project))
    assert warning.startswith("even at minimum size the site burns 22 SU/h of the cpu allocation")
    assert "the 1,000 SU left on 2026-11-27 (support.allocation) run out about 2026-11-28" in warning


def _edit_alerts(project: Path, alerts: dict[str, object] | None, **plain: str) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(hub_file.read_text())
    monitoring = doc["config"]["jetstream-binderhub-hub:support"]["monitoring"]
    if alerts is None:
        monitoring.pop("alerts", None)
    else:
        monitoring["alerts"] = alerts
    doc["config"].update({f"jetstream-binderhub-hub:{k}": v for k, v in plain.items()})
    hub_file.write_text(yaml.safe_dump(doc))


def test_monitoring_without_a_receiver_warns_that_alerts_reach_nobody(project: Path) -> None:
    _edit_alerts(project, None)
    out = plan(project)
    [warning] = warnings_before_the_plan(out)
    assert warning.startswith("alerts are evaluated but not delivered to anyone")
    assert "`pulumi -C binderhub config set --secret alerts_webhook_url -s jetstream2`" in warning
    assert "support.monitoring.alerts.email" in warning
    assert "values.alertmanager.enabled = false" in out


def test_alerts_without_a_heartbeat_warn_that_a_dead_monitoring_stack_is_silent(project: Path) -> None:
    _edit_alerts(project, {"webhook": {}})
    out = plan(project)
    [warning] = warnings_before_the_plan(out)
    assert warning.startswith("nothing notices if Prometheus, Alertmanager or the cluster stops")
    assert "support.monitoring.alerts.heartbeat" in warning
    assert "`pulumi -C binderhub config set --secret alerts_heartbeat_url -s jetstream2`" in warning
    # The shipped site has one: no warning, and its ping URL is a secret still to be set.
    _edit_alerts(project, {"webhook": {}, "heartbeat": {"interval_minutes": 5}})
    out = plan(project)
    assert warnings_before_the_plan(out) == []
    assert "alerts_heartbeat_url is not set yet (planned as [secret])" in out


@pytest.mark.parametrize(
    ("email", "line"),
    [
        (
            {"smarthost": "smtp.ucar.edu", "from_address": "binder@ucar.edu", "to": ["ops@ucar.edu"]},
            "support.monitoring.alerts.email.smarthost: must be host:port",
        ),
        (
            {"smarthost": "smtp.ucar.edu:587", "from_address": "binder@ucar.edu", "to": ["ops.ucar.edu"]},
            "support.monitoring.alerts.email.to[0]: value is not a valid email address",
        ),
    ],
)
def test_bad_email_settings_exit_2_naming_the_key(project: Path, email: dict[str, object], line: str) -> None:
    _edit_alerts(project, {"email": email})
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(project)])
    assert result.exit_code == 2, result.output
    [error] = [x for x in result.output.splitlines() if x.startswith("  support.")]
    assert error.strip().startswith(line)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("key", ["alerts_webhook_url", "alerts_heartbeat_url"])
def test_a_url_written_in_clear_is_refused_without_repeating_it(project: Path, key: str) -> None:
    url = "http://chat.example.org/hooks/s3cr3t-t0ken-in-the-path"
    _edit_alerts(project, {"webhook": {}, "heartbeat": {}}, **{key: url})
    result = runner.invoke(app, ["plan", "jetstream2", "-C", str(project)])
    assert result.exit_code == 2, result.output
    lines = [x.strip() for x in result.output.splitlines() if x.strip().startswith(f"{key}:")]
    assert lines[0].startswith(f"{key}: is stored in plain text")
    assert lines[1].startswith(f"{key}: must be an https:// URL")
    assert "s3cr3t" not in result.output
