"""A Helm chart repository on 127.0.0.1 (index.yaml and .tgz archives, as `helm repo index` lays them
out), serving charts these tests build with small schemas of their own (never a real chart's content).

The site's releases name their real repositories (https://prometheus-community.github.io/...); the
transport sends each request to this server instead, under /<host>/<path>, so the check's own
index lookup, URL resolution, download and digest verification run over real HTTP.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from jetstream_binderhub.ops.charts import HelmRepositories

from .local_server import running


def chart_archive(
    name: str,
    version: str,
    *,
    values: Mapping[str, Any] | None = None,
    schema: Mapping[str, Any] | None = None,
    dependencies: Sequence[Mapping[str, Any]] = (),
    subcharts: Sequence[bytes] = (),
    members: Mapping[str, bytes] | None = None,
) -> bytes:
    """A packaged chart: `<name>/Chart.yaml`, values.yaml, values.schema.json and subchart archives
    under `<name>/charts/`, as `helm package` makes it. `members`: extra (or hostile) entries."""
    files: dict[str, bytes] = {
        f"{name}/Chart.yaml": yaml.safe_dump(
            {"apiVersion": "v2", "name": name, "version": version, "dependencies": list(dependencies)}
        ).encode(),
        f"{name}/values.yaml": yaml.safe_dump(dict(values or {})).encode(),
        f"{name}/templates/NOTES.txt": b"installed\n",
    }
    if schema is not None:
        files[f"{name}/values.schema.json"] = json.dumps(schema).encode()
    for i, sub in enumerate(subcharts):
        files[f"{name}/charts/sub{i}.tgz"] = sub
    files |= dict(members or {})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@dataclass
class FakeHelm:
    server: ThreadingHTTPServer
    files: dict[str, bytes] = field(default_factory=dict)
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def publish(
        self, repo: str, archive: bytes, name: str, version: str, *, digest: str | None = None
    ) -> None:
        """Put `archive` in `repo` (a real repository URL) with an index entry whose URL is relative,
        as most repositories write it; `digest`: what the index claims instead of the true sha256."""
        local = "/" + urlsplit(repo).netloc + urlsplit(repo).path.rstrip("/")
        filename = f"{name}-{version}.tgz"
        self.files[f"{local}/{filename}"] = archive
        entry = {
            "apiVersion": "v2",
            "name": name,
            "version": version,
            "urls": [filename],
            "digest": digest or hashlib.sha256(archive).hexdigest(),
        }
        index = self.indexes.setdefault(local, {"apiVersion": "v1", "entries": {}})
        index["entries"].setdefault(name, []).append(entry)

    def unpublish(self, repo: str, name: str, version: str) -> None:
        """Leave the index entry, remove the archive: the repository answers 404 for it."""
        local = "/" + urlsplit(repo).netloc + urlsplit(repo).path.rstrip("/")
        del self.files[f"{local}/{name}-{version}.tgz"]

    def body(self, path: str) -> bytes | None:
        if path.endswith("/index.yaml") and (index := self.indexes.get(path.removesuffix("/index.yaml"))):
            return yaml.safe_dump(index).encode()
        return self.files.get(path)

    def transport(self) -> httpx.BaseTransport:
        return _ToLocal(self.port)

    def repositories(self, cache_dir: Path) -> HelmRepositories:
        return HelmRepositories(cache_dir=cache_dir, transport=self.transport())


class _ToLocal(httpx.HTTPTransport):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        request.url = url.copy_with(
            scheme="http", host="127.0.0.1", port=self.port, raw_path=b"/" + url.host.encode() + url.raw_path
        )
        return super().handle_request(request)


def _handler(fake: FakeHelm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(self.path)
            body = fake.body(self.path)
            self.send_response(404 if body is None else 200)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving() -> Iterator[FakeHelm]:
    fake = FakeHelm(server=ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))
    fake.server.RequestHandlerClass = _handler(fake)
    with running(fake.server):
        yield fake
