"""Turning the Automation API's exceptions into one line each, with what to do.

A ``CommandError``'s text is the CLI's entire stdout and stderr: long, coloured, and not something to
show a user. The engine's own diagnostics (collected from its events) name the failing resource and
cause; when there are none, the last ``error:`` line of stderr is the best one-line summary.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jetstream_binderhub.automation.errors import (
    BackendUnreachable,
    PassphraseMissing,
    PassphraseWrong,
    PlanViolated,
    PulumiCliMissing,
    PulumiCliTooOld,
    StackLocked,
    StackNotFound,
    UpdateFailed,
)
from jetstream_binderhub.automation.stacks import LayerSpec
from jetstream_binderhub.engine.changes import clean_text
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError, Problem

if TYPE_CHECKING:
    from jetstream_binderhub.engine.changes import LayerChanges

MAX_LINE = 300

_PLAN_VIOLATION = re.compile(r"violates plan|is not allowed by the plan|no plan for resource")
"""The engine's words when an update leaves its update plan (pulumi/pulumi
pkg/resource/deploy/step_generator.go, step_executor.go and plan.go)."""


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


_PROTECTED = re.compile(r"unable to (replace|delete) resource .*currently marked for protection", re.DOTALL)
"""The engine's own refusal (pulumi `pkg/resource/deploy/step_generator.go`): it fails the preview
before our guard sees it, so the guard's way out must be said here."""

_RESTRICTED_CREDENTIAL = "not allowed for managing additional application credentials"
"""Keystone's 403 for an application credential made with a restricted one (keystone `api/users.py`
`_check_unrestricted_application_credential`). Magnum's Cluster API driver creates the cluster's own
credential with the caller's token (magnum-capi-helm `common/app_creds.py`), the conductor stores the
error as the cluster's status reason and the provider reports it while waiting for CREATE_COMPLETE."""

RESTRICTED_CREDENTIAL_HINT = (
    "the OpenStack application credential you deploy with is restricted: Magnum's Cluster API driver makes "
    "the cluster's own credential from it, which Keystone only allows for an unrestricted one. Create an "
    "application credential with Unrestricted ticked and every role of the project (including "
    'load-balancer), switch to it (README, "Deploy for real"), then run up again'
)


_MASTER_LB = "master_count must be 1 when master_lb_enabled is false"
"""Magnum's refusal (magnum `api/attr_validator.py` `validate_master_count`) when the cluster's template
(here only an existing_template_id: the managed one sets master_lb_enabled) lacks the API load balancer."""

MASTER_LB_HINT = (
    "Magnum refuses cluster.control_plane.count above 1 because the template's master_lb_enabled is false: "
    "use a template with master_lb_enabled true (the managed template, without existing_template_id, has "
    "it; Magnum's Cluster API driver builds the API load balancer either way), or set the count to 1"
)


def _protected(changes: LayerChanges | None) -> JetstreamBinderHubError | None:
    from jetstream_binderhub.engine.changes import ChangeOp, ResourceChange
    from jetstream_binderhub.engine.guard import GuardRefused, protected_danger

    if changes is None:
        return None
    for diag in changes.errors:
        match = _PROTECTED.search(diag.message)
        if match is None or not diag.urn:
            continue
        change = next((c for c in changes.changes if c.urn == diag.urn), None)
        if change is None:
            op = ChangeOp.DELETE if match.group(1) == "delete" else ChangeOp.REPLACE
            change = ResourceChange(layer=changes.layer, urn=diag.urn, op=op)
        return GuardRefused([protected_danger(change)])
    return None


_PROGRAM_CONFIG = re.compile(r"invalid configuration in (stack \S+):\n((?:[ \t]+\S.*(?:\n|$))+)")
"""What `hub_program` raises (as pulumi.RunError) for config only the live run can check: a secret that
is missing, or whose decrypted value is wrong (`read_hub_config`, the text of a ConfigError)."""


def _program_config_error(changes: LayerChanges | None) -> ConfigError | None:
    """The program's refusal of its config, as the same ConfigError (exit 2) the offline checks raise."""
    for diagnostic in changes.errors if changes is not None else []:
        match = _PROGRAM_CONFIG.search(diagnostic.message)
        if match is None:
            continue
        problems = [
            Problem(key, message)
            for line in match.group(2).splitlines()
            for key, sep, message in [line.strip().partition(": ")]
            if sep
        ]
        if problems:
            return ConfigError(problems, source=match.group(1))
    return None


