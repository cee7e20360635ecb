"""The library against the real `pulumi` CLI, a local file backend and a passphrase.

Skipped unless `pulumi` is on PATH. The cluster-layer preview also needs OpenStack credentials in the
environment (OS_CLOUD or OS_AUTH_URL + an application credential) and network access for the
provider plugin: it reads the live cloud, read-only. Nothing here creates a cloud resource.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from jetstream_binderhub.automation import Layer, Secret, Site, StackNotFound

pytestmark = [
    pytest.mark.pulumi_cli,
    pytest.mark.skipif(shutil.which("pulumi") is None, reason="needs the pulumi CLI on PATH"),
]

PASSPHRASE = "integration-test-passphrase"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE_FILE", raising=False)
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    # A private PULUMI_HOME: no login, plugins or workspace settings of the user's leak in or out,
    # except the plugin cache, which is reused when there is one.
    home = tmp_path / "pulumi-home"
    home.mkdir()
    user_plugins = Path("~/.pulumi/plugins").expanduser()
    if user_plugins.is_dir():
        (home / "plugins").symlink_to(user_plugins)
    monkeypatch.setenv("PULUMI_HOME", str(home))
    monkeypatch.setenv("PULUMI_SKIP_UPDATE_CHECK", "true")
    return dict(os.environ)


@pytest.fixture
def project(repo_root: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    dest.mkdir()
    # No requirements.txt: with the virtualenv present Pulumi installs nothing, and its `-e ..` would
    # point outside this copy.
    for name in ("Pulumi.yaml", "Pulumi.jetstream2.yaml"):
        shutil.copy(repo_root / name, dest / name)
    shutil.copytree(repo_root / "infra", dest / "infra", ignore=shutil.ignore_patterns("__pycache__"))
    # The project's runtime uses ./.venv: the one this test runs in.
    (dest / ".venv").symlink_to(Path(os.environ.get("VIRTUAL_ENV") or repo_root / ".venv").resolve())
    return dest


def seed_cluster_outputs(project: Path, backend: str) -> None:
    """Give the cluster stack real outputs without a cloud: an inline program that only exports, run in
    the project's own work dir so the stack file gets its encryption salt as `pulumi stack init` does."""
    import pulumi
    from pulumi import automation as auto

    def exports_only() -> None:
        pulumi.export("cluster_name", "pythia-binder")
        pulumi.export("kubeconfig", pulumi.Output.secret("apiVersion: v1\nkind: Config\nusers: []\n"))

    stack = auto.create_or_select_stack(
        "jetstream2",
        project_name="jetstream-binderhub",
        program=exports_only,
        opts=auto.LocalWorkspaceOptions(work_dir=str(project), env_vars={"PULUMI_BACKEND_URL": backend}),
    )
    stack.up(on_output=lambda _line: None)


def test_missing_stack_is_reported_by_the_real_cli(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    site = Site.from_files("jetstream2", project, backend=f"file://{tmp_path / 'state'}", env=env)
    with pytest.raises(StackNotFound, match="no stack jetstream-binderhub/jetstream2"):
        site.outputs(Layer.CLUSTER)


def test_outputs_and_kubeconfig_through_the_real_cli(
    project: Path, env: dict[str, str], tmp_path: Path
) -> None:
    backend = f"file://{tmp_path / 'state'}"
    (tmp_path / "state").mkdir()
    seed_cluster_outputs(project, backend)

    site = Site.from_files("jetstream2", project, backend=backend, env=env)
    outputs = site.outputs(Layer.CLUSTER)[Layer.CLUSTER]

    assert outputs["cluster_name"] == "pythia-binder"
    assert isinstance(outputs["kubeconfig"], Secret)
    assert "apiVersion" not in repr(outputs)
    path = site.write_kubeconfig(tmp_path / "kubeconfig.yaml")
    assert path.read_text().startswith("apiVersion: v1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(
    not (os.environ.get("OS_CLOUD") or os.environ.get("OS_AUTH_URL")),
    reason="the cluster-layer preview reads the live cloud: needs OpenStack credentials",
)
def test_preview_of_the_cluster_layer(project: Path, env: dict[str, str], tmp_path: Path) -> None:
    from jetstream_binderhub.automation.comment import render_comment

    site = Site.from_files("jetstream2", project, backend=f"file://{tmp_path / 'state'}", env=env)
    result = site.preview(Layer.CLUSTER)

    counts = result.counts["cluster"]
    # A fresh stack: template, cluster and one node group (plus the component) are to be created.
    assert counts["create"] >= 4, counts
    assert counts["replace"] == counts["delete"] == 0
    text = render_comment(result.layer_changes, site="jetstream2")
    assert "| `cluster` | " in text
