"""Errors of the Automation API layer: each one line the user can act on, with its own exit code.

Exit codes (documented in docs/cli.md, stable for scripts and CI):

- 1: an update failed in the cloud (summarised from the engine's diagnostics), or the engine stopped a
  step outside the checked preview's update plan (:class:`PlanViolated`);
- 2: bad input (config, arguments) — see :mod:`jetstream_binderhub.errors`;
- 3: a safety guard refused (replacement — :class:`jetstream_binderhub.engine.guard.GuardRefused` —,
  destroy while the hub runs, protected cluster, no confirmation); nothing changed;
- 4: the stack's state is in the way: locked by another update, not found, or its backend cannot be
  reached or written;
- 5: the machine is not ready: Pulumi CLI missing or too old, credentials or passphrase missing;
- 130: stopped by Ctrl-C.
"""

from __future__ import annotations

from jetstream_binderhub.errors import JetstreamBinderHubError


class EnvironmentNotReady(JetstreamBinderHubError):
    """Something the user's machine must provide is missing; nothing was started."""

    exit_code = 5


class PulumiCliMissing(EnvironmentNotReady):
    pass


class PulumiCliTooOld(EnvironmentNotReady):
    pass


class CredentialsMissing(EnvironmentNotReady):
    pass


class PassphraseMissing(EnvironmentNotReady):
    pass


class PassphraseWrong(EnvironmentNotReady):
    pass


class StateProblem(JetstreamBinderHubError):
    """The stack's state cannot be used as it is."""

    exit_code = 4


class StackLocked(StateProblem):
    pass


class StackNotFound(StateProblem):
    pass


class BackendUnreachable(StateProblem):
    """The state backend could not be opened (network, credentials, permissions); nothing ran."""


class Refused(JetstreamBinderHubError):
    """A safety guard stopped the operation before anything changed (same code as GuardRefused)."""

    exit_code = 3


class DestroyRefused(Refused):
    pass


class NotConfirmed(Refused):
    pass


class OutputFileExists(JetstreamBinderHubError):
    """A file the command would write is already there; nothing was overwritten."""

    exit_code = 2


class OutputFileUnwritable(JetstreamBinderHubError):
    """A file the command would write cannot be written there (permissions, a missing directory)."""

    exit_code = 2


class EnvironmentIncomplete(EnvironmentNotReady):
    """More than one thing the machine must provide is missing: every one is named, in the order a user
    fixes them, so one run shows the whole list."""

    def __init__(self, problems: list[EnvironmentNotReady]) -> None:
        self.problems = list(problems)
        self.error_lines = [str(p) for p in self.problems]
        super().__init__("\n".join(self.error_lines))


class UpdateFailed(JetstreamBinderHubError):
    """The engine ran and reported failure; ``str()`` is one line naming the resource and cause."""

    exit_code = 1

    def __init__(self, message: str, *, layer: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.layer = layer
        self.details = list(details or [])


class PlanViolated(UpdateFailed):
    """The engine stopped a step that the checked preview's update plan did not hold: something changed
    between the preview the guard checked and the update. Steps inside the plan may have been applied."""


class Interrupted(JetstreamBinderHubError):
    """Ctrl-C: the engine was asked to stop after the operations in flight."""

    exit_code = 130
