"""Site over a scripted StackOpener: layer order, the replacement guard, destroy's refusals, typed
results with secrets wrapped, and error translation — all on engine events in Pulumi's JSON shape."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from pulumi.automation import CommandError

from jetstream_binderhub.automation import (
    DestroyRefused,
    Layer,
    NotConfirmed,
    OutputFileExists,
    PassphraseWrong,
    Secret,
    Site,
    StackLocked,
    StackNotFound,
    UpdateFailed,
)
from jetstream_binderhub.automation import testing as t
from jetstream_binderhub.automation.progress import NullProgress
from jetstream_binderhub.automation.results import LayerResult
from jetstream_binderhub.engine.guard import GuardRefused
from jetstream_binderhub.errors import ConfigError, SiteNotFound


def make_site(project: Path, env: dict[str, str], stacks: t.FakeStacks, **kw: object) -> Site:
    return Site.from_files("jetstream2", project, env=env, stacks=stacks, **kw)  # type: ignore[arg-type]


def test_preview_counts_each_layer_from_the_engine_events(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        }
    )
    result = make_site(project, ready_env, stacks).preview()

    assert [r.layer for r in result.layers] == [Layer.CLUSTER, Layer.BINDERHUB]
    assert result.counts["cluster"]["update"] == 1
    assert result.counts["binderhub"] == {
        "create": 1,
        "update": 1,
        "replace": 0,
        "delete": 0,
        "import": 0,
        "same": 0,
    }
    assert stacks.calls == [("cluster", "preview"), ("binderhub", "preview")]
    # preview creates stacks that do not exist yet
    assert all(create for _, create in stacks.opened)


def test_preview_never_carries_a_secret_value(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(events={(Layer.BINDERHUB, "preview"): t.hub_update("s3cr3t-robot-token")})
    result = make_site(project, ready_env, stacks).preview("binderhub")

    dumped = json.dumps(result.to_json())
    assert "s3cr3t-robot-token" not in dumped
    release = next(c for c in result.layer(Layer.BINDERHUB).changes.changes if c.name == "binderhub-release")  # type: ignore[union-attr]
    assert "values.password" in release.secret_keys
    assert release.values["version"].new == "1.0.0-0.dev.git.3958"


def test_hub_preview_is_skipped_while_the_cluster_is_only_planned(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.fresh_cluster()})
    result = make_site(project, ready_env, stacks).preview("all")

    assert stacks.calls == [("cluster", "preview")]
    hub = result.layer(Layer.BINDERHUB)
    assert hub.skipped is not None and "cluster does not exist yet" in hub.skipped
    assert any("preview skipped" in n for n in result.notes)


def test_up_previews_then_applies_each_layer_cluster_first(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.CLUSTER, "up"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
            (Layer.BINDERHUB, "up"): t.hub_update(),
        }
    )
    result = make_site(project, ready_env, stacks).up()

    assert stacks.calls == [
        ("cluster", "preview"),
        ("cluster", "up"),
        ("binderhub", "preview"),
        ("binderhub", "up"),
    ]
    assert result.operation == "up"
    assert result.counts["cluster"]["update"] == 1


def test_up_refuses_a_cluster_replacement_naming_resource_property_and_remedy(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.cluster_replace()})
    site = make_site(project, ready_env, stacks)

    with pytest.raises(GuardRefused) as refused:
        site.up()

    assert ("cluster", "up") not in stacks.calls, "nothing is applied after a refusal"
    message = str(refused.value)
    assert "pythia-binder-cluster" in message
    assert "masterFlavor" in message
    assert "--allow-replace pythia-binder-cluster" in message
    assert refused.value.exit_code == 3


def test_allow_replace_names_the_resource_and_up_proceeds(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.cluster_replace()})
    make_site(project, ready_env, stacks).up("cluster", allow_replace={"pythia-binder-cluster"})

    assert stacks.calls == [("cluster", "preview"), ("cluster", "up")]


def test_destroy_goes_hub_first_after_confirmation(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(
        resources={Layer.CLUSTER: t.cluster_resources(protect=False), Layer.BINDERHUB: t.hub_resources()}
    )
    asked: list[list[Layer]] = []

    def confirm(layers: list[Layer]) -> bool:
        asked.append(layers)
        return True

    make_site(project, ready_env, stacks).destroy(confirm=confirm)

    assert asked == [[Layer.BINDERHUB, Layer.CLUSTER]]
    assert stacks.calls == [("binderhub", "destroy"), ("cluster", "destroy")]
    assert not any(create for _, create in stacks.opened), "destroy never creates a stack"


def test_destroy_refuses_the_cluster_while_the_hub_holds_resources(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        resources={Layer.CLUSTER: t.cluster_resources(protect=False), Layer.BINDERHUB: t.hub_resources()}
    )
    with pytest.raises(DestroyRefused, match=r"BinderHub stack still holds 1 resource.*--layer binderhub"):
        make_site(project, ready_env, stacks).destroy("cluster")
    assert stacks.calls == []


def test_destroy_refuses_a_protected_cluster_before_touching_the_hub(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        resources={Layer.CLUSTER: t.cluster_resources(protect=True), Layer.BINDERHUB: t.hub_resources()}
    )
    with pytest.raises(DestroyRefused, match=r"pythia-binder-cluster is protected.*cluster.protect: false"):
        make_site(project, ready_env, stacks).destroy("all")
    assert stacks.calls == [], "the hub must not be destroyed when the cluster cannot follow"


def test_destroy_not_confirmed_deletes_nothing(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(resources={Layer.BINDERHUB: t.hub_resources()})
    with pytest.raises(NotConfirmed):
        make_site(project, ready_env, stacks).destroy("binderhub", confirm=lambda _layers: False)
    assert stacks.calls == []


def test_destroy_of_a_missing_stack_says_so(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(existing=set())
    with pytest.raises(StackNotFound, match=r"no stack jetstream-binderhub-hub/jetstream2 on file://"):
        make_site(project, ready_env, stacks).destroy("binderhub")


def test_outputs_wrap_secrets(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(
        outputs={
            Layer.CLUSTER: {
                "cluster_name": ("pythia-binder", False),
                "kubeconfig": ("apiVersion: v1\n", True),
            },
            Layer.BINDERHUB: {"binderhub_url": ("https://binder.example.org", False)},
        }
    )
    site = make_site(project, ready_env, stacks)
    found = site.outputs()

    cluster = found[Layer.CLUSTER]
    assert cluster["cluster_name"] == "pythia-binder"
    assert isinstance(cluster["kubeconfig"], Secret)
    assert repr(cluster["kubeconfig"]) == "[secret]" and f"{cluster['kubeconfig']}" == "[secret]"
    assert cluster["kubeconfig"].reveal() == "apiVersion: v1\n"
    assert cluster.masked() == {"cluster_name": "pythia-binder", "kubeconfig": "[secret]"}
    assert "apiVersion" not in repr(found)
    assert site.url() == "https://binder.example.org"
    assert not any(create for _, create in stacks.opened), "reading outputs never creates a stack"


def test_kubeconfig_file_is_private_and_never_overwritten_silently(
    project: Path, ready_env: dict[str, str], tmp_path: Path
) -> None:
    stacks = t.FakeStacks(outputs={Layer.CLUSTER: {"kubeconfig": ("apiVersion: v1\nkind: Config\n", True)}})
    site = make_site(project, ready_env, stacks)
    path = tmp_path / "kube" / "config.yaml"

    site.write_kubeconfig(path)
    assert path.read_text() == "apiVersion: v1\nkind: Config\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(OutputFileExists, match="--force"):
        site.write_kubeconfig(path)
    path.chmod(0o644)
    site.write_kubeconfig(path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(path.parent.glob(".*.tmp")), "the temporary file is renamed into place"


def test_kubeconfig_before_the_cluster_exists_says_run_up(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(outputs={Layer.CLUSTER: {}})
    with pytest.raises(StackNotFound, match="has no kubeconfig yet"):
        make_site(project, ready_env, stacks).kubeconfig()


def test_locked_stack_is_one_line_with_what_to_do(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(errors={(Layer.CLUSTER, "preview"): t.locked()})
    with pytest.raises(StackLocked) as locked:
        make_site(project, ready_env, stacks).preview("cluster")
    message = str(locked.value)
    assert "\n" not in message
    assert "locked by another update" in message and "pulumi cancel" in message
    assert locked.value.exit_code == 4
    assert locked.value.__cause__ is None, "the CLI's output must not ride along as the cause"


def test_failed_update_is_summarised_from_the_engine_diagnostics(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.CLUSTER, "up"): [
                t.step("update", t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large", planning=False),
                t.diagnostic(
                    "1 error occurred:\n\t* updating urn:pulumi:jetstream2::x::y::z: Quota exceeded for cores",
                    resource="pythia-binder-nodegroup-user-m3.large",
                    type_=t.NODE_GROUP_TYPE,
                ),
                t.failed(t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large"),
                t.diagnostic("update failed"),
            ],
        },
        errors={(Layer.CLUSTER, "up"): CommandError(t.command_result("error: update failed"))},
    )
    with pytest.raises(UpdateFailed) as failed:
        make_site(project, ready_env, stacks).up("cluster")
    message = str(failed.value)
    assert "Quota exceeded for cores" in message
    assert "pythia-binder-nodegroup-user-m3.large" in message
    assert "\n" not in message


def test_wrong_passphrase_is_named(project: Path, ready_env: dict[str, str]) -> None:
    error = CommandError(
        t.command_result('error: constructing secrets manager of type "passphrase": incorrect passphrase')
    )
    stacks = t.FakeStacks(errors={(Layer.CLUSTER, "outputs"): error})
    with pytest.raises(PassphraseWrong, match="PULUMI_CONFIG_PASSPHRASE"):
        make_site(project, ready_env, stacks).outputs("cluster")


def test_layer_without_stack_file_is_skipped_for_all_and_refused_alone(
    project: Path, ready_env: dict[str, str]
) -> None:
    (project / "binderhub" / "Pulumi.jetstream2.yaml").unlink()
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.nodegroup_resize()})
    site = make_site(project, ready_env, stacks)

    result = site.preview("all")
    assert [r.layer for r in result.layers] == [Layer.CLUSTER]
    assert any("no BinderHub layer" in n for n in result.notes)
    with pytest.raises(SiteNotFound, match="has no binderhub layer"):
        site.preview("binderhub")


def test_from_files_validates_before_pulumi_runs(project: Path, ready_env: dict[str, str]) -> None:
    path = project / "Pulumi.jetstream2.yaml"
    path.write_text(path.read_text().replace("count: 1", "count: 2", 1))
    stacks = t.FakeStacks()
    with pytest.raises(ConfigError, match="must be odd"):
        make_site(project, ready_env, stacks)
    assert stacks.opened == []


def test_repository_site_runs_the_local_programs_on_the_repo_state(
    project: Path, ready_env: dict[str, str]
) -> None:
    site = make_site(project, ready_env, t.FakeStacks())
    spec = site.spec(Layer.BINDERHUB)

    assert spec.program is None, "a repository site runs Pulumi.yaml's program, as `pulumi up` does"
    assert spec.work_dir == project.resolve() / "binderhub"
    assert spec.project == "jetstream-binderhub-hub"
    assert spec.env["PULUMI_BACKEND_URL"] == f"file://{project.resolve() / '.state'}"


def test_backend_flag_beats_environment(project: Path, ready_env: dict[str, str]) -> None:
    env = {**ready_env, "PULUMI_BACKEND_URL": "s3://from-env"}
    assert make_site(project, env, t.FakeStacks()).backend.url == "s3://from-env"
    site = make_site(
        project, env, t.FakeStacks(), backend="s3://flag?endpoint=https://js2.jetstream-cloud.org:8001"
    )
    assert site.backend.url.startswith("s3://flag") and site.backend.source == "--backend"


def test_destroy_refuses_the_hubs_protected_floating_ip_naming_the_key(
    project: Path, ready_env: dict[str, str]
) -> None:
    hub = t.hub_resources()
    hub[-1] = t.StateResource(urn=hub[-1].urn, type=hub[-1].type, protect=True)
    stacks = t.FakeStacks(resources={Layer.BINDERHUB: hub})
    with pytest.raises(DestroyRefused) as refused:
        make_site(project, ready_env, stacks).destroy("binderhub")
    message = str(refused.value)
    assert "ingress-floating-ip is protected" in message
    assert (
        "ingress.protect_floating_ip: false in" in message and "binderhub/Pulumi.jetstream2.yaml" in message
    )
    assert stacks.calls == []


def test_a_preview_with_unreadable_events_is_not_trusted(project: Path, ready_env: dict[str, str]) -> None:
    from jetstream_binderhub.engine.changes import EventStreamError

    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): [*t.cluster_replace(), object()]})
    with pytest.raises(EventStreamError):
        make_site(project, ready_env, stacks).up("cluster")
    assert ("cluster", "up") not in stacks.calls


def test_a_plain_text_registry_password_in_the_hub_file_stops_the_site_before_pulumi(
    project: Path, ready_env: dict[str, str]
) -> None:
    hub_file = project / "binderhub" / "Pulumi.jetstream2.yaml"
    hub_file.write_text(
        hub_file.read_text() + "  jetstream-binderhub-hub:registry_password: plain-robot-token-123\n"
    )
    stacks = t.FakeStacks()
    with pytest.raises(ConfigError) as err:
        make_site(project, ready_env, stacks)
    assert any(line.startswith("registry_password:") for line in err.value.lines())
    assert "plain-robot-token-123" not in str(err.value)
    assert stacks.opened == [] and stacks.calls == [], "nothing reaches Pulumi"


def test_up_refuses_a_deleted_hub_namespace_and_applies_nothing_of_that_layer(
    project: Path, ready_env: dict[str, str]
) -> None:
    namespace = "kubernetes:core/v1:Namespace"
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.CLUSTER, "up"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): [
                t.step("delete", namespace, "binderhub-namespace", old={}, project=t.HUB),
                t.summary(delete=1, same=10),
            ],
        }
    )
    with pytest.raises(GuardRefused) as refused:
        make_site(project, ready_env, stacks).up()

    assert ("binderhub", "up") not in stacks.calls
    assert "Kubernetes namespace binderhub-namespace would be DELETED" in str(refused.value)
    assert "--allow-replace binderhub-namespace" in str(refused.value)


def test_up_refuses_a_kubernetes_upgrade_until_allow_upgrade(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.kube_upgrade(), (Layer.CLUSTER, "up"): []})
    site = make_site(project, ready_env, stacks)

    with pytest.raises(GuardRefused) as refused:
        site.up("cluster")
    assert ("cluster", "up") not in stacks.calls
    assert refused.value.exit_code == 3
    assert "upgrades the running cluster" in str(refused.value) and "--allow-upgrade" in str(refused.value)

    site.up("cluster", allow_upgrade=True)
    assert stacks.calls[-1] == ("cluster", "up")


def test_a_protected_cluster_replacement_says_to_set_protect_false(
    project: Path, ready_env: dict[str, str]
) -> None:
    """The engine, not our guard, stops a protected cluster's replacement: the preview fails with its own
    diagnostic, and the refusal must still name the cause and the way out."""
    urn = t.urn(t.CLUSTER_TYPE, "pythia-binder-cluster")
    engine_message = (
        f'unable to replace resource "{urn}"\nas it is currently marked for protection. To unprotect the '
        "resource, remove the `protect` flag from the resource in your Pulumi program and run `pulumi up`"
    )
    events = [
        *t.cluster_replace()[:-1],
        t.diagnostic(engine_message, resource="pythia-binder-cluster"),
        t.diagnostic("preview failed"),
    ]
    stacks = t.FakeStacks(
        events={(Layer.CLUSTER, "preview"): events},
        errors={(Layer.CLUSTER, "preview"): CommandError(t.command_result("error: preview failed"))},
    )

    with pytest.raises(GuardRefused) as refused:
        make_site(project, ready_env, stacks).up("cluster")

    message = str(refused.value)
    assert refused.value.exit_code == 3
    assert "pythia-binder-cluster would be REPLACED because masterFlavor forces a new cluster" in message
    assert "set cluster.protect: false" in message
    assert "--allow-replace pythia-binder-cluster" in message
    assert "remove the `protect` flag" not in message, "Pulumi's advice names the program, not our config"


def _cluster_create_failing_with(
    provider: str, project: Path, ready_env: dict[str, str]
) -> pytest.ExceptionInfo[UpdateFailed]:
    """`up` of a fresh cluster whose create fails with the provider's `provider` diagnostic."""
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.fresh_cluster(),
            (Layer.CLUSTER, "up"): [
                t.step("create", t.CLUSTER_TYPE, "pythia-binder-cluster", planning=False),
                t.diagnostic(provider, resource="pythia-binder-cluster"),
                t.failed(t.CLUSTER_TYPE, "pythia-binder-cluster", op="create"),
                t.diagnostic("update failed"),
            ],
        },
        errors={(Layer.CLUSTER, "up"): CommandError(t.command_result("error: update failed"))},
    )
    with pytest.raises(UpdateFailed) as failed:
        make_site(project, ready_env, stacks).up("cluster")
    return failed


