"""Turning the Automation API's exceptions into one line each, with what to do.

A ``CommandError``'s text is the CLI's entire stdout and stderr: long, coloured, and not something to
show a user. The engine's own diagnostics (collected from its events) name the failing resource and
cause; when there are none, the last ``error:`` line of stderr is the best one-line summary.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jetstream_binderhub.automation.errors import (
    PassphraseMissing,
    PassphraseWrong,
    PulumiCliMissing,
    PulumiCliTooOld,
    StackLocked,
    StackNotFound,
    UpdateFailed,
)
from jetstream_binderhub.automation.stacks import LayerSpec
from jetstream_binderhub.engine.changes import clean_text
from jetstream_binderhub.errors import JetstreamBinderHubError

if TYPE_CHECKING:
    from jetstream_binderhub.engine.changes import LayerChanges

MAX_LINE = 300


def _stderr(text: str) -> str:
    # CommandError's message is "\n code: N\n stdout: ...\n stderr: ..." (pulumi.automation._cmd).
    _, sep, after = text.partition("\n stderr: ")
    return after if sep else text


def _error_lines(text: str) -> list[str]:
    lines = [clean_text(line).strip() for line in text.splitlines()]
    return [line for line in lines if line.lower().startswith("error:")]


def _short(line: str) -> str:
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def command_summary(text: str) -> str | None:
    """The most specific `error:` line of a CLI run (the generic "update failed" ones last)."""
    errors = _error_lines(_stderr(text)) or _error_lines(text)
    specific = [e for e in errors if not re.match(r"error: (update|preview|refresh|destroy) failed$", e)]
    picked = (specific or errors or [None])[-1]
    return _short(picked.removeprefix("error: ")) if picked else None


def translate(
    exc: BaseException,
    spec: LayerSpec,
    *,
    operation: str,
    backend: str,
    changes: LayerChanges | None = None,
) -> JetstreamBinderHubError | None:
    """The domain error for `exc`, or None when it is not something Pulumi raised (a bug: re-raise it)."""
    from pulumi.automation import errors as auto_errors

    where = f"{spec.description} on {backend}"
    # Plain `pulumi` must look at the same state: name the backend in the commands we suggest.
    # (`backend` is the display form: a password in the URL stays masked.)
    env = f"PULUMI_BACKEND_URL={backend} " if backend else ""
    if isinstance(exc, auto_errors.ConcurrentUpdateError):
        return StackLocked(
            f"stack {where} is locked by another update: wait for it to finish; if that update crashed, run "
            f"`{env}pulumi cancel --yes --stack {spec.stack}` in {spec.work_dir} to release the lock, then "
            f"`jetstream-binderhub refresh {spec.stack} --layer {spec.layer.value}`"
        )
    if isinstance(exc, auto_errors.StackNotFoundError):
        return StackNotFound(
            f"no stack {where}: `jetstream-binderhub up {spec.stack} --layer {spec.layer.value}` creates it, or "
            "pass the --backend (or PULUMI_BACKEND_URL) its state lives on"
        )
    if isinstance(exc, auto_errors.InvalidVersionError):
        return PulumiCliTooOld(f"{clean_text(str(exc)).strip()} (https://www.pulumi.com/docs/install/)")
    if isinstance(exc, FileNotFoundError) and "pulumi" in str(exc):
        return PulumiCliMissing(
            "the Pulumi CLI disappeared from PATH while running: install it from https://www.pulumi.com/docs/install/"
        )
    if isinstance(exc, auto_errors.CommandError):
        text = str(exc)
        low = text.lower()
        if "incorrect passphrase" in low:
            return PassphraseWrong(
                f"the passphrase in PULUMI_CONFIG_PASSPHRASE(_FILE) does not decrypt stack {where}: use the one "
                "its secrets were encrypted with"
            )
        if "passphrase must be set" in low or "pulumi_config_passphrase" in low:
            return PassphraseMissing(
                f"stack {where} needs its passphrase: set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE)"
            )
        line = changes.failure_line() if changes is not None else None
        details = [d.headline for d in changes.errors] if changes is not None else []
        if line is None:
            summary = command_summary(text)
            line = (
                f"{spec.layer.value}: {summary}"
                if summary
                else f"{spec.layer.value}: pulumi {operation} failed"
            )
        # A local program can be rerun with plain pulumi for the full log; an inline one cannot.
        hint = (
            f" (full log: `{env}pulumi {operation} --stack {spec.stack}` in {spec.work_dir})"
            if spec.program is None
            else ""
        )
        return UpdateFailed(
            f"{operation} failed: {line}{hint}",
            layer=spec.layer.value,
            details=details,
        )
    return None
