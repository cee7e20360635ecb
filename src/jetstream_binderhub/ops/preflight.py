"""`preflight`: will the OpenStack allocation hold the site at its maximum size, before `up` tries?

What the site needs is computed from its config (every group at max_count); what is free is the
cloud's quota minus its usage and reservations, read with openstacksdk (compute and block-storage
quota sets with usage, Neutron quota details, the Octavia quota and the project's load balancers).
It also checks what the Magnum Cluster API driver and the BinderHub layer take for granted: the
Designate zone exists in this project, the application credential is unrestricted (the driver makes
the cluster's own credential with the caller's token: openstack/magnum-capi-helm
`magnum_capi_helm/common/app_creds.py`), the Kubernetes image exists, and the cloud's own templates
carry the `capi_helm_chart_version` the site asks for. The values the site gives each chart whose
schema does not ship with the package are checked against the chart's own schema, fetched from its
Helm repository (:mod:`jetstream_binderhub.ops.charts`).

A site that is already deployed is part of that usage: what it holds is found in the cloud and
credited back (:func:`site_holdings`), so re-running `up` asks for room for the site's growth only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jetstream_binderhub.config.cluster import ClusterStackConfig
from jetstream_binderhub.config.hub import HubStackConfig
from jetstream_binderhub.config.support import support_volumes
from jetstream_binderhub.errors import JetstreamBinderHubError
from jetstream_binderhub.profiles import Profile

if TYPE_CHECKING:
    from openstack.connection import Connection

    from jetstream_binderhub.ops.charts import HelmRepositories

CHART_LABEL = "capi_helm_chart_version"

API_LOAD_BALANCERS = 1
"""The Cluster API driver puts the Kubernetes API behind an Octavia load balancer with a floating IP
whatever `master_lb_enabled` says (openstack/magnum-capi-helm `driver.py`; NOTES 2026-11-27)."""

CLUSTER_SECURITY_GROUPS = 2
"""cluster-api-provider-openstack's managed security groups: one for the control plane, one for workers."""

INGRESS_SECURITY_GROUPS = 1
"""openstack-cloud-controller-manager's group for the ingress Service's load balancer members."""

HUB_VOLUMES = 1
HUB_VOLUME_GB = 1
"""The hub's database volume (zero-to-jupyterhub's default `hub.db.type: sqlite-pvc`, 1Gi)."""


class PreflightProblem(JetstreamBinderHubError):
    """The cloud could not be asked: unreachable, authentication refused, timed out, a service missing."""

    exit_code = 14


class PreflightAuthFailed(PreflightProblem):
    exit_code = 5


class PreflightTimedOut(PreflightProblem):
    exit_code = 13


class PreflightFailed(JetstreamBinderHubError):
    """The allocation or the project falls short of what the site needs."""

    exit_code = 16


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Check(_Out):
    area: Literal[
        "compute", "volume", "network", "load-balancer", "dns", "identity", "image", "magnum", "chart"
    ]
    name: str
    ok: bool
    checked: bool = Field(
        default=True, description="False: there was nothing to check (a chart with no schema)."
    )
    need: float | None = None
    limit: float | None = Field(default=None, description="None: unlimited (-1 in the API).")
    used: float | None = None
    held: float | None = Field(
        default=None,
        description="Of `used`, what the deployed site itself holds, credited back (never more than `need`).",
    )
    free: float | None = Field(
        default=None, description="Room for the site: limit - used + held. None: unlimited."
    )
    message: str = ""


class Held(_Out):
    """What the deployed site already holds in the project: part of the cloud's usage, and part of
    the site at its maximum, so it is credited back instead of being counted twice."""

    cluster: str = Field(description="The Magnum cluster's name (the site's `cluster.name`).")
    cluster_id: str = ""
    stack_id: str = Field(
        default="", description="The driver's name for the cluster: its Helm release and Cluster API name."
    )
    instances: int = 0
    cores: int = 0
    ram_mb: int = 0
    volumes: int = 0
    gigabytes: int = 0
    floating_ips: int = 0
    load_balancers: int = 0
    security_groups: int = 0
    note: str = Field(default="", description="Why nothing, or less than there is, was credited.")

    def summary(self) -> str:
        held = [
            f"{self.instances} servers",
            f"{self.cores} cores",
            f"{self.ram_mb} MB RAM",
            f"{self.volumes} volumes ({self.gigabytes} GB)",
            f"{self.floating_ips} floating IPs",
            f"{self.load_balancers} load balancers",
            f"{self.security_groups} security groups",
        ]
        where = f" (Cluster API name {self.stack_id})" if self.stack_id else ""
        text = f"already held by {self.cluster}{where}: " + ", ".join(held)
        return text + (f"; {self.note}" if self.note else "")