def test_a_restricted_application_credential_is_named_with_the_fix(
    project: Path, ready_env: dict[str, str]
) -> None:
    """What a restricted credential produces: the conductor stores Keystone's 403 as the cluster's status
    reason and the provider reports it while waiting for CREATE_COMPLETE."""
    keystone = (
        "You are not authorized to perform the requested action: Using method 'application_credential' is "
        "not allowed for managing additional application credentials. (HTTP 403) (Request-ID: req-5e1f)"
    )
    provider = (
        "1 error occurred:\n\t* Error waiting for openstack_containerinfra_cluster_v1 "
        "0f6c1a9e-2b7d-4c1e-9d55-7a3c2e8b1f40 to become ready: openstack_containerinfra_cluster_v1 is in "
        f"an error state: {keystone}\n\n"
    )
    failed = _cluster_create_failing_with(provider, project, ready_env)

    message = str(failed.value)
    assert "\n" not in message
    assert "application credential you deploy with is restricted" in message
    assert "Unrestricted" in message and "load-balancer" in message
    assert "HTTP 403" not in message


def test_up_hands_allow_replace_to_the_program_for_preview_and_apply_alike(
    project: Path, ready_env: dict[str, str]
) -> None:
    from jetstream_binderhub.naming import ALLOW_REPLACE_ENV

    group = "pythia-binder-nodegroup-user-m3.large"
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.nodegroup_resize()})
    site = make_site(project, ready_env, stacks)

    site.up("cluster", allow_replace={group})
    site.up("cluster")

    specs = [spec for spec, _ in stacks.opened]
    assert specs[0].env[ALLOW_REPLACE_ENV] == group, "the program lifts protect on that one group"
    assert ALLOW_REPLACE_ENV not in specs[1].env, "and on nothing without --allow-replace"
    # One stack for both steps, so the preview the guard checks and the apply run the same program.
    assert stacks.calls == [("cluster", "preview"), ("cluster", "up")] * 2
    assert len(stacks.opened) == 2


