"""Checking a site's values against the schemas of the charts whose schema does not ship, before `up`.

The binderhub, jupyterhub and dask-gateway schemas ship with the package and are checked offline by
`plan` (:mod:`jetstream_binderhub.schemas`). Traefik, cert-manager and prometheus have schemas of their
own that cannot ship with the project; left alone, a value they refuse is found only mid-apply:
pulumi-kubernetes' Release renders the chart at Check time but only logs a render error there, at
verbosity 9 (pulumi/pulumi-kubernetes provider/pkg/provider/helm_release.go `cacheReleaseCRDs`), so
Helm's schema check fires at Create/Update, after the cluster's other changes have been made.

So `preflight` fetches each such chart as Helm does (the repository's index.yaml, the pinned version's
first URL, resolved against the repository URL when relative; helm/helm pkg/repo/v1/chartrepo.go
`ResolveReferenceURL`), refuses an archive whose sha256 is not the index's digest, keeps it in a cache
keyed by repository, chart, version and digest, and validates the values the site's offline plan gives
the release against the chart's schema and its subcharts' with the machinery the shipped schemas use.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import yaml

from jetstream_binderhub.config.stackfile import yaml_problem
from jetstream_binderhub.ops.preflight import Check
from jetstream_binderhub.schemas import ChartSchema, available, validate_chart_values
from jetstream_binderhub.yamlio import safe_load

if TYPE_CHECKING:
    import httpx

    from jetstream_binderhub.plan.model import Plan

CONFIG_KEYS = {
    "traefik": "ingress",
    "cert-manager": "tls",
    "prometheus": "support.monitoring.prometheus",
    "grafana": "support.monitoring.grafana",
    "cryptnono": "support.cryptnono",
}
"""The config section that makes each chart's values, named beside a refused value."""

SHOWN_PROBLEMS = 3
_WANTED = frozenset({"Chart.yaml", "values.yaml", "values.schema.json"})


class ChartUnavailable(Exception):
    """The chart could not be fetched or read; the message says why, in words."""


@dataclass(frozen=True)
class ChartRelease:
    """A Helm release of the site, as the offline plan declares it."""

    name: str
    chart: str
    version: str
    repo: str
    values: Mapping[str, Any]


def unshipped_releases(plan: Plan) -> list[ChartRelease]:
    """The plan's Helm releases whose chart schema does not ship (those are checked by `plan` already)."""
    shipped = set(available())
    found = []
    for layer in plan.layers:
        for r in layer.resources:
            if not r.type.endswith("helm.sh/v3:Release") or r.inputs.get("chart") in shipped:
                continue
            repo = (r.inputs.get("repository_opts") or {}).get("repo")
            found.append(
                ChartRelease(
                    name=r.name,
                    chart=str(r.inputs["chart"]),
                    version=str(r.inputs.get("version") or ""),
                    repo=str(repo or ""),
                    values=r.inputs.get("values") or {},
                )
            )
    return found


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jetstream-binderhub" / "charts"