class Need(_Out):
    instances: int
    cores: int
    ram_mb: int
    volumes: int
    gigabytes: int
    floating_ips: int
    load_balancers: int
    security_groups: int
    explanation: dict[str, str]


class PreflightResult(_Out):
    site: str
    project_id: str
    auth_url: str
    need: Need
    held: Held | None = Field(
        default=None,
        description="None: the site's cluster is not in this project (or an upgrade is checked).",
    )
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]


# --- what the site needs ---------------------------------------------------------------------------


UPGRADE_SURGE = 1
"""Extra control-plane servers while an upgrade rolls: capi-helm-charts 0.16.0 gives the
KubeadmControlPlane `rolloutStrategy.rollingUpdate.maxSurge: 1` (a new server before an old one
goes), while node groups' MachineDeployments roll with `maxSurge: 0, maxUnavailable: 1`, inside
their size (azimuth-cloud/capi-helm-charts charts/openstack-cluster/values.yaml, node-group/
machine-deployment.yaml); magnum-capi-helm 1.4.0 overrides neither."""


def site_need(cluster: ClusterStackConfig, hub: HubStackConfig | None, profile: Profile) -> Need:
    """Every group at max_count, plus what the driver and the BinderHub layer add."""
    c = cluster.cluster
    groups = [
        ("control plane", c.control_plane.flavor, c.control_plane.count),
        ("default-worker", c.default_worker.flavor, c.default_worker.max_count),
        *((g.name, g.flavor, g.upper) for g in c.node_groups),
    ]
    instances = sum(count for _, _, count in groups)
    cores = ram_mb = 0
    unknown = []
    for name, flavor_name, count in groups:
        flavor = profile.flavor(flavor_name)
        if flavor is None:
            unknown.append(f"{name} ({flavor_name})")
            continue
        cores += flavor.vcpus * count
        ram_mb += int(flavor.ram_gb * 1024) * count
    boot = c.boot_volume_size_gb
    has_hub = hub is not None
    support = support_volumes(hub.support) if hub is not None else {}
    volumes = (instances if boot else 0) + (HUB_VOLUMES if has_hub else 0) + len(support)
    gigabytes = (instances * boot if boot else 0) + (HUB_VOLUME_GB if has_hub else 0) + sum(support.values())
    explanation = {
        "instances": f"{' + '.join(f'{n} {count}' for n, _, count in groups)} (every group at max_count; "
        "an upgrade of the running site needs one more control-plane server while it rolls, checked by "
        "`upgrade`)",
        "cores": "vCPUs of those instances by the profile's flavors"
        + (f"; not counted (custom flavors): {', '.join(unknown)}" if unknown else ""),
        "ram_mb": "RAM of those instances",
        "volumes": (f"a {boot} GB boot volume per instance; " if boot else "")
        + ("the hub's database volume" if has_hub else "no BinderHub layer")
        + "".join(f", {what} {gb} GB" for what, gb in support.items()),
        "floating_ips": "the Kubernetes API load balancer" + (" and the ingress" if has_hub else ""),
        "load_balancers": "the Kubernetes API" + (" and the ingress Service" if has_hub else ""),
        "security_groups": "the cluster's control-plane and worker groups"
        + (" and the ingress load balancer's" if has_hub else ""),
    }
    return Need(
        instances=instances,
        cores=cores,
        ram_mb=ram_mb,
        volumes=volumes,
        gigabytes=gigabytes,
        floating_ips=API_LOAD_BALANCERS + (1 if has_hub else 0),
        load_balancers=API_LOAD_BALANCERS + (1 if has_hub else 0),
        security_groups=CLUSTER_SECURITY_GROUPS + (INGRESS_SECURITY_GROUPS if has_hub else 0),
        explanation=explanation,
    )