def test_up_saves_the_checked_preview_as_a_plan_applies_that_plan_and_deletes_it(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        }
    )
    make_site(project, ready_env, stacks).up()

    assert [(layer, op) for layer, op, _ in stacks.plans] == [
        ("cluster", "preview"),
        ("cluster", "up"),
        ("binderhub", "preview"),
        ("binderhub", "up"),
    ]
    cluster_plans = {path for layer, _, path in stacks.plans if layer == "cluster"}
    assert len(cluster_plans) == 1, "up applies the very plan its preview saved"
    assert all(not path.parent.exists() for _, _, path in stacks.plans)


def test_a_plain_preview_saves_no_plan(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.nodegroup_resize()})
    make_site(project, ready_env, stacks).preview("cluster")
    assert stacks.plans == []


def test_destroy_refuses_protected_node_groups_naming_cluster_protect(
    project: Path, ready_env: dict[str, str]
) -> None:
    group = t.StateResource(
        urn=t.urn(t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-user-m3.large"),
        type=t.NODE_GROUP_TYPE,
        protect=True,
    )
    stacks = t.FakeStacks(resources={Layer.CLUSTER: [*t.cluster_resources(protect=False), group]})
    (project / "binderhub" / "Pulumi.jetstream2.yaml").unlink()
    with pytest.raises(DestroyRefused, match=r"nodegroup-user-m3.large is protected.*cluster.protect: false"):
        make_site(project, ready_env, stacks).destroy("cluster")


def test_magnums_load_balancer_check_on_three_control_plane_servers_is_explained(
    project: Path, ready_env: dict[str, str]
) -> None:
    provider = (
        "1 error occurred:\n\t* Error creating openstack_containerinfra_cluster_v1: Bad request with: [POST "
        'https://js2.jetstream-cloud.org:9511/v1/clusters], error message: {"errors": [{"request_id": '
        '"", "code": "client", "status": 400, "title": "master_count must be 1 when '
        'master_lb_enabled is False", "detail": "master_count must be 1 when master_lb_enabled is '
        'False.", "links": []}]}\n\n'
    )
    failed = _cluster_create_failing_with(provider, project, ready_env)

    message = str(failed.value)
    assert "template's master_lb_enabled is false" in message
    assert "cluster.control_plane.count" in message


def test_a_dangling_symlink_at_the_kubeconfig_path_is_never_followed(
    project: Path, ready_env: dict[str, str], tmp_path: Path
) -> None:
    from jetstream_binderhub.automation.errors import OutputFileUnwritable

    stacks = t.FakeStacks(outputs={Layer.CLUSTER: {"kubeconfig": ("apiVersion: v1\n", True)}})
    site = make_site(project, ready_env, stacks)
    elsewhere = tmp_path / "attacker" / "kubeconfig"
    link = tmp_path / "kube.yaml"
    link.symlink_to(elsewhere)

    with pytest.raises(OutputFileExists, match=r"symbolic link.*--force"):
        site.write_kubeconfig(link)
    site.write_kubeconfig(link, overwrite=True)
    assert not link.is_symlink() and link.read_text() == "apiVersion: v1\n"
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    assert not elsewhere.exists(), "the secret did not go where the link pointed"

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OutputFileUnwritable, match=r"cannot write .*a-file/kubeconfig"):
        site.write_kubeconfig(blocker / "kubeconfig")