@dataclass(frozen=True)
class HelmRepositories:
    """Charts from their Helm repositories, each downloaded once into `cache_dir`."""

    cache_dir: Path
    transport: httpx.BaseTransport | None = None
    timeout: float = 30.0

    @classmethod
    def default(cls) -> HelmRepositories:
        return cls(cache_dir=default_cache_dir())

    def _get(self, url: str) -> bytes:
        import httpx

        try:
            with httpx.Client(
                transport=self.transport, timeout=self.timeout, follow_redirects=True
            ) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise ChartUnavailable(f"cannot reach {url} ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise ChartUnavailable(f"{url} answered {response.status_code}")
        return response.content

    def _slot(self, repo: str, chart: str, version: str) -> tuple[Path, str]:
        where = self.cache_dir / hashlib.sha256(repo.encode()).hexdigest()[:16]
        return where, f"{chart}-{version}-"

    def _cached(self, repo: str, chart: str, version: str) -> bytes | None:
        where, stem = self._slot(repo, chart, version)
        # The cache only saves a download: whatever cannot be read in it is fetched again.
        try:
            if not where.is_dir():
                return None
            for path in where.iterdir():
                if not (path.name.startswith(stem) and path.name.endswith(".tgz")):
                    continue
                data = path.read_bytes()
                # The name carries the digest: a truncated or altered file is fetched again.
                if hashlib.sha256(data).hexdigest() == path.name.removeprefix(stem).removesuffix(".tgz"):
                    return data
                path.unlink(missing_ok=True)
        except OSError:
            pass
        return None

    def archive(self, repo: str, chart: str, version: str) -> bytes:
        """The chart's .tgz, from the cache or from the repository (its digest verified)."""
        if (cached := self._cached(repo, chart, version)) is not None:
            return cached
        base = repo.rstrip("/") + "/"
        index = _yaml(self._get(urljoin(base, "index.yaml")), f"the index of {repo}")
        entries = (index or {}).get("entries", {}).get(chart) if isinstance(index, dict) else None
        entry = next(
            (e for e in entries or [] if isinstance(e, dict) and str(e.get("version")) == version), None
        )
        if entry is None:
            raise ChartUnavailable(f"{repo} has no {chart} {version} in its index")
        urls = entry.get("urls") or []
        if not urls:
            raise ChartUnavailable(f"the index of {repo} gives no URL for {chart} {version}")
        data = self._get(urljoin(base, str(urls[0])))
        actual = hashlib.sha256(data).hexdigest()
        expected = str(entry.get("digest") or "").removeprefix("sha256:")
        if expected and actual != expected:
            raise ChartUnavailable(
                f"the archive of {chart} {version} does not match its index's digest "
                f"(sha256 {actual[:12]}…, index {expected[:12]}…): refused"
            )
        self._keep(repo, chart, version, actual, data)
        return data

    def _keep(self, repo: str, chart: str, version: str, digest: str, data: bytes) -> None:
        """Cache the verified archive; a cache that cannot be written (read-only, or under a file)
        leaves the check to the archive in memory, downloaded again next time."""
        where, stem = self._slot(repo, chart, version)
        partial = where / f".{stem}{digest}.part"
        try:
            where.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            partial.replace(where / f"{stem}{digest}.tgz")
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)


# --- reading a chart archive -----------------------------------------------------------------------