def upgrade_need(cluster: ClusterStackConfig, profile: Profile) -> Need:
    """What an upgrade of the RUNNING site needs free: its servers, volumes, load balancers and
    floating IPs are already in the cloud's usage, so only the control-plane server the rollout adds
    before it removes an old one (node groups roll inside their size)."""
    c = cluster.cluster
    flavor = profile.flavor(c.control_plane.flavor)
    boot = c.boot_volume_size_gb
    surge = f"{UPGRADE_SURGE} control-plane server ({c.control_plane.flavor}) while the control plane rolls"
    already = "the running site's own are in the cloud's usage already"
    return Need(
        instances=UPGRADE_SURGE,
        cores=flavor.vcpus * UPGRADE_SURGE if flavor else 0,
        ram_mb=int(flavor.ram_gb * 1024) * UPGRADE_SURGE if flavor else 0,
        volumes=UPGRADE_SURGE if boot else 0,
        gigabytes=UPGRADE_SURGE * boot if boot else 0,
        floating_ips=0,
        load_balancers=0,
        security_groups=0,
        explanation={
            "instances": f"{surge}; node groups roll inside their size, one node down at a time; {already}",
            "cores": "vCPUs of that server"
            + ("" if flavor else f"; not counted (custom flavor {c.control_plane.flavor})"),
            "ram_mb": "RAM of that server",
            "volumes": f"its {boot} GB boot volume" if boot else "none: no boot volumes",
            "floating_ips": already,
            "load_balancers": already,
            "security_groups": already,
        },
    )


# --- asking the cloud ------------------------------------------------------------------------------


def _quota_check(
    area: Any, name: str, need: float, limit: Any, used: Any, reserved: Any = 0, held: float | None = None
) -> Check:
    limit_v = None if limit is None or limit == -1 else float(limit)
    used_v = float(used or 0) + float(reserved or 0)
    # Never more than the site needs of it: what it holds beyond its maximum (a server the control
    # plane's rollout added, a volume of an extra claim) is not room the site's growth can use.
    credit = None if held is None else float(min(held, need))
    free = None if limit_v is None else limit_v - used_v + (credit or 0)
    ok = free is None or free >= need
    own = f", {credit:.0f} of it this site's own" if credit else ""
    message = (
        "" if ok else f"needs {need:.0f}, {free:.0f} free ({limit_v:.0f} allowed, {used_v:.0f} in use{own})"
    )
    return Check(
        area=area,
        name=name,
        ok=ok,
        need=need,
        limit=limit_v,
        used=used_v,
        held=credit,
        free=free,
        message=message,
    )


def check_quotas(conn: Connection, project_id: str, need: Need, held: Held | None = None) -> list[Check]:
    """Quota minus usage against `need`; `held` (the deployed site's own share of the usage) is
    credited back."""

    def own(name: str) -> float | None:
        return None if held is None else float(getattr(held, name))

    checks: list[Check] = []
    compute = conn.compute.get_quota_set(project_id, usage=True)
    usage, reserved = compute.usage or {}, compute.reservation or {}
    for name, attr, amount in (
        ("instances", "instances", need.instances),
        ("cores", "cores", need.cores),
        ("ram_mb", "ram", need.ram_mb),
    ):
        checks.append(
            _quota_check(
                "compute",
                name,
                amount,
                getattr(compute, attr),
                usage.get(attr),
                reserved.get(attr),
                own(name),
            )
        )
    volume = conn.block_storage.get_quota_set(project_id, usage=True)
    usage, reserved = volume.usage or {}, volume.reservation or {}
    for name, amount in (("volumes", need.volumes), ("gigabytes", need.gigabytes)):
        checks.append(
            _quota_check(
                "volume", name, amount, getattr(volume, name), usage.get(name), reserved.get(name), own(name)
            )
        )
    network = conn.network.get_quota(project_id, details=True)
    for name, attr, amount in (
        ("floating_ips", "floating_ips", need.floating_ips),
        ("security_groups", "security_groups", need.security_groups),
    ):
        detail: Mapping[str, Any] = getattr(network, attr) or {}
        checks.append(
            _quota_check(
                "network",
                name,
                amount,
                detail.get("limit"),
                detail.get("used"),
                detail.get("reserved"),
                own(name),
            )
        )
    # Octavia's quota API gives limits only: the usage is the project's load balancers.
    lb_quota = conn.load_balancer.get_quota(project_id)
    in_use = sum(1 for _ in conn.load_balancer.load_balancers(project_id=project_id))
    checks.append(
        _quota_check(
            "load-balancer",
            "load_balancers",
            need.load_balancers,
            lb_quota.load_balancers,
            in_use,
            held=own("load_balancers"),
        )
    )
    return checks


