"""Progress of site operations, built from the engine's events.

:class:`Progress` is what :class:`~jetstream_binderhub.automation.site.Site` reports to; the library's
default reports nothing. :class:`ConsoleProgress` is the CLI's display: on a terminal a live panel per
layer (resources done/total, the operations in flight with their age, elapsed time), elsewhere (CI logs)
one line per started and finished resource plus a heartbeat while something slow runs. Magnum clusters
take 10+ minutes to create and the display says so, so nobody cancels a healthy update.

Only names, types and operations are shown: never inputs or outputs, so no secret can reach the screen.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from jetstream_binderhub.automation.results import Layer, LayerResult
from jetstream_binderhub.naming import CLUSTER_TYPE, NODE_GROUP_TYPE

if TYPE_CHECKING:
    from pulumi.automation import EngineEvent

SLOW_TYPES = {
    CLUSTER_TYPE: "Magnum clusters take 10+ minutes to create or upgrade",
    NODE_GROUP_TYPE: "a Magnum node group takes about 5 minutes per node",
}
"""Resource types whose operations are slow in the cloud, with the note shown while they run."""

_VERB = {
    "create": "creating",
    "update": "updating",
    "delete": "deleting",
    "replace": "replacing",
    "create-replacement": "creating replacement of",
    "delete-replaced": "deleting old",
    "refresh": "refreshing",
    "read": "reading",
    "import": "importing",
}
_DONE = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "replace": "replaced",
    "create-replacement": "created replacement of",
    "delete-replaced": "deleted old",
    "refresh": "refreshed",
    "read": "read",
    "import": "imported",
}


class Progress(Protocol):
    def layer_started(self, layer: Layer, operation: str, stack: str, expected: int | None) -> None: ...

    def engine_event(self, layer: Layer, event: EngineEvent) -> None: ...

    def layer_finished(self, result: LayerResult) -> None: ...

    def note(self, text: str) -> None: ...


class NullProgress:
    """Reports nothing: the library's default, and the CLI's --quiet and --json modes."""

    def layer_started(self, layer: Layer, operation: str, stack: str, expected: int | None) -> None:
        pass

    def engine_event(self, layer: Layer, event: EngineEvent) -> None:
        pass

    def layer_finished(self, result: LayerResult) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def _bookkeeping(type_: str) -> bool:
    return type_ == "pulumi:pulumi:Stack" or type_.startswith("pulumi:providers:")


def _short_type(type_: str) -> str:
    # openstack:containerinfra/cluster:Cluster -> containerinfra/cluster:Cluster: the package is obvious.
    return type_.split(":", 1)[1] if type_.count(":") >= 2 else type_


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


@dataclass
class _InFlight:
    name: str
    type: str
    op: str
    since: float


@dataclass
class LayerProgress:
    """What the display knows about one layer's running operation; fed only by engine events."""

    layer: Layer
    operation: str
    stack: str
    expected: int | None
    started: float
    done: int = 0
    failed: int = 0
    in_flight: dict[str, _InFlight] = field(default_factory=dict)
    finished: LayerResult | None = None
    ended: float | None = None

    def apply(self, event: EngineEvent, now: float) -> tuple[str, _InFlight] | None:
        """Update from one event; returns ("start"|"done"|"failed", resource) for line-mode printing."""
        pre = event.resource_pre_event
        if pre is not None:
            meta = pre.metadata
            op = str(meta.op.value)
            if op == "same" or _bookkeeping(meta.type):
                return None
            item = _InFlight(name=meta.urn.rsplit("::", 1)[-1], type=meta.type, op=op, since=now)
            self.in_flight[meta.urn] = item
            return "start", item
        finished = event.res_outputs_event or event.res_op_failed_event
        if finished is not None:
            item = self.in_flight.pop(finished.metadata.urn, None)
            if item is None:
                return None
            if event.res_op_failed_event is not None:
                self.failed += 1
                return "failed", item
            self.done += 1
            return "done", item
        return None

    def elapsed(self, now: float) -> float:
        return (self.ended or now) - self.started


