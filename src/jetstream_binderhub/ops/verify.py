"""`verify`: a smoke test of a live BinderHub, the way a user's browser drives it.

Shapes read from jupyterhub/binderhub (binderhub/health.py, builder.py, launcher.py, base.py at
b9fad99, 2026-04):

- ``GET <base>/health`` answers ``{"ok": bool, "checks": [{"service": str, "ok": bool, ...}]}`` with
  200, or 503 when a counted check fails. A check carrying ``_ignore_failure`` (the pod quota) never
  makes the hub unhealthy, so it is not named as the cause.
- ``GET <base>/build/<provider>/<spec>`` with ``Accept: text/event-stream`` answers 200 even on failure
  (the handler's ``send_error`` writes a ``failed`` event instead of an error status). Events are
  ``data: {json}`` with ``phase`` (waiting, fetching, building, pushing, built, launching, ready,
  failed) and ``message``; errors raised by the handler carry ``status_code`` (429 for the rate limit,
  403 when authentication is on). ``:keepalive`` comments come every 25 s. After ``ready`` the server
  holds the stream open for 60 s, and after a failed build it never closes it (two ``failed`` events
  arrive): we stop reading at the first ``ready`` or ``failed``.
- The ``ready`` event carries the server's ``url`` and a ``token`` the launcher generated and passed to
  the notebook server as its own auth token (``--ServerApp.token``, binderspawner_mixin.py). That
  token opens the notebook server, not the Hub API, so the server is stopped with the Jupyter Server
  API (``POST <url>api/shutdown``); JupyterHub then sees it gone and its culler removes the user.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from jetstream_binderhub.errors import JetstreamBinderHubError

if TYPE_CHECKING:
    import httpx

DEFAULT_REPO = "gh/binder-examples/requirements/HEAD"
"""A small public repository with a quick build: the default of `verify --repo`."""

KEEPALIVE_SECONDS = 25
"""BinderHub's BuildHandler.KEEPALIVE_INTERVAL: a healthy stream is never silent longer than this."""

LAUNCH_PHASES = frozenset({"built", "launching"})
"""Phases after the image exists: a failure from here on is a launch failure, not a build failure."""


class Outcome(StrEnum):
    READY = "ready"
    UNHEALTHY = "unhealthy"
    BUILD_FAILED = "build_failed"
    LAUNCH_FAILED = "launch_failed"
    TIMED_OUT = "timed_out"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    GRAFANA_OPEN = "grafana_open"
    GRAFANA_UNREACHABLE = "grafana_unreachable"


EXIT_CODES: dict[Outcome, int] = {
    Outcome.READY: 0,
    Outcome.UNHEALTHY: 10,
    Outcome.BUILD_FAILED: 11,
    Outcome.LAUNCH_FAILED: 12,
    Outcome.TIMED_OUT: 13,
    Outcome.UNREACHABLE: 14,
    Outcome.REFUSED: 15,
    Outcome.GRAFANA_OPEN: 17,
    Outcome.GRAFANA_UNREACHABLE: 18,
}
"""Exit code of `verify` per outcome (docs/cli.md's table); stable for scripts."""


class VerifyInputError(JetstreamBinderHubError):
    """A --url or --repo that cannot be used."""

    exit_code = 2


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class HealthCheck(_Out):
    service: str
    ok: bool
    counted: bool = Field(
        description="False for checks BinderHub reports for information only (`_ignore_failure`)."
    )
    details: dict[str, Any] = Field(default_factory=dict)


class Health(_Out):
    ok: bool
    status_code: int
    checks: list[HealthCheck]
    seconds: float

    @property
    def failing(self) -> list[str]:
        return [c.service for c in self.checks if not c.ok and c.counted]


class PhaseTime(_Out):
    phase: str
    at_seconds: float = Field(description="When the phase's first event arrived, from the launch request.")
    seconds: float | None = Field(description="Until the next phase; None for the last one.")
    message: str = Field(description="The phase's first message, as the server gave it.")


class VerifyResult(_Out):
    url: str
    repo: str
    outcome: Outcome
    message: str = Field(description="One line: what happened and, when it failed, what to check.")
    health: Health | None = None
    phases: list[PhaseTime] = Field(default_factory=list)
    failure: str | None = Field(default=None, description="The failed event's message, verbatim.")
    status_code: int | None = Field(default=None, description="The failed event's status_code, if any.")
    server_url: str | None = None
    server_stopped: bool | None = Field(default=None, description="None when stopping was not asked for.")
    stop_problem: str | None = None
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["exit_code"] = self.exit_code
        return data


# --- input ----------------------------------------------------------------------------------------