# --- what the deployed site already holds ----------------------------------------------------------
#
# Found in the cloud itself, by the names the driver and its providers give what they create, from
# the site's Magnum cluster. Not from Magnum's node counts: the Cluster API driver hands a group's
# node_count to the chart as its initial machineCount and never writes the autoscaler's size back
# (openstack/magnum-capi-helm `driver.py` `_process_node_groups`, `_update_worker_nodegroup_status`),
# so node_count would over-credit a group the autoscaler has shrunk. Not from the Pulumi stacks'
# outputs either: they name the cluster, not what it made, and opening a stack takes the secrets
# passphrase, where preflight needs OpenStack credentials only.
# Whatever cannot be tied to this cluster's name is not credited: a leftover resource must never make
# the check pass.

_STALE_SERVER = frozenset({"ERROR", "DELETED", "SOFT_DELETED", "SHELVED_OFFLOADED", "UNKNOWN"})
"""Servers in these states are on their way out (a MachineHealthCheck replaces a failed machine) or
may hold no cores in Nova's count: not credited."""

_STALE_VOLUME = frozenset({"error", "deleting", "error_deleting"})
_STALE_LOAD_BALANCER = frozenset({"ERROR", "PENDING_DELETE", "DELETED"})

CSI_CLUSTER_KEY = "cinder.csi.openstack.org/cluster"
"""Cinder CSI stamps each volume it makes with its `--cluster` (cloud-provider-openstack
pkg/csi/cinder/controllerserver.go), which capi-helm-charts sets to the cluster's name, the Helm
release (charts/cluster-addons/templates/openstack/csi-cinder.yaml `clusterID`)."""


def _is_api_load_balancer(name: str, stack_id: str) -> bool:
    # cluster-api-provider-openstack: `k8s-clusterapi-cluster-<namespace>-<cluster>-kubeapi`
    # (pkg/cloud/services/loadbalancer/loadbalancer.go getLoadBalancerName; the resource name is
    # namespace-cluster, pkg/utils/names); the driver's namespace is `magnum-<project>`, configurable
    # on the cloud, so only the ends are matched. The release name ends in 12 random characters.
    return name.startswith("k8s-clusterapi-cluster-") and name.endswith(f"-{stack_id}-kubeapi")


def _is_cluster_security_group(name: str, stack_id: str) -> bool:
    # pkg/cloud/services/networking/securitygroups.go: `k8s-cluster-<namespace>-<cluster>-secgroup-<role>`.
    return name.startswith("k8s-cluster-") and any(
        name.endswith(f"-{stack_id}-secgroup-{role}") for role in ("controlplane", "worker")
    )


