"""The preflight checks: Pulumi CLI and version, backend choice, passphrase, OpenStack credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from jetstream_binderhub.automation.environment import (
    MINIMUM_PULUMI,
    Backend,
    find_pulumi_cli,
    parse_version,
    require_cloud_login,
    require_openstack_credentials,
    require_passphrase,
    resolve_backend,
)
from jetstream_binderhub.automation.errors import (
    CredentialsMissing,
    PassphraseMissing,
    PulumiCliMissing,
    PulumiCliTooOld,
)

FILE = Backend(url="file:///tmp/state", source="default")
CLOUD = Backend(url="https://api.pulumi.com", source="--backend")
S3 = Backend(
    url="s3://binder-state?endpoint=https://js2.jetstream-cloud.org:8001&s3ForcePathStyle=true",
    source="PULUMI_BACKEND_URL",
)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v3.190.0\n", (3, 190, 0)),
        ("3.181.0", (3, 181, 0)),
        ("v3.205.1-dev.0", (3, 205, 1)),
        ("garbage", None),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int] | None) -> None:
    assert parse_version(text) == version


def test_cli_found_and_new_enough() -> None:
    cli = find_pulumi_cli(which=lambda _: "/opt/pulumi/bin/pulumi", run=lambda argv: "v3.190.0\n")
    assert cli.path == "/opt/pulumi/bin/pulumi"
    assert cli.version == (3, 190, 0)


def test_cli_missing() -> None:
    with pytest.raises(
        PulumiCliMissing, match=r"not on PATH: install it from https://www.pulumi.com/docs/install/"
    ):
        find_pulumi_cli(which=lambda _: None)


def test_cli_too_old_names_both_versions() -> None:
    need = ".".join(map(str, MINIMUM_PULUMI))
    with pytest.raises(PulumiCliTooOld, match=rf"is 3\.140\.0; this tool needs {need} or newer"):
        find_pulumi_cli(which=lambda _: "/usr/bin/pulumi", run=lambda argv: "v3.140.0")


def test_cli_that_does_not_run() -> None:
    def broken(argv: list[str]) -> str:
        raise OSError("exec format error")

    with pytest.raises(PulumiCliMissing, match="did not run"):
        find_pulumi_cli(which=lambda _: "/usr/bin/pulumi", run=broken)


def test_backend_precedence_and_kinds(tmp_path: Path) -> None:
    default = resolve_backend(None, {}, tmp_path / ".state")
    assert default.url == f"file://{(tmp_path / '.state').resolve()}" and default.source == "default"
    assert default.kind == "file" and default.local_dir == (tmp_path / ".state").resolve()

    env = {"PULUMI_BACKEND_URL": S3.url}
    assert resolve_backend(None, env, tmp_path).kind == "s3"
    assert resolve_backend("https://api.pulumi.com", env, tmp_path).is_cloud
    # a bare path is what people type
    assert resolve_backend(str(tmp_path / "st"), {}, tmp_path).url == f"file://{(tmp_path / 'st').resolve()}"


def test_backend_display_masks_a_password() -> None:
    backend = Backend(url="https://user:hunter2@pulumi.example.org", source="--backend")
    assert "hunter2" not in backend.display
    assert backend.display == "https://user:***@pulumi.example.org"


def test_prepare_creates_a_private_state_dir(tmp_path: Path) -> None:
    backend = resolve_backend(None, {}, tmp_path / "deep" / ".state")
    backend.prepare()
    assert (tmp_path / "deep" / ".state").is_dir()


def test_passphrase_needed_on_file_and_s3_backends() -> None:
    for backend in (FILE, S3):
        with pytest.raises(PassphraseMissing, match="PULUMI_CONFIG_PASSPHRASE_FILE"):
            require_passphrase({}, backend, None)
    require_passphrase({"PULUMI_CONFIG_PASSPHRASE": "x"}, FILE, None)


def test_passphrase_not_needed_with_cloud_or_kms() -> None:
    require_passphrase({}, CLOUD, None)
    require_passphrase({}, FILE, "awskms://alias/binder")
    with pytest.raises(PassphraseMissing):
        require_passphrase({}, CLOUD, "passphrase")


def test_passphrase_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(PassphraseMissing, match="does not exist"):
        require_passphrase({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "nope")}, FILE, None)
    (tmp_path / "pp").write_text("x")
    require_passphrase({"PULUMI_CONFIG_PASSPHRASE_FILE": str(tmp_path / "pp")}, FILE, None)


def test_cloud_login_needs_a_token_or_a_login(tmp_path: Path) -> None:
    with pytest.raises(CredentialsMissing, match="PULUMI_ACCESS_TOKEN"):
        require_cloud_login({"PULUMI_HOME": str(tmp_path)}, CLOUD)
    require_cloud_login({"PULUMI_ACCESS_TOKEN": "pul-x"}, CLOUD)
    (tmp_path / "credentials.json").write_text("{}")
    require_cloud_login({"PULUMI_HOME": str(tmp_path)}, CLOUD)
    require_cloud_login({}, FILE)


def test_openstack_credentials_forms(tmp_path: Path) -> None:
    secret = "app-cred-secret-value"
    assert (
        require_openstack_credentials(
            {
                "OS_AUTH_URL": "u",
                "OS_APPLICATION_CREDENTIAL_ID": "i",
                "OS_APPLICATION_CREDENTIAL_SECRET": secret,
            }
        )
        == "OS_AUTH_URL + application credential"
    )
    assert "password" in require_openstack_credentials(
        {"OS_AUTH_URL": "u", "OS_USERNAME": "a", "OS_PASSWORD": "b"}
    )
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds: {}\n")
    assert (
        require_openstack_credentials({"OS_CLOUD": "js2", "OS_CLIENT_CONFIG_FILE": str(clouds)})
        == "OS_CLOUD=js2"
    )


def test_openstack_credentials_missing_names_variables_never_values() -> None:
    with pytest.raises(CredentialsMissing) as missing:
        require_openstack_credentials({})
    for name in (
        "OS_CLOUD",
        "OS_AUTH_URL",
        "OS_APPLICATION_CREDENTIAL_ID",
        "OS_APPLICATION_CREDENTIAL_SECRET",
    ):
        assert name in str(missing.value)
    with pytest.raises(CredentialsMissing) as partial:
        require_openstack_credentials(
            {"OS_AUTH_URL": "https://keystone", "OS_APPLICATION_CREDENTIAL_SECRET": "s3cr3t"}
        )
    assert "OS_APPLICATION_CREDENTIAL_ID" in str(partial.value)
    assert "s3cr3t" not in str(partial.value)
