"""Domain errors that the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


PATTERN_MEANINGS: dict[str, str] = {}
"""What each regular expression of a config field expects, in words (see :func:`described_pattern`)."""


def described_pattern(regex: str, meaning: str) -> str:
    """Record what `regex` asks for, for a model's ``Field(pattern=...)``; returns `regex`.

    pydantic's own text ("String should match pattern '^[a-z0-9-]+$'") means nothing to a user, so a
    pattern error is reported with `meaning` instead.
    """
    if PATTERN_MEANINGS.setdefault(regex, meaning) != meaning:
        # One regex, one meaning: otherwise the message would depend on which module was imported last.
        raise ValueError(f"{regex!r} already means {PATTERN_MEANINGS[regex]!r}; reuse that wording")
    return regex


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the user's input, tied to the config key that holds it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class JetstreamBinderHubError(Exception):
    """Base class: an error the user can act on, printed without a traceback."""

    exit_code = 1
    error_lines: list[str] | None = None
    """Set when the error is several independent problems: the CLI prints one `error:` line each."""
    partial: Any = None
    """A site operation that failed after a layer was applied sets this to the
    :class:`~jetstream_binderhub.automation.results.SiteResult` of what was done."""


class SiteNotFound(JetstreamBinderHubError):
    """The named site has no stack file."""

    exit_code = 2


class InvalidSiteName(JetstreamBinderHubError):
    """A site name Pulumi would refuse as a stack name (or that would name a path outside the site's
    place); nothing has been read or written."""

    exit_code = 2


class ConfigError(JetstreamBinderHubError):
    """The site configuration is invalid; nothing has been created."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        super().__init__(f"invalid configuration{where}:\n" + "\n".join(f"  {p}" for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


def _format_loc(prefix: str, loc: Iterable[int | str]) -> str:
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key = f"{key}.{part}" if key else str(part)
    return key or "(root)"


REMOVED_KEY = "removed_key"
"""Error type of a config key the project no longer takes (its ctx names the key)."""


def problems_from_validation_error(exc: ValidationError, prefix: str = "") -> list[Problem]:
    """Turn pydantic's errors into one line per problem naming the key path and the bad value.

    The input value is shown only for scalars: a whole mapping would be noise, and a secret
    never reaches the typed models in the first place.
    """
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        # Union/discriminator branches add the branch tag to the location; it is not a key the user wrote.
        loc = [
            p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-union")))
        ]
        msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        value = err.get("input")
        if err["type"] == REMOVED_KEY:
            # Raised by the model that held the key: point at the key itself.
            loc.append(str((err.get("ctx") or {}).get("key", "")))
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling against docs/configuration.md)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if err["type"] == "string_pattern_mismatch":
            pattern = str((err.get("ctx") or {}).get("pattern", ""))
            msg = PATTERN_MEANINGS.get(
                pattern, "is not in the form this key expects (see docs/configuration.md)"
            )
        if err["type"] not in ("extra_forbidden", "missing") and isinstance(value, str | int | float | bool):
            msg = f"{msg} (got {value!r})"
        problems.append(Problem(_format_loc(prefix, loc), msg))
    return problems