def site_holdings(
    conn: Connection,
    project_id: str,
    cluster_name: str,
    ingress_namespace: str | None,
) -> Held | None:
    """What the site's Magnum cluster (and the hub on it) holds in the project; None when no cluster
    of that name is in the project, i.e. the site is not deployed.

    - servers named `<release>-…` (the chart names every Machine after its release, the driver's
      `stack_id`; CAPO names the server after the machine), with their flavors' vCPUs and RAM;
    - volumes named `<release>-…` (CAPO's boot volumes, `<server>-root`) and those Cinder CSI made for
      this cluster (the hub's database, the monitoring volumes);
    - the Kubernetes API's load balancer (CAPO's name) and the ingress's, which
      openstack-cloud-controller-manager names `kube_service_<cluster>_<namespace>_<service>`;
    - the floating IPs on those load balancers' VIP ports;
    - CAPO's control-plane and worker security groups.
    """
    found = [c for c in conn.container_infrastructure_management.clusters() if c.name == cluster_name]
    if not found:
        return None
    if len(found) > 1:
        return Held(
            cluster=cluster_name,
            note=f"{len(found)} Magnum clusters are named {cluster_name}: nothing credited, not knowing which is "
            "the site's",
        )
    cluster = found[0]
    # openstacksdk asks Magnum for no microversion, so the answer is 1.1's, which carries stack_id
    # (from 1.13 it is `cluster_id`: openstack/magnum api/controllers/v1/cluster.py).
    stack_id = str(cluster.stack_id or "")
    held = Held(cluster=cluster_name, cluster_id=str(cluster.id or ""), stack_id=stack_id)
    status = str(cluster.status or "")
    if not stack_id:
        return held.model_copy(
            update={"note": "the driver has not named the cluster's resources yet: nothing credited"}
        )
    if status.startswith("DELETE"):
        return held.model_copy(update={"note": f"the cluster is {status}: nothing credited"})

    prefix = f"{stack_id}-"
    instances = cores = ram_mb = 0
    uncounted: list[str] = []
    for server in conn.compute.servers(details=True):
        if not str(server.name or "").startswith(prefix) or server.status in _STALE_SERVER:
            continue
        instances += 1
        flavor = server.flavor
        vcpus, ram = (flavor.vcpus, flavor.ram) if flavor is not None else (0, 0)
        if not vcpus:
            # Compute before microversion 2.47 embeds only the flavor's id (openstacksdk negotiates the
            # newest the cloud offers): the server is credited, its cores and RAM are not.
            uncounted.append(str(server.name))
            continue
        cores += int(vcpus)
        ram_mb += int(ram)

    volumes = gigabytes = 0
    for volume in conn.block_storage.volumes(details=True):
        metadata = volume.metadata or {}
        ours = str(volume.name or "").startswith(prefix) or metadata.get(CSI_CLUSTER_KEY) == stack_id
        if ours and volume.status not in _STALE_VOLUME:
            volumes += 1
            gigabytes += int(volume.size or 0)

    ingress_prefix = f"kube_service_{stack_id}_{ingress_namespace}_" if ingress_namespace else None
    site_lbs = [
        lb
        for lb in conn.load_balancer.load_balancers(project_id=project_id)
        if lb.provisioning_status not in _STALE_LOAD_BALANCER
        and (
            _is_api_load_balancer(name := str(lb.name or ""), stack_id)
            or (ingress_prefix is not None and name.startswith(ingress_prefix))
        )
    ]
    load_balancers = len(site_lbs)
    vip_ports = {str(lb.vip_port_id) for lb in site_lbs if lb.vip_port_id}
    floating_ips = sum(1 for ip in conn.network.ips(project_id=project_id) if ip.port_id in vip_ports)
    # openstack-cloud-controller-manager's group for the ingress members is not credited: its name
    # does not say which cluster made it.
    security_groups = sum(
        1
        for group in conn.network.security_groups(project_id=project_id)
        if _is_cluster_security_group(str(group.name or ""), stack_id)
    )
    note = f"cores and RAM of {', '.join(uncounted)} not credited (flavor unknown)" if uncounted else ""
    return held.model_copy(
        update={
            "instances": instances,
            "cores": cores,
            "ram_mb": ram_mb,
            "volumes": volumes,
            "gigabytes": gigabytes,
            "floating_ips": floating_ips,
            "load_balancers": load_balancers,
            "security_groups": security_groups,
            "note": note,
        }
    )


def check_zone(conn: Connection, project_id: str, zone: str) -> Check:
    found = list(conn.dns.zones(name=zone))
    if not found:
        return Check(
            area="dns",
            name="zone",
            ok=False,
            message=f"Designate zone {zone} not found in this project; check dns.allocation / dns.zone and "
            "`openstack zone list`",
        )
    owner = found[0].project_id
    if owner and owner != project_id:
        return Check(
            area="dns",
            name="zone",
            ok=False,
            message=f"Designate zone {zone} belongs to project {owner}, not to the credential's {project_id}; "
            "records can only be made in a zone of your own project",
        )
    return Check(area="dns", name="zone", ok=True, message=zone)


def check_credential(conn: Connection) -> Check:
    from keystoneauth1.access import AccessInfoV3
    from keystoneauth1.identity.base import BaseIdentityPlugin

    # The token says which application credential made it and whether it is restricted.
    auth = conn.session.auth
    access = auth.get_access(conn.session) if isinstance(auth, BaseIdentityPlugin) else None
    app_cred = (
        dict(access.application_credential)
        if isinstance(access, AccessInfoV3) and access.application_credential_id
        else None
    )
    if not app_cred:
        return Check(
            area="identity",
            name="application credential",
            ok=True,
            message="not an application credential (a token of your own can make the driver's credential)",
        )
    if app_cred.get("restricted", True):
        return Check(
            area="identity",
            name="application credential",
            ok=False,
            message=f"application credential {app_cred.get('name') or app_cred.get('id')} is restricted: the Magnum "
            "driver cannot create the cluster's own credential with it; create one with --unrestricted "
            "(Horizon: tick 'Unrestricted')",
        )
    return Check(
        area="identity",
        name="application credential",
        ok=True,
        message=f"{app_cred.get('name') or app_cred.get('id')} is unrestricted",
    )


