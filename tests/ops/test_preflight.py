"""preflight through openstacksdk against a stand-in cloud on 127.0.0.1 (Keystone catalog, version
discovery and the API answers in their documented shapes)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jetstream_binderhub.automation.testing import FakeStacks
from jetstream_binderhub.cli import app
from jetstream_binderhub.ops.preflight import (
    PreflightAuthFailed,
    PreflightProblem,
    preflight_site,
)

from .fake_helm import FakeHelm
from .fake_openstack import APP_CRED_ID, APP_CRED_SECRET, PROJECT_ID, FakeOpenStack, serving
from .test_size import CLUSTER_FILE

runner = CliRunner()


def credentials(auth_url: str) -> dict[str, str]:
    return {
        "OS_AUTH_URL": auth_url,
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_ID": APP_CRED_ID,
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_CRED_SECRET,
        "OS_REGION_NAME": "RegionOne",
        "OS_INTERFACE": "public",
        "OS_IDENTITY_API_VERSION": "3",
    }


@pytest.fixture
def project(project: Path) -> Path:
    """The shipped site with the cluster sizes the assertions use (test_size's)."""
    (project / "Pulumi.jetstream2.yaml").write_text(CLUSTER_FILE)
    return project


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, project: Path, helm: FakeHelm) -> Iterator[FakeOpenStack]:
    """The stand-in cloud, and the site's charts in Helm repositories on 127.0.0.1 (conftest.helm)."""
    import os

    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.stackfile import HUB_PROJECT, read_stack_file

    hub = parse_hub_stack(
        read_stack_file(project / "binderhub" / "Pulumi.jetstream2.yaml").namespace(HUB_PROJECT)
    )
    with serving() as fake:
        fake.cloud.zones[0]["name"] = hub.dns.zone  # the zone the site's DNS settings name
        for name in list(os.environ):
            if name.startswith("OS_"):
                monkeypatch.delenv(name)
        for name, value in credentials(fake.base + "/identity/v3").items():
            monkeypatch.setenv(name, value)
        yield fake


def run_preflight(project: Path) -> object:
    import os

    return preflight_site("jetstream2", project, env=os.environ)


def test_the_shipped_site_fits_and_every_check_is_asked(cloud: FakeOpenStack, project: Path) -> None:
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    assert result.ok, result.failures
    assert result.project_id == PROJECT_ID
    by_name = {c.name: c for c in result.checks}
    # control plane 1 + default-worker 1 + user-m3.large up to 10
    assert by_name["instances"].need == 12 and by_name["instances"].free == 18
    # 8 (m3.medium) + 4 (m3.quad) + 10 x 16 (m3.large)
    assert by_name["cores"].need == 172
    assert by_name["load_balancers"].need == 2 and by_name["floating_ips"].need == 2
    # The hub's database (1 GB) and the monitoring volumes: Prometheus 50, Grafana 10, Alertmanager 1.
    assert by_name["volumes"].need == 4 and by_name["gigabytes"].need == 62
    assert result.need.explanation["volumes"].endswith("Prometheus 50 GB, Grafana 10 GB, Alertmanager 1 GB")
    assert {"zone", "application credential", "image", "capi_helm_chart_version"} <= set(by_name)
    asked = {path.split("?")[0] for _, path in cloud.requests}
    assert f"/compute/v2.1/os-quota-sets/{PROJECT_ID}/detail" in asked
    assert f"/network/v2.0/quotas/{PROJECT_ID}/details" in asked


def test_usage_and_reservations_are_subtracted(cloud: FakeOpenStack, project: Path) -> None:
    cloud.cloud.compute["cores"] = {"limit": 200, "in_use": 24, "reserved": 8}
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    cores = next(c for c in result.checks if c.name == "cores")
    assert not cores.ok and cores.free == 168
    assert cores.message == "needs 172, 168 free (200 allowed, 32 in use)"


def test_unlimited_quotas_never_fall_short(cloud: FakeOpenStack, project: Path) -> None:
    cloud.cloud.compute["instances"] = {"limit": -1, "in_use": 500, "reserved": 0}
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    instances = next(c for c in result.checks if c.name == "instances")
    assert instances.ok and instances.limit is None


def test_load_balancers_in_use_count_against_octavias_quota(cloud: FakeOpenStack, project: Path) -> None:
    cloud.cloud.lb_quota, cloud.cloud.lb_count = 3, 2
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    lbs = next(c for c in result.checks if c.name == "load_balancers")
    assert not lbs.ok and lbs.free == 1


