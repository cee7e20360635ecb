"""A stand-in BinderHub on 127.0.0.1 that speaks the shapes of jupyterhub/binderhub's handlers.

/health answers like HealthHandler (200 or 503 with {"ok", "checks"}); /build/<provider>/<spec>
answers 200 with text/event-stream whatever happens, like BuildHandler: `data: {json}` events and
`:keepalive` comments, and a script can hold the stream open the way BinderHub does after `ready`
(60 s) and after a failed build (forever). POST <server>/api/shutdown stands in for the launched
notebook server (Jupyter Server's ShutdownHandler), checking the token the ready event handed out.

Under /grafana/ the same server stands in for Grafana (grafana/grafana pkg/middleware/auth.go): the
public /api/health and /login, and /api/search that answers 401 without credentials unless the
script lets anonymous users in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .local_server import running

KEEPALIVE = 0.05
"""The fake's keepalive period (BinderHub's is 25 s)."""

SERVER_TOKEN = "tok-Zq9xW2-launch"

GRAFANA = "/grafana/"
"""Where the stand-in Grafana lives on the fake's server: `fake.url + "grafana/"`."""


def event(phase: str, message: str, **extra: Any) -> tuple[str, Any]:
    return ("data", {"phase": phase, "message": message, **extra})


def keepalives(seconds: float) -> tuple[str, Any]:
    return ("keepalive", seconds)


HOLD = ("hold", None)
"""Keep the stream open with keepalives until the client goes (BinderHub after a failed build)."""


@dataclass
class Script:
    health_status: int = 200
    health_body: Any = field(
        default_factory=lambda: {
            "ok": True,
            "checks": [
                {"service": "Docker registry", "ok": True},
                {"service": "JupyterHub API", "ok": True},
                # BinderHub reports the pod quota but never counts it against health.
                {
                    "service": "Pod quota",
                    "ok": False,
                    "total_pods": 130,
                    "build_pods": 2,
                    "user_pods": 128,
                    "quota": 120,
                    "_ignore_failure": True,
                },
            ],
        }
    )
    build_status: int = 200
    build: list[tuple[str, Any]] = field(default_factory=list)
    shutdown_status: int = 200
    grafana_health_status: int = 200
    grafana_anonymous: bool = False
    """Grafana's auth.anonymous.enabled: /api/search then answers an anonymous user with 200."""


@dataclass
class Seen:
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


def ready_build(base: str) -> list[tuple[str, Any]]:
    """A build-and-launch as BinderHub streams it, then the 60 s it holds the stream open."""
    server = f"{base}user/binder-examples-requirements-abc123/"
    return [
        event("waiting", "Waiting for build to start...\n"),
        event("fetching", "Fetching repository...\n"),
        keepalives(0.3),
        event("building", "Step 1/10 : FROM docker.io/library/buildpack-deps:jammy\n"),
        event("building", "Successfully built 0123456789ab\n"),
        event("pushing", "Pushing image\n", progress={}),
        event("built", "Built image, launching...\n", imageName="quay.io/x/binder-abc:123"),
        event("launching", "Launching server...\n"),
        event("launching", "Server requested\n"),
        event(
            "ready",
            f"server running at {server}\n",
            url=server,
            token=SERVER_TOKEN,
            image="quay.io/x/binder-abc:123",
            repo_url="https://github.com/binder-examples/requirements",
        ),
        HOLD,
    ]


def failed_build() -> list[tuple[str, Any]]:
    """A failed build: two `failed` events and a stream that is never closed."""
    return [
        event("waiting", "Waiting for build to start...\n"),
        event("building", "Step 3/10 : RUN pip install -r requirements.txt\n"),
        event("failed", "Error during build: The command returned a non-zero code: 1\n"),
        event("failed", "Build failed\n"),
        HOLD,
    ]


class FakeBinderHub:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.seen = Seen()
        self._stop = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when we close: no Content-Length needed

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.seen.requests.append(("GET", self.path, dict(self.headers)))
                if self.path.startswith(GRAFANA):
                    self._grafana(self.path.removeprefix(GRAFANA))
                elif self.path.endswith("/health"):
                    self._json(fake.script.health_status, fake.script.health_body)
                elif "/build/" in self.path:
                    self._stream()
                else:
                    self._json(404, {"message": "Not Found"})

            def do_POST(self) -> None:
                fake.seen.requests.append(("POST", self.path, dict(self.headers)))
                if self.path.endswith("/api/shutdown"):
                    if self.headers.get("Authorization") != f"token {SERVER_TOKEN}":
                        self._json(403, {"message": "Forbidden"})
                    else:
                        self._json(fake.script.shutdown_status, {})
                else:
                    self._json(404, {"message": "Not Found"})

            def _grafana(self, path: str) -> None:
                if path == "api/health":
                    body = {"commit": "abc1234", "database": "ok", "version": "10.4.1"}
                    self._json(fake.script.grafana_health_status, body)
                elif path == "login":
                    self._json(200, {})  # the real one is an HTML page; only its status is checked
                elif path == "api/search":
                    if fake.script.grafana_anonymous or "Authorization" in self.headers:
                        self._json(200, [{"uid": "binderhub", "title": "BinderHub", "type": "dash-db"}])
                    else:
                        self._json(401, {"message": "Unauthorized"})
                else:
                    self._json(404, {"message": "Not found"})

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _write(self, text: str) -> None:
                self.wfile.write(text.encode())
                self.wfile.flush()

            def _stream(self) -> None:
                self.send_response(fake.script.build_status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    for kind, value in fake.script.build:
                        if kind == "data":
                            self._write(f"data: {json.dumps(value)}\n\n")
                        elif kind == "keepalive":
                            self._keepalives(value)
                        elif kind == "hold":
                            self._keepalives(None)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client stopped reading: what a well-behaved client does

            def _keepalives(self, seconds: float | None) -> None:
                until = None if seconds is None else time.monotonic() + seconds
                while not fake._stop.is_set() and (until is None or time.monotonic() < until):
                    time.sleep(KEEPALIVE)
                    self._write(":keepalive\n\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    @property
    def paths(self) -> list[str]:
        return [f"{method} {path}" for method, path, _ in self.seen.requests]

    def close(self) -> None:
        """Stop answering before the `with` ends (a hub that went away)."""
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(script: Script) -> Iterator[FakeBinderHub]:
    fake = FakeBinderHub(script)
    with running(fake.server, before_stop=fake._stop.set):
        yield fake
