"""Ctrl-C during an update: let the engine stop cleanly instead of killing it mid-operation.

Pulumi stops gracefully on SIGINT: it starts nothing new, waits for the operations in flight (a
Magnum cluster being created keeps going in OpenStack either way), records them in the state and
releases the lock. A second SIGINT makes it exit at once, which can leave the lock and pending
operations behind.

The Automation API runs `pulumi` as a child process in our process group. If Python's
KeyboardInterrupt unwound through it, the pipes to the child would be closed under it and the
child could die on a broken pipe before it saves the state. So the command runs in a worker thread;
the main thread only waits, and on Ctrl-C keeps waiting for the engine to finish stopping.

Pulumi must get each Ctrl-C exactly once: a second one abandons the operations in flight. A Ctrl-C typed
at a terminal, or a signal sent to the whole process group (a CI runner, `kill -INT -PGID`), reaches
`pulumi` by itself; one sent to this process alone (`kill -INT PID`, `_thread.interrupt_main`) does not.
Which of the two happened cannot be read from the signal, but Pulumi says when it got one: its engine
writes "^C received; cancelling" (then "^C received; terminating") as a stdout event
(pulumi/pulumi pkg/backend/cancellation_scope.go), which reaches the event stream. So the signal is
forwarded only when no such acknowledgement arrives within a grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from jetstream_binderhub.automation.errors import Interrupted

T = TypeVar("T")

ACK_GRACE_SECONDS = 2.0
"""How long to wait for Pulumi's own acknowledgement of a Ctrl-C before concluding it did not get one
(the event log is tailed every 0.1 s; the engine answers at once)."""

ACK_WORDS = ("received; cancelling", "received; terminating")


class SigintAcks:
    """Counts Pulumi's acknowledgements of SIGINT seen in the engine's events; feed it every event."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seen = 0
        self._asked = 0

    def see(self, event: object) -> None:
        stdout = getattr(event, "stdout_event", None)
        message = getattr(stdout, "message", "") or ""
        if any(word in message for word in ACK_WORDS):
            with self._cond:
                self._seen += 1
                self._cond.notify_all()

    def next_within(self, timeout: float) -> bool:
        """Whether Pulumi acknowledges one more SIGINT (this Ctrl-C's) within `timeout` seconds."""
        with self._cond:
            self._asked += 1
            return self._cond.wait_for(lambda: self._seen >= self._asked, timeout)


STOPPING = (
    "Ctrl-C: asking Pulumi to stop after the operations in flight (a Magnum cluster operation can take "
    "10+ minutes to finish); press Ctrl-C again to abandon them"
)


def _terminal_delivered_sigint() -> bool:
    """True when a terminal's Ctrl-C reached our whole foreground process group, `pulumi` included."""
    for stream in (sys.stdin, sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgrp()
        except (AttributeError, OSError, ValueError):
            continue
    return False


def _pulumi_children() -> list[int]:
    pid = os.getpid()
    pids: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    if tasks.is_dir():
        for task in tasks.iterdir():
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
    else:  # macOS and other Unixes without /proc
        try:
            out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
            pids = [int(p) for p in out.stdout.split()]
        except (OSError, ValueError):
            return []
    return [p for p in pids if _is_pulumi(p)]


def _is_pulumi(pid: int) -> bool:
    comm = Path(f"/proc/{pid}/comm")
    if comm.is_file():
        try:
            return comm.read_text().strip().startswith("pulumi")
        except OSError:
            return False
    try:
        out = subprocess.run(
            ["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return False
    return Path(out.stdout.strip()).name.startswith("pulumi")


def forward_sigint(acknowledged: Callable[[float], bool] | None = None, grace: float | None = None) -> int:
    """Pass SIGINT to our `pulumi` children unless they got it already; how many were signalled.

    They got it when a terminal delivered it to our foreground process group, or when Pulumi
    acknowledges it (`acknowledged(grace)`, see :class:`SigintAcks`): a signal sent to the whole group
    without a terminal (CI) reaches the child too, and a second copy would make Pulumi abandon its
    operations. Only a signal sent to this process alone is forwarded.
    """
    if os.name != "posix" or _terminal_delivered_sigint():
        return 0
    if acknowledged is not None and acknowledged(ACK_GRACE_SECONDS if grace is None else grace):
        return 0
    sent = 0
    for pid in _pulumi_children():
        try:
            os.kill(pid, signal.SIGINT)
            sent += 1
        except OSError:
            continue
    return sent


def _abandoned(what: str) -> Interrupted:
    return Interrupted(
        f"{what} abandoned by a second Ctrl-C: the stack may stay locked with pending operations; "
        "run `pulumi cancel --yes` and `pulumi refresh` for it before the next update"
    )


def run_interruptibly(
    fn: Callable[[], T],
    *,
    what: str,
    on_stopping: Callable[[str], None] = lambda _msg: None,
    forward: Callable[[], int] = forward_sigint,
) -> T:
    """Run `fn` (one Pulumi command) so that Ctrl-C stops it cleanly, then raise :class:`Interrupted`.

    `what` names the operation for the messages ("up of cluster layer jetstream-binderhub/site").
    Outside the main thread (no KeyboardInterrupt there) `fn` simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    outcome: dict[str, object] = {}
    done = threading.Event()

    def work() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # handed to the main thread as it is
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, name="jetstream-binderhub-pulumi", daemon=True)
    interrupted = False
    while True:
        try:
            if worker.ident is None:
                worker.start()  # inside the try: Ctrl-C can arrive while the thread starts
            while not done.wait(0.2):
                pass
            break
        except KeyboardInterrupt:
            if worker.ident is None:  # interrupted before the command even started
                raise Interrupted(f"{what} was not started (Ctrl-C)") from None
            if interrupted:
                forward()  # a second SIGINT: Pulumi exits at once
                raise _abandoned(what) from None
            interrupted = True
            on_stopping(STOPPING)
            try:
                forward()  # may wait a moment for Pulumi to say it got this one itself
            except KeyboardInterrupt:
                forward()
                raise _abandoned(what) from None
    if interrupted:
        finished = "error" not in outcome
        raise Interrupted(
            f"{what} {'finished before it could stop' if finished else 'stopped cleanly'} after Ctrl-C; "
            "nothing further was started (preview again to see what is left to do)"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