def check_image(conn: Connection, image: str) -> Check:
    from openstack import exceptions as sdk

    try:
        conn.image.find_image(image, ignore_missing=False)
    except sdk.NotFoundException:
        return Check(
            area="image",
            name="image",
            ok=False,
            message=f"image {image} is not on the cloud (or not visible to this project); check cluster.image "
            "against `openstack image list --tag magnum` or the profile's default_image",
        )
    return Check(area="image", name="image", ok=True, message=image)


def check_chart_version(conn: Connection, version: str) -> Check:
    offered = sorted(
        {
            str(labels[CHART_LABEL])
            for template in conn.container_infrastructure_management.cluster_templates()
            if isinstance(labels := (template.labels or {}), dict) and CHART_LABEL in labels
        }
    )
    if not offered:
        return Check(
            area="magnum",
            name=CHART_LABEL,
            ok=True,
            message=f"no template visible to this project carries {CHART_LABEL}; cannot confirm {version}",
        )
    if version not in offered:
        return Check(
            area="magnum",
            name=CHART_LABEL,
            ok=False,
            message=f"{version} is not among the versions the cloud's templates use ({', '.join(offered)}); "
            "the driver may not have that chart, and autoscaling needs a match",
        )
    return Check(area="magnum", name=CHART_LABEL, ok=True, message=version)


def preflight(
    cluster: ClusterStackConfig,
    hub: HubStackConfig | None,
    profile: Profile,
    *,
    site: str,
    connect: Callable[[], Connection],
    upgrade: bool = False,
    charts: Callable[[], Sequence[Check]] | None = None,
) -> PreflightResult:
    """Every check, each one answered; errors reaching the cloud raise :class:`PreflightProblem`.
    `charts`: makes the chart schema checks, which need no cloud (:func:`preflight_site`); called once
    the cloud has answered, so a refused credential is said before the site is planned and its charts
    are downloaded (up to `HelmRepositories.timeout` per request)."""
    need = upgrade_need(cluster, profile) if upgrade else site_need(cluster, hub, profile)
    conn = connect()
    try:
        project_id = str(conn.current_project_id)
        auth_url = str(conn.config.auth.get("auth_url", ""))
        # An upgrade's need already leaves out what the running site holds.
        held = (
            None
            if upgrade
            else site_holdings(
                conn,
                project_id,
                cluster.cluster.name,
                hub.ingress.namespace if hub is not None else None,
            )
        )
        checks = check_quotas(conn, project_id, need, held)
        if hub is not None and hub.dns.provider == "designate" and hub.dns.zone:
            checks.append(check_zone(conn, project_id, hub.dns.zone))
        checks.append(check_credential(conn))
        c = cluster.cluster
        if c.existing_template_id is None:
            if c.image:
                checks.append(check_image(conn, c.image))
            if c.capi_helm_chart_version:
                checks.append(check_chart_version(conn, c.capi_helm_chart_version))
    except JetstreamBinderHubError:
        raise
    except Exception as exc:
        raise translate(exc) from None
    # Outside the cloud's error translation: a chart's failure is its own row, not the cloud's.
    if charts is not None:
        checks += charts()
    return PreflightResult(
        site=site, project_id=project_id, auth_url=auth_url, need=need, held=held, checks=checks
    )


