"""Our use of the real Automation API SDK (LocalWorkspace, Stack, PulumiCommand), end to end, against a
stand-in `pulumi` executable (fake_pulumi_cli.py) that answers from a script and logs every call.

This checks what no fake StackOpener can: that PulumiStacks builds workspaces the SDK accepts, that the
options we pass become the CLI flags we mean, that the SDK's own parsing of events, outputs and errors
feeds our translation, and that Ctrl-C reaches the child `pulumi` and ends in a clean stop. The real
CLI's behaviour itself is covered by test_pulumi_cli.py where `pulumi` is installed.
"""

from __future__ import annotations

import _thread
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jetstream_binderhub.automation import (
    Interrupted,
    Layer,
    PlanViolated,
    Secret,
    Site,
    StackLocked,
)
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.engine.guard import GuardRefused

HERE = Path(__file__).parent


def calls(scripted: Path) -> list[dict[str, Any]]:
    path = scripted / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def commands(scripted: Path) -> list[str]:
    """Each call as its subcommand words (`stack select`, `preview`, ...)."""
    out = []
    for call in calls(scripted):
        words = [w for w in call["argv"] if not w.startswith("-")][:2]
        out.append(
            " ".join(words) if words and words[0] in ("stack", "config") else (words[0] if words else "")
        )
    return out


