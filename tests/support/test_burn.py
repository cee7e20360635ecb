"""SU burn arithmetic on a recorded node list, and reading the same list from a live API server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from jetstream_binderhub.burn import (
    BurnHistoryUnavailable,
    NodeListError,
    burn_history_queries,
    burn_rate,
    nodes_from_list,
    project,
    read_burn_history,
    read_cluster_nodes,
    read_node_list_file,
    sustainable_rate,
)
from jetstream_binderhub.config.support import AllocationConfig
from jetstream_binderhub.profiles import load_profile

NODES = Path(__file__).with_name("nodes.json")
PROXY_PATH = "/api/v1/namespaces/support/services/prometheus-server:80/proxy/api/v1/query"
JETSTREAM2 = load_profile("jetstream2")


def test_burn_of_a_recorded_node_list_by_group_and_flavor() -> None:
    burn = burn_rate(read_node_list_file(NODES), JETSTREAM2)
    assert [(line.group, line.flavor, line.nodes, line.su_per_hour) for line in burn.lines] == [
        ("control-plane", "m3.medium", 1, 8),
        ("default-worker", "m3.quad", 1, 4),
        ("gpu", "g3.large", 1, 32),
        ("user-m3-large", "m3.large", 3, 48),
    ]
    # The CPU allocation pays for the m3 nodes only; the GPU node draws on the separate GPU allocation.
    assert burn.su_per_hour == 8 + 4 + 48
    assert burn.other_resources == {"gpu": 32}
    assert burn.su_per_day == 60 * 24
    assert burn.unpriced_nodes == ()
    assert burn_rate(read_node_list_file(NODES), JETSTREAM2, "gpu").su_per_hour == 32


def test_nodes_of_unknown_flavors_are_named_not_priced_as_free() -> None:
    doc = json.loads(NODES.read_text())
    doc["items"][1]["metadata"]["labels"]["node.kubernetes.io/instance-type"] = "custom.big"
    del doc["items"][2]["metadata"]["labels"]["node.kubernetes.io/instance-type"]
    burn = burn_rate(nodes_from_list(doc), JETSTREAM2)
    assert burn.unpriced_nodes == (
        "pythia-binder-abc123-default-worker-9f8d7-2hq4s",
        "pythia-binder-abc123-user-m3-large-5c6b4-7wzrt",
    )
    assert burn.su_per_hour == 8 + 2 * 16
    assert ("default-worker", "custom.big", None) in [(x.group, x.flavor, x.su_per_hour) for x in burn.lines]


def test_a_document_that_is_not_a_node_list_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NodeListError, match="not a Kubernetes NodeList"):
        nodes_from_list({"kind": "PodList", "items": []})
    bad = tmp_path / "nodes.json"
    bad.write_text("{not json")
    with pytest.raises(NodeListError, match="is not JSON"):
        read_node_list_file(bad)


ALLOCATION = AllocationConfig(su_remaining=100_000, as_of=date(2026, 11, 1), end_date=date(2027, 6, 30))


def test_projection_says_when_the_allocation_runs_out() -> None:
    # 2026-11-01 00:00 to the end of 2027-06-30 is 242 days.
    assert sustainable_rate(ALLOCATION) == pytest.approx(100_000 / (242 * 24))
    p = project(60, ALLOCATION, datetime(2026, 11, 27, tzinfo=UTC))
    # 26 days at 60 SU/h since the reading, 216 days to go.
    assert p.estimated_remaining == pytest.approx(100_000 - 60 * 26 * 24)
    assert p.needed_until_end == pytest.approx(60 * 216 * 24)
    assert p.runs_out_before_end
    assert p.runs_out_at is not None and p.runs_out_at.date() == date(2027, 1, 9)
    assert p.surplus == pytest.approx(100_000 - 60 * 242 * 24)


def test_a_rate_below_the_sustainable_one_lasts() -> None:
    p = project(12, ALLOCATION, datetime(2026, 11, 27, tzinfo=UTC))
    assert not p.runs_out_before_end
    assert p.surplus == pytest.approx(100_000 - 12 * 242 * 24)
    assert not project(0, ALLOCATION, datetime(2026, 11, 27, tzinfo=UTC)).runs_out_before_end


def test_an_end_date_before_the_reading_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="must be after as_of"):
        AllocationConfig(su_remaining=1, as_of=date(2027, 1, 1), end_date=date(2026, 12, 31))


class _ApiServer(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []

    prometheus: dict[str, str] = {}
    """Query fragment -> value Prometheus answers through the service proxy; empty: the proxy fails."""

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        path, _, query = self.path.partition("?")
        if path == PROXY_PATH:
            self._prometheus(parse_qs(query)["query"][0])
            return
        if path != "/api/v1/nodes":
            self.send_response(404)
            self.end_headers()
            return
        body = NODES.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _prometheus(self, query: str) -> None:
        if not type(self).prometheus:
            # What the API server answers when the Service has no ready endpoints.
            self.send_response(503)
            self.end_headers()
            return
        result = [
            {"metric": {"resource": "cpu"}, "value": [1764244800.0, value]}
            for fragment, value in type(self).prometheus.items()
            if fragment in query
        ]
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "t0ken-for-test"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_live_nodes_are_read_through_the_kubeconfig(api_server: str, tmp_path: Path) -> None:
    _ApiServer.seen.clear()
    nodes = read_cluster_nodes(_kubeconfig(tmp_path / "kubeconfig", api_server))
    assert nodes == read_node_list_file(NODES)
    assert _ApiServer.seen == [("/api/v1/nodes", "Bearer t0ken-for-test")]


def test_unreachable_cluster_and_missing_kubeconfig_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(NodeListError, match=r"no kubeconfig at .*jetstream-binderhub kubeconfig SITE"):
        read_cluster_nodes(tmp_path / "absent.yaml")
    # A port nothing listens on: bind one, then close it.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NodeListError, match="cannot reach the cluster's API server"):
        read_cluster_nodes(_kubeconfig(tmp_path / "k", f"http://127.0.0.1:{port}"), timeout_seconds=2)


NOON = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_spent_today_and_this_month_come_from_the_recorded_rate(api_server: str, tmp_path: Path) -> None:
    queries = burn_history_queries("cpu", NOON)
    # Twelve hours into the day and 26.5 days into the month, averaged over the recorded SU/hour.
    assert queries["today"] == 'avg_over_time(jetstream_binderhub:su_per_hour{resource="cpu"}[43200s]) * 12'
    assert queries["month_to_date"].startswith(
        'avg_over_time(jetstream_binderhub:su_per_hour{resource="cpu"}[2289600s]) * 636'
    )
    _ApiServer.seen.clear()
    _ApiServer.prometheus = {"[43200s]": "123.4", "[2289600s]": "5000"}
    try:
        spent = read_burn_history(_kubeconfig(tmp_path / "k", api_server), "support", "cpu", NOON)
    finally:
        _ApiServer.prometheus = {}
    assert spent == {"today": 123.4, "month_to_date": 5000.0}
    assert [path.partition("?")[0] for path, _ in _ApiServer.seen] == [PROXY_PATH, PROXY_PATH]
    assert all(token == "Bearer t0ken-for-test" for _, token in _ApiServer.seen)


def test_no_samples_is_no_data_and_an_unreachable_prometheus_is_one_line(
    api_server: str, tmp_path: Path
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "k", api_server)
    _ApiServer.prometheus = {"[43200s]": "7"}
    try:
        assert read_burn_history(kubeconfig, "support", "cpu", NOON) == {"today": 7.0, "month_to_date": None}
    finally:
        _ApiServer.prometheus = {}
    with pytest.raises(BurnHistoryUnavailable, match="did not answer through the API server: HTTP 503"):
        read_burn_history(kubeconfig, "support", "cpu", NOON)


def test_cost_report_shows_spent_beside_the_rate_or_says_prometheus_is_unreachable(
    api_server: str, tmp_path: Path
) -> None:
    from jetstream_binderhub.burn import render_burn

    report = {
        "site": "s",
        "unit": "SU",
        "resource": "cpu",
        "su_per_hour": 10.0,
        "su_per_day": 240.0,
        "groups": [],
        "other_resources": {},
        "unpriced_nodes": [],
        "allocation": None,
        "spent": {"today": 123.4, "month_to_date": 5000.0},
        "spent_unavailable": None,
    }
    assert "  spent (from Prometheus): 123 SU today, 5,000 SU this month (UTC)" in render_burn(report)
    report = {**report, "spent": None, "spent_unavailable": "cannot reach the cluster's API server: X"}
    text = render_burn(report)
    assert "10 SU/hour now" in text
    assert "  today and month to date unknown: cannot reach the cluster's API server: X" in text