def test_every_missing_piece_of_the_environment_is_reported_at_once(project: Path) -> None:
    from jetstream_binderhub.automation.errors import EnvironmentIncomplete, PulumiCliMissing

    stacks = t.FakeStacks(check_error=PulumiCliMissing("the Pulumi CLI (`pulumi`) is not on PATH"))
    site = make_site(project, {}, stacks)

    with pytest.raises(EnvironmentIncomplete) as missing:
        site.preview()
    assert missing.value.exit_code == 5
    assert [line.split(":")[0] for line in missing.value.error_lines or []] == [
        "the Pulumi CLI (`pulumi`) is not on PATH",
        "no passphrase for the stacks' secrets",
        "no OpenStack credentials",
    ]
    # outputs needs no OpenStack: it is not named then
    with pytest.raises(EnvironmentIncomplete) as missing:
        site.outputs()
    assert len(missing.value.error_lines or []) == 2


def test_known_secret_values_are_masked_even_where_the_engine_sends_them_in_clear(
    project: Path, ready_env: dict[str, str]
) -> None:
    from jetstream_binderhub.automation.comment import render_comment

    passphrase = "planted-passphrase-5e2b"
    app_secret = ready_env["OS_APPLICATION_CREDENTIAL_SECRET"]
    release = "kubernetes:helm.sh/v3:Release"
    events = [
        t.step(
            "update",
            release,
            "binderhub-release",
            old={"values": {"note": "before"}},
            new={"values": {"note": f"copied {passphrase}"}},
            detailed={"values.note": "update"},
            project=t.HUB,
        ),
        t.diagnostic(f"warning: provider said auth={app_secret} for {passphrase}", severity="warning"),
        t.summary(update=1, same=10),
    ]
    stacks = t.FakeStacks(events={(Layer.BINDERHUB, "preview"): events})
    env = {**ready_env, "PULUMI_CONFIG_PASSPHRASE": passphrase}
    result = make_site(project, env, stacks).preview("binderhub")

    shown = json.dumps(result.to_json()) + render_comment(result.layer_changes, site="jetstream2")
    assert passphrase not in shown and app_secret not in shown
    changes = result.layer(Layer.BINDERHUB).changes
    assert changes is not None
    assert changes.changes[0].values["values.note"].new == "copied [secret]"
    assert "auth=[secret] for [secret]" in changes.diagnostics[0].message


