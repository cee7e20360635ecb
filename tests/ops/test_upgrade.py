"""`upgrade`: drain, wait, apply, restore against a stand-in BinderHub and a recording apply step."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.automation.results import Layer
from jetstream_binderhub.cli import app
from jetstream_binderhub.ops.upgrade import SessionsUnknown, UpgradeError, state_path, upgrade_site
from jetstream_binderhub.ops.verify import read_health
from jetstream_binderhub.yamlio import safe_load

from .fake_binderhub import FakeBinderHub, Script, serving

IMAGE = "ubuntu-jammy-kube-v1.33.2-250626-0848"
HUB_COMMENT = "# Ten m3.large user nodes at six users each."
CLUSTER_COMMENT = "# image (its name carries the Kubernetes version)"


class Stop(Exception):
    """Stands in for Ctrl-C or a failed layer in the middle of a step."""


def health_body(user_pods: int) -> dict[str, Any]:
    return {
        "ok": True,
        "checks": [
            {"service": "JupyterHub API", "ok": True},
            {
                "service": "Pod quota",
                "ok": user_pods == 0,
                "total_pods": user_pods,
                "build_pods": 0,
                "user_pods": user_pods,
                "quota": 0,
                "_ignore_failure": True,
            },
        ],
    }


@pytest.fixture
def hub() -> Iterator[FakeBinderHub]:
    with serving(Script(health_body=health_body(3))) as fake:
        yield fake


def quota(project: Path) -> Any:
    doc = safe_load((project / "binderhub" / "Pulumi.jetstream2.yaml").read_text())
    return doc["config"]["jetstream-binderhub-hub:binderhub"]["limits"].get("total_quota", "absent")


def image(project: Path) -> Any:
    return safe_load((project / "Pulumi.jetstream2.yaml").read_text())["config"][
        "jetstream-binderhub:cluster"
    ].get("image")


class Recorder:
    """The apply step: records each layer with what the files said then; can fail at one call."""

    def __init__(self, project: Path, fail_at: int | None = None) -> None:
        self.project = project
        self.fail_at = fail_at
        self.calls: list[tuple[Layer, bool, Any, Any]] = []

    def __call__(self, layer: Layer, allow_upgrade: bool) -> None:
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            self.fail_at = None
            raise Stop
        self.calls.append((layer, allow_upgrade, quota(self.project), image(self.project)))


def run(
    project: Path,
    hub: FakeBinderHub,
    apply: Callable[[Layer, bool], None],
    *,
    deadline: float = 60.0,
    sessions: list[int] | None = None,
    health: Callable[[], Any] | None = None,
) -> tuple[Any, list[str]]:
    """One upgrade; `sessions` are what /health reports after each sleep (the users leaving)."""
    said: list[str] = []
    now = [1_000_000.0]
    left = list(sessions or [0])

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if left:
            hub.script.health_body = health_body(left.pop(0))

    result = upgrade_site(
        "jetstream2",
        project,
        IMAGE,
        apply=apply,
        read_health=health or (lambda: read_health(hub.url)),
        deadline_minutes=deadline,
        say=said.append,
        clock=lambda: now[0],
        sleep=sleep,
    )
    return result, said


def test_drains_waits_for_sessions_applies_and_restores(project: Path, hub: FakeBinderHub) -> None:
    apply = Recorder(project)
    result, said = run(project, hub, apply, sessions=[1, 0])
    assert [(c[0], c[1]) for c in apply.calls] == [
        (Layer.BINDERHUB, False),
        (Layer.CLUSTER, True),
        (Layer.BINDERHUB, False),
    ]
    # The hub was applied drained, the cluster with the new image, then the quota came back.
    assert apply.calls[0][2] == 0
    assert apply.calls[1][3] == IMAGE
    assert apply.calls[2][2] == 60 == quota(project)
    assert [line for line in said if line.startswith("2/4")] == [
        "2/4 wait: 3 sessions running, 60.0 min to the deadline",
        "2/4 wait: 1 sessions running, 59.5 min to the deadline",
        "2/4 wait: 0 sessions running",
    ]
    assert result.sessions_left == 0 and not result.deadline_reached and result.resumed_at is None
    assert not state_path(project, "jetstream2").exists()


def test_stack_files_keep_their_comments(project: Path, hub: FakeBinderHub) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    cluster_file = project / "Pulumi.jetstream2.yaml"
    hub_before = hub_file.read_text()
    cluster_before = cluster_file.read_text()
    run(project, hub, Recorder(project))
    assert hub_file.read_text() == hub_before  # drained and restored: byte for byte what the user wrote
    cluster_after = cluster_file.read_text()
    assert CLUSTER_COMMENT in cluster_after and HUB_COMMENT in hub_before
    assert cluster_after.count("#") == cluster_before.count("#")
    assert f"image: {IMAGE}" in cluster_after


@pytest.mark.parametrize(
    ("step", "fail_apply_at", "rerun_layers"),
    [
        ("drain", 0, [Layer.BINDERHUB, Layer.CLUSTER, Layer.BINDERHUB]),
        ("wait", None, [Layer.CLUSTER, Layer.BINDERHUB]),
        ("apply", 1, [Layer.CLUSTER, Layer.BINDERHUB]),
        ("restore", 2, [Layer.BINDERHUB]),
    ],
)
def test_a_rerun_resumes_at_the_interrupted_step(
    project: Path, hub: FakeBinderHub, step: str, fail_apply_at: int | None, rerun_layers: list[Layer]
) -> None:
    def interrupted_health() -> Any:
        raise Stop

    with pytest.raises(Stop):
        run(
            project,
            hub,
            Recorder(project, fail_at=fail_apply_at),
            health=interrupted_health if step == "wait" else None,
        )
    state = state_path(project, "jetstream2")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    if step in ("wait", "apply"):
        assert quota(project) == 0  # drained: only the state file remembers the 60
    apply = Recorder(project)
    result, said = run(project, hub, apply)
    assert said[0].startswith(f"resuming the upgrade of jetstream2 to {IMAGE} at {step}")
    assert [c[0] for c in apply.calls] == rerun_layers
    assert result.resumed_at == step
    assert quota(project) == 60 and image(project) == IMAGE
    assert not state.exists()


def test_the_deadline_applies_with_sessions_still_running(project: Path, hub: FakeBinderHub) -> None:
    apply = Recorder(project)
    result, said = run(project, hub, apply, deadline=1, sessions=[2, 2, 2, 2])
    assert result.deadline_reached and result.sessions_left == 2
    assert [line for line in said if line.startswith("2/4")] == [
        "2/4 wait: 3 sessions running, 1.0 min to the deadline",
        "2/4 wait: 2 sessions running, 0.5 min to the deadline",
        "2/4 wait: deadline reached with 2 sessions running: the upgrade ends them",
    ]
    assert [c[0] for c in apply.calls] == [Layer.BINDERHUB, Layer.CLUSTER, Layer.BINDERHUB]


def test_an_absent_quota_is_removed_again(project: Path, hub: FakeBinderHub) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    hub_file.write_text(hub_file.read_text().replace("      total_quota: 60\n", ""))
    apply = Recorder(project)
    result, _ = run(project, hub, apply)
    assert apply.calls[0][2] == 0
    assert quota(project) == "absent" and result.restored_total_quota is None


def test_an_unreachable_hub_stops_with_the_state_kept(project: Path, hub: FakeBinderHub) -> None:
    url = hub.url
    hub.close()
    with pytest.raises(SessionsUnknown, match=r"cannot count the sessions: cannot connect to 127\.0\.0\.1"):
        run(project, hub, Recorder(project), health=lambda: read_health(url, timeout=5))
    assert state_path(project, "jetstream2").exists() and quota(project) == 0


def test_a_different_image_while_one_is_unfinished_is_refused(project: Path, hub: FakeBinderHub) -> None:
    with pytest.raises(Stop):
        run(project, hub, Recorder(project, fail_at=1))
    with pytest.raises(
        UpgradeError, match=r"--image: an upgrade of jetstream2 to ubuntu-jammy-kube-v1\.33\.2"
    ):
        upgrade_site(
            "jetstream2",
            project,
            "ubuntu-noble-kube-v1.34.1",
            apply=Recorder(project),
            read_health=lambda: read_health(hub.url),
        )


def test_cli_refuses_a_bad_image_before_draining(project: Path) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    before = hub_file.read_text()
    result = CliRunner().invoke(
        app, ["upgrade", "jetstream2", "--image", "ubuntu-jammy", "--yes", "-C", str(project)]
    )
    assert result.exit_code == 2
    assert result.output.startswith(
        "error: --image (cluster.image): 'ubuntu-jammy' carries no Kubernetes version"
    )
    assert len(result.output.strip().splitlines()) == 1
    assert hub_file.read_text() == before and not state_path(project, "jetstream2").exists()
