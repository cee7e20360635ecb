"""A stand-in `pulumi` executable for contract tests of our use of the Automation API SDK.

Not a Pulumi: it answers the handful of commands the SDK sends (version, stack select/init/output/
history/export, config set, preview/up/refresh/destroy with a file event log, as the SDK uses for CLIs
up to 3.205) from a scripted directory ($FAKE_PULUMI_DIR), and logs every call there. The tests check
that the real SDK, driven by our code, sends what a real CLI expects and understands what it answers.

Scripted directory:
  stacks.json            {"<project>/<stack>": {"outputs": {...}, "secret": [names], "resources": [...]}}
  events-<op>.jsonl      engine events to write to the --event-log of <op>
  fail-<op>.txt          stderr to print, exit 255, after the events (`fail-config.txt`: from `config set`)
  block-<op>             wait for SIGINT after the events (writes running-<op> first)
  hold-after-sigint      seconds to keep running after the first SIGINT (a second one then terminates)
  calls.jsonl            written: one {"argv", "cwd", "backend", "env"} per call, argv and environment
                         exactly as received, so tests can look for a secret that leaked into either
                         (plus "plan_dir_mode", the octal mode of the directory of a --save-plan/--plan file)
  config.json            written by `config set`: {"<project>/<stack>": {"<key>": {"value", "secret"}}}, the
                         value from the command line or, when it is omitted, from standard input

Update plans as the engine enforces them: `preview --save-plan F` writes each resource's previewed steps
to F; `up --plan F` refuses a step the plan does not hold with the engine's own diagnostic
(pulumi/pulumi pkg/resource/deploy/step_generator.go: "<op> is not allowed by the plan: ...").
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

DIR = Path(os.environ["FAKE_PULUMI_DIR"])
STACKS = DIR / "stacks.json"


def log(argv: list[str]) -> None:
    entry: dict[str, Any] = {
        "argv": argv,
        "cwd": str(Path.cwd()),
        "backend": os.environ.get("PULUMI_BACKEND_URL"),
        "env": dict(os.environ),
    }
    plan = option(argv, "--save-plan") or option(argv, "--plan")
    if plan and Path(plan).parent.is_dir():
        entry["plan_dir_mode"] = oct(Path(plan).parent.stat().st_mode & 0o777)
    with (DIR / "calls.jsonl").open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def project() -> str:
    for line in Path("Pulumi.yaml").read_text().splitlines():
        if line.startswith("name:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit("no Pulumi.yaml here")


def option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def stacks() -> dict[str, dict[str, Any]]:
    return json.loads(STACKS.read_text()) if STACKS.is_file() else {}


def key(argv: list[str]) -> str:
    return f"{project()}/{option(argv, '--stack')}"


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(255)


def engine(op: str, argv: list[str]) -> None:
    if key(argv) not in stacks():
        fail(f"error: no stack named '{option(argv, '--stack')}' found")
    path = Path(option(argv, "--event-log") or os.devnull)
    events = DIR / f"events-{op}.jsonl"
    lines = events.read_text().splitlines() if events.is_file() else []
    sequence = 1000

    def write(event: dict[str, object]) -> None:
        nonlocal sequence
        sequence += 1
        with path.open("a") as handle:
            handle.write(json.dumps({"sequence": sequence, "timestamp": int(time.time()), **event}) + "\n")

    received = 0

    def cancelled(signum: int, frame: object) -> None:
        # As Pulumi's cancellation scope (pkg/backend/cancellation_scope.go): the first SIGINT is
        # acknowledged as a stdout event and the operations in flight are waited for; a second one
        # terminates at once.
        nonlocal received
        received += 1
        log(["<SIGINT received>"])
        if received > 1:
            write({"stdoutEvent": {"message": "^C received; terminating", "color": "never"}})
            write({"cancelEvent": {}})
            fail("error: update terminated")
        write(
            {
                "stdoutEvent": {
                    "message": "^C received; cancelling. If you would like to terminate immediately, press ^C again.\n",
                    "color": "never",
                }
            }
        )
        hold = DIR / "hold-after-sigint"
        if hold.is_file():
            time.sleep(float(hold.read_text()))  # operations in flight finishing
        write({"diagnosticEvent": {"message": "update canceled", "color": "never", "severity": "error"}})
        write({"cancelEvent": {}})
        fail("error: update canceled")

    signal.signal(signal.SIGINT, cancelled)
    steps = [_step(line) for line in lines]
    save_plan, use_plan = option(argv, "--save-plan"), option(argv, "--plan")
    if save_plan:
        planned: dict[str, list[str]] = {}
        for urn, op in filter(None, steps):
            planned.setdefault(urn, []).append(op)
        Path(save_plan).write_text(json.dumps({"resourcePlans": planned}))
    planned_steps: dict[str, list[str]] | None = None
    if use_plan:
        if not Path(use_plan).is_file():
            fail(f"error: open {use_plan}: no such file or directory")
        planned_steps = json.loads(Path(use_plan).read_text())["resourcePlans"]
    with path.open("a") as handle:
        for line, found in zip(lines, steps, strict=True):
            if planned_steps is not None and found is not None:
                urn, op = found
                allowed = planned_steps.get(urn, [])
                if op not in allowed:
                    why = (
                        f"this resource is constrained to {allowed[0]}"
                        if allowed
                        else "no steps were expected for this resource"
                    )
                    message = f"{op} is not allowed by the plan: {why}"
                    handle.write(
                        json.dumps(
                            {
                                "sequence": 999,
                                "timestamp": int(time.time()),
                                "diagnosticEvent": {
                                    "urn": urn,
                                    "message": message + "\n",
                                    "color": "never",
                                    "severity": "error",
                                },
                            }
                        )
                        + "\n"
                    )
                    handle.close()
                    write({"cancelEvent": {}})
                    fail(f"error: {message}")
            handle.write(line + "\n")
    if not any('"summaryEvent"' in line for line in lines):
        write(
            {
                "summaryEvent": {
                    "maybeCorrupt": False,
                    "durationSeconds": 0,
                    "resourceChanges": {},
                    "PolicyPacks": {},
                }
            }
        )
    if (DIR / f"block-{op}").exists():
        (DIR / f"running-{op}").write_text("")
        time.sleep(30)
    failure = DIR / f"fail-{op}.txt"
    if failure.is_file():
        write({"cancelEvent": {}})
        fail(failure.read_text())
    write({"cancelEvent": {}})
    print(f"{op} done")


def config_set(argv: list[str]) -> None:
    # As pulumi's config_set.go: `set <key> [value]`; without a value, standard input (when it is not a
    # terminal) with one trailing newline dropped.
    positional: list[str] = []
    words = iter(argv[2:])
    for word in words:
        if word == "--":
            positional += list(words)
        elif word in ("--stack", "-s", "--config-file"):
            next(words, None)
        elif not word.startswith("-"):
            positional.append(word)
    if len(positional) == 2:
        value = positional[1]
    elif not sys.stdin.isatty():
        value = sys.stdin.read().removesuffix("\n")
    else:
        fail("error: config value must be specified in non-interactive mode")
        return
    if (DIR / "fail-config.txt").is_file():
        fail((DIR / "fail-config.txt").read_text())
    path = DIR / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    config.setdefault(key(argv), {})[positional[0]] = {"value": value, "secret": "--secret" in argv}
    path.write_text(json.dumps(config))


def _step(line: str) -> tuple[str, str] | None:
    """(urn, op) of a resourcePreEvent that changes something; None for every other line."""
    event = json.loads(line)
    meta = (event.get("resourcePreEvent") or {}).get("metadata")
    if not meta or meta["op"] in ("same", "read", "refresh"):
        return None
    return meta["urn"], meta["op"]


def main(argv: list[str]) -> None:
    argv = [a for a in argv if a != "--non-interactive"]
    log(argv)
    if argv[:1] == ["version"]:
        print("v3.190.0")
        return
    if argv[:2] == ["stack", "select"]:
        if key(argv) not in stacks():
            fail(f"error: no stack named '{option(argv, '--stack')}' found")
        return
    if argv[:2] == ["stack", "init"]:
        state = stacks()
        state[f"{project()}/{argv[2]}"] = {"outputs": {}, "secret": [], "resources": []}
        STACKS.write_text(json.dumps(state))
        return
    if argv[:2] == ["stack", "output"]:
        stack = stacks()[key(argv)]
        outputs = dict(stack["outputs"])
        if "--show-secrets" not in argv:
            outputs = {k: "[secret]" if k in stack["secret"] else v for k, v in outputs.items()}
        print(json.dumps(outputs))
        return
    if argv[:2] == ["stack", "history"]:
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        print(
            json.dumps(
                [
                    {
                        "kind": "update",
                        "startTime": now,
                        "endTime": now,
                        "message": "",
                        "environment": {},
                        "config": {},
                        "result": "succeeded",
                        "version": 1,
                        "resourceChanges": {},
                    }
                ]
            )
        )
        return
    if argv[:2] == ["stack", "export"]:
        print(json.dumps({"version": 3, "deployment": {"resources": stacks()[key(argv)]["resources"]}}))
        return
    if argv[:2] == ["config", "set"]:
        config_set(argv)
        return
    if argv and argv[0] in ("preview", "up", "refresh", "destroy"):
        engine(argv[0], argv)
        return
    fail(f"error: the fake pulumi does not know {' '.join(argv)}")


if __name__ == "__main__":
    main(sys.argv[1:])