# --- tests that notice: each kills a mutant of site.py that survived the automation tests ----------


NO_OPENSTACK = {k: v for k, v in t.READY_ENV.items() if not k.startswith("OS_")}


@pytest.mark.parametrize("operation", ["preview", "up", "destroy", "refresh"])
def test_every_operation_that_reaches_openstack_checks_its_credentials_first(
    project: Path, operation: str
) -> None:
    from jetstream_binderhub.automation.errors import CredentialsMissing

    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.nodegroup_resize()})
    site = make_site(project, dict(NO_OPENSTACK), stacks)

    with pytest.raises(CredentialsMissing, match="no OpenStack credentials"):
        getattr(site, operation)("cluster")
    assert stacks.opened == [] and stacks.calls == [], "refused before Pulumi ran"


def test_reading_outputs_needs_no_openstack_credentials(project: Path) -> None:
    stacks = t.FakeStacks(outputs={Layer.CLUSTER: {"cluster_name": ("pythia-binder", False)}})
    assert make_site(project, dict(NO_OPENSTACK), stacks).outputs("cluster")[Layer.CLUSTER]["cluster_name"]


def test_destroy_all_asks_and_goes_binderhub_first_then_the_cluster(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        resources={Layer.CLUSTER: t.cluster_resources(protect=False), Layer.BINDERHUB: t.hub_resources()}
    )
    result = make_site(project, ready_env, stacks).destroy("all")

    assert [r.layer for r in result.layers] == [Layer.BINDERHUB, Layer.CLUSTER]
    assert [call for call in stacks.calls if call[1] == "destroy"] == [
        ("binderhub", "destroy"),
        ("cluster", "destroy"),
    ]


