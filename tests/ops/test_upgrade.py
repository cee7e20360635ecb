"""`upgrade`: preflight, drain, wait, apply, rollout, restore against a stand-in BinderHub, a stand-in
Kubernetes API server and a recording apply step."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.automation.results import Layer
from jetstream_binderhub.cli import app
from jetstream_binderhub.ops.rollout import RolloutTimedOut, read_node_list
from jetstream_binderhub.ops.upgrade import SessionsUnknown, UpgradeError, state_path, upgrade_site
from jetstream_binderhub.ops.verify import read_health
from jetstream_binderhub.yamlio import safe_load

from . import fake_kube
from .fake_binderhub import FakeBinderHub, Script, serving
from .fake_kube import OLD, Answer, FakeKube, node, node_list, recorded, rolled

CURRENT = "ubuntu-jammy-kube-v1.33.2-250626-0848"
"""The jetstream2 profile's default image: the shipped site runs it."""
IMAGE = "ubuntu-noble-kube-v1.34.1-251020-1200"
NEW = "v1.34.1"
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


@pytest.fixture
def kube() -> Iterator[FakeKube]:
    """A cluster on the old version whose nodes are all replaced by new ones on the new version once the
    cluster layer is applied: the rollout step finishes at its first look."""
    with fake_kube.serving(recorded(), rolls=(rolled(NEW),)) as fake:
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
    kube: FakeKube,
    apply: Callable[[Layer, bool], None],
    *,
    image: str | None = IMAGE,
    chart_version: str | None = None,
    deadline: float | None = 60.0,
    rollout: float | None = None,
    sessions: list[int] | None = None,
    health: Callable[[], Any] | None = None,
    nodes: Callable[[], Any] | None = None,
    preflight: Callable[[str | None, str | None], None] | None = None,
    start: float = 1_000_000.0,
) -> tuple[Any, list[str]]:
    """One upgrade starting at `start` on the clock; `sessions` are what /health reports after each
    sleep (the users leaving)."""
    said: list[str] = []
    now = [start]
    left = list(sessions or [0])
    kubeconfig = kube.kubeconfig(project / "kubeconfig")

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if left:
            hub.script.health_body = health_body(left.pop(0))

    def applying(layer: Layer, allow_upgrade: bool) -> None:
        apply(layer, allow_upgrade)
        if layer is Layer.CLUSTER:
            kube.cluster_applied()

    result = upgrade_site(
        "jetstream2",
        project,
        image,
        chart_version=chart_version,
        apply=applying,
        read_health=health or (lambda: read_health(hub.url)),
        read_nodes=nodes or (lambda: read_node_list(kubeconfig, timeout_seconds=5)),
        preflight=preflight,
        deadline_minutes=deadline,
        rollout_minutes=rollout,
        say=said.append,
        clock=lambda: now[0],
        sleep=sleep,
    )
    return result, said


def test_drains_waits_for_sessions_applies_and_restores(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    apply = Recorder(project)
    result, said = run(project, hub, kube, apply, sessions=[1, 0])
    assert [(c[0], c[1]) for c in apply.calls] == [
        (Layer.BINDERHUB, False),
        (Layer.CLUSTER, True),
        (Layer.BINDERHUB, False),
    ]
    # The hub was applied drained, the cluster with the new image, then the quota came back.
    assert apply.calls[0][2] == 0
    assert apply.calls[1][3] == IMAGE
    assert apply.calls[2][2] == 60 == quota(project)
    assert [line for line in said if line.startswith("2/5")] == [
        "2/5 wait: 3 sessions running, 60.0 min to the deadline",
        "2/5 wait: 1 sessions running, 59.5 min to the deadline",
        "2/5 wait: 0 sessions running",
    ]
    assert result.sessions_left == 0 and not result.deadline_reached and result.resumed_at is None
    assert not state_path(project, "jetstream2").exists()


def test_stack_files_keep_their_comments(project: Path, hub: FakeBinderHub, kube: FakeKube) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    cluster_file = project / "Pulumi.jetstream2.yaml"
    hub_before = hub_file.read_text()
    cluster_before = cluster_file.read_text()
    run(project, hub, kube, Recorder(project))
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
    project: Path,
    hub: FakeBinderHub,
    kube: FakeKube,
    step: str,
    fail_apply_at: int | None,
    rerun_layers: list[Layer],
) -> None:
    def interrupted_health() -> Any:
        raise Stop

    with pytest.raises(Stop):
        run(
            project,
            hub,
            kube,
            Recorder(project, fail_at=fail_apply_at),
            health=interrupted_health if step == "wait" else None,
        )
    state = state_path(project, "jetstream2")
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    if step in ("wait", "apply"):
        assert quota(project) == 0  # drained: only the state file remembers the 60
    apply = Recorder(project)
    result, said = run(project, hub, kube, apply)
    assert said[0].startswith(f"resuming the upgrade of jetstream2 to {IMAGE} at {step}")
    assert [c[0] for c in apply.calls] == rerun_layers
    assert result.resumed_at == step
    assert quota(project) == 60 and image(project) == IMAGE
    assert not state.exists()


