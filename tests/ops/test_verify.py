"""verify against a BinderHub stand-in on 127.0.0.1 speaking BinderHub's /health and event-stream shapes."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.automation import Layer
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.cli import app
from jetstream_binderhub.ops.verify import EXIT_CODES, Outcome, VerifyInputError, check_grafana, verify

from .fake_binderhub import (
    HOLD,
    SERVER_TOKEN,
    FakeBinderHub,
    Script,
    event,
    failed_build,
    keepalives,
    ready_build,
    serving,
)


@pytest.fixture
def hub() -> Iterator[FakeBinderHub]:
    with serving(Script()) as fake:
        fake.script.build = ready_build(fake.url)
        yield fake


def test_a_launch_reports_each_phase_and_returns_at_ready_without_waiting_for_the_stream(
    hub: FakeBinderHub,
) -> None:
    began = time.monotonic()
    result = verify(hub.url, timeout=30)
    # BinderHub holds the stream open for a minute after ready; the fake holds it until closed.
    assert time.monotonic() - began < 10
    assert result.outcome is Outcome.READY and result.exit_code == 0
    assert [p.phase for p in result.phases] == [
        "waiting",
        "fetching",
        "building",
        "pushing",
        "built",
        "launching",
        "ready",
    ]
    fetching = result.phases[1]
    assert fetching.seconds is not None and fetching.seconds >= 0.2  # the keepalives sat in fetching
    assert result.phases[2].message == "Step 1/10 : FROM docker.io/library/buildpack-deps:jammy"
    assert result.server_url == f"{hub.url}user/binder-examples-requirements-abc123/"
    assert result.server_stopped is None
    # The health check that BinderHub does not count (the pod quota) does not make it unhealthy.
    assert result.health is not None and result.health.ok and result.health.failing == []
    get_build = next(r for r in hub.seen.requests if "/build/" in r[1])
    assert get_build[1] == "/build/gh/binder-examples/requirements/HEAD"
    assert get_build[2]["Accept"] == "text/event-stream"
    assert SERVER_TOKEN not in json.dumps(result.to_json())


def test_stop_server_shuts_the_notebook_server_down_with_the_ready_events_token(hub: FakeBinderHub) -> None:
    result = verify(hub.url, timeout=30, stop_server=True)
    assert result.server_stopped is True and result.stop_problem is None
    shutdown = [r for r in hub.seen.requests if r[0] == "POST"]
    assert [r[1] for r in shutdown] == ["/user/binder-examples-requirements-abc123/api/shutdown"]
    assert shutdown[0][2]["Authorization"] == f"token {SERVER_TOKEN}"


def test_a_refused_shutdown_is_reported_not_hidden(hub: FakeBinderHub) -> None:
    hub.script.shutdown_status = 500
    result = verify(hub.url, timeout=30, stop_server=True)
    assert result.outcome is Outcome.READY
    assert result.server_stopped is False
    assert result.stop_problem is not None and "500" in result.stop_problem


def test_a_failed_build_stops_at_the_first_failed_event_though_the_stream_never_closes(
    hub: FakeBinderHub,
) -> None:
    hub.script.build = failed_build()
    began = time.monotonic()
    result = verify(hub.url, timeout=30)
    assert time.monotonic() - began < 10
    assert result.outcome is Outcome.BUILD_FAILED and result.exit_code == EXIT_CODES[Outcome.BUILD_FAILED]
    assert result.failure == "Error during build: The command returned a non-zero code: 1"
    assert "during building" in result.message
    assert [p.phase for p in result.phases] == ["waiting", "building", "failed"]


def test_a_failure_after_the_image_is_built_is_a_launch_failure(hub: FakeBinderHub) -> None:
    hub.script.build = [
        event("built", "Found built image, launching...\n", imageName="quay.io/x/binder-abc:123"),
        event("launching", "Launching server...\n"),
        event("failed", "Image quay.io/x/binder-abc:123 failed to pull\n", status_code=500),
        HOLD,
    ]
    result = verify(hub.url, timeout=30)
    assert result.outcome is Outcome.LAUNCH_FAILED and result.exit_code == 12
    assert result.status_code == 500
    assert "failed to pull" in result.message


def test_a_full_launch_quota_right_after_the_build_is_a_launch_failure(hub: FakeBinderHub) -> None:
    # BuildHandler.check_quota fails after `built`, before `launching`, then the handler's error follows.
    hub.script.build = [
        event("built", "Found built image, launching...\n", imageName="quay.io/x/binder-abc:123"),
        event("failed", "Too many users on this BinderHub! Try again soon.\n"),
        event("failed", "Internal Server Error\n", status_code=500),
        HOLD,
    ]
    result = verify(hub.url, timeout=30)
    assert result.outcome is Outcome.LAUNCH_FAILED
    assert result.failure == "Too many users on this BinderHub! Try again soon."
    assert "launch quota is full" in result.message


def test_503_health_names_the_failing_checks_and_launches_nothing(hub: FakeBinderHub) -> None:
    hub.script.health_status = 503
    hub.script.health_body = {
        "ok": False,
        "checks": [
            {"service": "Docker registry", "ok": True},
            {"service": "JupyterHub API", "ok": False},
            {"service": "Pod quota", "ok": False, "quota": 120, "total_pods": 150, "_ignore_failure": True},
        ],
    }
    result = verify(hub.url, timeout=30)
    assert result.outcome is Outcome.UNHEALTHY and result.exit_code == 10
    assert "failing: JupyterHub API;" in result.message
    assert "Pod quota" not in result.message
    assert not any("/build/" in path for path in hub.paths)


def test_429_is_reported_as_the_rate_limit(hub: FakeBinderHub) -> None:
    # BaseHandler.check_rate_limit raises HTTPError(429); BuildHandler.send_error streams it, status 200.
    hub.script.build = [
        event("failed", "Rate limit exceeded. Try again in 600 seconds.\n", status_code=429),
    ]
    result = verify(hub.url, timeout=30)
    assert result.outcome is Outcome.REFUSED and result.exit_code == 15
    assert result.status_code == 429
    assert result.message.startswith(
        "rate limited (429): BinderHub says: Rate limit exceeded. Try again in 600"
    )


def test_a_stream_of_only_keepalives_times_out_at_the_deadline(hub: FakeBinderHub) -> None:
    hub.script.build = [event("waiting", "Waiting for build to start...\n"), keepalives(60)]
    began = time.monotonic()
    result = verify(hub.url, timeout=1.0)
    took = time.monotonic() - began
    assert result.outcome is Outcome.TIMED_OUT and result.exit_code == 13
    assert 1.0 <= took < 5
    assert "last phase: waiting" in result.message


def test_a_base_path_is_kept_in_every_request(hub: FakeBinderHub) -> None:
    result = verify(hub.url + "binder", timeout=30)
    assert result.outcome is Outcome.READY
    assert hub.paths[:2] == ["GET /binder/health", "GET /binder/build/gh/binder-examples/requirements/HEAD"]


def test_a_closed_port_is_unreachable_in_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = verify(f"http://127.0.0.1:{port}/", timeout=5)
    assert result.outcome is Outcome.UNREACHABLE and result.exit_code == 14
    assert result.message.startswith("cannot connect to 127.0.0.1") and "\n" not in result.message


def test_a_url_without_a_binderhub_says_so(hub: FakeBinderHub) -> None:
    hub.script.health_status = 404
    result = verify(hub.url, timeout=5)
    assert result.outcome is Outcome.UNREACHABLE
    assert "answered 404: no BinderHub at" in result.message


@pytest.mark.parametrize(
    ("url", "repo", "key"),
    [
        ("ftp://binder.example.org", "gh/a/b/HEAD", "--url"),
        ("binder.example.org", "gh/a/b/HEAD", "--url"),
        ("https://binder.example.org", "gh", "--repo"),
    ],
)
def test_bad_input_is_refused_before_any_request(url: str, repo: str, key: str) -> None:
    with pytest.raises(VerifyInputError, match=f"^{key}:"):
        verify(url, repo)


# --- the command ----------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_prints_phases_and_exits_0(hub: FakeBinderHub) -> None:
    result = runner.invoke(app, ["verify", "jetstream2", "--url", hub.url, "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert (
        "health: ok (Docker registry ok, JupyterHub API ok, Pod quota not ok (not counted))" in result.stdout
    )
    assert "  fetching " in result.stdout
    assert "ready in " in result.stdout


def test_cli_failure_is_one_error_line_with_its_exit_code(hub: FakeBinderHub) -> None:
    hub.script.build = failed_build()
    result = runner.invoke(app, ["verify", "jetstream2", "--url", hub.url, "--timeout", "30"])
    assert result.exit_code == 11
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: verify: the build failed during building: BinderHub says: Error during build: The command "
        "returned a non-zero code: 1; check the build pod's log and the registry"
    ]
    assert "Traceback" not in result.output


def test_cli_json_has_outcome_and_exit_code_and_no_token(hub: FakeBinderHub) -> None:
    result = runner.invoke(app, ["verify", "jetstream2", "--url", hub.url, "--json", "--stop-server"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["outcome"] == "ready" and data["exit_code"] == 0 and data["server_stopped"] is True
    assert SERVER_TOKEN not in result.stdout


def test_cli_bad_url_is_exit_2() -> None:
    result = runner.invoke(app, ["verify", "jetstream2", "--url", "binder.example.org"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --url: expected http(s)://host")


def test_cli_takes_the_url_from_the_sites_outputs(
    hub: FakeBinderHub, project: Path, monkeypatch: pytest.MonkeyPatch, ready_env: dict[str, str]
) -> None:
    for name, value in ready_env.items():
        monkeypatch.setenv(name, value)
    fake = t.FakeStacks()
    fake.outputs[Layer.BINDERHUB] = {"binderhub_url": (hub.url, False)}
    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", lambda: fake)
    result = runner.invoke(app, ["verify", "jetstream2", "-C", str(project), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["url"] == hub.url


def test_cli_says_when_the_site_has_no_url_yet(
    project: Path, monkeypatch: pytest.MonkeyPatch, ready_env: dict[str, str]
) -> None:
    for name, value in ready_env.items():
        monkeypatch.setenv(name, value)
    fake = t.FakeStacks()
    fake.outputs[Layer.BINDERHUB] = {}
    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", lambda: fake)
    result = runner.invoke(app, ["verify", "jetstream2", "-C", str(project)])
    assert result.exit_code == 4
    assert "has no BinderHub URL yet" in result.stderr and "--url" in result.stderr


# --- Grafana --------------------------------------------------------------------------------------


def test_grafana_that_refuses_anonymous_users_passes(hub: FakeBinderHub) -> None:
    check = check_grafana(hub.url + "grafana")
    assert check.outcome is Outcome.READY and check.exit_code == 0
    assert "refuses anonymous access" in check.message
    assert "GET /grafana/api/search" in hub.paths


def test_grafana_that_lets_anonymous_users_in_fails_with_its_own_code(hub: FakeBinderHub) -> None:
    hub.script.grafana_anonymous = True
    check = check_grafana(hub.url + "grafana/")
    assert check.outcome is Outcome.GRAFANA_OPEN and check.exit_code == 17
    assert "lets an anonymous user in" in check.message and check.status_code == 200


def test_grafana_that_does_not_answer_is_unreachable(hub: FakeBinderHub) -> None:
    hub.script.grafana_health_status = 502
    check = check_grafana(hub.url + "grafana/")
    assert check.outcome is Outcome.GRAFANA_UNREACHABLE and check.exit_code == 18
    assert "answered 502" in check.message
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = check_grafana(f"http://127.0.0.1:{port}/")
    assert closed.outcome is Outcome.GRAFANA_UNREACHABLE and "failed" in closed.message


def test_cli_checks_grafana_after_the_launch(hub: FakeBinderHub) -> None:
    args = [
        "verify",
        "jetstream2",
        "--url",
        hub.url,
        "--grafana-url",
        hub.url + "grafana/",
        "--timeout",
        "30",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "refuses anonymous access" in result.stdout
    hub.script.grafana_anonymous = True
    result = runner.invoke(app, args)
    assert result.exit_code == 17
    assert result.stderr.splitlines() == [
        line for line in result.stderr.splitlines() if line.startswith("error: grafana: ")
    ]
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_cli_bad_grafana_url_is_exit_2_before_any_launch(hub: FakeBinderHub) -> None:
    result = runner.invoke(
        app, ["verify", "jetstream2", "--url", hub.url, "--grafana-url", "grafana.example"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --grafana-url: expected http(s)://host")
    assert hub.paths == []


def test_cli_takes_grafana_from_the_sites_outputs(
    hub: FakeBinderHub, project: Path, monkeypatch: pytest.MonkeyPatch, ready_env: dict[str, str]
) -> None:
    for name, value in ready_env.items():
        monkeypatch.setenv(name, value)
    hub.script.grafana_anonymous = True
    fake = t.FakeStacks()
    fake.outputs[Layer.BINDERHUB] = {
        "binderhub_url": (hub.url, False),
        "grafana_url": (hub.url + "grafana", False),
    }
    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", lambda: fake)
    result = runner.invoke(app, ["verify", "jetstream2", "-C", str(project), "--json"])
    assert result.exit_code == 17, result.output
    data = json.loads(result.stdout)
    assert data["exit_code"] == 17 and data["grafana"]["outcome"] == "grafana_open"