def test_a_restricted_credential_a_foreign_zone_a_missing_image_and_an_unknown_chart_are_named(
    cloud: FakeOpenStack, project: Path
) -> None:
    cloud.cloud.restricted = True
    cloud.cloud.zones[0]["project_id"] = "someone-else"
    cloud.cloud.images = ["ubuntu-jammy-kube-v1.32.0"]
    cloud.cloud.chart_versions = ["0.14.1", "0.15.0"]
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    failed = {c.name: c.message for c in result.failures}
    assert "is restricted" in failed["application credential"]
    assert "belongs to project someone-else" in failed["zone"]
    assert "ubuntu-jammy-kube-v1.33.2-250626-0848 is not on the cloud" in failed["image"]
    assert (
        "0.16.0 is not among the versions the cloud's templates use (0.14.1, 0.15.0)"
        in failed["capi_helm_chart_version"]
    )


def test_a_missing_zone_is_named(cloud: FakeOpenStack, project: Path) -> None:
    cloud.cloud.zones = []
    result = preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    zone = next(c for c in result.checks if c.name == "zone")
    assert not zone.ok and "not found in this project" in zone.message


def test_a_wrong_secret_is_an_authentication_failure_in_one_line(cloud: FakeOpenStack, project: Path) -> None:
    cloud.cloud.accept_secret = "another"
    with pytest.raises(PreflightAuthFailed, match="refused the credentials \\(401\\)") as info:
        preflight_site("jetstream2", project, env=dict(__import__("os").environ))
    assert APP_CRED_SECRET not in str(info.value) and "\n" not in str(info.value)


def test_an_unreachable_identity_endpoint_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch, project: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = credentials(f"http://127.0.0.1:{port}/identity/v3")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(PreflightProblem, match=r"cannot reach the OpenStack identity.*check OS_AUTH_URL"):
        preflight_site("jetstream2", project, env=env)


def test_cli_prints_need_against_free_and_exits_16_naming_each_shortfall(
    cloud: FakeOpenStack, project: Path
) -> None:
    cloud.cloud.compute["instances"] = {"limit": 10, "in_use": 2, "reserved": 0}
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 16, result.output
    assert "instances" in result.stdout and "need" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: preflight: compute instances: needs 12, 8 free (10 allowed, 2 in use)",
    ]
    assert APP_CRED_SECRET not in result.output


def test_cli_json(cloud: FakeOpenStack, project: Path) -> None:
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["need"]["cores"] == 172


@pytest.fixture
def pulumi_ready(monkeypatch: pytest.MonkeyPatch) -> FakeStacks:
    """The rest of `up`'s environment (a Pulumi CLI, the passphrase): it names missing pieces before preflight."""
    from jetstream_binderhub.automation import testing as t

    stacks = t.FakeStacks()
    monkeypatch.setattr("jetstream_binderhub.automation.site.PulumiStacks", lambda: stacks)
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", t.READY_ENV["PULUMI_CONFIG_PASSPHRASE"])
    return stacks


def test_up_runs_preflight_first_and_stops_on_a_shortfall(
    cloud: FakeOpenStack, project: Path, pulumi_ready: FakeStacks
) -> None:
    cloud.cloud.compute["cores"] = {"limit": 100, "in_use": 0, "reserved": 0}
    result = runner.invoke(app, ["up", "jetstream2", "--yes", "-C", str(project)])
    assert result.exit_code == 16, result.output
    assert "error: preflight: compute cores: needs 172, 100 free" in result.stderr
    assert "--skip-preflight" in result.stderr
    assert pulumi_ready.calls == [], "nothing was previewed or applied"


