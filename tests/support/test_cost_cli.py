"""`jetstream-binderhub cost SITE`: the burn of the site's nodes against its allocation."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from typer.testing import CliRunner

from jetstream_binderhub.cli import app
from jetstream_binderhub.config.stackfile import HUB_PROJECT

from .test_burn import _ApiServer, _kubeconfig, api_server  # noqa: F401 (the fixture)

NODES = Path(__file__).with_name("nodes.json")
runner = CliRunner()


def _set_allocation(project: Path, allocation: dict[str, Any] | None) -> None:
    path = project / "binderhub" / "Pulumi.jetstream2.yaml"
    doc = yaml.safe_load(path.read_text())
    key = f"{HUB_PROJECT}:support"
    support = dict(doc["config"].get(key) or {})
    support.pop("allocation", None)
    if allocation is not None:
        support["allocation"] = allocation
    doc["config"][key] = support
    path.write_text(yaml.safe_dump(doc))


def _cost(project: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["cost", "jetstream2", "-C", str(project), *args])
    return result.exit_code, result.stdout, result.stderr


def test_cost_shows_the_rate_and_warns_when_the_allocation_runs_out(project: Path) -> None:
    # Dates as an operator writes them, unquoted: YAML reads them as dates, not strings.
    _set_allocation(
        project, {"su_remaining": 20000, "as_of": date(2026, 11, 1), "end_date": date(2099, 6, 30)}
    )
    assert "as_of: 2026-11-01\n" in (project / "binderhub" / "Pulumi.jetstream2.yaml").read_text()
    code, out, err = _cost(project, "--nodes", str(NODES))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "jetstream2: 60 SU/hour now (1,440 SU/day) on the cpu allocation"
    assert any(line.split() == ["user-m3-large", "m3.large", "3", "16", "48"] for line in lines)
    assert "also 32 SU/hour on the gpu allocation (not counted above)" in out
    assert "WARNING: runs out on" in out and "before the end date" in out


def test_cost_json_lasts_with_a_large_budget(project: Path) -> None:
    _set_allocation(project, {"su_remaining": 10**9, "as_of": "2026-11-01", "end_date": "2027-06-30"})
    code, out, err = _cost(project, "--nodes", str(NODES), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["su_per_hour"] == 60
    assert report["allocation"]["runs_out_before_end"] is False
    assert report["allocation"]["sustainable_su_per_hour"] == 10**9 / (242 * 24)


def test_cost_without_a_budget_shows_the_rate_and_says_what_to_set(project: Path) -> None:
    _set_allocation(project, None)
    code, out, _ = _cost(project, "--nodes", str(NODES))
    assert code == 0
    assert "no allocation budget in the config (support.allocation)" in out


def test_bad_inputs_are_one_line_errors_with_exit_code_2(project: Path, tmp_path: Path) -> None:
    code, out, err = _cost(project, "--kubeconfig", str(tmp_path / "absent.yaml"))
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "no kubeconfig at" in err
    _set_allocation(project, {"su_remaining": 5, "as_of": "2027-01-01", "end_date": "2026-01-01"})
    code, _, err = _cost(project, "--nodes", str(NODES))
    assert code == 2
    assert "support.allocation.end_date: must be after as_of (2027-01-01)" in err
    assert "Traceback" not in err


def test_cost_help_imports_neither_pulumi_nor_the_kubernetes_client() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from jetstream_binderhub.cli import app\n"
        "result = CliRunner().invoke(app, ['cost', '--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pulumi', 'kubernetes'))))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_cost_of_the_live_cluster_adds_what_prometheus_recorded_or_says_it_could_not(
    project: Path,
    api_server: str,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    _set_allocation(project, {"su_remaining": 10**9, "as_of": "2026-11-01", "end_date": "2099-06-30"})
    kubeconfig = str(_kubeconfig(tmp_path / "kubeconfig", api_server))
    _ApiServer.prometheus = {"avg_over_time": "321"}
    try:
        code, out, err = _cost(project, "--kubeconfig", kubeconfig)
    finally:
        _ApiServer.prometheus = {}
    assert code == 0, err
    assert out.splitlines()[0] == "jetstream2: 60 SU/hour now (1,440 SU/day) on the cpu allocation"
    assert "  spent (from Prometheus): 321 SU today, 321 SU this month (UTC)" in out

    code, out, err = _cost(project, "--kubeconfig", kubeconfig, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["su_per_hour"] == 60 and report["spent"] is None
    assert "HTTP 503" in report["spent_unavailable"]
    code, out, _ = _cost(project, "--kubeconfig", kubeconfig)
    assert code == 0
    unknown = [line for line in out.splitlines() if "today and month to date unknown" in line]
    assert len(unknown) == 1 and "lasts to the end date" in out