def _files(data: bytes, source: str) -> dict[str, bytes]:
    """The members a schema check needs (Chart.yaml, values.yaml, values.schema.json, nested chart
    archives under charts/), read from the archive in memory: nothing is extracted, and a member
    whose path leaves the archive refuses the whole chart."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if path.is_absolute() or ".." in path.parts:
                    raise ChartUnavailable(
                        f"{source} has a member outside the chart ({member.name}): refused"
                    )
                if not member.isfile():
                    continue
                nested = len(path.parts) >= 2 and path.parts[-2] == "charts" and path.name.endswith(".tgz")
                if path.name in _WANTED or nested:
                    handle = tar.extractfile(member)
                    if handle is not None:
                        out[path.as_posix()] = handle.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ChartUnavailable(f"{source} is not a chart archive ({exc})") from None
    return out


def _yaml(raw: bytes | None, what: str) -> Any:
    """A repository's index or a chart's YAML file; malformed, it is the chart's failure in one line,
    worded as a malformed stack file is (line, column, the parser's reason)."""
    if not raw:
        return None
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ChartUnavailable(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        return safe_load(text)
    except yaml.YAMLError as exc:
        raise ChartUnavailable(f"{what} is {yaml_problem(exc, text)}") from None


def _chart_at(files: Mapping[str, bytes], root: str, source: str) -> ChartSchema:
    meta = _yaml(files.get(f"{root}/Chart.yaml"), f"{source} {root}/Chart.yaml")
    if not isinstance(meta, dict):
        raise ChartUnavailable(f"{source} has no {root}/Chart.yaml")
    defaults = _yaml(files.get(f"{root}/values.yaml"), f"{source} {root}/values.yaml") or {}
    schema = None
    if (raw := files.get(f"{root}/values.schema.json")) is not None:
        try:
            schema = json.loads(raw)
        except ValueError as exc:
            raise ChartUnavailable(f"{source} {root}/values.schema.json is not JSON ({exc})") from None

    # Subcharts: unpacked directories or archives under charts/, each known by its own Chart.yaml name.
    found: dict[str, ChartSchema] = {}
    prefix = f"{root}/charts/"
    for name in sorted(files):
        if not name.startswith(prefix):
            continue
        rest = name.removeprefix(prefix)
        if rest.endswith(".tgz") and "/" not in rest:
            sub = chart_schema(files[name], f"{source} {rest}")
        elif rest.count("/") == 1 and rest.endswith("/Chart.yaml"):
            sub = _chart_at(files, prefix + rest.split("/")[0], source)
        else:
            continue
        found[sub.chart] = sub

    subcharts: dict[str, str | ChartSchema] = {}
    conditions: dict[str, str] = {}
    tags: dict[str, tuple[str, ...]] = {}
    listed = set()
    for dep in meta.get("dependencies") or []:
        if not isinstance(dep, dict) or (sub := found.get(str(dep.get("name")))) is None:
            continue
        listed.add(sub.chart)
        key = str(dep.get("alias") or sub.chart)  # Helm renames an aliased dependency to its alias
        subcharts[key] = sub
        if dep.get("condition"):
            conditions[key] = str(dep["condition"])
        if dep.get("tags"):
            tags[key] = tuple(map(str, dep["tags"]))
    # A chart under charts/ that Chart.yaml does not list is still a dependency, always enabled.
    subcharts |= {name: sub for name, sub in found.items() if name not in listed}
    return ChartSchema(
        chart=str(meta.get("name") or root),
        version=str(meta.get("version") or ""),
        source=source,
        schema=schema,
        defaults=defaults if isinstance(defaults, dict) else {},
        subcharts=subcharts,
        conditions=conditions,
        tags=tags,
    )


def chart_schema(data: bytes, source: str) -> ChartSchema:
    """The schema, defaults and subcharts of a chart archive (a Helm package: one top directory)."""
    files = _files(data, source)
    roots = {name.split("/", 1)[0] for name in files if "/" in name}
    chart_files = [f"{r}/Chart.yaml" for r in roots if f"{r}/Chart.yaml" in files]
    if len(chart_files) != 1:
        raise ChartUnavailable(f"{source} is not a chart archive (no single top directory with Chart.yaml)")
    return _chart_at(files, chart_files[0].split("/", 1)[0], source)


def has_schema(spec: ChartSchema) -> bool:
    return spec.schema is not None or any(
        has_schema(sub) for sub in spec.subcharts.values() if isinstance(sub, ChartSchema)
    )


# --- the checks ------------------------------------------------------------------------------------


def check_release(release: ChartRelease, repositories: HelmRepositories) -> Check:
    name = f"{release.chart} {release.version}"
    try:
        spec = chart_schema(
            repositories.archive(release.repo, release.chart, release.version),
            f"{release.chart} {release.version}",
        )
    except ChartUnavailable as exc:
        # A failure, not a skip: the Release downloads the same chart from the same repository when
        # `up` applies it, so a chart preflight cannot fetch fails `up` too, after the cluster's changes.
        return Check(
            area="chart",
            name=name,
            ok=False,
            message=f"not checked: {exc}; `up` fetches the chart from {release.repo} the same way",
        )
    if not has_schema(spec):
        return Check(area="chart", name=name, ok=True, checked=False, message="has no schema")
    problems = validate_chart_values(spec, release.values)
    if not problems:
        return Check(area="chart", name=name, ok=True, message="values match its schema")
    shown = "; ".join(str(p) for p in problems[:SHOWN_PROBLEMS])
    more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
    key = CONFIG_KEYS.get(release.chart)
    made_by = f"; these values come from {key}" if key else ""
    return Check(
        area="chart",
        name=name,
        ok=False,
        message=f"the {release.chart} chart would refuse these values: {shown}{more}{made_by}",
    )


def check_charts(plan: Plan, repositories: HelmRepositories | None = None) -> list[Check]:
    """One check per release of the plan whose chart schema does not ship."""
    repos = repositories or HelmRepositories.default()
    return [check_release(release, repos) for release in unshipped_releases(plan)]