def translate(exc: Exception) -> JetstreamBinderHubError:
    """keystoneauth's and openstacksdk's exceptions as one line naming what to check."""
    from keystoneauth1 import exceptions as ks
    from openstack import exceptions as sdk

    # openstacksdk's authorize() wraps keystoneauth's errors in SDKException: judge the original.
    original = exc.__cause__ or exc.__context__
    if isinstance(exc, sdk.SDKException) and isinstance(original, ks.ClientException):
        exc = original
    if isinstance(exc, ks.ConnectTimeout | ks.ConnectFailure) and "timed out" in str(exc).lower():
        return PreflightTimedOut(
            f"the cloud did not answer in time ({exc}); check the network and OS_AUTH_URL"
        )
    if isinstance(exc, ks.ConnectFailure | ks.DiscoveryFailure | ks.SSLError):
        return PreflightProblem(
            f"cannot reach the OpenStack identity or a service endpoint ({type(exc).__name__}); check OS_AUTH_URL "
            "(or the auth_url in clouds.yaml) and the network"
        )
    if isinstance(exc, ks.Unauthorized) or (
        isinstance(exc, sdk.HttpException) and getattr(exc, "status_code", None) == 401
    ):
        return PreflightAuthFailed(
            "the cloud refused the credentials (401); check OS_APPLICATION_CREDENTIAL_ID/SECRET or OS_CLOUD's "
            "entry in clouds.yaml (an application credential may have expired or been deleted)"
        )
    if isinstance(exc, ks.EndpointNotFound | ks.CatalogException):
        return PreflightProblem(
            f"a service is missing from the cloud's catalog ({exc}); is this the right cloud?"
        )
    if isinstance(exc, ks.RequestTimeout):
        return PreflightTimedOut(f"a request to the cloud timed out ({exc}); try again, or check the network")
    if isinstance(exc, sdk.HttpException):
        status = getattr(exc, "status_code", None)
        url = getattr(getattr(exc, "response", None), "url", "")
        if status == 403:
            return PreflightAuthFailed(
                f"the credential may not read {url} (403); it needs the member role on the project"
            )
        return PreflightProblem(f"the cloud answered {status} for {url}: {exc.details or exc}")
    if isinstance(exc, ks.ClientException | sdk.SDKException):
        return PreflightProblem(f"asking the cloud failed: {exc}")
    return PreflightProblem(f"asking the cloud failed: {type(exc).__name__}: {exc}")


def connect_from_environment(env: Mapping[str, str]) -> Connection:
    """A connection from OS_CLOUD (clouds.yaml) or the OS_* variables of an openrc, as the providers do."""
    import openstack

    from jetstream_binderhub.automation.environment import require_openstack_credentials

    require_openstack_credentials(env)
    try:
        cloud = env.get("OS_CLOUD")
        conn = openstack.connect(cloud=cloud) if cloud else openstack.connect()
        conn.authorize()
    except JetstreamBinderHubError:
        raise
    except Exception as exc:
        raise translate(exc) from None
    return conn


def preflight_site(
    site: str,
    project_dir: Path,
    *,
    env: Mapping[str, str],
    connect: Callable[[], Connection] | None = None,
    upgrade_to: tuple[str | None, str | None] | None = None,
    repositories: HelmRepositories | None = None,
) -> PreflightResult:
    """`upgrade_to` (image, chart version; None: unchanged): check the running site as an upgrade
    makes it: the new image and chart version on the cloud, and room for the rollout's extra
    control-plane server (:func:`upgrade_need`). Otherwise the values of every chart whose schema
    does not ship are checked too, fetching the charts from `repositories` (default: their Helm
    repositories, cached under ~/.cache/jetstream-binderhub/charts)."""
    from jetstream_binderhub.config.cluster import resolve_defaults
    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.stackfile import HUB_PROJECT, read_stack_file
    from jetstream_binderhub.plan.site import hub_stack_path, load_cluster_file
    from jetstream_binderhub.profiles import load_profile

    _, cluster = load_cluster_file(project_dir, site)
    profile = load_profile(cluster.profile)
    cluster = resolve_defaults(cluster, profile)
    if upgrade_to is not None:
        image, chart = upgrade_to
        changed = {"image": image} if image else {}
        changed |= {"capi_helm_chart_version": chart} if chart else {}
        cluster = cluster.model_copy(update={"cluster": cluster.cluster.model_copy(update=changed)})
    hub = None
    hub_path = hub_stack_path(project_dir, site)
    if hub_path.is_file():
        hub = parse_hub_stack(
            read_stack_file(hub_path).namespace(HUB_PROJECT),
            source=str(hub_path),
            node_groups=cluster.cluster.label_values(),
        )

    def charts() -> list[Check]:
        from jetstream_binderhub.ops.charts import check_charts
        from jetstream_binderhub.plan.site import plan_site

        return check_charts(plan_site(site, project_dir), repositories)

    return preflight(
        cluster,
        hub,
        profile,
        site=site,
        connect=connect or (lambda: connect_from_environment(env)),
        upgrade=upgrade_to is not None,
        # An upgrade changes the cluster's image and chart only: the releases' values are those `up` checked.
        charts=charts if hub is not None and upgrade_to is None else None,
    )
