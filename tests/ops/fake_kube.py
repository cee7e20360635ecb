"""A stand-in Kubernetes API server on 127.0.0.1 answering GET /api/v1/nodes with NodeLists in the
recorded shape (tests/support/nodes.json), one scripted answer per request, the last one repeated."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .local_server import running

RECORDED: dict[str, Any] = json.loads((Path(__file__).parent.parent / "support" / "nodes.json").read_text())
OLD = "v1.33.2"
TOKEN = "t0ken-for-test"


def _template(group: str) -> dict[str, Any]:
    for item in RECORDED["items"]:
        labels = item["metadata"]["labels"]
        if labels.get("capi.stackhpc.com/node-group") == group or (
            group == "control-plane" and "node-role.kubernetes.io/control-plane" in labels
        ):
            return item
    raise KeyError(group)


def node(group: str, name: str, version: str, ready: bool = True) -> dict[str, Any]:
    """A node of `group` as the recorded list has it, with another name, kubelet version and readiness."""
    item = copy.deepcopy(_template(group))
    item["metadata"]["name"] = item["metadata"]["labels"]["kubernetes.io/hostname"] = name
    item["status"]["nodeInfo"]["kubeletVersion"] = version
    ready_condition = next(c for c in item["status"]["conditions"] if c["type"] == "Ready")
    ready_condition["status"] = "True" if ready else "False"
    if not ready:
        ready_condition["reason"] = "KubeletNotReady"
        ready_condition["message"] = "container runtime network not ready: NetworkReady=false"
    return item


def node_list(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "NodeList",
        "metadata": {"resourceVersion": "1"},
        "items": list(items),
    }


def recorded(version: str = OLD, *, replaced: int = 0) -> dict[str, Any]:
    """The recorded cluster, every node on `version` and Ready; its first `replaced` nodes under new
    names, as Cluster API names the machines that replace old ones."""
    doc = copy.deepcopy(RECORDED)
    for index, item in enumerate(doc["items"]):
        item["status"]["nodeInfo"]["kubeletVersion"] = version
        if index < replaced:
            name = item["metadata"]["name"] + "-new"
            item["metadata"]["name"] = item["metadata"]["labels"]["kubernetes.io/hostname"] = name
    return doc


def rolled(version: str) -> dict[str, Any]:
    """The recorded cluster after an upgrade to `version`: every node replaced and Ready."""
    return recorded(version, replaced=len(RECORDED["items"]))


@dataclass
class Answer:
    """One scripted answer: a NodeList, or an HTTP status with a Status body, or a stall."""

    body: dict[str, Any] | None = None
    status: int = 200
    stall_seconds: float = 0.0


@dataclass
class FakeKube:
    script: list[Answer] = field(default_factory=list)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    rolls: list[Answer] = field(default_factory=list)
    """The answers once the cluster layer has been applied (:meth:`cluster_applied`): its nodes
    being replaced. Empty: the script goes on as it is."""

    def cluster_applied(self) -> None:
        if self.rolls:
            self.script, self.rolls = self.rolls, []

    def next_answer(self) -> Answer:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "x",
                }
            )
        )
        return path


@contextmanager
def serving(
    *answers: Answer | dict[str, Any], rolls: tuple[Answer | dict[str, Any], ...] = ()
) -> Iterator[FakeKube]:
    def scripted(items: tuple[Answer | dict[str, Any], ...]) -> list[Answer]:
        return [a if isinstance(a, Answer) else Answer(body=a) for a in items]

    fake = FakeKube(script=scripted(answers), rolls=scripted(rolls))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append((self.path, self.headers.get("Authorization")))
            if self.path.split("?")[0] != "/api/v1/nodes":
                self.send_response(404)
                self.end_headers()
                return
            answer = fake.next_answer()
            if answer.stall_seconds:
                time.sleep(answer.stall_seconds)
            if answer.status != 200:
                reason = {401: "Unauthorized", 403: "Forbidden"}.get(answer.status, "Error")
                body = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": 'nodes is forbidden: User "u" cannot list resource "nodes"'
                    if answer.status == 403
                    else reason,
                    "reason": reason,
                    "code": answer.status,
                }
            else:
                body = answer.body or node_list()
            data = json.dumps(body).encode()
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up on a stall: socketserver would print the traceback to stderr,
                # into whatever a later CLI test captures.
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    with running(server):
        yield fake