def test_the_deadline_applies_with_sessions_still_running(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    apply = Recorder(project)
    result, said = run(project, hub, kube, apply, deadline=1, sessions=[2, 2, 2, 2])
    assert result.deadline_reached and result.sessions_left == 2
    assert [line for line in said if line.startswith("2/5")] == [
        "2/5 wait: 3 sessions running, 1.0 min to the deadline",
        "2/5 wait: 2 sessions running, 0.5 min to the deadline",
        "2/5 wait: deadline reached with 2 sessions running: the upgrade ends them",
    ]
    assert [c[0] for c in apply.calls] == [Layer.BINDERHUB, Layer.CLUSTER, Layer.BINDERHUB]


def test_an_absent_quota_is_removed_again(project: Path, hub: FakeBinderHub, kube: FakeKube) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    hub_file.write_text(hub_file.read_text().replace("      total_quota: 60\n", ""))
    apply = Recorder(project)
    result, _ = run(project, hub, kube, apply)
    assert apply.calls[0][2] == 0
    assert quota(project) == "absent" and result.restored_total_quota is None


def test_an_unreachable_hub_stops_with_the_state_kept(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    url = hub.url
    hub.close()
    with pytest.raises(SessionsUnknown, match=r"cannot count the sessions: cannot connect to 127\.0\.0\.1"):
        run(project, hub, kube, Recorder(project), health=lambda: read_health(url, timeout=5))
    assert state_path(project, "jetstream2").exists() and quota(project) == 0


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        (
            "image",
            "ubuntu-noble-kube-v1.34.2",
            r"--image: an upgrade of jetstream2 to ubuntu-noble-kube-v1\.34\.1",
        ),
        (
            "chart_version",
            "0.17.0",
            r"--chart-version: an upgrade of jetstream2 to ubuntu-noble-kube-v1\.34\.1",
        ),
    ],
)
def test_a_different_target_while_one_is_unfinished_is_refused_naming_the_state_file(
    project: Path, hub: FakeBinderHub, kube: FakeKube, option: str, value: str, message: str
) -> None:
    with pytest.raises(Stop):
        run(project, hub, kube, Recorder(project, fail_at=1))
    state = state_path(project, "jetstream2")
    before = state.read_text()
    with pytest.raises(UpgradeError, match=message) as refused:
        if option == "image":
            run(project, hub, kube, Recorder(project), image=value)
        else:
            run(project, hub, kube, Recorder(project), chart_version=value)
    assert str(state) in str(refused.value) and f"re-run with --image {IMAGE} to finish it first" in str(
        refused.value
    )
    assert state.read_text() == before


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


# --- what is refused before anyone is drained ------------------------------------------------------


def cli(project: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["upgrade", "jetstream2", *args, "--yes", "-C", str(project)])


