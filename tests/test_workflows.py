"""The pull-request workflow keeps the deployment credentials away from unreviewed code.

A same-repository pull request's code, the workflow file included, runs with whatever secrets its jobs
can read, so: secrets only in the job gated by the `preview` environment (required reviewers), forks on
the offline plan, untrusted values only through environment variables, actions pinned by commit,
no token left in the checkout, one live preview per site at a time, and no job timeout that can land
while Pulumi holds the state lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "preview.yml"
SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, step


def reads_secrets(value: Any) -> bool:
    """Whether an expression anywhere in `value` reads a secret other than the job's own token."""
    text = yaml.safe_dump(value)
    return any(
        re.search(r"\bsecrets\.(?!GITHUB_TOKEN\b)", expr) or "toJSON(secrets)" in expr
        for expr in EXPRESSION.findall(text)
    )


def test_it_runs_on_pull_request_never_pull_request_target(workflow: dict[Any, Any]) -> None:
    # PyYAML reads the bare key `on` as True.
    triggers = workflow["on"] if "on" in workflow else workflow[True]
    assert set(triggers) == {"pull_request"}
    assert workflow["permissions"] == {}, "each job asks for what it needs"


def test_no_expression_inside_a_script(workflow: dict[str, Any]) -> None:
    # `${{ }}` is pasted into the script's text before the shell sees it: a crafted file or branch name
    # would run as code. Values reach scripts as environment variables instead.
    for job, step in steps(workflow):
        for key, text in (("run", step.get("run")), ("script", (step.get("with") or {}).get("script"))):
            if text is not None:
                assert "${{" not in text, (
                    f"{job}: {step.get('name', step.get('uses'))}: expression in `{key}`"
                )


def test_no_shell_variable_is_pasted_into_code(workflow: dict[str, Any]) -> None:
    # `python -c "...'$SITE'..."` makes a file name part of a program: code reads os.environ instead.
    inline_code = re.compile(r"\b(python3?|node|bash|sh|perl|ruby)\s+-c\s+\"[^\"]*\$")
    for job, step in steps(workflow):
        assert not inline_code.search(step.get("run") or ""), f"{job}: {step.get('name')}"


def test_every_action_is_pinned_to_a_commit(workflow: dict[str, Any]) -> None:
    uses = [step["uses"] for _, step in steps(workflow) if "uses" in step]
    assert uses, "the workflow uses actions"
    assert [u for u in uses if not SHA_PIN.match(u)] == []
    # The pinned tag is written beside each pin, so an update knows what it replaces.
    for line in WORKFLOW.read_text().splitlines():
        if re.search(r"\buses: ", line):
            assert re.search(r"@[0-9a-f]{40} # v\d+\.\d+\.\d+$", line), line


def test_checkouts_leave_no_token_behind(workflow: dict[str, Any]) -> None:
    checkouts = [step for _, step in steps(workflow) if step.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 3
    assert all((step.get("with") or {}).get("persist-credentials") is False for step in checkouts)


def test_only_the_reviewed_job_can_read_deployment_secrets(workflow: dict[str, Any]) -> None:
    with_secrets = [name for name, job in workflow["jobs"].items() if reads_secrets(job)]
    assert with_secrets == ["live"]
    live = workflow["jobs"]["live"]
    assert live["environment"] == "preview", "required reviewers approve each run of this environment"
    # Forks stay on the offline plan of intent.
    assert live["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    plan = workflow["jobs"]["plan"]
    assert "environment" not in plan and "if" not in plan, "every pull request gets the plan of intent"
    assert any('plan "$SITE" --compare' in (step.get("run") or "") for step in plan["steps"])


def test_one_live_preview_per_site_at_a_time_never_cancelled(workflow: dict[str, Any]) -> None:
    concurrency = workflow["jobs"]["live"]["concurrency"]
    assert concurrency["cancel-in-progress"] is False
    group = concurrency["group"]
    # Per site (both its stacks), shared by every pull request: two pull requests cannot preview the
    # same stacks at once.
    assert "matrix.site" in group and "pull_request" not in group
    assert "concurrency" not in workflow, "a workflow-wide group would be per pull request"


def test_the_job_timeout_cannot_land_mid_preview(workflow: dict[str, Any]) -> None:
    live = workflow["jobs"]["live"]
    runs = [step["run"] for step in live["steps"] if "jetstream-binderhub preview" in (step.get("run") or "")]
    assert len(runs) == 1
    match = re.match(
        r"timeout --foreground --signal=INT --kill-after=(\d+)m (\d+)m jetstream-binderhub preview ", runs[0]
    )
    assert match, "the preview is stopped with one SIGINT (a clean stop that releases the lock) at its limit"
    kill_after, limit = (int(g) for g in match.groups())
    assert live["timeout-minutes"] >= limit + kill_after


def test_site_names_from_file_names_are_validated(workflow: dict[str, Any]) -> None:
    script = workflow["jobs"]["sites"]["steps"][-1]["run"]
    # Pulumi's stack-name rule, before a name reaches a matrix, a path or a log line.
    assert "^[A-Za-z0-9_.-]{1,100}$" in script and "*..*" in script