def test_a_cluster_layer_that_only_adds_a_node_group_still_previews_the_hub(
    project: Path, ready_env: dict[str, str]
) -> None:
    # Only a first *cluster* create skips the hub's preview; any other create leaves the cluster in place.
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): [
                t.step(
                    "create", t.NODE_GROUP_TYPE, "pythia-binder-nodegroup-gpu", new={"flavorId": "g3.large"}
                ),
                t.step("update", t.CLUSTER_TYPE, "pythia-binder-cluster", old={}, new={}),
                t.summary(create=1, update=1, same=3),
            ],
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        }
    )
    result = make_site(project, ready_env, stacks).preview("all")

    assert stacks.calls == [("cluster", "preview"), ("binderhub", "preview")]
    assert result.layer(Layer.BINDERHUB).skipped is None


def test_the_progress_display_is_told_how_many_resources_the_checked_preview_changes(
    project: Path, ready_env: dict[str, str]
) -> None:
    started: list[tuple[str, str, int | None]] = []

    class Recorder(NullProgress):
        def layer_started(self, layer: Layer, operation: str, stack: str, expected: int | None) -> None:
            started.append((layer.value, operation, expected))

    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.cluster_replace()})
    make_site(project, ready_env, stacks, progress=Recorder()).up(
        "cluster", allow_replace={"pythia-binder-cluster"}
    )

    # cluster_replace: one replacement among three unchanged resources -> one step to watch, not three.
    assert started == [("cluster", "preview", None), ("cluster", "up", 1)]


