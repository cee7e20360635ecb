"""Every cloud command through the real Typer app: arguments, exit codes, one-line errors.

The Pulumi CLI is replaced at the one boundary Site uses (its StackOpener) by a fake that replays
engine events in Pulumi's JSON shape; the checks for a missing or old CLI run the real lookup against
a PATH we control.
"""

from __future__ import annotations

import _thread
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pulumi.automation import CommandError
from typer.testing import CliRunner

from jetstream_binderhub.automation import Layer
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.cli import app

runner = CliRunner()

CREDENTIAL_VARS = (
    "OS_CLOUD",
    "OS_AUTH_URL",
    "OS_APPLICATION_CREDENTIAL_ID",
    "OS_APPLICATION_CREDENTIAL_NAME",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "OS_USERNAME",
    "OS_PASSWORD",
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_CONFIG_PASSPHRASE_FILE",
    "PULUMI_BACKEND_URL",
    "PULUMI_ACCESS_TOKEN",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, ready_env: dict[str, str]) -> Iterator[None]:
    """Start every test from the user's variables unset, then give the ready ones."""
    for name in CREDENTIAL_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in ready_env.items():
        monkeypatch.setenv(name, value)
    yield


@pytest.fixture
def stacks(monkeypatch: pytest.MonkeyPatch) -> t.FakeStacks:
    fake = t.FakeStacks()
    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", lambda: fake)
    return fake


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


# --- preview ------------------------------------------------------------------------------------