def _plan_violation(text: str, changes: LayerChanges | None) -> str | None:
    """The engine's refusal of a step outside the update plan, with the resource's name, or None."""
    from jetstream_binderhub.engine.changes import name_from_urn

    for diagnostic in changes.errors if changes is not None else []:
        if _PLAN_VIOLATION.search(diagnostic.message):
            headline = diagnostic.headline
            name = name_from_urn(diagnostic.urn) if diagnostic.urn else ""
            return _short(f"{name}: {headline}" if name and name not in headline else headline)
    for line in _error_lines(_stderr(text)) or _error_lines(text):
        if _PLAN_VIOLATION.search(line):
            return _short(re.sub(r"urn:pulumi:\S*::([^\s:]+)", r"\1", line.removeprefix("error: ")))
    return None


_CLI_COMMAND = {
    "select": "stack select {stack}",
    "outputs": "stack output --stack {stack}",
    "config": "config --stack {stack}",
    "preview": "preview --stack {stack}",
    "up": "up --stack {stack}",
    "refresh": "refresh --stack {stack}",
    "destroy": "destroy --stack {stack}",
}
"""Our operation -> the plain `pulumi` command that does the same, for "rerun it for the full log"."""

_UNREACHABLE = re.compile(
    r"dial tcp|no such host|connection refused|i/o timeout|tls handshake|network is unreachable|"
    r"could not log in|unable to open bucket|could not list bucket|permission denied|read-only file system|"
    r"accessdenied|nosuchbucket|invalidaccesskeyid",
    re.IGNORECASE,
)
"""Words of a backend that cannot be reached or written, from Go's net package, gocloud's blob drivers
and the diy backend (pulumi/pulumi pkg/backend/diy/bucket.go), or the CLI's login."""


def _cause(text: str) -> str:
    """The CLI's own reason: its most specific `error:` line, else its last line of output."""
    summary = command_summary(text)
    if summary:
        return summary
    lines = [clean_text(line).strip() for line in _stderr(text).splitlines()]
    lines = [line for line in lines if line and not line.startswith(("code:", "stdout:", "stderr:"))]
    return _short(lines[-1]) if lines else "the Pulumi CLI gave no reason"


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
        if (refused := _protected(changes)) is not None:
            return refused
        violation = _plan_violation(text, changes)
        if violation is not None:
            return PlanViolated(
                f"{operation} stopped by the engine: {spec.layer.value} layer ({where}) no longer matches the "
                f"preview the guard checked ({violation}); the cloud, the configuration or another update "
                "changed in between, and nothing outside the checked plan was applied. Run `jetstream-binderhub "
                f"up {spec.stack}` again to preview and check what it would do now",
                layer=spec.layer.value,
                details=[violation],
            )
        if (config := _program_config_error(changes)) is not None:
            return config
        engine_errors = changes.errors if changes is not None else []
        # Opening a stack talks to the backend only; so does any command whose engine never reported.
        if operation == "select" or (not engine_errors and _UNREACHABLE.search(text)):
            return BackendUnreachable(
                f"cannot open stack {where}: {_cause(text)}. Check the backend URL (--backend or "
                "PULUMI_BACKEND_URL), that this machine can reach it, and its credentials or permissions"
            )
        line = changes.failure_line() if changes is not None else None
        details = [d.headline for d in changes.errors] if changes is not None else []
        messages = [d.message.lower() for d in changes.errors] if changes is not None else []
        if any(_RESTRICTED_CREDENTIAL in m for m in [low, *messages]):
            line = f"{spec.layer.value}: {RESTRICTED_CREDENTIAL_HINT}"
        elif any(_MASTER_LB in m for m in [low, *messages]):
            line = f"{spec.layer.value}: {MASTER_LB_HINT}"
        if line is None:
            summary = command_summary(text)
            line = (
                f"{spec.layer.value}: {summary}"
                if summary
                else f"{spec.layer.value}: pulumi {operation} failed"
            )
        # A local program can be rerun with plain pulumi for the full log; an inline one cannot.
        command = _CLI_COMMAND.get(operation)
        hint = (
            f" (full log: `{env}pulumi {command.format(stack=spec.stack)}` in {spec.work_dir})"
            if spec.program is None and command is not None
            else ""
        )
        return UpdateFailed(
            f"{operation} failed: {line}{hint}",
            layer=spec.layer.value,
            details=details,
        )
    return None