@pytest.fixture
def ready_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine has what applying needs (the Pulumi CLI, login, passphrase, credentials): `upgrade`
    checks it on every run before it reads the nodes."""
    from jetstream_binderhub.automation import testing as t

    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", t.FakeStacks)
    for name, value in t.READY_ENV.items():
        monkeypatch.setenv(name, value)


def untouched(project: Path) -> dict[str, str]:
    return {
        "hub": (project / "binderhub" / "Pulumi.jetstream2.yaml").read_text(),
        "cluster": (project / "Pulumi.jetstream2.yaml").read_text(),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--image", CURRENT],
            f"error: --image: jetstream2 already runs {CURRENT} and chart 0.16.0: nothing to upgrade, nothing changed",
        ),
        (
            ["--image", CURRENT, "--chart-version", "0.16.0"],
            f"error: --image: jetstream2 already runs {CURRENT} and chart 0.16.0: nothing to upgrade, nothing changed",
        ),
        (
            [],
            "error: upgrade needs --image IMAGE, --chart-version VERSION or both: the only two settings an "
            "upgrade carries to a running cluster",
        ),
        (
            ["--chart-version", "v0.17"],
            "error: --chart-version (cluster.capi_helm_chart_version): 'v0.17' is not an exact version: three "
            "numbers without a 'v', e.g. 0.16.0 (the capi_helm_chart_version label of the cloud's templates)",
        ),
        (
            # Autoscaling is on in the shipped site: the chart must stay the cloud's own.
            ["--chart-version", "0.17.0"],
            "error: --chart-version (cluster.capi_helm_chart_version): '0.17.0' differs from the '0.16.0' that "
            "jetstream2's own templates use; the cluster autoscaler only works when they match.",
        ),
        (["--image", IMAGE, "--deadline", "-1"], "error: --deadline: must be 0 or more minutes, got -1"),
        (
            ["--image", IMAGE, "--rollout-timeout", "-5"],
            "error: --rollout-timeout: must be 0 or more minutes, got -5",
        ),
    ],
)
def test_cli_refuses_a_no_op_and_bad_options_in_one_line_with_nothing_changed(
    project: Path, args: list[str], message: str
) -> None:
    before = untouched(project)
    result = cli(project, *args, "--skip-preflight")
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message), result.output
    assert len(result.output.strip().splitlines()) == 1
    assert untouched(project) == before and not state_path(project, "jetstream2").exists()


@pytest.mark.usefixtures("ready_machine")
def test_cli_without_a_kubeconfig_stops_before_draining(project: Path, tmp_path: Path) -> None:
    before = untouched(project)
    missing = tmp_path / "absent.yaml"
    result = cli(project, "--image", IMAGE, "--skip-preflight", "--kubeconfig", str(missing))
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: no kubeconfig at {missing}: write it with `jetstream-binderhub kubeconfig SITE` (or pass --kubeconfig)"
    )
    assert untouched(project) == before and not state_path(project, "jetstream2").exists()


@pytest.mark.usefixtures("ready_machine")
@pytest.mark.parametrize(
    ("answer", "exit_code", "message"),
    [
        (
            Answer(status=401),
            5,
            r"error: the API server at http://127\.0\.0\.1:\d+ refused the kubeconfig's credentials \(401\); write a "
            r"fresh kubeconfig with `jetstream-binderhub kubeconfig SITE --force`",
        ),
        (
            Answer(status=403),
            5,
            r"error: the kubeconfig's user may not list nodes at http://127\.0\.0\.1:\d+ \(403\); use the "
            r"cluster's admin kubeconfig",
        ),
    ],
)
def test_cli_refused_credentials_stop_before_draining_in_one_line(
    project: Path, tmp_path: Path, answer: Answer, exit_code: int, message: str
) -> None:
    before = untouched(project)
    with fake_kube.serving(answer) as kube:
        config = kube.kubeconfig(tmp_path / "k")
        result = cli(project, "--image", IMAGE, "--skip-preflight", "--kubeconfig", str(config))
    assert result.exit_code == exit_code, result.output
    assert re.fullmatch(message + ".*", result.output.strip())
    assert len(result.output.strip().splitlines()) == 1 and fake_kube.TOKEN not in result.output
    assert untouched(project) == before and not state_path(project, "jetstream2").exists()


def test_an_unreachable_or_silent_api_server_is_one_line_naming_what_to_check(tmp_path: Path) -> None:
    import socket

    from jetstream_binderhub.ops.rollout import ClusterTimedOut, ClusterUnreachable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = FakeKube(url=f"http://127.0.0.1:{port}")
    with pytest.raises(
        ClusterUnreachable,
        match=rf"cannot reach the cluster's API server at http://127\.0\.0\.1:{port} \(\w+\); check the network "
        r"and that the kubeconfig is this site's",
    ) as unreachable:
        read_node_list(down.kubeconfig(tmp_path / "k"), timeout_seconds=2)
    assert unreachable.value.exit_code == 14
    with (
        fake_kube.serving(Answer(stall_seconds=3)) as silent,
        pytest.raises(
            ClusterTimedOut,
            match=r"the API server at http://127\.0\.0\.1:\d+ did not answer within 0\.5 s; check the network "
            r"and the cluster's API load balancer",
        ) as timed_out,
    ):
        read_node_list(silent.kubeconfig(tmp_path / "k2"), timeout_seconds=0.5)
    assert timed_out.value.exit_code == 13


@pytest.mark.usefixtures("ready_machine")
def test_cli_runs_preflight_with_the_new_image_first_and_stops_on_a_shortfall(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jetstream_binderhub.ops import preflight

    asked: list[Any] = []

    def short(site: str, project_dir: Path, **kwargs: Any) -> preflight.PreflightResult:
        asked.append(kwargs["upgrade_to"])
        need = preflight.Need(
            instances=13,
            cores=0,
            ram_mb=0,
            volumes=0,
            gigabytes=0,
            floating_ips=0,
            load_balancers=0,
            security_groups=0,
            explanation={},
        )
        check = preflight.Check(
            area="image", name="image", ok=False, message=f"image {IMAGE} is not on the cloud"
        )
        return preflight.PreflightResult(site=site, project_id="p", auth_url="", need=need, checks=[check])

    monkeypatch.setattr(preflight, "preflight_site", short)
    before = untouched(project)
    result = cli(project, "--image", IMAGE)
    assert result.exit_code == 16
    assert asked == [(IMAGE, None)]
    assert f"error: preflight: image image: image {IMAGE} is not on the cloud" in result.output
    assert "nothing was drained" in result.output
    assert untouched(project) == before and not state_path(project, "jetstream2").exists()


def test_preflight_runs_before_the_drain_on_a_fresh_run_only(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    asked: list[tuple[str | None, str | None]] = []
    apply = Recorder(project, fail_at=1)
    with pytest.raises(Stop):
        run(project, hub, kube, apply, preflight=lambda image, chart: asked.append((image, chart)))
    assert asked == [(IMAGE, None)] and len(apply.calls) == 1
    run(project, hub, kube, Recorder(project), preflight=lambda image, chart: asked.append((image, chart)))
    assert asked == [(IMAGE, None)]  # the re-run resumes: the users were already turned away


# --- chart version ---------------------------------------------------------------------------------


def fixed_size_site(project: Path) -> None:
    """The shipped site without autoscaling: then its chart version may differ from the cloud's."""
    path = project / "Pulumi.jetstream2.yaml"
    text = path.read_text()
    text = text.replace(
        "        max_count: 10\n        autoscale: true\n", "        max_count: 1\n        autoscale: false\n"
    )
    text = text.replace("    autoscaling: true\n", "    autoscaling: false\n")
    path.write_text(text)