def test_preview_prints_changes_and_a_summary_per_layer(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.events[(Layer.BINDERHUB, "preview")] = t.hub_update("s3cr3t-robot-token")

    code, out, err = run("preview", "jetstream2", "-C", str(project), "--quiet")

    assert code == 0, err
    assert "cluster (jetstream-binderhub/jetstream2): would change: 0 to create, 1 to update" in out
    assert "binderhub (jetstream-binderhub-hub/jetstream2): would change: 1 to create, 1 to update" in out
    assert "s3cr3t-robot-token" not in out + err


def test_preview_lists_replacements_loudly(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.cluster_replace()
    code, out, _ = run("preview", "jetstream2", "--layer", "cluster", "-C", str(project))
    assert code == 0
    assert (
        "+- cluster: pythia-binder-cluster (openstack:containerinfra/cluster:Cluster)  REPLACED because of masterFlavor"
        in out
    )


def test_preview_json_is_machine_readable_and_masked(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.BINDERHUB, "preview")] = t.hub_update("s3cr3t-robot-token")
    code, out, _ = run("preview", "jetstream2", "--layer", "binderhub", "--json", "-C", str(project))
    assert code == 0
    data = json.loads(out)
    assert data["operation"] == "preview"
    assert [layer["layer"] for layer in data["layers"]] == ["binderhub"]
    assert data["layers"][0]["counts"]["update"] == 1
    assert "s3cr3t-robot-token" not in out


def test_preview_markdown_writes_the_pull_request_comment(
    project: Path, stacks: t.FakeStacks, tmp_path: Path
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.cluster_replace()
    stacks.events[(Layer.BINDERHUB, "preview")] = t.hub_update("s3cr3t-robot-token")
    comment = tmp_path / "comment.md"

    code, _, err = run("preview", "jetstream2", "--markdown", str(comment), "-q", "-C", str(project))

    assert code == 0, err
    text = comment.read_text()
    assert text.startswith("<!-- jetstream-binderhub-preview:jetstream2 -->\n")
    assert "| `cluster` |" in text and "| `binderhub` |" in text
    assert "REPLACE" in text and "masterFlavor" in text
    assert "s3cr3t-robot-token" not in text
    assert "\x1b" not in text


def test_unknown_layer_is_a_usage_error(project: Path, stacks: t.FakeStacks) -> None:
    code, _, err = run("preview", "jetstream2", "--layer", "hub", "-C", str(project))
    assert code == 2
    assert "hub" in err


def test_unknown_site_exits_2(project: Path, stacks: t.FakeStacks) -> None:
    code, _, err = run("preview", "nowhere", "-C", str(project))
    assert code == 2
    assert "no site 'nowhere'" in one_error_line(err)


# --- the machine not ready ----------------------------------------------------------------------


def test_pulumi_cli_missing(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, _, err = run("preview", "jetstream2", "-C", str(project))
    assert code == 5
    line = one_error_line(err)
    assert "Pulumi CLI (`pulumi`) is not on PATH" in line
    assert "https://www.pulumi.com/docs/install/" in line


def test_pulumi_cli_too_old(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pulumi"
    fake.write_text("#!/bin/sh\necho v3.100.0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, _, err = run("up", "--yes", "jetstream2", "-C", str(project))
    assert code == 5
    line = one_error_line(err)
    assert "is 3.100.0; this tool needs 3.181.0 or newer" in line


def test_openstack_credentials_missing_names_the_variables(
    project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OS_AUTH_URL", "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET"):
        monkeypatch.delenv(name)
    code, _, err = run("preview", "jetstream2", "-C", str(project))
    assert code == 5
    line = one_error_line(err)
    for name in (
        "OS_CLOUD",
        "OS_AUTH_URL",
        "OS_APPLICATION_CREDENTIAL_ID",
        "OS_APPLICATION_CREDENTIAL_SECRET",
    ):
        assert name in line
    assert stacks.calls == [], "nothing ran"


def test_half_an_openrc_names_what_is_missing_but_no_values(
    project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OS_APPLICATION_CREDENTIAL_ID")
    code, _, err = run("up", "--yes", "jetstream2", "-C", str(project))
    assert code == 5
    line = one_error_line(err)
    assert "OS_APPLICATION_CREDENTIAL_ID" in line
    assert "very-secret-app-cred" not in err


def test_os_cloud_without_clouds_yaml(
    project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("OS_AUTH_URL")
    monkeypatch.setenv("OS_CLOUD", "openstack")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, _, err = run("refresh", "jetstream2", "-C", str(project))
    assert code == 5
    assert "no clouds.yaml was found" in one_error_line(err)


def test_passphrase_missing(project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    code, _, err = run("outputs", "jetstream2", "-C", str(project))
    assert code == 5
    line = one_error_line(err)
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" in line
    assert stacks.opened == []


def test_passphrase_file_that_does_not_exist(
    project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "missing"))
    code, _, err = run("preview", "jetstream2", "-C", str(project))
    assert code == 5
    assert "does not exist" in one_error_line(err)


def test_no_passphrase_needed_with_pulumi_cloud_login(
    project: Path, stacks: t.FakeStacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE")
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "pul-123")
    stacks.outputs[Layer.CLUSTER] = {"cluster_name": ("pythia-binder", False)}
    code, out, err = run(
        "outputs",
        "jetstream2",
        "--layer",
        "cluster",
        "--backend",
        "https://api.pulumi.com",
        "-C",
        str(project),
    )
    assert code == 0, err
    assert "cluster_name = pythia-binder" in out
    assert stacks.opened[0][0].env["PULUMI_BACKEND_URL"] == "https://api.pulumi.com"


def test_every_missing_piece_is_named_in_one_run(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for name in ("PULUMI_CONFIG_PASSPHRASE", "OS_AUTH_URL", "OS_APPLICATION_CREDENTIAL_ID"):
        monkeypatch.delenv(name)
    code, out, err = run("preview", "jetstream2", "-C", str(project))

    assert code == 5
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, err
    assert "Pulumi CLI (`pulumi`) is not on PATH" in errors[0]
    assert "no passphrase for the stacks' secrets" in errors[1]
    assert "no OpenStack credentials" in errors[2]
    assert out == ""


# --- state in the way ---------------------------------------------------------------------------


def test_locked_stack(project: Path, stacks: t.FakeStacks) -> None:
    stacks.errors[(Layer.CLUSTER, "preview")] = t.locked()
    code, _, err = run("preview", "jetstream2", "-C", str(project))
    assert code == 4
    line = one_error_line(err)
    assert "is locked by another update" in line
    assert "pulumi cancel --yes --stack jetstream2" in line


def test_stack_not_found_for_outputs(project: Path, stacks: t.FakeStacks) -> None:
    stacks.existing.clear()
    code, _, err = run("outputs", "jetstream2", "-C", str(project))
    assert code == 4
    line = one_error_line(err)
    assert "no stack jetstream-binderhub/jetstream2" in line
    assert "jetstream-binderhub up jetstream2 --layer cluster" in line


def test_failed_update_is_one_line(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "up")] = [
        t.diagnostic(
            "creating cluster: Magnum said: No valid host was found", resource="pythia-binder-cluster"
        ),
        t.diagnostic("update failed"),
    ]
    stacks.errors[(Layer.CLUSTER, "up")] = CommandError(t.command_result("error: update failed"))
    code, _, err = run("up", "--yes", "jetstream2", "--layer", "cluster", "-q", "-C", str(project))
    assert code == 1
    line = one_error_line(err)
    assert (
        "up failed: cluster: pythia-binder-cluster: creating cluster: Magnum said: No valid host was found"
        in line
    )


def test_an_unreachable_backend_is_a_state_problem_with_its_cause(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.errors[(Layer.CLUSTER, "open")] = CommandError(
        t.command_result(
            'error: could not log in to the state backend "s3://pythia-state": dial tcp 149.165.158.38:8001: '
            "connect: connection refused"
        )
    )
    code, out, err = run("outputs", "jetstream2", "-C", str(project))

    assert code == 4, "exit 1 is for an update that failed in the cloud"
    line = one_error_line(err)
    assert "cannot open stack jetstream-binderhub/jetstream2" in line
    assert "dial tcp 149.165.158.38:8001: connect: connection refused" in line, "the cause is kept"
    assert "--backend" in line
    assert out == ""


def test_an_unwritable_file_backend_is_one_line_not_a_traceback(
    project: Path, stacks: t.FakeStacks, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run("preview", "jetstream2", "--backend", f"file://{blocker}/state", "-C", str(project))

    assert code == 4
    line = one_error_line(err)
    assert f"cannot create the state directory {blocker}/state" in line
    assert stacks.calls == []


def test_a_failed_read_suggests_a_real_pulumi_command(project: Path, stacks: t.FakeStacks) -> None:
    stacks.errors[(Layer.CLUSTER, "outputs")] = CommandError(
        t.command_result("error: failed to decrypt the stack's outputs")
    )
    code, _, err = run("outputs", "jetstream2", "--layer", "cluster", "-C", str(project))

    assert code == 1
    line = one_error_line(err)
    assert "`PULUMI_BACKEND_URL=file://" in line and "pulumi stack output --stack jetstream2`" in line
    assert "pulumi outputs" not in line and "pulumi select" not in line


def test_json_says_what_the_cluster_layer_did_when_the_hub_layer_failed(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.events[(Layer.CLUSTER, "up")] = t.nodegroup_resize()
    stacks.events[(Layer.BINDERHUB, "preview")] = t.hub_update()
    stacks.events[(Layer.BINDERHUB, "up")] = [t.diagnostic("update failed")]
    stacks.errors[(Layer.BINDERHUB, "up")] = CommandError(t.command_result("error: update failed"))
    code, out, err = run("up", "--yes", "jetstream2", "--json", "-C", str(project))

    assert code == 1
    data = json.loads(out)
    assert [layer["layer"] for layer in data["layers"]] == ["cluster"]
    assert data["layers"][0]["operation"] == "up" and data["layers"][0]["counts"]["update"] == 1
    assert data["failed_layer"] == "binderhub"
    assert data["error"]["exit_code"] == 1 and "binderhub" in data["error"]["message"]
    assert one_error_line(err).startswith("error: up failed: binderhub")

    # Without --json the summary of what was applied comes before the error.
    code, out, _ = run("up", "--yes", "jetstream2", "-q", "-C", str(project))
    assert code == 1
    assert out.startswith("cluster (jetstream-binderhub/jetstream2): applied: 0 created, 1 updated")


# --- up -----------------------------------------------------------------------------------------


def test_up_refuses_replacing_the_cluster_and_says_how_to_allow_it(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.cluster_replace()
    code, _, err = run("up", "--yes", "jetstream2", "-C", str(project), "-q")
    assert code == 3
    assert "would be REPLACED because masterFlavor" in err
    assert "--allow-replace pythia-binder-cluster" in err
    assert ("cluster", "up") not in stacks.calls


def test_up_with_allow_replace_applies(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.cluster_replace()
    stacks.events[(Layer.CLUSTER, "up")] = t.cluster_replace()
    code, out, err = run(
        "up",
        "--yes",
        "jetstream2",
        "--layer",
        "cluster",
        "--allow-replace",
        "pythia-binder-cluster",
        "-q",
        "-C",
        str(project),
    )
    assert code == 0, err
    assert "applied: 0 created, 0 updated, 1 REPLACED" in out


def test_up_refuses_an_upgrade_until_allow_upgrade(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.kube_upgrade()
    stacks.events[(Layer.CLUSTER, "up")] = t.kube_upgrade()
    code, _, err = run("up", "--yes", "jetstream2", "--layer", "cluster", "-q", "-C", str(project))
    assert code == 3
    assert "upgrades the running cluster" in err and "--allow-upgrade" in err
    assert ("cluster", "up") not in stacks.calls

    code, _, err = run(
        "up", "--yes", "jetstream2", "--layer", "cluster", "--allow-upgrade", "-q", "-C", str(project)
    )
    assert code == 0, err
    assert ("cluster", "up") in stacks.calls


def test_up_progress_goes_to_stderr_and_names_slow_magnum_steps(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.fresh_cluster()
    stacks.events[(Layer.CLUSTER, "up")] = [
        t.step("create", t.CLUSTER_TYPE, "pythia-binder-cluster", new={}, planning=False),
        t.done(t.CLUSTER_TYPE, "pythia-binder-cluster"),
    ]
    code, out, err = run("up", "--yes", "jetstream2", "--layer", "cluster", "-C", str(project))
    assert code == 0, err
    assert (
        "creating pythia-binder-cluster (containerinfra/cluster:Cluster) — Magnum clusters take 10+ minutes"
        in err
    )
    assert "created pythia-binder-cluster (containerinfra/cluster:Cluster) (1/4)" in err
    assert "applied:" in out


def test_ctrl_c_stops_the_engine_cleanly_and_exits_130(project: Path, stacks: t.FakeStacks) -> None:
    def interrupt_then_cancel() -> None:
        _thread.interrupt_main()  # what Ctrl-C does to the main thread
        time.sleep(0.6)  # the engine finishes its operations in flight, then reports the cancel

    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.during[(Layer.CLUSTER, "up")] = interrupt_then_cancel
    stacks.errors[(Layer.CLUSTER, "up")] = CommandError(t.command_result("error: update canceled"))
    code, _, err = run("up", "--yes", "jetstream2", "-C", str(project))
    assert code == 130
    assert "asking Pulumi to stop after the operations in flight" in err
    assert "stopped cleanly after Ctrl-C" in one_error_line(err)
    assert ("binderhub", "preview") not in stacks.calls, "nothing further starts"


def test_up_without_a_terminal_or_yes_refuses_before_anything_runs(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    code, out, err = run("up", "jetstream2", "-C", str(project))

    assert code == 2
    assert "pass --yes" in one_error_line(err)
    assert stacks.opened == [] and stacks.calls == [], "nothing ran, not even a preview"
    assert out == ""


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jetstream_binderhub.cli._stdin_is_terminal", lambda: True)


@pytest.mark.usefixtures("terminal")
def test_up_on_a_terminal_shows_the_checked_preview_and_applies_on_yes(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    code, _, err = run("up", "jetstream2", "--layer", "cluster", "-q", "-C", str(project), input="y\n")

    assert code == 0, err
    assert "cluster: pythia-binder-nodegroup-user-m3.large" in err, "the changes are shown before asking"
    assert "changes maxNodeCount" in err
    assert "Apply these changes to the cluster layer of jetstream2?" in err
    assert stacks.calls == [("cluster", "preview"), ("cluster", "up")]


@pytest.mark.usefixtures("terminal")
@pytest.mark.parametrize("answer", ["n\n", "\n", ""])
def test_up_on_a_terminal_applies_nothing_unless_the_answer_is_yes(
    project: Path, stacks: t.FakeStacks, answer: str
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    code, _, err = run("up", "jetstream2", "--layer", "cluster", "-q", "-C", str(project), input=answer)

    assert code == 3
    assert "not confirmed: nothing of its cluster layer was applied" in one_error_line(err)
    assert ("cluster", "up") not in stacks.calls


@pytest.mark.usefixtures("terminal")
def test_a_no_for_the_hub_says_the_cluster_layer_was_applied(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.events[(Layer.BINDERHUB, "preview")] = t.hub_update()
    code, _, err = run("up", "jetstream2", "-q", "-C", str(project), input="y\nn\n")

    assert code == 3
    assert "nothing of its binderhub layer was applied (the cluster layer was)" in one_error_line(err)
    assert stacks.calls == [("cluster", "preview"), ("cluster", "up"), ("binderhub", "preview")]


@pytest.mark.usefixtures("terminal")
def test_up_does_not_ask_when_the_preview_changes_nothing(project: Path, stacks: t.FakeStacks) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = [t.summary(same=4)]
    code, _, err = run("up", "jetstream2", "--layer", "cluster", "-q", "-C", str(project))

    assert code == 0, err
    assert "Apply these changes" not in err
    assert stacks.calls == [("cluster", "preview"), ("cluster", "up")]


# --- destroy ------------------------------------------------------------------------------------


def test_destroy_asks_for_the_site_name(project: Path, stacks: t.FakeStacks) -> None:
    stacks.resources[Layer.BINDERHUB] = t.hub_resources()
    code, _, err = run(
        "destroy", "jetstream2", "--layer", "binderhub", "-q", "-C", str(project), input="nope\n"
    )
    assert code == 3
    assert "not confirmed; nothing was deleted" in one_error_line(err)
    assert stacks.calls == []

    code, out, err = run(
        "destroy", "jetstream2", "--layer", "binderhub", "-q", "-C", str(project), input="jetstream2\n"
    )
    assert code == 0, err
    assert stacks.calls == [("binderhub", "destroy")]
    assert "destroyed" in out


def test_destroy_without_a_terminal_needs_yes(project: Path, stacks: t.FakeStacks) -> None:
    stacks.resources[Layer.BINDERHUB] = t.hub_resources()
    code, _, err = run("destroy", "jetstream2", "--layer", "binderhub", "-q", "-C", str(project), input="")
    assert code == 3
    assert "--yes" in one_error_line(err)
    code, _, _ = run("destroy", "jetstream2", "--layer", "binderhub", "--yes", "-q", "-C", str(project))
    assert code == 0


def test_destroy_refuses_the_cluster_while_the_hub_runs(project: Path, stacks: t.FakeStacks) -> None:
    stacks.resources[Layer.CLUSTER] = t.cluster_resources(protect=False)
    stacks.resources[Layer.BINDERHUB] = t.hub_resources()
    code, _, err = run("destroy", "jetstream2", "--layer", "cluster", "--yes", "-C", str(project))
    assert code == 3
    assert "BinderHub stack still holds 1 resource(s)" in one_error_line(err)
    assert stacks.calls == []


def test_destroy_all_refuses_a_protected_cluster_up_front(project: Path, stacks: t.FakeStacks) -> None:
    stacks.resources[Layer.CLUSTER] = t.cluster_resources(protect=True)
    stacks.resources[Layer.BINDERHUB] = t.hub_resources()
    code, _, err = run("destroy", "jetstream2", "--yes", "-C", str(project))
    assert code == 3
    assert "is protected" in one_error_line(err)
    assert stacks.calls == []


# --- refresh, outputs, kubeconfig ---------------------------------------------------------------


def test_refresh_runs_each_layer(project: Path, stacks: t.FakeStacks) -> None:
    code, out, err = run("refresh", "jetstream2", "-q", "-C", str(project))
    assert code == 0, err
    assert stacks.calls == [("cluster", "refresh"), ("binderhub", "refresh")]
    assert "cluster (jetstream-binderhub/jetstream2): refreshed" in out


def test_outputs_mask_secrets_in_text_and_json(project: Path, stacks: t.FakeStacks) -> None:
    stacks.outputs[Layer.CLUSTER] = {
        "cluster_name": ("pythia-binder", False),
        "kubeconfig": ("apiVersion: v1\nclient-key-data: LS0tS0VZ\n", True),
    }
    stacks.outputs[Layer.BINDERHUB] = {"binderhub_url": ("https://binder.example.org", False)}

    code, out, _ = run("outputs", "jetstream2", "-C", str(project))
    assert code == 0
    assert "  kubeconfig = [secret]" in out
    assert "  binderhub_url = https://binder.example.org" in out
    assert "LS0tS0VZ" not in out

    code, out, _ = run("outputs", "jetstream2", "--json", "-C", str(project))
    assert code == 0
    assert json.loads(out)["cluster"]["kubeconfig"] == "[secret]"
    assert "LS0tS0VZ" not in out


def test_outputs_show_secrets_only_when_asked_with_a_warning(project: Path, stacks: t.FakeStacks) -> None:
    stacks.outputs[Layer.CLUSTER] = {"kubeconfig": ("apiVersion: v1\nclient-key-data: LS0tS0VZ\n", True)}
    stacks.outputs[Layer.BINDERHUB] = {
        "grafana_url": ("https://grafana.example.org", False),
        "grafana_admin_password": ("pw-Hq7vK2", True),
    }
    code, out, err = run("outputs", "jetstream2", "-C", str(project))
    assert code == 0
    assert "  grafana_admin_password = [secret]" in out and "pw-Hq7vK2" not in out
    assert "warning" not in err

    code, out, err = run("outputs", "jetstream2", "--show-secrets", "-C", str(project))
    assert code == 0, err
    assert "  grafana_admin_password = pw-Hq7vK2" in out
    assert "  kubeconfig = [secret]" in out and "LS0tS0VZ" not in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "in clear" in warnings[0]

    code, out, _ = run("outputs", "jetstream2", "--json", "--show-secrets", "-C", str(project))
    assert code == 0
    data = json.loads(out)
    assert data["binderhub"]["grafana_admin_password"] == "pw-Hq7vK2"
    assert data["cluster"]["kubeconfig"] == "[secret]"


def test_kubeconfig_writes_a_private_file_and_never_prints_it(
    project: Path, stacks: t.FakeStacks, tmp_path: Path
) -> None:
    stacks.outputs[Layer.CLUSTER] = {"kubeconfig": ("apiVersion: v1\nclient-key-data: LS0tS0VZ\n", True)}
    path = tmp_path / "kc.yaml"

    code, out, err = run("kubeconfig", "jetstream2", "-o", str(path), "-C", str(project))
    assert code == 0, err
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "LS0tS0VZ" in path.read_text()
    assert "LS0tS0VZ" not in out + err
    assert f"export KUBECONFIG={path}" in out

    code, _, err = run("kubeconfig", "jetstream2", "-o", str(path), "-C", str(project))
    assert code == 2
    assert "--force" in one_error_line(err)
    code, _, _ = run("kubeconfig", "jetstream2", "-o", str(path), "--force", "-C", str(project))
    assert code == 0


def test_kubeconfig_is_a_cluster_layer_output(project: Path, stacks: t.FakeStacks) -> None:
    code, _, err = run("kubeconfig", "jetstream2", "--layer", "binderhub", "-C", str(project))
    assert code == 2
    assert "output of the cluster layer" in one_error_line(err)


def test_kubeconfig_default_path_is_under_kube(
    project: Path, stacks: t.FakeStacks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    stacks.outputs[Layer.CLUSTER] = {"kubeconfig": ("apiVersion: v1\n", True)}
    code, _, err = run("kubeconfig", "jetstream2", "-C", str(project))
    assert code == 0, err
    path = tmp_path / ".kube" / "jetstream-binderhub-jetstream2.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_outputs_of_a_site_whose_hub_is_not_deployed_yet(project: Path, stacks: t.FakeStacks) -> None:
    stacks.existing = {Layer.CLUSTER}
    stacks.outputs[Layer.CLUSTER] = {"cluster_name": ("pythia-binder", False)}
    code, out, err = run("outputs", "jetstream2", "-C", str(project))
    assert code == 0, err
    assert "cluster_name = pythia-binder" in out
    assert "BinderHub layer of jetstream2 is not deployed yet" in err
    code, _, err = run("outputs", "jetstream2", "--layer", "binderhub", "-C", str(project))
    assert code == 4


def test_an_update_whose_events_were_unreadable_still_reports_success(
    project: Path, stacks: t.FakeStacks
) -> None:
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.events[(Layer.CLUSTER, "up")] = [object()]  # an event the collector cannot read
    code, out, err = run("up", "--yes", "jetstream2", "--layer", "cluster", "-q", "-C", str(project))
    assert code == 0, err
    assert "note: cluster: up succeeded but its events could not be read" in out


# --- site names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", ["plan", "preview", "up", "destroy", "refresh", "outputs", "kubeconfig", "verify", "cost"]
)
@pytest.mark.parametrize("name", ["../escape", "my site", "..", "sité"])
def test_every_command_refuses_a_site_name_pulumi_would_refuse_before_touching_anything(
    project: Path,
    stacks: t.FakeStacks,
    command: str,
    name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    before = sorted(p for p in tmp_path.rglob("*"))
    code, out, err = run(command, name, "-C", str(project))

    assert code == 2
    assert "is not a valid site name" in one_error_line(err)
    assert out == ""
    assert stacks.opened == [] and stacks.calls == []
    assert sorted(p for p in tmp_path.rglob("*")) == before, "nothing was written"


@pytest.mark.parametrize("key", ["alerts_webhook_url", "alerts_heartbeat_url"])
def test_a_secret_the_program_refuses_exits_2_naming_its_key(
    project: Path, stacks: t.FakeStacks, key: str
) -> None:
    # What the BinderHub program raises when Pulumi decrypts an http:// URL (read_hub_config): only the live
    # run sees the value, and it is refused as the offline checks refuse config, not as a failed update.
    from jetstream_binderhub.config.support import secret_value_problems
    from jetstream_binderhub.errors import ConfigError

    url = "http://example.org/s3cr3t-p4th"
    refused = ConfigError(secret_value_problems({key: url}), source="stack jetstream2")
    stacks.events[(Layer.CLUSTER, "preview")] = t.nodegroup_resize()
    stacks.events[(Layer.BINDERHUB, "preview")] = [
        t.diagnostic(f"{refused}\n"),
        t.diagnostic("preview failed"),
    ]
    stacks.errors[(Layer.BINDERHUB, "preview")] = CommandError(t.command_result("error: preview failed"))
    code, _, err = run("preview", "jetstream2", "-C", str(project), "--quiet")
    assert code == 2, err
    assert "error: invalid configuration in stack jetstream2:" in err
    assert f"  {key}: must be an https:// URL" in err
    assert "s3cr3t" not in err


@pytest.mark.parametrize(
    "command",
    [
        ["up", "--yes"],
        ["upgrade", "--image", "ubuntu-jammy-kube-v1.34.1-251020-1200", "--yes"],
    ],
    ids=["up", "upgrade"],
)
def test_commands_that_preflight_name_every_missing_piece_before_asking_the_cloud(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # Preflight needs only OpenStack credentials: run first, it would pass or fail on those alone and the
    # missing Pulumi CLI and passphrase would be said only after the allocation was checked.
    from jetstream_binderhub.ops import preflight

    asked: list[str] = []
    monkeypatch.setattr(preflight, "preflight_site", lambda site, *_, **__: asked.append(site))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    for name in ("PULUMI_CONFIG_PASSPHRASE", "OS_AUTH_URL", "OS_APPLICATION_CREDENTIAL_ID"):
        monkeypatch.delenv(name)
    files = {p: p.read_text() for p in project.rglob("Pulumi.*.yaml")}
    code, _, err = run(command[0], "jetstream2", *command[1:], "-C", str(project))

    assert code == 5, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 3, err
    assert "Pulumi CLI (`pulumi`) is not on PATH" in errors[0]
    assert "no OpenStack credentials" in errors[2]
    assert asked == [], "the cloud was asked before the environment was complete"
    assert {p: p.read_text() for p in project.rglob("Pulumi.*.yaml")} == files, "nothing was changed"
