"""What the user's machine must provide before Pulumi runs: the CLI, a state backend, a passphrase,
OpenStack credentials. Each check fails with one line naming what is missing and how to provide it.

Checked up front because the Automation API's own failures are slow (the engine starts, loads
plugins, then fails) and verbose (a CommandError carrying the CLI's whole stdout and stderr).
Values of credentials are never read into messages: only the names of variables.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from jetstream_binderhub.automation.errors import (
    CredentialsMissing,
    PassphraseMissing,
    PulumiCliMissing,
    PulumiCliTooOld,
)

MINIMUM_PULUMI = (3, 181, 0)
"""Oldest Pulumi CLI this tool drives. 3.181 is the first that runs inline programs (sites built from
a config object) for `refresh` and `destroy` (its `--client` flag); older CLIs fail there mid-way."""

INSTALL_HINT = (
    "install it from https://www.pulumi.com/docs/install/ (the offline `plan` command needs no CLI)"
)

STATE_DIR_NAME = ".state"
"""Default local state directory inside the repository (already in .gitignore), as in the README's
`pulumi login file://$PWD/.state`, so the tool and plain `pulumi` see the same stacks."""

HOME_STATE_DIR = Path("~/.jetstream-binderhub/state")
"""Default local state for sites built from a config object outside a repository checkout."""

BACKEND_ENV = "PULUMI_BACKEND_URL"
PASSPHRASE_ENVS = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")

BackendKind = Literal["file", "s3", "azblob", "gs", "cloud"]

SECRET_ENVS = (
    "PULUMI_CONFIG_PASSPHRASE",
    "PULUMI_ACCESS_TOKEN",
    "OS_PASSWORD",
    "OS_APPLICATION_CREDENTIAL_SECRET",
    "AWS_SECRET_ACCESS_KEY",
)
"""Variables whose values are credentials: masked wherever they turn up in an engine message or diff."""


def secret_env_values(env: Mapping[str, str]) -> frozenset[str]:
    return frozenset(env[name] for name in SECRET_ENVS if env.get(name))


@dataclass(frozen=True)
class PulumiCli:
    path: str
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    match = _VERSION.search(text)
    if match is None:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def find_pulumi_cli(
    which: Callable[[str], str | None] | None = None,
    run: Callable[[list[str]], str] | None = None,
) -> PulumiCli:
    """The `pulumi` on PATH with its version; PulumiCliMissing / PulumiCliTooOld otherwise.

    `which` and `run` are the seams tests use to simulate a missing or old CLI.
    """
    path = (which or shutil.which)("pulumi")
    if path is None:
        raise PulumiCliMissing(f"the Pulumi CLI (`pulumi`) is not on PATH: {INSTALL_HINT}")
    try:
        text = (run or _run_version)([path, "version"])
    except (OSError, subprocess.SubprocessError) as exc:
        raise PulumiCliMissing(
            f"`{path} version` did not run ({type(exc).__name__}): reinstall the Pulumi CLI; {INSTALL_HINT}"
        ) from None
    version = parse_version(text)
    if version is None:
        raise PulumiCliMissing(
            f"could not read the Pulumi CLI version from `{path} version`: reinstall the CLI; {INSTALL_HINT}"
        )
    if version < MINIMUM_PULUMI:
        need = ".".join(map(str, MINIMUM_PULUMI))
        have = ".".join(map(str, version))
        raise PulumiCliTooOld(
            f"the Pulumi CLI at {path} is {have}; this tool needs {need} or newer: upgrade it "
            "(`pulumi self-update`, or see https://www.pulumi.com/docs/install/)"
        )
    return PulumiCli(path=path, version=version)


def _run_version(argv: list[str]) -> str:
    env = {**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True, env=env)
    return proc.stdout


# --- state backend ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """Where Pulumi keeps the stacks' state, and where that choice came from."""

    url: str
    source: Literal["--backend", "PULUMI_BACKEND_URL", "default"]

    @property
    def kind(self) -> BackendKind:
        scheme = urlsplit(self.url).scheme
        if scheme in ("file", "s3", "azblob", "gs"):
            return scheme  # type: ignore[return-value]
        return "cloud"

    @property
    def is_cloud(self) -> bool:
        """Pulumi Cloud (or a self-hosted Pulumi Cloud): it locks, stores and can encrypt by itself."""
        return self.kind == "cloud"

    @property
    def display(self) -> str:
        """The URL safe to print: a password in it (`https://user:pw@host`) is masked."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
        return self.url

    @property
    def local_dir(self) -> Path | None:
        if self.kind != "file":
            return None
        return Path(self.url.removeprefix("file://")).expanduser()

    def prepare(self) -> None:
        """Create the local state directory (private to the user): `pulumi` refuses a missing one."""
        path = self.local_dir
        if path is None:
            return
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            from jetstream_binderhub.automation.errors import BackendUnreachable

            raise BackendUnreachable(
                f"cannot create the state directory {path} ({exc.strerror or type(exc).__name__}): choose one "
                "you can write with --backend file://DIR (or PULUMI_BACKEND_URL), or fix its permissions"
            ) from None


def resolve_backend(explicit: str | None, env: Mapping[str, str], default_dir: Path) -> Backend:
    """`--backend` wins, then PULUMI_BACKEND_URL, then local files under `default_dir`.

    The tool never falls back silently to whatever `pulumi login` last chose: a laptop logged in to
    Pulumi Cloud for another project would otherwise put this site's state there.
    """
    if explicit:
        return Backend(url=_normalise(explicit), source="--backend")
    if env.get(BACKEND_ENV):
        return Backend(url=_normalise(env[BACKEND_ENV]), source="PULUMI_BACKEND_URL")
    return Backend(url=f"file://{default_dir.expanduser().resolve()}", source="default")


def _normalise(url: str) -> str:
    # A bare path is what people type; Pulumi wants a file:// URL.
    if "://" not in url:
        return f"file://{Path(url).expanduser().resolve()}"
    return url


def default_state_dir(project_dir: Path | None) -> Path:
    return project_dir / STATE_DIR_NAME if project_dir is not None else HOME_STATE_DIR.expanduser()


# --- secrets and credentials --------------------------------------------------------------------


def require_passphrase(env: Mapping[str, str], backend: Backend, secrets_provider: str | None) -> None:
    """The passphrase secrets provider needs its passphrase in the environment (nothing may prompt)."""
    provider = secrets_provider or ("default" if backend.is_cloud else "passphrase")
    if provider != "passphrase":
        return  # Pulumi Cloud's own encryption, or a KMS: no passphrase involved
    if any(env.get(name) for name in PASSPHRASE_ENVS):
        passphrase_file = env.get("PULUMI_CONFIG_PASSPHRASE_FILE")
        if (
            passphrase_file
            and not env.get("PULUMI_CONFIG_PASSPHRASE")
            and not Path(passphrase_file).expanduser().is_file()
        ):
            raise PassphraseMissing(
                f"PULUMI_CONFIG_PASSPHRASE_FILE names {passphrase_file}, which does not exist: create it "
                "with the passphrase the stacks' secrets are encrypted with"
            )
        return
    raise PassphraseMissing(
        "no passphrase for the stacks' secrets: set PULUMI_CONFIG_PASSPHRASE_FILE to a file holding it "
        "(or PULUMI_CONFIG_PASSPHRASE), or use Pulumi Cloud with --backend https://api.pulumi.com"
    )


def require_cloud_login(env: Mapping[str, str], backend: Backend) -> None:
    """Pulumi Cloud needs a token; without one the CLI would wait for a browser login."""
    if not backend.is_cloud or env.get("PULUMI_ACCESS_TOKEN"):
        return
    home = Path(env.get("PULUMI_HOME") or "~/.pulumi").expanduser()
    if (home / "credentials.json").is_file():
        return
    raise CredentialsMissing(
        f"no Pulumi Cloud login for {backend.display}: set PULUMI_ACCESS_TOKEN or run `pulumi login "
        f"{backend.display}` once"
    )


APP_CREDENTIAL_VARS = ("OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_SECRET")
PASSWORD_VARS = ("OS_USERNAME", "OS_PASSWORD")


def clouds_yaml_paths(env: Mapping[str, str]) -> list[Path]:
    """Where openstacksdk (and the provider) look for clouds.yaml, in order."""
    paths = [Path(env["OS_CLIENT_CONFIG_FILE"]).expanduser()] if env.get("OS_CLIENT_CONFIG_FILE") else []
    paths += [
        Path("clouds.yaml"),
        Path("~/.config/openstack/clouds.yaml").expanduser(),
        Path("/etc/openstack/clouds.yaml"),
    ]
    return paths


def require_openstack_credentials(env: Mapping[str, str]) -> str:
    """OS_CLOUD with a clouds.yaml, or an openrc's OS_AUTH_URL with an application credential (or a
    password). Returns how the credentials are given, for the progress header; never their values."""
    if env.get("OS_CLOUD"):
        if any(p.is_file() for p in clouds_yaml_paths(env)):
            return f"OS_CLOUD={env['OS_CLOUD']}"
        raise CredentialsMissing(
            f"OS_CLOUD is set to {env['OS_CLOUD']!r} but no clouds.yaml was found (looked in "
            f"{', '.join(str(p) for p in clouds_yaml_paths(env))}): download it from Horizon "
            "(Identity > Application Credentials) to ~/.config/openstack/clouds.yaml"
        )
    if env.get("OS_AUTH_URL"):
        if all(env.get(v) for v in APP_CREDENTIAL_VARS) or (
            env.get("OS_APPLICATION_CREDENTIAL_NAME") and env.get("OS_APPLICATION_CREDENTIAL_SECRET")
        ):
            return "OS_AUTH_URL + application credential"
        if all(env.get(v) for v in PASSWORD_VARS):
            return "OS_AUTH_URL + password"
        missing = [v for v in APP_CREDENTIAL_VARS if not env.get(v)]
        raise CredentialsMissing(
            f"OS_AUTH_URL is set but {' and '.join(missing)} are not: source the application credential's "
            "openrc file from Horizon (Identity > Application Credentials)"
        )
    raise CredentialsMissing(
        "no OpenStack credentials: set OS_CLOUD (with a clouds.yaml) or source an application credential "
        "openrc (OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_ID, OS_APPLICATION_CREDENTIAL_SECRET) from Horizon"
    )