def test_an_upgrade_of_the_running_site_needs_room_for_one_control_plane_server_and_its_new_image(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    # The running site fills the allocation but for one m3.medium: its own 12 servers are in the usage.
    cloud.cloud.compute["instances"] = {"limit": 13, "in_use": 12, "reserved": 0}
    cloud.cloud.compute["cores"] = {"limit": 180, "in_use": 172, "reserved": 0}
    plain = preflight_site("jetstream2", project, env=dict(os.environ))
    upgrade = preflight_site(
        "jetstream2",
        project,
        env=dict(os.environ),
        upgrade_to=("ubuntu-noble-kube-v1.34.1-251020-1200", None),
    )
    assert {"instances", "cores"} <= {c.name for c in plain.failures}  # `up` counts the site at its maximum
    # The rollout adds one m3.medium control-plane server before removing the old one (maxSurge 1);
    # node groups roll inside their size (maxSurge 0): that one server is all an upgrade needs free.
    need = upgrade.need
    assert (need.instances, need.cores, need.floating_ips, need.load_balancers) == (1, 8, 0, 0)
    assert "1 control-plane server (m3.medium) while the control plane rolls" in need.explanation["instances"]
    assert "checked by `upgrade`" in plain.need.explanation["instances"]
    failed = {c.name: c.message for c in upgrade.failures}
    assert set(failed) == {"image"}
    assert failed["image"].startswith("image ubuntu-noble-kube-v1.34.1-251020-1200 is not on the cloud")
    cloud.cloud.compute["instances"] = {"limit": 12, "in_use": 12, "reserved": 0}
    full = preflight_site(
        "jetstream2",
        project,
        env=dict(os.environ),
        upgrade_to=("ubuntu-jammy-kube-v1.33.2-250626-0848", "0.16.0"),
    )
    assert [c.name for c in full.failures] == ["instances"]


# --- a site that is already deployed -----------------------------------------------------------------

STACK_ID = "pythia-binder-kx7fw2m3q9za"
"""The driver's name for the site's cluster: the sanitised cluster name and 12 random characters."""


def tight_cloud(cloud: FakeOpenStack) -> None:
    """An allocation with room for the test site at max_count 11 of user-m3.large when what the running
    site holds is counted as its own, and not otherwise: 200 cores, 10 of them used by something else."""
    cloud.cloud.compute["instances"] = {"limit": 16, "in_use": 2, "reserved": 0}
    cloud.cloud.compute["cores"] = {"limit": 200, "in_use": 10, "reserved": 0}


def raise_user_max(project: Path, max_count: int) -> None:
    path = project / "Pulumi.jetstream2.yaml"
    path.write_text(path.read_text().replace("max_count: 10", f"max_count: {max_count}"))


def test_a_deployed_site_is_not_counted_twice_when_its_max_grows_by_one(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    tight_cloud(cloud)
    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)  # 4 servers, 44 cores in the usage now
    raise_user_max(project, 11)
    result = preflight_site("jetstream2", project, env=dict(os.environ))
    assert result.ok, result.failures
    by_name = {c.name: c for c in result.checks}
    cores = by_name["cores"]
    # need 188 (8 + 4 + 11 x 16); 200 allowed, 54 in use of which the site's own 44: 190 free for it.
    assert (cores.need, cores.used, cores.held, cores.free) == (188, 54, 44, 190)
    held = result.held
    assert held is not None and held.stack_id == STACK_ID
    assert (held.instances, held.cores, held.ram_mb) == (4, 44, 30720 + 15360 + 2 * 61440)
    # The hub's database and the three monitoring volumes (Cinder CSI's, stamped with the cluster).
    assert (held.volumes, held.gigabytes) == (4, 62)
    # CAPO's API load balancer and the ingress Service's, the floating IP on each, CAPO's two groups.
    assert (held.load_balancers, held.floating_ips, held.security_groups) == (2, 2, 2)
    assert by_name["load_balancers"].held == 2 and by_name["security_groups"].held == 2


def test_the_same_usage_without_the_site_deployed_falls_short(cloud: FakeOpenStack, project: Path) -> None:
    import os

    tight_cloud(cloud)
    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)
    cloud.cloud.clusters = []  # the same servers in the usage, but no cluster of the site's: someone else's
    raise_user_max(project, 11)
    result = preflight_site("jetstream2", project, env=dict(os.environ))
    assert result.held is None
    failed = {c.name: c.message for c in result.failures}
    assert failed["cores"] == "needs 188, 146 free (200 allowed, 54 in use)"


def test_a_site_bigger_than_the_allocation_even_with_its_own_credited_still_fails(
    cloud: FakeOpenStack, project: Path
) -> None:
    tight_cloud(cloud)
    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)
    raise_user_max(project, 12)
    result = runner.invoke(app, ["preflight", "jetstream2", "-C", str(project)])
    assert result.exit_code == 16, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: preflight: compute cores: needs 204, 190 free (200 allowed, 54 in use, 44 of it this site's own)"
    ]
    # The operator sees what was credited and why `free` is not limit minus in use.
    assert (
        f"already held by pythia-binder (Cluster API name {STACK_ID}): 4 servers, 44 cores, 168960 MB RAM, 4 volumes (62 GB), 2 floating IPs, 2 load balancers, "
        "2 security groups" in result.stdout
    )
    cores_row = next(line for line in result.stdout.splitlines() if " cores " in line)
    assert cores_row.split() == ["NO", "compute", "cores", "204", "190", "200", "54", "44"]