def test_the_kubeconfig_directory_is_created_private(
    project: Path, ready_env: dict[str, str], tmp_path: Path
) -> None:
    stacks = t.FakeStacks(outputs={Layer.CLUSTER: {"kubeconfig": ("apiVersion: v1\n", True)}})
    path = tmp_path / "new" / "kube" / "config.yaml"
    make_site(project, ready_env, stacks).write_kubeconfig(path)

    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_up_creates_a_stack_that_does_not_exist_yet(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(existing=set(), events={(Layer.CLUSTER, "preview"): t.fresh_cluster()})
    make_site(project, ready_env, stacks).up("cluster")

    assert [create for _, create in stacks.opened] == [True]
    assert stacks.calls == [("cluster", "preview"), ("cluster", "up")]


def test_up_applies_a_layer_only_when_confirm_says_yes(project: Path, ready_env: dict[str, str]) -> None:
    asked: list[Layer] = []

    def answer(yes: bool) -> Callable[[LayerResult], bool]:
        def confirm(preview: LayerResult) -> bool:
            asked.append(preview.layer)
            return yes

        return confirm

    stacks = t.FakeStacks(events={(Layer.CLUSTER, "preview"): t.nodegroup_resize()})
    site = make_site(project, ready_env, stacks)
    with pytest.raises(NotConfirmed, match="nothing of its cluster layer was applied"):
        site.up("cluster", confirm=answer(False))
    assert ("cluster", "up") not in stacks.calls
    site.up("cluster", confirm=answer(True))
    assert stacks.calls[-1] == ("cluster", "up")
    assert asked == [Layer.CLUSTER, Layer.CLUSTER]


def test_destroy_tells_the_display_how_many_real_resources_go(
    project: Path, ready_env: dict[str, str]
) -> None:
    started: list[tuple[str, int | None]] = []

    class Recorder(NullProgress):
        def layer_started(self, layer: Layer, operation: str, stack: str, expected: int | None) -> None:
            started.append((operation, expected))

    stacks = t.FakeStacks(resources={Layer.BINDERHUB: t.hub_resources()})
    make_site(project, ready_env, stacks, progress=Recorder()).destroy("binderhub")

    # hub_resources: the stack and the provider (bookkeeping, nothing in the cloud) and the floating IP.
    assert started == [("destroy", 1)]


def test_outputs_of_all_leave_out_an_undeployed_hub_but_binderhub_alone_says_so(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        existing={Layer.CLUSTER}, outputs={Layer.CLUSTER: {"cluster_name": ("pythia-binder", False)}}
    )
    site = make_site(project, ready_env, stacks)

    assert list(site.outputs("all")) == [Layer.CLUSTER]
    with pytest.raises(StackNotFound):
        site.outputs("binderhub")
    with pytest.raises(StackNotFound):
        make_site(project, ready_env, t.FakeStacks(existing=set())).outputs("all")


def test_url_skips_an_empty_output_for_the_next_one(project: Path, ready_env: dict[str, str]) -> None:
    stacks = t.FakeStacks(
        outputs={
            Layer.BINDERHUB: {"binderhub_url": ("", False), "url": ("https://binder.example.org", False)}
        }
    )
    assert make_site(project, ready_env, stacks).url() == "https://binder.example.org"


def test_a_plain_output_holding_a_known_secret_value_is_masked(
    project: Path, ready_env: dict[str, str]
) -> None:
    app_secret = ready_env["OS_APPLICATION_CREDENTIAL_SECRET"]
    stacks = t.FakeStacks(
        outputs={
            Layer.CLUSTER: {"debug": (f"auth with {app_secret}", False), "cluster_name": ("pythia", False)}
        }
    )
    outputs = make_site(project, ready_env, stacks).outputs(Layer.CLUSTER)[Layer.CLUSTER]
    assert outputs["debug"] == "auth with [secret]"
    assert outputs["cluster_name"] == "pythia"


def test_an_error_after_the_cluster_was_applied_carries_what_was_done(
    project: Path, ready_env: dict[str, str]
) -> None:
    stacks = t.FakeStacks(
        events={
            (Layer.CLUSTER, "preview"): t.nodegroup_resize(),
            (Layer.BINDERHUB, "preview"): t.hub_update(),
        },
        errors={(Layer.BINDERHUB, "up"): CommandError(t.command_result("error: update failed"))},
    )
    with pytest.raises(UpdateFailed) as failed:
        make_site(project, ready_env, stacks).up()

    partial = failed.value.partial
    assert [r.layer for r in partial.layers] == [Layer.CLUSTER]
    assert partial.failed_layer is Layer.BINDERHUB
    assert partial.to_json()["failed_layer"] == "binderhub"
