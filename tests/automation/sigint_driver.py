"""Runs `up --layer cluster` of a repository site against the stand-in pulumi and sends itself one SIGINT
once the update runs: to its whole process group (as a CI runner or a terminal does) or to itself
alone (`kill -INT PID`). Started in a session of its own, so the group is only this and its children.

Usage: python sigint_driver.py PROJECT_DIR group|self
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from jetstream_binderhub.automation import Interrupted, Site, interrupt

interrupt.ACK_GRACE_SECONDS = 1.0  # Pulumi's acknowledgement arrives within 0.1 s of the event log poll
scripted = Path(os.environ["FAKE_PULUMI_DIR"])


def press_ctrl_c(mode: str) -> None:
    deadline = time.monotonic() + 30
    while not (scripted / "running-up").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if mode == "group":
        os.killpg(os.getpgrp(), signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGINT)


def main(project: Path, mode: str) -> None:
    threading.Thread(target=press_ctrl_c, args=(mode,), daemon=True).start()
    try:
        Site.from_files("jetstream2", project, env=dict(os.environ)).up("cluster")
    except Interrupted as exc:
        print(f"interrupted: {exc}")
        return
    print("finished without an interrupt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
