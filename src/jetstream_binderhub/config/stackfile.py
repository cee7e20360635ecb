"""Reading a site's Pulumi stack files without the Pulumi CLI (for the CLI and the offline plan).

Pulumi stores stack config as ``config: {"<namespace>:<key>": value}``; secrets appear as
``{secure: <ciphertext>}``, which only the stack's secrets provider can decrypt. Outside Pulumi we never
decrypt: a secure value becomes :data:`SECRET_PLACEHOLDER` and its key is remembered as secret.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from jetstream_binderhub.errors import ConfigError, Problem
from jetstream_binderhub.yamlio import safe_load

CLUSTER_PROJECT = "jetstream-binderhub"
"""Pulumi project (and config namespace) of the cluster layer: the repository root."""

HUB_PROJECT = "jetstream-binderhub-hub"
"""Pulumi project (and config namespace) of the BinderHub layer: the `binderhub/` directory."""

HUB_PROJECT_DIR = "binderhub"

SECRET_PLACEHOLDER = "[secret]"

SENSITIVE_PROVIDER_KEYS = (
    "openstack:applicationCredentialSecret",
    "openstack:password",
    "openstack:token",
    "openstack:key",
)
"""Provider settings that are credentials. They belong in the user's environment (`OS_CLOUD` or `OS_*`);
if they are put in a stack file at all, only as Pulumi secrets, since the SDK does not mark them."""


def plaintext_credential_problems(keys: Iterable[str], secret_keys: Collection[str]) -> list[Problem]:
    return [
        Problem(
            key,
            "is a credential stored in plain text; remove it and use OS_CLOUD / OS_* variables, or set it with "
            f"`pulumi config set --secret {key}`",
        )
        for key in keys
        if key in SENSITIVE_PROVIDER_KEYS and key not in secret_keys
    ]


@dataclass(frozen=True)
class StackFile:
    """One `Pulumi.<stack>.yaml`, split by namespace, secrets left encrypted."""

    path: Path
    values: dict[str, Any]
    """Every key as written, `namespace:key` -> value (secure values replaced by the placeholder)."""
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    """Keys whose value is a Pulumi secret (`secure:` in the file)."""
    secrets_provider: str | None = None
    encryption_salt: str | None = None

    def namespace(self, namespace: str) -> dict[str, Any]:
        """The keys of one namespace without the `namespace:` prefix."""
        prefix = f"{namespace}:"
        return {k.removeprefix(prefix): v for k, v in self.values.items() if k.startswith(prefix)}

    def pulumi_config(self) -> dict[str, str]:
        """The flat string map `pulumi.runtime.set_all_config` takes: objects as JSON, as the engine sends them."""
        import json

        # default=str: YAML reads an unquoted 2027-06-30 as a date, which Pulumi passes on as its text.
        return {
            key: value if isinstance(value, str) else json.dumps(value, default=str)
            for key, value in self.values.items()
        }


def _replace_secure(value: Any) -> tuple[Any, bool]:
    if isinstance(value, Mapping):
        if set(value) == {"secure"}:
            return SECRET_PLACEHOLDER, True
        found = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k], secret = _replace_secure(v)
            found = found or secret
        return out, found
    if isinstance(value, list):
        items = [_replace_secure(v) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def yaml_problem(exc: yaml.YAMLError, text: str) -> str:
    """The parser's own reason with line and column, and a plain word when a tab is the cause."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"not valid YAML: {exc}"
    mark = exc.problem_mark
    message = f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context:
        started = f" at line {exc.context_mark.line + 1}" if exc.context_mark is not None else ""
        message += f" ({exc.context}{started})"
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent or "\\t" in (exc.problem or "") or "tab" in (exc.problem or ""):
        message += "; that line is indented with a tab: YAML indents with spaces only"
    return message


def _python_parser_error(text: str) -> yaml.YAMLError:
    """The error PyYAML's pure-Python parser gives for `text`: libyaml, which reads the files, says the
    same thing in words that differ by version and never names a tab; the slow parser runs only here."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return exc
    return yaml.YAMLError("libyaml refused the file, PyYAML's own parser did not")


def _no_config_message(doc: Mapping[str, Any]) -> str:
    namespaced = [str(k) for k in doc if ":" in str(k)]
    if namespaced:
        return (
            f"has no top-level `config:` key; indent {namespaced[0]!r} and the other settings under `config:` "
            "(see Pulumi.jetstream2.yaml)"
        )
    return (
        "has no top-level `config:` key: a stack file's settings live under it (see Pulumi.jetstream2.yaml)"
    )


def read_stack_file(path: Path) -> StackFile:
    """Parse a stack file; a missing or malformed file is a ConfigError naming it."""
    if not path.is_file():
        raise ConfigError([Problem(str(path), "stack file not found")])
    text = path.read_text(encoding="utf-8")
    try:
        doc = safe_load(text) or {}
    except yaml.YAMLError:
        raise ConfigError([Problem(str(path), yaml_problem(_python_parser_error(text), text))]) from None
    if not isinstance(doc, dict):
        raise ConfigError([Problem(str(path), "must be a YAML mapping with a `config:` key")])
    if "config" not in doc:
        raise ConfigError([Problem(str(path), _no_config_message(doc))])
    config = doc.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError([Problem(f"{path}: config", "must be a mapping of `namespace:key: value`")])
    values: dict[str, Any] = {}
    secret_keys: set[str] = set()
    for key, raw in config.items():
        key = str(key)
        if ":" not in key:
            raise ConfigError([Problem(key, "config keys are written `<namespace>:<key>`")], source=str(path))
        values[key], secret = _replace_secure(raw)
        if secret:
            secret_keys.add(key)
    if problems := plaintext_credential_problems(values, secret_keys):
        raise ConfigError(problems, source=str(path))
    return StackFile(
        path=path,
        values=values,
        secret_keys=frozenset(secret_keys),
        secrets_provider=doc.get("secretsprovider"),
        encryption_salt=doc.get("encryptionsalt"),
    )


def edit_stack_file(path: Path, edit: Callable[[Any], None], check: Callable[[], object]) -> None:
    """Change a stack file in place keeping every comment, order and quoting: `edit` gets the
    round-tripped document's `config` mapping and changes it; `check` then reads the file back, and a
    :class:`ConfigError` from it restores the original (never leave a file the next run refuses)."""
    from io import StringIO

    from ruamel.yaml import YAML

    rt = YAML()  # round-trip: comments, order and quoting stay as the user wrote them
    rt.preserve_quotes = True
    rt.indent(mapping=2, sequence=4, offset=2)  # the shipped files' style: `- ` indented under its key
    rt.width = 4096  # never fold a long line the user wrote on one
    original = path.read_text(encoding="utf-8")
    doc = rt.load(original)
    edit(doc["config"])
    out = StringIO()
    rt.dump(doc, out)
    path.write_text(out.getvalue(), encoding="utf-8")
    try:
        check()
    except ConfigError:
        path.write_text(original, encoding="utf-8")
        raise