def chart(project: Path) -> Any:
    return safe_load((project / "Pulumi.jetstream2.yaml").read_text())["config"][
        "jetstream-binderhub:cluster"
    ].get("capi_helm_chart_version")


def rollout_lines(said: list[str]) -> list[str]:
    return [line for line in said if line.startswith("4/5")]


def restored_after_the_rollout(said: list[str]) -> bool:
    done = next(i for i, line in enumerate(said) if line.startswith("4/5 rollout: no old node left"))
    return done < next(i for i, line in enumerate(said) if line.startswith("5/5 restore"))


# The recorded cluster while Cluster API replaces its nodes on the same Kubernetes version (a chart
# upgrade, a rebuilt image): the control plane and default-worker first, then the user group, then gpu.
SAME_VERSION_ROLL = (recorded(replaced=2), recorded(replaced=5), rolled(OLD))
SAME_VERSION_LINES = [
    "4/5 rollout: control-plane: 1/1 new and Ready",
    "4/5 rollout: default-worker: 1/1 new and Ready",
    "4/5 rollout: gpu: 0/1 new and Ready (1 old node left)",
    "4/5 rollout: user-m3-large: 0/3 new and Ready (3 old nodes left)",
    "4/5 rollout: user-m3-large: 3/3 new and Ready",
    "4/5 rollout: gpu: 1/1 new and Ready",
    "4/5 rollout: no old node left; all 6 nodes are Ready",
]


def test_a_chart_version_alone_waits_until_every_old_node_is_replaced(
    project: Path, hub: FakeBinderHub
) -> None:
    fixed_size_site(project)
    apply = Recorder(project)
    # Every node runs the same kubelet before, during and after: only the nodes' names tell.
    with fake_kube.serving(recorded(), rolls=SAME_VERSION_ROLL) as kube:
        result, said = run(project, hub, kube, apply, image=None, chart_version="0.17.0")
    assert [c[0] for c in apply.calls] == [Layer.BINDERHUB, Layer.CLUSTER, Layer.BINDERHUB]
    assert chart(project) == "0.17.0" and image(project) is None
    assert (
        f"3/5 apply: cluster.capi_helm_chart_version -> 0.17.0 in {project / 'Pulumi.jetstream2.yaml'}; "
        "applying cluster (rolls every node group)"
    ) in said
    assert rollout_lines(said) == SAME_VERSION_LINES
    assert restored_after_the_rollout(said) and result.target_version == OLD
    assert said[-1] == "upgraded jetstream2 to chart 0.17.0"