class ConsoleProgress:
    """The CLI's progress display on stderr (stdout stays for results and JSON)."""

    def __init__(self, stream: IO[str] | None = None, *, live: bool | None = None, heartbeat: float = 60.0):
        import sys

        from rich.console import Console

        self._console = Console(file=stream or sys.stderr, highlight=False, soft_wrap=False)
        self._live_mode = self._console.is_terminal if live is None else live
        self._lock = threading.RLock()
        self._layers: list[LayerProgress] = []
        self._live: Any = None
        self._heartbeat = heartbeat
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # --- Progress protocol ------------------------------------------------------------------

    def layer_started(self, layer: Layer, operation: str, stack: str, expected: int | None) -> None:
        with self._lock:
            state = LayerProgress(layer, operation, stack, expected, started=time.monotonic())
            self._layers.append(state)
            total = f", {expected} change(s)" if expected is not None else ""
            if self._live_mode:
                self._start_live()
            else:
                self._print(f"{layer.value}: {operation} of {stack} started{total}")
                self._start_heartbeat()

    def engine_event(self, layer: Layer, event: EngineEvent) -> None:
        with self._lock:
            state = self._current(layer)
            if state is None:
                return
            change = state.apply(event, time.monotonic())
            # A preview only plans: "creating X" lines would read as if it changed something.
            if change is None or self._live_mode or state.operation == "preview":
                return
            kind, item = change
            what = f"{item.name} ({_short_type(item.type)})"
            if kind == "start":
                slow = SLOW_TYPES.get(item.type)
                self._print(
                    f"{layer.value}: {_VERB.get(item.op, item.op)} {what}" + (f" — {slow}" if slow else "")
                )
            elif kind == "done":
                self._print(f"{layer.value}: {_DONE.get(item.op, item.op)} {what}{self._count(state)}")
            else:
                self._print(f"{layer.value}: FAILED {_VERB.get(item.op, item.op)} {what}")

    def layer_finished(self, result: LayerResult) -> None:
        with self._lock:
            state = self._current(result.layer)
            if state is not None:
                state.finished = result
                state.ended = time.monotonic()
                state.in_flight.clear()
            if self._live_mode:
                self._refresh()
            else:
                elapsed = _duration(state.elapsed(time.monotonic())) if state else ""
                self._print(f"{result.layer.value}: {result.operation} finished in {elapsed}")

    def note(self, text: str) -> None:
        with self._lock:
            if self._live is not None:
                self._live.console.print(text, markup=False)
            else:
                self._print(text)

    def pause(self) -> None:
        """Stop redrawing the live panel (its last state stays on screen) while the user is asked
        something; the next layer that starts draws a new one."""
        with self._lock:
            if self._live is not None:
                self._live.update(self._render(), refresh=True)
                self._live.stop()
                self._live = None

    def close(self) -> None:
        """Stop the live panel (leaving its last state on screen) and the heartbeat."""
        with self._lock:
            self._stop.set()
            if self._live is not None:
                self._live.update(self._render(), refresh=True)
                self._live.stop()
                self._live = None

    # --- rendering --------------------------------------------------------------------------

    def _current(self, layer: Layer) -> LayerProgress | None:
        return next((s for s in reversed(self._layers) if s.layer == layer), None)

    @staticmethod
    def _count(state: LayerProgress) -> str:
        return f" ({state.done}/{state.expected})" if state.expected is not None else f" ({state.done} done)"

    def _print(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        # One log line per message, never wrapped: CI logs are read (and grepped) line by line.
        self._console.print(f"[{stamp}] {text}", markup=False, soft_wrap=True)

    def _start_live(self) -> None:
        if self._live is None:
            from rich.live import Live

            self._live = Live(
                console=self._console, get_renderable=self._render, refresh_per_second=2, transient=False
            )
            self._live.start()

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        with self._lock:
            now = time.monotonic()
            lines: list[Any] = []
            for state in self._layers:
                status = "done" if state.finished else "running"
                if state.finished and state.finished.skipped:
                    status = "skipped"
                count = f"{state.done}/{state.expected}" if state.expected is not None else f"{state.done}"
                head = Text(f"{state.layer.value:<10} {state.operation:<8} {state.stack}  ", style="bold")
                head.append(f"{count} resources  {_duration(state.elapsed(now))}  {status}")
                if state.failed:
                    head.append(f"  {state.failed} failed", style="red")
                lines.append(head)
                notes: set[str] = set()
                for item in sorted(state.in_flight.values(), key=lambda i: i.since):
                    verb = _VERB.get(item.op, item.op)
                    lines.append(
                        Text(
                            f"    {verb} {item.name} ({_short_type(item.type)})  {_duration(now - item.since)}"
                        )
                    )
                    if item.type in SLOW_TYPES:
                        notes.add(SLOW_TYPES[item.type])
                lines += [Text(f"    note: {n}", style="dim") for n in sorted(notes)]
            return Group(*lines)

    def _start_heartbeat(self) -> None:
        if self._beat is not None or self._heartbeat <= 0:
            return

        def beat() -> None:
            while not self._stop.wait(self._heartbeat):
                with self._lock:
                    now = time.monotonic()
                    for state in self._layers:
                        for item in state.in_flight.values():
                            self._print(
                                f"{state.layer.value}: still {_VERB.get(item.op, item.op)} {item.name} "
                                f"({_duration(now - item.since)})"
                            )

        self._beat = threading.Thread(target=beat, name="jetstream-binderhub-heartbeat", daemon=True)
        self._beat.start()
