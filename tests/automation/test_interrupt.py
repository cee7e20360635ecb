"""Ctrl-C while Pulumi runs: wait for the engine to stop cleanly, forward SIGINT only when needed."""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetstream_binderhub.automation.errors import Interrupted
from jetstream_binderhub.automation.interrupt import (
    STOPPING,
    _pulumi_children,
    forward_sigint,
    run_interruptibly,
)


@pytest.fixture(autouse=True)
def _sigint_handled() -> object:
    """Python's own Ctrl-C handler, as in a terminal: a runner that starts the tests with SIGINT ignored
    (a background job of a non-interactive shell, nohup) would otherwise make interrupt_main a no-op
    and pass SIG_IGN on to the child processes these tests signal."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_first_ctrl_c_waits_for_the_engine_then_raises_interrupted() -> None:
    notes: list[str] = []
    forwarded: list[int] = []
    finished: list[bool] = []

    def engine() -> None:
        _thread.interrupt_main()
        time.sleep(0.5)  # operations in flight complete after the interrupt
        finished.append(True)
        raise RuntimeError("update canceled")

    with pytest.raises(Interrupted, match="stopped cleanly after Ctrl-C") as stopped:
        run_interruptibly(
            engine,
            what="up of the cluster layer",
            on_stopping=notes.append,
            forward=lambda: forwarded.append(1) or 1,
        )

    assert finished == [True], "the engine was waited for, not abandoned"
    assert notes == [STOPPING]
    assert forwarded == [1]
    assert stopped.value.exit_code == 130


def test_second_ctrl_c_abandons_and_says_the_stack_may_be_locked() -> None:
    def engine() -> None:
        _thread.interrupt_main()
        time.sleep(0.5)
        _thread.interrupt_main()
        time.sleep(2)

    with pytest.raises(Interrupted, match=r"abandoned by a second Ctrl-C.*pulumi cancel"):
        run_interruptibly(engine, what="up", forward=lambda: 0)


def test_without_ctrl_c_the_result_and_errors_pass_through() -> None:
    assert run_interruptibly(lambda: 42, what="x") == 42
    with pytest.raises(ValueError, match="boom"):
        run_interruptibly(lambda: (_ for _ in ()).throw(ValueError("boom")), what="x")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="child lookup via /proc (Linux)")
def test_sigint_is_forwarded_to_a_pulumi_child_only(tmp_path: Path) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake_pulumi = tmp_path / "pulumi"
    fake_pulumi.symlink_to(sleep)  # the process's name is `pulumi`
    pulumi = subprocess.Popen([str(fake_pulumi), "30"])
    other = subprocess.Popen([sleep, "30"])
    try:
        deadline = time.monotonic() + 5
        while pulumi.pid not in _pulumi_children() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pulumi.pid in _pulumi_children()
        assert other.pid not in _pulumi_children()
        if sys.stdin.isatty() and os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp():
            pytest.skip("in a terminal's foreground group the terminal delivers Ctrl-C itself")
        assert forward_sigint() == 1
        assert pulumi.wait(timeout=5) != 0
        assert other.poll() is None, "only pulumi is signalled"
    finally:
        for proc in (pulumi, other):
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _stdout_event(message: str) -> object:
    from pulumi.automation import EngineEvent

    return EngineEvent.from_json(
        {"sequence": 1, "timestamp": 1, "stdoutEvent": {"message": message, "color": "never"}}
    )


def test_pulumis_acknowledgement_counts_each_ctrl_c_once() -> None:
    from jetstream_binderhub.automation.interrupt import SigintAcks

    acks = SigintAcks()
    acks.see(_stdout_event("Updating (jetstream2)"))
    assert acks.next_within(0.05) is False, "any other message is no acknowledgement"
    acks.see(
        _stdout_event("^C received; cancelling. If you would like to terminate immediately, press ^C again.")
    )
    acks.see(_stdout_event("^C received; terminating"))
    assert acks.next_within(0.05) is True, "each Ctrl-C needs its own acknowledgement"
    assert acks.next_within(0.05) is False


def test_an_acknowledged_ctrl_c_is_not_forwarded_and_an_unacknowledged_one_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import jetstream_binderhub.automation.interrupt as interrupt

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(interrupt, "_terminal_delivered_sigint", lambda: False)
    monkeypatch.setattr(interrupt, "_pulumi_children", lambda: [4242])
    monkeypatch.setattr(interrupt.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    asked: list[float] = []

    assert forward_sigint(acknowledged=lambda grace: asked.append(grace) or True) == 0
    assert asked == [interrupt.ACK_GRACE_SECONDS] and sent == []
    assert forward_sigint(acknowledged=lambda grace: False) == 1
    assert sent == [(4242, signal.SIGINT)]
