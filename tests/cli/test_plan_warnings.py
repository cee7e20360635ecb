"""What `plan` says up front, and how it keeps its layout, through the real CLI on copies of the shipped site."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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