def base_url(url: str) -> str:
    """`http(s)://host[:port][/base]` with the trailing slash that relative joins need."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise VerifyInputError(f"--url: not a URL ({exc}): {url!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise VerifyInputError(f"--url: expected http(s)://host[:port][/path], got {url!r}")
    if parsed.query or parsed.fragment:
        raise VerifyInputError(f"--url: give the BinderHub's base URL without ?query or #fragment: {url!r}")
    path = parsed.path if parsed.path.endswith("/") else parsed.path + "/"
    return str(parsed.copy_with(path=path))


def split_repo(spec: str) -> tuple[str, str]:
    """`gh/owner/repo/ref` -> ("gh", "owner/repo/ref"): BinderHub's /build/<provider>/<spec>."""
    provider, _, rest = spec.strip("/").partition("/")
    if not provider or not rest:
        raise VerifyInputError(
            f"--repo: expected PROVIDER/SPEC as in a launch URL, e.g. {DEFAULT_REPO}, got {spec!r}"
        )
    return provider, rest


# --- the run --------------------------------------------------------------------------------------


class _Deadline(Exception):
    pass


def verify(
    url: str,
    repo: str = DEFAULT_REPO,
    *,
    timeout: float = 900.0,
    stop_server: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> VerifyResult:
    """Check /health, launch `repo` and follow its events to the first `ready` or `failed`.

    Never raises for what the BinderHub answers: every outcome is a :class:`VerifyResult` (its
    `exit_code` tells them apart). Raises :class:`VerifyInputError` for a bad `url` or `repo`.
    """
    import httpx

    base = base_url(url)
    provider, spec = split_repo(repo)
    if timeout <= 0:
        raise VerifyInputError(f"--timeout: must be positive, got {timeout:g}")
    start = clock()
    deadline = start + timeout
    run = _Run(base=base, repo=f"{provider}/{spec}", start=start, deadline=deadline, clock=clock)
    headers = {"User-Agent": "jetstream-binderhub-verify"}
    with httpx.Client(headers=headers, follow_redirects=False) as client:
        try:
            health = run.health(client)
            if health.outcome is not Outcome.READY:
                return health
            result = run.launch(client, provider, spec)
            if result.outcome is Outcome.READY and stop_server:
                result = run.stop(client, result)
            return result
        except _Deadline:
            return run.timed_out()
        except httpx.TimeoutException as exc:
            return run.network_timeout(exc)
        except httpx.TransportError as exc:
            return run.unreachable(exc)


def read_health(
    url: str, *, timeout: float = 30.0, clock: Callable[[], float] = time.monotonic
) -> VerifyResult:
    """Only `GET /health`, with verify's reading of it and its one-line reasons when that fails
    (outcome READY: the hub answered and is healthy; `health` is set whenever it answered the JSON)."""
    import httpx

    base = base_url(url)
    start = clock()
    run = _Run(base=base, repo="", start=start, deadline=start + timeout, clock=clock)
    with httpx.Client(headers={"User-Agent": "jetstream-binderhub"}, follow_redirects=False) as client:
        try:
            return run.health(client)
        except _Deadline:
            return run.result(Outcome.TIMED_OUT, f"GET /health did not answer within {timeout:g} s")
        except httpx.TimeoutException as exc:
            return run.network_timeout(exc)
        except httpx.TransportError as exc:
            return run.unreachable(exc)


class _Run:
    """The state of one verify run: what has been seen so far, for whichever way it ends."""

    def __init__(
        self, *, base: str, repo: str, start: float, deadline: float, clock: Callable[[], float]
    ) -> None:
        self.base = base
        self.repo = repo
        self.start = start
        self.deadline = deadline
        self.clock = clock
        self.health_report: Health | None = None
        self.launch_start: float | None = None
        self.seen: list[tuple[str, float, str]] = []
        self.step = "GET /health"
        self._token: Any = None  # the ready event's; kept out of the result, it opens the server

    # --- building the result --------------------------------------------------------------------

    def result(self, outcome: Outcome, message: str, **extra: Any) -> VerifyResult:
        return VerifyResult(
            url=self.base,
            repo=self.repo,
            outcome=outcome,
            message=message,
            health=self.health_report,
            phases=self._phases(),
            seconds=round(self.clock() - self.start, 3),
            **extra,
        )

    def _phases(self) -> list[PhaseTime]:
        times = []
        for i, (phase, at, message) in enumerate(self.seen):
            following = self.seen[i + 1][1] if i + 1 < len(self.seen) else None
            times.append(
                PhaseTime(
                    phase=phase,
                    at_seconds=round(at, 3),
                    seconds=round(following - at, 3) if following is not None else None,
                    message=message,
                )
            )
        return times

    def _remaining(self) -> float:
        left = self.deadline - self.clock()
        if left <= 0:
            raise _Deadline
        return left

    def timed_out(self) -> VerifyResult:
        last = f" (last phase: {self.seen[-1][0]})" if self.seen else ""
        return self.result(
            Outcome.TIMED_OUT,
            f"no ready or failed event within the timeout during {self.step}{last}; a first build of a large "
            "repository can take longer (raise --timeout), otherwise check the builder pods",
        )

    def network_timeout(self, exc: httpx.TimeoutException) -> VerifyResult:
        import httpx

        if isinstance(exc, httpx.ConnectTimeout):
            return self.unreachable(exc)
        if isinstance(exc, httpx.ReadTimeout) and self.launch_start is not None:
            return self.result(
                Outcome.TIMED_OUT,
                f"the event stream went silent (BinderHub sends a keepalive every {KEEPALIVE_SECONDS} s): a "
                "proxy in front is buffering or cutting it, or the BinderHub pod stopped; check the ingress "
                "and `kubectl logs deploy/binder`",
            )
        return self.result(Outcome.TIMED_OUT, f"{self.step} did not answer in time; check the BinderHub pod")

    def unreachable(self, exc: Exception) -> VerifyResult:
        import httpx

        host = httpx.URL(self.base).host
        reason = str(exc) or type(exc).__name__
        if "CERTIFICATE" in reason.upper() or "SSL" in reason.upper():
            what = (
                f"the TLS handshake with {host} failed ({reason}); check the certificate "
                "(cert-manager's Certificate Ready, the ACME server is production)"
            )
        elif isinstance(exc, httpx.ConnectTimeout):
            what = (
                f"no answer from {host} while connecting; check the ingress floating IP, "
                "security group and DNS (`jetstream-binderhub outputs SITE`)"
            )
        elif isinstance(exc, httpx.ConnectError):
            what = (
                f"cannot connect to {host} ({reason}); check the URL, DNS (`jetstream-binderhub outputs "
                "SITE`) and that the ingress controller runs"
            )
        else:
            what = f"{self.step} to {host} broke off ({reason}); check the ingress and the BinderHub pod"
        return self.result(Outcome.UNREACHABLE, what)

    def _http_problem(self, response: httpx.Response) -> VerifyResult:
        code = response.status_code
        where = f"{self.step} answered {code}"
        if code in (401, 403):
            return self.result(
                Outcome.REFUSED,
                f"{where}: authentication is required; verify launches anonymously, so use a BinderHub "
                "without auth, or check the ingress's access rules",
                status_code=code,
            )
        if code in (301, 302, 303, 307, 308):
            target = response.headers.get("location", "?")
            return self.result(
                Outcome.UNREACHABLE,
                f"{where} (a redirect to {target}); pass the URL it redirects to as --url",
                status_code=code,
            )
        if code == 404:
            return self.result(
                Outcome.UNREACHABLE,
                f"{where}: no BinderHub at {self.base}; check --url (the BinderHub host, not the hub's)",
                status_code=code,
            )
        return self.result(
            Outcome.UNREACHABLE,
            f"{where}: the ingress has no working BinderHub behind it; check the binder pod and service",
            status_code=code,
        )

    # --- the steps --------------------------------------------------------------------------------

    def health(self, client: httpx.Client) -> VerifyResult:
        self.step = "GET /health"
        began = self.clock()
        response = client.get(self.base + "health", timeout=min(30.0, self._remaining()))
        if response.status_code not in (200, 503):
            return self._http_problem(response)
        try:
            body = response.json()
            checks = [_check(item) for item in body.get("checks", [])]
            ok = bool(body["ok"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.result(
                Outcome.UNREACHABLE,
                f"GET /health answered {response.status_code} without BinderHub's JSON; check --url points at "
                "the BinderHub host",
            )
        self.health_report = Health(
            ok=ok and response.status_code == 200,
            status_code=response.status_code,
            checks=checks,
            seconds=round(self.clock() - began, 3),
        )
        if not self.health_report.ok:
            failing = self.health_report.failing or ["(no check named)"]
            return self.result(
                Outcome.UNHEALTHY,
                f"BinderHub reports itself unhealthy ({response.status_code}): failing: {', '.join(failing)}; "
                "check those services (`kubectl get pods` in the BinderHub namespace)",
            )
        return self.result(Outcome.READY, "healthy")

    def launch(self, client: httpx.Client, provider: str, spec: str) -> VerifyResult:
        import httpx

        self.step = f"GET /build/{provider}/{spec}"
        self.launch_start = self.clock()
        # Silence longer than a keepalive period means the stream is dead; the overall deadline is
        # checked between lines, so keepalives alone cannot keep us waiting past it.
        read = min(self._remaining(), KEEPALIVE_SECONDS + 10.0)
        timeout = httpx.Timeout(min(30.0, self._remaining()), read=read)
        with client.stream(
            "GET",
            f"{self.base}build/{provider}/{spec}",
            headers={"Accept": "text/event-stream"},
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                return self._http_problem(response)
            try:
                for event in self._events(response):
                    ended = self._on_event(event)
                    if ended is not None:
                        return ended
            except httpx.RemoteProtocolError:
                pass  # the server hung up mid-stream: reported below like a clean close
        return self._closed_early()

    def _events(self, response: httpx.Response) -> Iterator[dict[str, Any]]:
        """Server-sent events as dicts. Parsed here rather than with an SSE client library because
        the deadline must be checked on comment lines too (a stalled build sends only keepalives)."""
        data: list[str] = []
        for line in response.iter_lines():
            self._remaining()
            if line.startswith(":"):
                continue
            if line == "":
                if data:
                    payload = "\n".join(data)
                    data = []
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        continue  # not one of BinderHub's events; the next one may be
                    if isinstance(event, dict):
                        yield event
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))

    def _on_event(self, event: dict[str, Any]) -> VerifyResult | None:
        assert self.launch_start is not None
        phase = str(event.get("phase", ""))
        message = str(event.get("message", "")).strip()
        if phase and (not self.seen or self.seen[-1][0] != phase):
            self.seen.append((phase, self.clock() - self.launch_start, message))
        if phase == "ready":
            server_url = event.get("url")
            self._token = event.get("token")
            where = f": server running at {server_url}" if server_url else ""
            return self.result(
                Outcome.READY,
                f"ready in {self.clock() - self.start:.1f}s{where}",
                server_url=server_url if isinstance(server_url, str) else None,
            )
        if phase == "failed":
            return self._failed(message, event.get("status_code"))
        return None

    def _failed(self, message: str, status: Any) -> VerifyResult:
        status_code = status if isinstance(status, int) else None
        before = [p for p, _, _ in self.seen[:-1]]
        told = f"BinderHub says: {message}" if message else "BinderHub gave no message"
        extra: dict[str, Any] = {"failure": message, "status_code": status_code}
        if status_code == 429:
            return self.result(
                Outcome.REFUSED,
                f"rate limited (429): {told}; wait for the period to pass, or raise the rate limit",
                **extra,
            )
        if not before:
            code = f" ({status_code})" if status_code else ""
            return self.result(
                Outcome.REFUSED,
                f"BinderHub refused to launch {self.repo}{code}: {told}; check --repo against the site's "
                "repo_providers and allowed_specs",
                **extra,
            )
        if message.startswith("Too many users"):
            # binderhub/quota.py: the total or per-repository launch quota is full (the image exists).
            return self.result(
                Outcome.LAUNCH_FAILED,
                f"the launch quota is full: {told}; wait for sessions to end, or raise binderhub.limits "
                "total_quota / per_repo_quota (an upgrade in progress sets the total to 0)",
                **extra,
            )
        if LAUNCH_PHASES & set(before):
            return self.result(
                Outcome.LAUNCH_FAILED,
                f"the image was built but the launch failed: {told}; check the hub's logs and that user "
                "nodes can be scheduled (`kubectl get pods`, the autoscaler)",
                **extra,
            )
        return self.result(
            Outcome.BUILD_FAILED,
            f"the build failed during {before[-1]}: {told}; check the build pod's log and the registry",
            **extra,
        )

    def _closed_early(self) -> VerifyResult:
        last = self.seen[-1][0] if self.seen else None
        message = "the server closed the event stream " + (f"during {last}" if last else "before any event")
        if last in LAUNCH_PHASES:
            return self.result(Outcome.LAUNCH_FAILED, f"{message}, without ready; check the hub's logs")
        return self.result(
            Outcome.BUILD_FAILED,
            f"{message}, without ready or failed; a proxy may cut long requests (its read timeout)",
        )

    def stop(self, client: httpx.Client, result: VerifyResult) -> VerifyResult:
        """Shut the launched notebook server down with the token the ready event gave us."""
        import httpx

        server_url, token = result.server_url, self._token
        if not server_url or not isinstance(token, str) or not token:
            return result.model_copy(
                update={
                    "server_stopped": False,
                    "stop_problem": "the ready event carried no url and token; stop the server from the hub",
                }
            )
        target = server_url if server_url.endswith("/") else server_url + "/"
        problem: str | None = None
        try:
            response = client.post(
                target + "api/shutdown",
                headers={"Authorization": f"token {token}"},
                timeout=30.0,
            )
            if response.status_code in (401, 403):
                problem = f"the server refused its own token ({response.status_code})"
            elif response.status_code >= 400:
                problem = f"POST api/shutdown answered {response.status_code}"
        except httpx.RemoteProtocolError:
            pass  # the server may exit before it finishes answering: that is the shutdown working
        except httpx.HTTPError as exc:
            problem = f"POST api/shutdown failed ({exc or type(exc).__name__})"
        if problem is not None:
            problem += "; the hub's culler stops it after its idle timeout"
        return result.model_copy(update={"server_stopped": problem is None, "stop_problem": problem})


def _check(item: Any) -> HealthCheck:
    if not isinstance(item, dict):
        raise TypeError("check is not an object")
    details = {k: v for k, v in item.items() if k not in ("service", "ok", "_ignore_failure")}
    return HealthCheck(
        service=str(item["service"]),
        ok=bool(item["ok"]),
        counted=not item.get("_ignore_failure", False),
        details=details,
    )


# --- Grafana --------------------------------------------------------------------------------------


class GrafanaCheck(_Out):
    url: str
    outcome: Outcome
    message: str = Field(description="One line: what Grafana answered and, when it failed, what to check.")
    status_code: int | None = Field(default=None, description="The status of the request that failed.")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def grafana_base_url(url: str) -> str:
    """:func:`base_url` for Grafana, its errors naming --grafana-url."""
    try:
        return base_url(url)
    except VerifyInputError as exc:
        raise VerifyInputError(str(exc).replace("--url", "--grafana-url", 1)) from None


def check_grafana(url: str, *, timeout: float = 30.0) -> GrafanaCheck:
    """Check that Grafana answers and refuses an anonymous user.

    Without credentials and with anonymous access off, Grafana's `notAuthorized` answers API paths
    with 401 and redirects pages to /login (grafana/grafana pkg/middleware/auth.go); /api/health
    and /login are public. With `auth.anonymous` on, /api/search answers 200 (or 403 for a role
    without the permission): the anonymous user got in. Never raises for what the server answers.
    """
    import httpx

    base = grafana_base_url(url)
    host = httpx.URL(base).host

    def result(outcome: Outcome, message: str, status: int | None = None) -> GrafanaCheck:
        return GrafanaCheck(url=base, outcome=outcome, message=message, status_code=status)

    step = "GET /api/health"
    headers = {"User-Agent": "jetstream-binderhub-verify"}
    try:
        with httpx.Client(headers=headers, follow_redirects=False, timeout=timeout) as client:
            health = client.get(base + "api/health")
            if health.status_code != 200 or not _is_grafana_health(health):
                return result(
                    Outcome.GRAFANA_UNREACHABLE,
                    f"Grafana at {base}: {step} answered {health.status_code} without Grafana's health "
                    "JSON; check the grafana pod and its ingress (`kubectl -n support get pods`)",
                    health.status_code,
                )
            step = "GET /login"
            login = client.get(base + "login")
            if login.status_code != 200:
                return result(
                    Outcome.GRAFANA_UNREACHABLE,
                    f"Grafana at {base}: {step} answered {login.status_code}; its login page should be public",
                    login.status_code,
                )
            step = "GET /api/search"
            search = client.get(base + "api/search")
    except httpx.TransportError as exc:
        reason = str(exc) or type(exc).__name__
        tls = "CERTIFICATE" in reason.upper() or "SSL" in reason.upper()
        hint = (
            "check its certificate (cert-manager's Certificate Ready)" if tls else "check DNS and the ingress"
        )
        return result(Outcome.GRAFANA_UNREACHABLE, f"Grafana at {host}: {step} failed ({reason}); {hint}")
    if search.status_code == 401:
        return result(Outcome.READY, f"Grafana answers at {base} and refuses anonymous access (401)")
    if search.status_code in (200, 403):
        return result(
            Outcome.GRAFANA_OPEN,
            f"Grafana at {base} lets an anonymous user in: {step} without credentials answered "
            f"{search.status_code}, not 401; turn anonymous access off (grafana.ini auth.anonymous "
            "enabled: false)",
            search.status_code,
        )
    return result(
        Outcome.GRAFANA_UNREACHABLE,
        f"Grafana at {base}: {step} answered {search.status_code}, expected 401 without credentials; "
        "check the grafana pod and its ingress",
        search.status_code,
    )


def _is_grafana_health(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "database" in body