def test_a_rebuilt_image_of_the_same_kubernetes_waits_until_every_old_node_is_replaced(
    project: Path, hub: FakeBinderHub
) -> None:
    rebuilt = "ubuntu-jammy-kube-v1.33.2-251101-0900"
    with fake_kube.serving(recorded(), rolls=SAME_VERSION_ROLL) as kube:
        result, said = run(project, hub, kube, Recorder(project), image=rebuilt)
    assert image(project) == rebuilt == result.image and result.target_version == OLD
    assert rollout_lines(said) == SAME_VERSION_LINES
    assert restored_after_the_rollout(said) and quota(project) == 60


def test_an_apply_interrupted_while_nodes_roll_still_waits_for_the_old_nodes_on_the_rerun(
    project: Path, hub: FakeBinderHub
) -> None:
    fixed_size_site(project)
    first = Recorder(project)
    with fake_kube.serving(recorded(), rolls=SAME_VERSION_ROLL[1:]) as kube:

        def interrupted(layer: Layer, allow_upgrade: bool) -> None:
            if layer is Layer.CLUSTER:
                # Cluster API had already replaced two nodes when the apply was cut short.
                kube.script = [Answer(body=recorded(replaced=2))]
                raise Stop
            first(layer, allow_upgrade)

        with pytest.raises(Stop):
            run(project, hub, kube, interrupted, image=None, chart_version="0.17.0")
        state = safe_load(state_path(project, "jetstream2").read_text())
        assert state["old_nodes"] == sorted(item["metadata"]["name"] for item in recorded()["items"])
        result, said = run(project, hub, kube, Recorder(project), image=None, rollout=10)
    assert result.resumed_at == "apply"
    assert rollout_lines(said) == [
        "4/5 rollout: control-plane: 1/1 new and Ready",
        "4/5 rollout: default-worker: 1/1 new and Ready",
        "4/5 rollout: gpu: 0/1 new and Ready (1 old node left)",
        "4/5 rollout: user-m3-large: 3/3 new and Ready",
        "4/5 rollout: gpu: 1/1 new and Ready",
        "4/5 rollout: no old node left; all 6 nodes are Ready",
    ]
    assert restored_after_the_rollout(said) and quota(project) == 60


def test_an_image_and_a_chart_version_together(project: Path, hub: FakeBinderHub, kube: FakeKube) -> None:
    fixed_size_site(project)
    result, said = run(project, hub, kube, Recorder(project), chart_version="0.17.0")
    assert chart(project) == "0.17.0" and image(project) == IMAGE
    assert said[-1] == f"upgraded jetstream2 to {IMAGE} and chart 0.17.0"
    assert result.target_version == NEW


# --- following the rollout -------------------------------------------------------------------------


ROLLING = [
    recorded(),  # before the drain: the API answers, every node on the old version
    # When the apply step starts: the nodes whose replacement the rollout waits for.
    node_list(
        node("control-plane", "cp-old", "v1.33.2"),
        node("default-worker", "dw-old", "v1.33.2"),
        node("user-m3-large", "user-old-1", "v1.33.2"),
        node("user-m3-large", "user-old-2", "v1.33.2"),
        node("gpu", "gpu-old", "v1.33.2"),
    ),
    # The control plane adds its new server first (maxSurge 1); the user group loses one node first
    # (maxSurge 0, maxUnavailable 1); default-worker and gpu not started.
    node_list(
        node("control-plane", "cp-old", "v1.33.2"),
        node("control-plane", "cp-new", NEW, ready=False),
        node("default-worker", "dw-old", "v1.33.2"),
        node("user-m3-large", "user-old-1", "v1.33.2"),
        node("user-m3-large", "user-old-2", "v1.33.2"),
        node("gpu", "gpu-old", "v1.33.2"),
    ),
    # The user group's first replacement joined; default-worker (min 1) has lost its only node.
    node_list(
        node("control-plane", "cp-new", NEW),
        node("user-m3-large", "user-new-1", NEW),
        node("user-m3-large", "user-old-2", "v1.33.2"),
        node("gpu", "gpu-old", "v1.33.2"),
    ),
    # Every node on the new version, one of them not Ready yet; default-worker still has none.
    node_list(
        node("control-plane", "cp-new", NEW),
        node("user-m3-large", "user-new-1", NEW),
        node("user-m3-large", "user-new-2", NEW, ready=False),
        node("gpu", "gpu-new", NEW),
    ),
    # Every node new and Ready, but default-worker below its floor: its replacement is still joining.
    node_list(
        node("control-plane", "cp-new", NEW),
        node("user-m3-large", "user-new-1", NEW),
        node("user-m3-large", "user-new-2", NEW),
        node("gpu", "gpu-new", NEW),
    ),
    node_list(
        node("control-plane", "cp-new", NEW),
        node("default-worker", "dw-new", NEW),
        node("user-m3-large", "user-new-1", NEW),
        node("user-m3-large", "user-new-2", NEW),
        node("gpu", "gpu-new", NEW),
    ),
]


