"""Sites built from config objects: validated up front, stack files written beside the secrets
provider's salt, the same program functions run inline, secrets stored only through Pulumi."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from jetstream_binderhub.automation import Layer, Site
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.stackfile import HUB_PROJECT
from jetstream_binderhub.errors import ConfigError


def shipped(repo_root: Path, path: str, namespace: str) -> dict[str, Any]:
    doc = yaml.safe_load((repo_root / path).read_text())
    return {
        k.removeprefix(f"{namespace}:"): v for k, v in doc["config"].items() if k.startswith(f"{namespace}:")
    }


@pytest.fixture
def cluster_cfg(repo_root: Path) -> dict[str, Any]:
    cfg = shipped(repo_root, "Pulumi.jetstream2.yaml", "jetstream-binderhub")
    cfg["cluster"]["name"] = "workshop"
    return cfg


@pytest.fixture
def hub_cfg(repo_root: Path) -> dict[str, Any]:
    return shipped(repo_root, "binderhub/Pulumi.jetstream2.yaml", HUB_PROJECT)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Sites without a repository keep state under ~: keep this test's ~ in tmp."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_builds_a_working_stack_pair_from_config_objects(
    tmp_path: Path,
    ready_env: dict[str, str],
    cluster_cfg: dict[str, Any],
    hub_cfg: dict[str, Any],
    home: Path,
) -> None:
    from jetstream_binderhub.hub.program import hub_program
    from jetstream_binderhub.infra.program import cluster_program

    stacks = t.FakeStacks(
        existing=set(),
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        },
    )
    model = ClusterStackConfig.model_validate(cluster_cfg)
    site = Site.from_config(
        "workshop",
        cluster=model,
        hub=hub_cfg,
        hub_secrets={"registry_password": "robot-token-123"},
        work_dir=tmp_path / "workshop",
        env=ready_env,
        stacks=stacks,
    )
    result = site.preview()

    cluster_spec = site.spec(Layer.CLUSTER)
    program = cluster_spec.program
    assert isinstance(program, functools.partial) and program.func is cluster_program, (
        "the same program function, run inline"
    )
    assert program.keywords == {"allow_replace": frozenset()}, "no protect lifted without --allow-replace"
    allowing = site.spec(Layer.CLUSTER, allow_replace={"workshop-nodegroup-gpu"}).program
    assert isinstance(allowing, functools.partial)
    assert allowing.keywords == {"allow_replace": frozenset({"workshop-nodegroup-gpu"})}
    hub = site.spec(Layer.BINDERHUB, allow_replace={"ingress-floating-ip"}).program
    assert isinstance(hub, functools.partial) and hub.func is hub_program
    assert hub.keywords == {"allow_replace": frozenset({"ingress-floating-ip"})}
    assert cluster_spec.work_dir == (tmp_path / "workshop" / "cluster").resolve()
    assert cluster_spec.project == "jetstream-binderhub" and cluster_spec.stack == "workshop"
    # no repository: state goes to the documented per-user place
    assert cluster_spec.env["PULUMI_BACKEND_URL"] == f"file://{home / '.jetstream-binderhub' / 'state'}"
    assert (home / ".jetstream-binderhub" / "state").is_dir()

    written = yaml.safe_load((tmp_path / "workshop" / "cluster" / "Pulumi.workshop.yaml").read_text())
    assert written["config"]["jetstream-binderhub:cluster"]["name"] == "workshop"
    hub_file = (tmp_path / "workshop" / "binderhub" / "Pulumi.workshop.yaml").read_text()
    assert "robot-token-123" not in hub_file, "secrets go through Pulumi, never into the file"
    assert stacks.secrets == {f"{HUB_PROJECT}:registry_password": "robot-token-123"}
    # the secret is stored as soon as the hub stack exists, before its program runs
    assert stacks.calls.index(
        ("binderhub", f"set-secret {HUB_PROJECT}:registry_password")
    ) < stacks.calls.index(("binderhub", "preview"))
    assert result.counts["cluster"]["update"] == 1
    assert all(create for _, create in stacks.opened), "missing stacks are created"


def test_rewrite_keeps_pulumis_salt_and_stored_secrets(
    tmp_path: Path, ready_env: dict[str, str], cluster_cfg: dict[str, Any]
) -> None:
    work = tmp_path / "w"
    Site.from_config("workshop", cluster=cluster_cfg, work_dir=work, env=ready_env, stacks=t.FakeStacks())
    path = work / "cluster" / "Pulumi.workshop.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["encryptionsalt"] = "v1:abc:def"
    doc["config"]["openstack:applicationCredentialSecret"] = {"secure": "v1:cipher"}
    # Keys the config no longer has go, whatever their shape: only Pulumi's `secure:` values are kept.
    doc["config"]["jetstream-binderhub:retired_object"] = {"a": 1}
    doc["config"]["jetstream-binderhub:retired_plain"] = "x"
    doc["config"]["jetstream-binderhub:looks_secure"] = {"secure": "v1:c", "extra": 1}
    path.write_text(yaml.safe_dump(doc))

    cluster_cfg["cluster"]["default_worker"]["max_count"] = 2
    Site.from_config("workshop", cluster=cluster_cfg, work_dir=work, env=ready_env, stacks=t.FakeStacks())

    again = yaml.safe_load(path.read_text())
    assert again["encryptionsalt"] == "v1:abc:def"
    assert again["config"]["openstack:applicationCredentialSecret"] == {"secure": "v1:cipher"}
    assert again["config"]["jetstream-binderhub:cluster"]["default_worker"]["max_count"] == 2
    assert not {"retired_object", "retired_plain", "looks_secure"} & {
        k.split(":", 1)[1] for k in again["config"]
    }


def test_invalid_config_is_refused_before_anything_is_written(
    tmp_path: Path, ready_env: dict[str, str], cluster_cfg: dict[str, Any]
) -> None:
    cluster_cfg["cluster"]["control_plane"]["count"] = 2
    with pytest.raises(ConfigError, match="must be odd"):
        Site.from_config(
            "workshop", cluster=cluster_cfg, work_dir=tmp_path / "w", env=ready_env, stacks=t.FakeStacks()
        )
    assert not (tmp_path / "w").exists()


def test_hub_placement_is_checked_against_the_cluster(
    tmp_path: Path, ready_env: dict[str, str], cluster_cfg: dict[str, Any], hub_cfg: dict[str, Any]
) -> None:
    hub_cfg["placement"]["user_node_group"] = "gpu-nodes"
    with pytest.raises(ConfigError, match="placement"):
        Site.from_config(
            "workshop",
            cluster=cluster_cfg,
            hub=hub_cfg,
            work_dir=tmp_path / "w",
            env=ready_env,
            stacks=t.FakeStacks(),
        )


def test_unknown_hub_secret_is_refused(
    tmp_path: Path, ready_env: dict[str, str], cluster_cfg: dict[str, Any], hub_cfg: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="not a secret key of the BinderHub layer"):
        Site.from_config(
            "workshop",
            cluster=cluster_cfg,
            hub=hub_cfg,
            hub_secrets={"registry_pasword": "x"},
            work_dir=tmp_path / "w",
            env=ready_env,
            stacks=t.FakeStacks(),
        )


@pytest.mark.parametrize("name", ["../escape", "..", "a b", "x/../../y"])
def test_a_site_name_pulumi_would_refuse_writes_nothing_anywhere(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ready_env: dict[str, str]
) -> None:
    from jetstream_binderhub.errors import InvalidSiteName

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    cluster = yaml.safe_load((Path(__file__).parents[2] / "Pulumi.jetstream2.yaml").read_text())["config"]
    cluster = {k.split(":", 1)[1]: v for k, v in cluster.items()}

    with pytest.raises(InvalidSiteName, match="is not a valid site name"):
        Site.from_config(name, cluster=cluster, env=ready_env, stacks=t.FakeStacks())
    assert not home.exists(), "no work directory, inside the sites directory or outside it"
    with pytest.raises(InvalidSiteName):
        Site.from_files(name, tmp_path, env=ready_env, stacks=t.FakeStacks())


def test_a_config_model_writes_only_what_the_caller_set(
    tmp_path: Path, ready_env: dict[str, str], cluster_cfg: dict[str, Any]
) -> None:
    model = ClusterStackConfig.model_validate(cluster_cfg)
    Site.from_config("workshop", cluster=model, work_dir=tmp_path / "w", env=ready_env, stacks=t.FakeStacks())

    written = yaml.safe_load((tmp_path / "w" / "cluster" / "Pulumi.workshop.yaml").read_text())["config"]
    cluster = written["jetstream-binderhub:cluster"]
    # Defaults left to the profile keep following the profile: they are not frozen into the file.
    assert "floating_ips" not in cluster and "api_load_balancer" not in cluster