def script_events(scripted: Path, op: str, events: list[dict[str, Any]]) -> None:
    (scripted / f"events-{op}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def existing(scripted: Path, project: str, **stack: Any) -> None:
    state = json.loads((scripted / "stacks.json").read_text()) if (scripted / "stacks.json").is_file() else {}
    state[f"{project}/jetstream2"] = {"outputs": {}, "secret": [], "resources": [], **stack}
    (scripted / "stacks.json").write_text(json.dumps(state))


def test_preview_creates_the_stack_and_reads_the_event_log(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    script_events(fake_cli, "preview", t.nodegroup_resize())
    site = Site.from_files("jetstream2", project, env=ready_env)
    result = site.preview("cluster")

    assert result.counts["cluster"]["update"] == 1
    assert commands(fake_cli) == ["version", "version", "stack select", "stack init", "preview"]
    preview = calls(fake_cli)[-1]
    assert preview["cwd"] == str(project.resolve()), "the repository's own project: `pulumi up` semantics"
    assert preview["backend"] == f"file://{project.resolve() / '.state'}"
    argv = preview["argv"]
    assert argv[argv.index("--stack") + 1] == "jetstream2"
    assert argv[argv.index("--color") + 1] == "never"
    assert "--event-log" in argv and "--client" not in " ".join(argv), "a local program, not inline"


def test_up_refused_by_the_guard_never_runs_pulumi_up(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    existing(fake_cli, "jetstream-binderhub")
    script_events(fake_cli, "preview", t.cluster_replace())
    with pytest.raises(GuardRefused):
        Site.from_files("jetstream2", project, env=ready_env).up("cluster")
    assert "up" not in commands(fake_cli)


def test_up_applies_exactly_the_plan_its_checked_preview_saved(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    existing(fake_cli, "jetstream-binderhub")
    script_events(fake_cli, "preview", t.nodegroup_resize())
    script_events(fake_cli, "up", t.nodegroup_resize())
    result = Site.from_files("jetstream2", project, env=ready_env).up("cluster")

    assert result.counts["cluster"]["update"] == 1
    preview = next(c for c in calls(fake_cli) if c["argv"][0] == "preview")
    up = next(c for c in calls(fake_cli) if c["argv"][0] == "up")
    assert {"--yes", "--skip-preview", "--suppress-outputs"} <= set(up["argv"])
    saved = preview["argv"][preview["argv"].index("--save-plan") + 1]
    applied = up["argv"][up["argv"].index("--plan") + 1]
    assert saved == applied, "up applies the plan of the preview the guard checked"
    assert preview["plan_dir_mode"] == up["plan_dir_mode"] == "0o700", "plans hold state: private"
    assert not Path(saved).exists() and not Path(saved).parent.exists(), "the plan is deleted after"


def test_an_apply_that_differs_from_the_checked_preview_is_stopped_by_the_engine(
    fake_cli: Path, project: Path, ready_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))
    # Between the checked preview and the update something changed: the update would now replace the
    # cluster. Without the plan that replacement ran unchecked and the command exited 0.
    existing(fake_cli, "jetstream-binderhub")
    script_events(fake_cli, "preview", t.nodegroup_resize())
    script_events(fake_cli, "up", t.cluster_replace())

    with pytest.raises(PlanViolated) as stopped:
        Site.from_files("jetstream2", project, env=ready_env).up("cluster")

    message = str(stopped.value)
    assert "\n" not in message
    assert "no longer matches the preview the guard checked" in message
    assert (
        "pythia-binder-cluster: create-replacement is not allowed by the plan: "
        "no steps were expected for this resource" in message
    )
    assert "jetstream-binderhub up jetstream2` again" in message
    assert stopped.value.exit_code == 1
    assert list(private_tmp.iterdir()) == [], "the plan is removed after a failure too"


def test_outputs_are_wrapped_from_the_sdks_masked_and_plain_reads(
    fake_cli: Path, project: Path, ready_env: dict[str, str], tmp_path: Path
) -> None:
    existing(
        fake_cli,
        "jetstream-binderhub",
        outputs={"cluster_name": "pythia-binder", "kubeconfig": "apiVersion: v1\n"},
        secret=["kubeconfig"],
    )
    site = Site.from_files("jetstream2", project, env=ready_env)
    outputs = site.outputs("cluster")[Layer.CLUSTER]
    assert outputs["cluster_name"] == "pythia-binder"
    assert isinstance(outputs["kubeconfig"], Secret) and outputs["kubeconfig"].reveal() == "apiVersion: v1\n"


def test_a_locked_stack_as_the_cli_reports_it(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    existing(fake_cli, "jetstream-binderhub")
    (fake_cli / "fail-preview.txt").write_text(
        "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or "
        "delete the lock file with `pulumi cancel`."
    )
    with pytest.raises(StackLocked, match="locked by another update"):
        Site.from_files("jetstream2", project, env=ready_env).preview("cluster")


def test_destroy_refuses_a_protected_cluster_from_the_exported_state(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    resource = {
        "urn": t.urn(t.CLUSTER_TYPE, "pythia-binder-cluster"),
        "type": t.CLUSTER_TYPE,
        "protect": True,
    }
    existing(fake_cli, "jetstream-binderhub", resources=[resource])
    (project / "binderhub" / "Pulumi.jetstream2.yaml").unlink()
    with pytest.raises(Exception, match="pythia-binder-cluster is protected"):
        Site.from_files("jetstream2", project, env=ready_env).destroy("cluster")
    assert "destroy" not in commands(fake_cli)


PLANTED_PASSWORD = "planted-robot-token-7f3a"
PLANTED_TOKEN = "ghp_plantedGithubToken0042"


def inline_site(repo_root: Path, tmp_path: Path, env: dict[str, str], **secrets: str) -> Site:
    import yaml

    doc = yaml.safe_load((repo_root / "binderhub" / "Pulumi.jetstream2.yaml").read_text())
    hub = {k.split(":", 1)[1]: v for k, v in doc["config"].items()}
    cluster = yaml.safe_load((repo_root / "Pulumi.jetstream2.yaml").read_text())["config"]
    cluster = {k.split(":", 1)[1]: v for k, v in cluster.items()}
    return Site.from_config(
        "jetstream2", cluster=cluster, hub=hub, hub_secrets=secrets, work_dir=tmp_path / "site", env=env
    )


def test_inline_site_hands_the_program_to_the_cli_and_stores_secrets_through_stdin(
    fake_cli: Path,
    tmp_path: Path,
    ready_env: dict[str, str],
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    script_events(fake_cli, "preview", t.nodegroup_resize())
    site = inline_site(
        repo_root, tmp_path, ready_env, registry_password=PLANTED_PASSWORD, github_token=PLANTED_TOKEN
    )
    site.preview("all")

    assert "name: jetstream-binderhub-hub" in (tmp_path / "site" / "binderhub" / "Pulumi.yaml").read_text()
    previews = [c for c in calls(fake_cli) if c["argv"][0] == "preview"]
    assert len(previews) == 2
    assert all(any(a.startswith("--client=127.0.0.1:") for a in c["argv"]) for c in previews), (
        "inline programs"
    )
    secret_set = [c["argv"] for c in calls(fake_cli) if c["argv"][:2] == ["config", "set"]]
    assert secret_set == [
        ["config", "set", f"jetstream-binderhub-hub:{key}", "--secret", "--stack", "jetstream2"]
        for key in ("registry_password", "github_token")
    ]
    # The stand-in read them from standard input, as `pulumi config set --secret KEY` does.
    stored = json.loads((fake_cli / "config.json").read_text())["jetstream-binderhub-hub/jetstream2"]
    assert stored == {
        "jetstream-binderhub-hub:registry_password": {"value": PLANTED_PASSWORD, "secret": True},
        "jetstream-binderhub-hub:github_token": {"value": PLANTED_TOKEN, "secret": True},
    }
    # ...and no child process saw them on its command line (readable by any local user through `ps`) or
    # in its environment.
    for call in calls(fake_cli):
        seen = " ".join(call["argv"]) + " ".join(call["env"].values())
        assert PLANTED_PASSWORD not in seen and PLANTED_TOKEN not in seen, call["argv"]


def test_a_failed_secret_store_is_one_translated_line_without_the_value(
    fake_cli: Path,
    tmp_path: Path,
    ready_env: dict[str, str],
    repo_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jetstream_binderhub.automation.errors import PassphraseWrong

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (fake_cli / "fail-config.txt").write_text(
        "error: getting stack configuration: incorrect passphrase, please set PULUMI_CONFIG_PASSPHRASE"
    )
    site = inline_site(repo_root, tmp_path, ready_env, registry_password=PLANTED_PASSWORD)
    with pytest.raises(
        PassphraseWrong, match="does not decrypt stack jetstream-binderhub-hub/jetstream2"
    ) as err:
        site.preview("binderhub")
    assert PLANTED_PASSWORD not in str(err.value)
    assert "preview" not in commands(fake_cli), "nothing runs with a secret that was not stored"


def test_env_given_to_the_site_reaches_pulumi_and_never_its_argv(
    fake_cli: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    passphrase = "planted-passphrase-9c1e"
    for name in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "OS_CLOUD", "OS_AUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    env = {**t.READY_ENV, "PULUMI_CONFIG_PASSPHRASE": passphrase}
    script_events(fake_cli, "preview", t.nodegroup_resize())
    Site.from_files("jetstream2", project, env=env).preview("cluster")

    pulumi_calls = [c for c in calls(fake_cli) if c["argv"] != ["version"]]
    assert pulumi_calls, "the stand-in ran"
    for call in pulumi_calls:
        assert call["env"].get("PULUMI_CONFIG_PASSPHRASE") == passphrase, call["argv"]
        assert (
            call["env"].get("OS_APPLICATION_CREDENTIAL_SECRET")
            == t.READY_ENV["OS_APPLICATION_CREDENTIAL_SECRET"]
        )
        assert not any(passphrase in arg for arg in call["argv"])


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="child lookup via /proc (Linux)")
def test_ctrl_c_reaches_pulumi_and_ends_in_a_clean_stop(
    fake_cli: Path, project: Path, ready_env: dict[str, str]
) -> None:
    existing(fake_cli, "jetstream-binderhub")
    script_events(fake_cli, "preview", t.nodegroup_resize())
    (fake_cli / "block-up").write_text("")

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 20
        while not (fake_cli / "running-up").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with pytest.raises(Interrupted, match="stopped cleanly after Ctrl-C") as stopped:
        Site.from_files("jetstream2", project, env=ready_env).up("cluster")

    assert stopped.value.exit_code == 130
    assert any(c["argv"] == ["<SIGINT received>"] for c in calls(fake_cli)), "SIGINT was forwarded to pulumi"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="child lookup via /proc (Linux)")
@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("group", "a Ctrl-C sent to the whole process group (CI, a terminal) already reached pulumi"),
        ("self", "a SIGINT sent to this process alone must be passed on"),
    ],
)
def test_one_ctrl_c_reaches_pulumi_exactly_once(
    fake_cli: Path, project: Path, ready_env: dict[str, str], mode: str, why: str
) -> None:
    import subprocess

    existing(fake_cli, "jetstream-binderhub")
    script_events(fake_cli, "preview", t.nodegroup_resize())
    (fake_cli / "block-up").write_text("")
    # Pulumi keeps running a while after the first SIGINT: a second copy would arrive in this window.
    (fake_cli / "hold-after-sigint").write_text("2.5")
    driver = subprocess.run(
        [sys.executable, str(HERE / "sigint_driver.py"), str(project), mode],
        env={**os.environ, **ready_env},
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group: the group signal reaches nothing else
    )

    assert "stopped cleanly after Ctrl-C" in driver.stdout, driver.stdout + driver.stderr
    received = [c for c in calls(fake_cli) if c["argv"] == ["<SIGINT received>"]]
    assert len(received) == 1, why