def test_the_rollout_is_followed_per_group_until_every_node_is_new_and_ready(
    project: Path, hub: FakeBinderHub
) -> None:
    apply = Recorder(project)
    with fake_kube.serving(*ROLLING) as kube:
        result, said = run(project, hub, kube, apply)
    assert rollout_lines(said) == [
        "4/5 rollout: control-plane: 0/2 new on v1.34.1 and Ready (1 old node left, 1 NotReady)",
        "4/5 rollout: default-worker: 0/1 new on v1.34.1 and Ready (1 old node left)",
        "4/5 rollout: gpu: 0/1 new on v1.34.1 and Ready (1 old node left)",
        "4/5 rollout: user-m3-large: 0/2 new on v1.34.1 and Ready (2 old nodes left)",
        "4/5 rollout: control-plane: 1/1 new on v1.34.1 and Ready",
        "4/5 rollout: default-worker: 0/0 new on v1.34.1 and Ready (1 missing below its minimum of 1)",
        "4/5 rollout: user-m3-large: 1/2 new on v1.34.1 and Ready (1 old node left)",
        "4/5 rollout: gpu: 1/1 new on v1.34.1 and Ready",
        "4/5 rollout: user-m3-large: 1/2 new on v1.34.1 and Ready (1 NotReady)",
        "4/5 rollout: user-m3-large: 2/2 new on v1.34.1 and Ready",
        "4/5 rollout: default-worker: 1/1 new on v1.34.1 and Ready",
        "4/5 rollout: no old node left; all 5 nodes run v1.34.1 and are Ready",
    ]
    # Read with the kubeconfig's credentials: before the drain, when the apply starts, then once per poll.
    assert len(kube.requests) == 7 and {auth for _, auth in kube.requests} == {f"Bearer {fake_kube.TOKEN}"}
    assert restored_after_the_rollout(said)
    assert [c[0] for c in apply.calls][-1] is Layer.BINDERHUB and result.target_version == NEW


def test_a_rollout_past_its_timeout_fails_in_one_line_naming_the_groups_still_rolling_and_resumes(
    project: Path, hub: FakeBinderHub
) -> None:
    stuck = ROLLING[3]
    with fake_kube.serving(*ROLLING[:2], stuck) as kube, pytest.raises(RolloutTimedOut) as timed_out:
        run(project, hub, kube, Recorder(project), rollout=1)
    message = str(timed_out.value)
    assert message.startswith(
        "rollout: not finished after 1 min, still rolling: default-worker: 0/0 new on v1.34.1 and Ready (1 "
        "missing below its minimum of 1); gpu: 0/1 new on v1.34.1 and Ready (1 old node left); user-m3-large: "
        "1/2 new on v1.34.1 and Ready (1 old node left). Launches stay drained"
    )
    assert "\n" not in message and timed_out.value.exit_code == 13
    state = state_path(project, "jetstream2")
    assert str(state) in message and quota(project) == 0 and image(project) == IMAGE
    # A re-run with a longer timeout follows the rollout again, then restores the quota.
    apply = Recorder(project)
    with fake_kube.serving(stuck, ROLLING[-1]) as kube:
        result, said = run(project, hub, kube, apply, rollout=30)
    assert said[0].startswith(f"resuming the upgrade of jetstream2 to {IMAGE} at rollout")
    assert "4/5 rollout: the timeout is now 30 min from the start of the rollout" in said
    assert "4/5 rollout: no old node left; all 5 nodes run v1.34.1 and are Ready" in said
    assert [c[0] for c in apply.calls] == [Layer.BINDERHUB] and quota(project) == 60
    assert result.resumed_at == "rollout" and not state.exists()


def test_an_interrupted_rollout_resumes_there(project: Path, hub: FakeBinderHub, kube: FakeKube) -> None:
    reads = [0]
    kubeconfig = kube.kubeconfig(project / "kubeconfig")

    def interrupted() -> Any:
        reads[0] += 1
        if reads[0] == 3:  # the first read of the rollout step (after the drain's and the apply's)
            raise Stop
        return read_node_list(kubeconfig)

    with pytest.raises(Stop):
        run(project, hub, kube, Recorder(project), nodes=interrupted)
    apply = Recorder(project)
    result, said = run(project, hub, kube, apply)
    assert said[0].startswith(f"resuming the upgrade of jetstream2 to {IMAGE} at rollout")
    assert result.resumed_at == "rollout" and [c[0] for c in apply.calls] == [Layer.BINDERHUB]