def test_leftovers_that_merely_look_like_the_site_are_not_credited(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    c = cloud.cloud
    c.deploy("pythia-binder", STACK_ID, user_nodes=2)
    # An earlier cluster of the same name left a server and a boot volume (another random suffix); one of
    # the site's servers failed and will be replaced; a floating IP is the hub's by description only,
    # on no load balancer; a volume Cinder CSI made for another cluster.
    c.add_server("pythia-binder-0ld5t4ck1d99-control-plane-zzzzz", "m3.medium")
    c.add_volume("pythia-binder-0ld5t4ck1d99-control-plane-zzzzz-root", 60)
    c.add_server(f"{STACK_ID}-user-m3-large-6c7d8-broke", "m3.large", status="ERROR")
    c.add_floating_ip(None, description="BinderHub ingress binder.example.org (managed by Pulumi)")
    c.add_volume("pvc-other", 5, {"cinder.csi.openstack.org/cluster": "pythia-binder-0ld5t4ck1d99"})
    held = preflight_site("jetstream2", project, env=dict(os.environ)).held
    assert held is not None
    assert (held.instances, held.cores, held.volumes, held.gigabytes, held.floating_ips) == (4, 44, 4, 62, 2)


def test_nothing_is_credited_for_a_cluster_being_deleted_or_two_of_the_same_name(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2, status="DELETE_IN_PROGRESS")
    result = preflight_site("jetstream2", project, env=dict(os.environ))
    assert (
        result.held is not None and result.held.note == "the cluster is DELETE_IN_PROGRESS: nothing credited"
    )
    assert all(not c.held for c in result.checks)
    cloud.cloud.clusters[0]["status"] = "UPDATE_COMPLETE"
    cloud.cloud.clusters.append(
        {**cloud.cloud.clusters[0], "uuid": "another", "stack_id": "pythia-binder-2nd"}
    )
    result = preflight_site("jetstream2", project, env=dict(os.environ))
    assert result.held is not None and result.held.cores == 0
    assert "2 Magnum clusters are named pythia-binder" in result.held.note


def test_what_is_credited_never_exceeds_what_the_site_needs(cloud: FakeOpenStack, project: Path) -> None:
    import os

    # The operator lowered user-m3.large's max below what is running: the extra servers free up, they
    # are not room for the rest of the site.
    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=6)
    raise_user_max(project, 3)
    result = preflight_site("jetstream2", project, env=dict(os.environ))
    by_name = {c.name: c for c in result.checks}
    assert result.held is not None and result.held.instances == 8
    assert by_name["instances"].need == 5 and by_name["instances"].held == 5


def test_an_upgrade_credits_nothing_its_need_already_leaves_the_running_site_out(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)
    result = preflight_site("jetstream2", project, env=dict(os.environ), upgrade_to=(None, None))
    assert result.held is None and all(c.held is None for c in result.checks if c.need is not None)


def test_up_on_a_deployed_site_names_what_it_credited_beside_a_shortfall(
    cloud: FakeOpenStack, project: Path, pulumi_ready: FakeStacks
) -> None:
    tight_cloud(cloud)
    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)
    raise_user_max(project, 12)
    result = runner.invoke(app, ["up", "jetstream2", "--yes", "-C", str(project)])
    assert result.exit_code == 16, result.output
    assert (
        f"preflight: already held by pythia-binder (Cluster API name {STACK_ID}): 4 servers" in result.stderr
    )
    assert (
        "error: preflight: compute cores: needs 204, 190 free (200 allowed, 54 in use, 44 of it"
        in result.stderr
    )


def test_a_server_whose_flavor_the_compute_api_does_not_describe_is_credited_without_cores(
    cloud: FakeOpenStack, project: Path
) -> None:
    import os

    cloud.cloud.deploy("pythia-binder", STACK_ID, user_nodes=2)
    # Before compute microversion 2.47 a server names its flavor by id only.
    cloud.cloud.servers[-1]["flavor"] = {"id": "7", "links": []}
    held = preflight_site("jetstream2", project, env=dict(os.environ)).held
    assert held is not None and (held.instances, held.cores) == (4, 28)
    assert held.note == f"cores and RAM of {STACK_ID}-user-m3-large-6c7d8-u0001 not credited (flavor unknown)"