# --- a re-run with another deadline ------------------------------------------------------------------


def test_a_rerun_in_the_wait_uses_the_new_deadline_counted_from_the_waits_start(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    polls = [0]

    def health_then_stop() -> Any:
        polls[0] += 1
        if polls[0] == 3:
            raise Stop
        return read_health(hub.url)

    with pytest.raises(Stop):
        run(project, hub, kube, Recorder(project), deadline=60, sessions=[3, 3], health=health_then_stop)
    # Re-run two minutes after the wait started: 10 minutes from its start leave 8.
    result, said = run(
        project, hub, kube, Recorder(project), deadline=10, sessions=[0], start=1_000_000.0 + 120
    )
    assert [line for line in said if line.startswith("2/5")] == [
        "2/5 wait: the deadline is now 10 min from the start of the wait",
        "2/5 wait: 3 sessions running, 8.0 min to the deadline",
        "2/5 wait: 0 sessions running",
    ]
    assert result.resumed_at == "wait"


def test_a_rerun_without_a_deadline_keeps_the_recorded_one(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    with pytest.raises(Stop):
        run(project, hub, kube, Recorder(project, fail_at=1), deadline=1, sessions=[2])
    state = safe_load(state_path(project, "jetstream2").read_text())
    assert state["wait_minutes"] == 1
    result, said = run(project, hub, kube, Recorder(project), deadline=None)
    assert result.resumed_at == "apply"
    assert not any("the deadline is now" in line for line in said)


def test_a_blip_of_the_api_server_during_the_rollout_is_waited_out(project: Path, hub: FakeBinderHub) -> None:
    # While the control plane rolls, its load balancer changes members: a read may fail in between.
    with fake_kube.serving(*ROLLING[:3], Answer(status=503), Answer(status=503), ROLLING[-1]) as kube:
        result, said = run(project, hub, kube, Recorder(project))
    rollout = [line for line in said if line.startswith("4/5")]
    assert rollout[4].startswith(
        "4/5 rollout: cannot read the nodes now, trying again every 30 s: the API server at http://127.0.0.1:"
    )
    assert rollout[5:7] == [
        "4/5 rollout: the nodes can be read again",
        "4/5 rollout: control-plane: 1/1 new on v1.34.1 and Ready",
    ]
    assert rollout[-1] == "4/5 rollout: no old node left; all 5 nodes run v1.34.1 and are Ready"
    assert sum("cannot read the nodes" in line for line in said) == 1
    assert quota(project) == 60 and result.target_version == NEW


def test_a_rollout_whose_nodes_cannot_be_read_times_out_saying_so(project: Path, hub: FakeBinderHub) -> None:
    unreadable = r"rollout: not finished after 1 min, the nodes could not be read \(the API server at "
    with (
        fake_kube.serving(*ROLLING[:2], Answer(status=503)) as kube,
        pytest.raises(RolloutTimedOut, match=unreadable + r"http://127\.0\.0\.1:\d+ answered HTTP 503"),
    ):
        run(project, hub, kube, Recorder(project), rollout=1)
    assert quota(project) == 0 and state_path(project, "jetstream2").exists()


def test_refused_credentials_during_the_rollout_stop_at_once(project: Path, hub: FakeBinderHub) -> None:
    from jetstream_binderhub.ops.rollout import ClusterAuthFailed

    with (
        fake_kube.serving(*ROLLING[:2], Answer(status=401)) as kube,
        pytest.raises(ClusterAuthFailed, match=r"refused the kubeconfig's credentials \(401\)"),
    ):
        run(project, hub, kube, Recorder(project))
    assert quota(project) == 0 and state_path(project, "jetstream2").exists()


@pytest.mark.usefixtures("ready_machine")
def test_cli_an_unusable_kubeconfig_is_one_line_naming_the_file_never_its_content(
    project: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "kubeconfig"
    broken.write_text("client-key-data: c2VjcmV0LWtleQ==\n")
    result = cli(project, "--image", IMAGE, "--skip-preflight", "--kubeconfig", str(broken))
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {broken} is not a usable kubeconfig (")
    assert "c2VjcmV0" not in result.output and len(result.output.strip().splitlines()) == 1


class FakeSite:
    """What the CLI's `upgrade` asks of a Site: `up` one layer (recorded with the files as they were;
    the cluster's nodes replaced once the cluster layer is applied)."""

    progress = None

    def __init__(self, project: Path, kube: FakeKube) -> None:
        self.recorder = Recorder(project)
        self.kube = kube
        self.environment_checks = 0

    def check_environment_for(self, layer: str = "all") -> None:
        self.environment_checks += 1

    def up(self, layer: str, *, allow_upgrade: bool, confirm: object) -> Any:
        from jetstream_binderhub.automation.results import SiteResult

        self.recorder(Layer(layer), allow_upgrade)
        if Layer(layer) is Layer.CLUSTER:
            self.kube.cluster_applied()
        return SiteResult("jetstream2", "up", (), notes=(f"{layer} applied",))


@pytest.mark.parametrize("json_output", [False, True])
def test_cli_runs_every_step_to_the_end(
    project: Path, hub: FakeBinderHub, kube: FakeKube, monkeypatch: pytest.MonkeyPatch, json_output: bool
) -> None:
    import json

    import jetstream_binderhub.cli as cli_module

    site = FakeSite(project, kube)
    monkeypatch.setattr(cli_module, "_open_site", lambda *_: site)
    hub.script.health_body = health_body(0)
    config = kube.kubeconfig(project / "kubeconfig")
    result = cli(
        project,
        "--image",
        IMAGE,
        "--skip-preflight",
        "--url",
        hub.url,
        "--kubeconfig",
        str(config),
        *(["--json"] if json_output else []),
    )
    assert result.exit_code == 0, result.output
    assert [(c[0], c[1]) for c in site.recorder.calls] == [
        (Layer.BINDERHUB, False),
        (Layer.CLUSTER, True),
        (Layer.BINDERHUB, False),
    ]
    steps = result.stderr if json_output else result.stdout
    assert "2/5 wait: 0 sessions running" in steps and "  note: cluster applied" in steps
    assert "4/5 rollout: no old node left; all 6 nodes run v1.34.1 and are Ready" in steps
    assert steps.rstrip().endswith(f"upgraded jetstream2 to {IMAGE}")
    if json_output:
        data = json.loads(result.stdout)
        assert data["image"] == IMAGE and data["target_version"] == NEW and data["restored_total_quota"] == 60
    assert quota(project) == 60 and image(project) == IMAGE
    assert site.environment_checks == 1


def test_cost_reads_the_nodes_with_the_same_reader_and_its_one_line_errors(
    project: Path, tmp_path: Path
) -> None:
    with fake_kube.serving(Answer(status=403)) as kube:
        config = kube.kubeconfig(tmp_path / "k")
        result = CliRunner().invoke(
            app, ["cost", "jetstream2", "--kubeconfig", str(config), "-C", str(project)]
        )
    assert result.exit_code == 5, result.output
    assert result.output.startswith("error: the kubeconfig's user may not list nodes at http://127.0.0.1:")
    assert len(result.output.strip().splitlines()) == 1


def test_a_bare_rerun_resumes_the_unfinished_upgrade(
    project: Path, hub: FakeBinderHub, kube: FakeKube
) -> None:
    with pytest.raises(Stop):
        run(project, hub, kube, Recorder(project, fail_at=1))
    result, said = run(project, hub, kube, Recorder(project), image=None)
    assert said[0].startswith(f"resuming the upgrade of jetstream2 to {IMAGE} at apply")
    assert result.image == IMAGE and image(project) == IMAGE and quota(project) == 60


@pytest.mark.parametrize("resumed", [False, True], ids=["fresh", "resumed"])
def test_cli_skipping_preflight_still_names_a_missing_pulumi_before_draining(
    project: Path,
    tmp_path: Path,
    hub: FakeBinderHub,
    kube: FakeKube,
    monkeypatch: pytest.MonkeyPatch,
    resumed: bool,
) -> None:
    # --skip-preflight skips the cloud's allocation check, not the machine's own: without the Pulumi
    # CLI no layer can be applied, so the drain would leave the site at total_quota 0.
    if resumed:  # interrupted in the wait: the re-run must not go on to the apply either

        def interrupted() -> Any:
            raise Stop

        with pytest.raises(Stop):
            run(project, hub, kube, Recorder(project), health=interrupted)
        hub.script.health_body = health_body(0)
    state = state_path(project, "jetstream2")
    state_before = state.read_text() if resumed else None
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("PULUMI_CONFIG_PASSPHRASE", raising=False)
    before = untouched(project)
    config = kube.kubeconfig(tmp_path / "k")
    result = cli(project, "--image", IMAGE, "--skip-preflight", "--kubeconfig", str(config), "--url", hub.url)
    assert result.exit_code == 5, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert "Pulumi CLI (`pulumi`) is not on PATH" in errors[0], result.output
    assert untouched(project) == before
    assert (state.read_text() if state.exists() else None) == state_before
