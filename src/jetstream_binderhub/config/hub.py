"""Configuration of the BinderHub layer: ingress, DNS, TLS and the BinderHub release on the cluster.

Secrets are not part of these models. The registry password and the GitHub token are separate
top-level config keys read with ``pulumi.Config.require_secret`` so they stay Pulumi secrets from the
stack file to the Kubernetes Secret; the models only hold what is safe to print in a plan.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlparse

from pydantic import AfterValidator, EmailStr, Field, ValidationError, ValidationInfo, field_validator

from jetstream_binderhub.config.base import Model
from jetstream_binderhub.config.dask import DaskGatewayConfig, dask_placement_problems, worker_group
from jetstream_binderhub.config.gpu import GpuConfig, gpu_placement_problems
from jetstream_binderhub.config.support import (
    ALERTS_HEARTBEAT_SECRET_KEY,
    ALERTS_SMTP_PASSWORD_SECRET_KEY,
    ALERTS_WEBHOOK_SECRET_KEY,
    GRAFANA_SECRET_KEY,
    SupportConfig,
    support_problems,
)
from jetstream_binderhub.errors import ConfigError, Problem, described_pattern, problems_from_validation_error
from jetstream_binderhub.naming import DEFAULT_WORKER, RFC1123_LABEL, node_group_label_value
from jetstream_binderhub.profiles import Profile, load_profile

BINDERHUB_CHART_REPO = "https://jupyterhub.github.io/helm-chart"
BINDERHUB_CHART_VERSION = "1.0.0-0.dev.git.3958.haf9ca8b1"
"""The chart only publishes development versions; this one depends on JupyterHub chart 4.2.0."""
TRAEFIK_CHART_REPO = "https://traefik.github.io/charts"
TRAEFIK_CHART_VERSION = "41.3.0"
CERT_MANAGER_CHART_REPO = "https://charts.jetstack.io"
CERT_MANAGER_CHART_VERSION = "v1.21.1"
REPO2DOCKER_IMAGE = "quay.io/jupyterhub/repo2docker:2026.04.0"
DIND_IMAGE = "docker.io/library/docker:27.5.1-dind"
"""mybinder.org's pin: it reverted the chart's 28.x default after build failures (mybinder.org-deploy#3387)."""
PINK_IMAGE = "quay.io/podman/stable:v5.8.1"

SECRET_KEYS = (
    "registry_password",
    "github_token",
    GRAFANA_SECRET_KEY,
    ALERTS_WEBHOOK_SECRET_KEY,
    ALERTS_SMTP_PASSWORD_SECRET_KEY,
    ALERTS_HEARTBEAT_SECRET_KEY,
)
"""Top-level keys that must be Pulumi secrets (`pulumi -C binderhub config set --secret <key>`)."""
HUB_KEYS = (
    "cluster_stack",
    "profile",
    "placement",
    "ingress",
    "dns",
    "tls",
    "binderhub",
    "dask_gateway",
    "gpu",
    "support",
    *SECRET_KEYS,
)

LETSENCRYPT_SERVERS = {
    "production": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}

REPO_PROVIDERS = {
    "gh": "GitHubRepoProvider",
    "gist": "GistRepoProvider",
    "git": "GitRepoProvider",
    "gl": "GitLabRepoProvider",
    "zenodo": "ZenodoProvider",
    "figshare": "FigshareProvider",
    "hydroshare": "HydroshareProvider",
    "dataverse": "DataverseProvider",
    "ckan": "CKANProvider",
}
"""BinderHub's launch-URL prefixes (`/v2/<prefix>/...`) and the repo provider class behind each."""

RepoProviderPrefix = Literal[
    "gh", "gist", "git", "gl", "zenodo", "figshare", "hydroshare", "dataverse", "ckan"
]

_EXACT_VERSION = described_pattern(
    r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$",
    "must be one exact chart version, e.g. 41.3.0, v1.21.1 or 1.0.0-0.dev.git.3958.haf9ca8b1 (no ranges such "
    "as ^41 or ~1.2)",
)
_IMAGE_COMPONENT = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*$")
_IMAGE_PREFIX_TAIL = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*[._-]*$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGT]i?)?$")
_MEMORY_FACTORS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_MEMORY_FACTORS |= {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# Kubernetes quantities spell decimal kilo `k`; KubeSpawner's `K` is refused by the API server.
_KUBE_MEMORY = re.compile(r"^\d+(\.\d+)?(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$")
# Let's Encrypt refuses account contacts at reserved example domains ("invalidContact").
_RESERVED_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "localhost")
_RESERVED_EMAIL_TLDS = (".test", ".example", ".invalid", ".localhost", ".local")


def _rfc1123_name(value: str) -> str:
    if len(value) > 63 or not RFC1123_LABEL.match(value):
        raise ValueError(
            "must be an RFC 1123 label (lowercase letters, digits and '-', at most 63 characters): Kubernetes "
            "names namespaces and Helm releases after it"
        )
    return value


def _hostname(value: str) -> str:
    if value.endswith("."):
        raise ValueError(
            "write the host without the trailing dot: it is used in URLs, ingress rules and certificates; "
            "DNS record names get their dot added for you"
        )
    if "://" in value or "/" in value:
        raise ValueError("must be a bare host name such as binder.example.org, not a URL")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        raise ValueError("must be a DNS name, not an IP address: Let's Encrypt issues certificates for names")
    labels = value.split(".")
    if (
        len(value) > 253
        or len(labels) < 2
        or not all(len(x) <= 63 and RFC1123_LABEL.match(x) for x in labels)
    ):
        raise ValueError(
            "must be a fully qualified lowercase host name (labels of letters, digits and '-', at least one dot)"
        )
    if labels[-1].isdigit():
        raise ValueError("the last label is all digits, which no top-level domain is")
    return value


def _exact_image(value: str) -> str:
    name, _, tag = value.rpartition(":")
    if not name or "/" in tag or not tag:
        raise ValueError(
            "must be an image with an explicit tag, e.g. quay.io/jupyterhub/repo2docker:2026.04.0"
        )
    if tag == "latest":
        raise ValueError(
            "must pin a tag other than `latest`: a moving tag changes builds without a config change"
        )
    return value


def _memory_bytes(value: str) -> float:
    match = _MEMORY.match(value)
    assert match is not None
    number = value[: len(value) - len(match.group(2) or "")]
    return float(number) * _MEMORY_FACTORS[match.group(2) or ""]


def _kube_memory(value: str) -> str:
    if not _KUBE_MEMORY.match(value):
        raise ValueError("must be a Kubernetes memory quantity such as 512Mi, 1Gi or 2G")
    return value


def _kube_memory_bytes(value: str) -> float:
    return _memory_bytes(value.replace("k", "K"))


def _memory(value: str) -> str:
    if not _MEMORY.match(value):
        raise ValueError("must be a byte quantity such as 2G, 512M or 4Gi (the suffixes KubeSpawner accepts)")
    return value


ReleaseName = Annotated[str, AfterValidator(_rfc1123_name)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Image = Annotated[str, AfterValidator(_exact_image)]
Memory = Annotated[str, AfterValidator(_memory)]
KubeMemory = Annotated[str, AfterValidator(_kube_memory)]


class Placement(Model):
    """Which Magnum node groups run what, by group name as written in the cluster config."""

    core_node_group: str = Field(
        default=DEFAULT_WORKER,
        description=(
            "Node group for the hub, proxy, BinderHub, user scheduler, ingress controller and cert-manager "
            "(pods select `capi.stackhpc.com/node-group: <the cluster's label value for it>`)."
        ),
    )
    user_node_group: str = Field(
        default=DEFAULT_WORKER,
        description="Node group for user servers, image builds, the docker-in-docker daemonset and image cleaner.",
    )


class IngressConfig(Model):
    """The ingress controller that terminates TLS for both hosts, behind a load balancer with a fixed IP."""

    controller: Literal["traefik"] = Field(
        default="traefik",
        description=(
            "Ingress controller. Traefik, as mybinder.org runs it; the retired kubernetes/ingress-nginx is not "
            "offered."
        ),
    )
    chart_version: str = Field(
        default=TRAEFIK_CHART_VERSION, pattern=_EXACT_VERSION, description="Exact Traefik chart version."
    )
    namespace: ReleaseName = Field(default="traefik", description="Namespace of the ingress controller.")
    release_name: ReleaseName = Field(default="traefik", description="Helm release name.")
    class_name: ReleaseName = Field(
        default="traefik",
        description="IngressClass the controller owns and every ingress of this layer uses.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=10,
        description=(
            "Controller pods. With 2 or more they prefer different nodes and get a disruption budget of one "
            "pod; that needs a core group of at least as many nodes (a one-node group would stall draining "
            "it), so the plan refuses more replicas than the core group's max_count."
        ),
    )
    timeout_seconds: int = Field(
        default=600,
        ge=60,
        le=86400,
        description=(
            "Read and idle timeouts of the HTTPS entry point. Traefik's defaults (60 s read, 180 s idle) cut "
            "quiet notebook websockets; mybinder.org runs 600."
        ),
    )
    preserve_client_ip: bool = Field(
        default=True,
        description=(
            "`externalTrafficPolicy: Local` on the load balancer Service, so the hub and BinderHub see "
            "users' addresses rather than a node's (2i2c runs this); the load balancer then health-checks "
            "nodes and sends traffic only to those running a controller pod."
        ),
    )
    floating_ip_pool: str | None = Field(
        default=None,
        description=(
            "External network the load balancer's floating IP comes from (default: the profile's, `public` on "
            "Jetstream2)."
        ),
    )
    protect_floating_ip: bool = Field(
        default=True,
        description=(
            "Pulumi `protect` on the floating IP: the public address (and every DNS record pointing at it) "
            "outlives load balancer rebuilds and accidental destroys. `up --allow-replace ingress-floating-ip` "
            "lifts it for that one update."
        ),
    )


class DnsConfig(Model):
    """Where the names of the two hosts come from."""

    provider: Literal["designate", "external"] = Field(
        description=(
            "`designate`: A records in the project's OpenStack Designate zone. `external`: bring your own DNS; "
            "the stack outputs `dns_records` say exactly which records to create."
        )
    )
    allocation: str | None = Field(
        default=None,
        pattern=described_pattern(
            r"^[a-z0-9-]+$",
            "must be the allocation id in lowercase letters, digits and '-', e.g. cis230085; or set dns.zone "
            "instead",
        ),
        description=(
            "Allocation id (lowercase, e.g. cis230085) that names the Designate zone through the profile's "
            "pattern (`<allocation>.projects.jetstream-cloud.org.` on Jetstream2). Designate only."
        ),
    )
    zone: str | None = Field(
        default=None,
        description="Designate zone name with its trailing dot; overrides `allocation`. Designate only.",
    )
    ttl: int = Field(default=300, ge=30, le=86400, description="TTL of the A records, in seconds.")

    @field_validator("zone")
    @classmethod
    def _absolute_zone(cls, value: str | None) -> str | None:
        if value is not None:
            if not value.endswith("."):
                raise ValueError(
                    "must end with a dot: Designate zone names are absolute (e.g. cis230085.projects.jetstream-cloud.org.)"
                )
            _hostname(value[:-1])
        return value

    @field_validator("allocation", "zone")
    @classmethod
    def _designate_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("provider") == "external":
            raise ValueError("is a Designate setting; remove it with provider: external")
        return value


class TlsConfig(Model):
    """cert-manager and the Let's Encrypt issuer (HTTP-01 through the ingress controller)."""

    acme_email: EmailStr = Field(
        description="Contact address for the Let's Encrypt account (expiry and policy mail goes there)."
    )
    acme_server: Literal["production", "staging"] = Field(
        default="production",
        description=(
            "Let's Encrypt environment. `staging` has generous rate limits but untrusted certificates: use it "
            "while trying a new site."
        ),
    )
    cert_manager_version: str = Field(
        default=CERT_MANAGER_CHART_VERSION,
        pattern=_EXACT_VERSION,
        description="Exact cert-manager chart version.",
    )
    namespace: ReleaseName = Field(default="cert-manager", description="Namespace of cert-manager.")
    release_name: ReleaseName = Field(
        default="cert-manager", description="Helm release name of cert-manager."
    )

    @field_validator("acme_email")
    @classmethod
    def _deliverable_domain(cls, value: str) -> str:
        domain = value.rsplit("@", 1)[-1].lower()
        if domain in _RESERVED_EMAIL_DOMAINS or domain.endswith(_RESERVED_EMAIL_TLDS):
            raise ValueError(
                f"{domain!r} is a reserved domain; Let's Encrypt refuses such account contacts (invalidContact)"
            )
        return value

    @property
    def issuer_name(self) -> str:
        return f"letsencrypt-{self.acme_server}"

    @property
    def acme_url(self) -> str:
        return LETSENCRYPT_SERVERS[self.acme_server]


class RegistryConfig(Model):
    """The container registry BinderHub pushes built images to and user servers pull them from."""

    provider: Literal["quay", "dockerhub", "ghcr", "harbor", "oci"] = Field(
        description="Registry kind; sets the API and token URLs BinderHub needs (`oci`: any other registry)."
    )
    url: str | None = Field(
        default=None,
        description=(
            "Registry API URL, https. Defaults for quay (https://quay.io), dockerhub and ghcr; required for "
            "harbor and oci."
        ),
    )
    username: str = Field(
        min_length=1,
        description=(
            "Account that pushes images (a Quay robot account such as `projectpythia+binderhub`). Its password "
            "is the secret key `registry_password`."
        ),
    )
    image_prefix: str = Field(
        description=(
            "Prefix of every built image: `<registry host>/<project>/<name prefix>`, e.g. "
            "`quay.io/projectpythia/binder-`. BinderHub strips the host and needs the project level."
        )
    )
    private: bool | None = Field(
        default=None,
        description=(
            "Images are private: user pods get a pull secret made from the same credentials. Unset follows "
            "the provider: private for quay (Quay creates pushed repositories private), ghcr, harbor and oci; "
            "public for dockerhub."
        ),
    )
    token_url: str | None = Field(
        default=None,
        description="Token endpoint of the registry (default: known for quay, ghcr, harbor; discovered otherwise).",
    )

    @field_validator("url", "token_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None:
            parsed = urlparse(value)
            if parsed.scheme != "https" or not parsed.hostname:
                raise ValueError("must be an https:// URL: registry credentials are never sent in clear text")
        return value

    @field_validator("url")
    @classmethod
    def _url_required(cls, value: str | None, info: ValidationInfo) -> str | None:
        provider = info.data.get("provider")
        if value is None and provider in ("harbor", "oci"):
            raise ValueError(
                f"required for provider {provider}: there is no well-known registry to default to"
            )
        return value

    @property
    def pulls_need_secret(self) -> bool:
        """Whether user pods need the pull secret: `private`, else what the provider does with a new
        repository. Quay makes pushed repositories private whatever the plan (2i2c-org/infrastructure
        docs/howto/features/imagebuilding.md); a pull secret costs nothing on a public image, so an
        unknown registry gets one too."""
        if self.private is not None:
            return self.private
        return self.provider != "dockerhub"

    @property
    def api_url(self) -> str:
        """The URL BinderHub talks the registry API to (`DockerRegistry.url`)."""
        defaults = {
            "quay": "https://quay.io",
            "ghcr": "https://ghcr.io",
            "dockerhub": "https://registry-1.docker.io",
        }
        return (self.url or defaults[self.provider]).rstrip("/")

    @property
    def auth_url(self) -> str:
        """The key of the credentials in docker's config.json (Docker Hub files them under its v1 URL)."""
        return "https://index.docker.io/v1/" if self.provider == "dockerhub" else self.api_url

    @property
    def image_host(self) -> str:
        """The host image names start with."""
        if self.provider == "dockerhub":
            return "docker.io"
        return urlparse(self.api_url).netloc

    @property
    def effective_token_url(self) -> str | None:
        if self.token_url:
            return self.token_url
        host = self.image_host
        return {
            "quay": f"https://{host}/v2/auth?service={host}",
            "ghcr": f"https://{host}/token?service={host}",
            "harbor": f"https://{host}/service/token?service=harbor-registry",
        }.get(self.provider)


def _limit_not_below(
    value: Any, info: ValidationInfo, reserved_key: str, size: Callable[[Any], float]
) -> Any:
    """`value`, a limit, unless the reservation beside it (`reserved_key`, validated first) is larger:
    Kubernetes rejects a container whose request is above its limit."""
    reserved = info.data.get(reserved_key)
    if value is not None and reserved is not None and size(reserved) > size(value):
        shown = f"{reserved:g}" if isinstance(reserved, float) else reserved
        raise ValueError(f"is below {reserved_key} ({shown}); Kubernetes rejects a request above its limit")
    return value


class PodResources(Model):
    """CPU and memory of one container, as Kubernetes requests and limits."""

    cpu_request: float = Field(gt=0, description="CPU reserved (cores).")
    cpu_limit: float | None = Field(
        default=None, gt=0, description="Most CPU it may use (cores; unset: no cap)."
    )
    memory_request: KubeMemory = Field(description="Memory reserved, e.g. 1Gi.")
    memory_limit: KubeMemory | None = Field(
        default=None, description="Memory at which it is killed, e.g. 4Gi (unset: no cap)."
    )

    @field_validator("cpu_limit")
    @classmethod
    def _cpu_limit(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _limit_not_below(value, info, "cpu_request", float)

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _limit_not_below(value, info, "memory_request", _kube_memory_bytes)

    def kubernetes(self) -> dict[str, dict[str, str]]:
        """The `resources` block of a container spec."""
        requests = {"cpu": f"{self.cpu_request:g}", "memory": self.memory_request}
        limits = {}
        if self.cpu_limit is not None:
            limits["cpu"] = f"{self.cpu_limit:g}"
        if self.memory_limit is not None:
            limits["memory"] = self.memory_limit
        return {"requests": requests, "limits": limits} if limits else {"requests": requests}


# mybinder.org-deploy mybinder/values.yaml: the dind daemonset and the repo2docker build pod.
DAEMON_RESOURCES = PodResources(cpu_request=0.5, cpu_limit=4, memory_request="1Gi", memory_limit="4Gi")
BUILD_POD_RESOURCES = PodResources(cpu_request=0.1, cpu_limit=1, memory_request="2G", memory_limit="2G")


class BuilderConfig(Model):
    """How images are built on nodes whose container runtime is containerd (no host Docker socket)."""

    type: Literal["dind", "pink"] = Field(
        default="dind",
        description="`dind`: a docker-in-docker daemonset on the user nodes. `pink`: podman-in-kubernetes.",
    )
    repo2docker_image: Image = Field(
        default=REPO2DOCKER_IMAGE, description="repo2docker image of the build pods, pinned to a release."
    )
    daemon_image: Image | None = Field(
        default=None,
        description=f"Image of the builder daemonset (default: {DIND_IMAGE} for dind, {PINK_IMAGE} for pink).",
    )
    mtu: int | None = Field(
        default=None,
        ge=1280,
        le=9000,
        description=(
            "MTU of the docker-in-docker bridge; at most the pod network's MTU (Calico on a tenant network "
            "leaves less than 1500), or large downloads in builds stall. dind only."
        ),
    )

    daemon_resources: PodResources = Field(
        default=DAEMON_RESOURCES,
        description=(
            "The builder daemonset's pod on each user node. Every build's steps (postBuild included) run "
            "inside it, so its limits cap all builds on a node together and keep them from starving user "
            "servers (default: mybinder.org's 0.5 CPU/1Gi requested, 4 CPU/4Gi limit)."
        ),
    )
    build_pod_resources: PodResources = Field(
        default=BUILD_POD_RESOURCES,
        description=(
            "Each build pod, which runs repo2docker: clones the repository and sends the build context to "
            "the daemon; the build itself runs in the daemon (default: mybinder.org's 0.1 CPU/2G "
            "requested, 1 CPU/2G limit)."
        ),
    )
    network_policy: bool = Field(
        default=True,
        description=(
            "A NetworkPolicy on the builder daemonset and the build pods: no inbound traffic, DNS inside the "
            "cluster, and outbound only to public addresses (never the cloud metadata service "
            "169.254.169.254 or private ranges), as mybinder.org fences builds."
        ),
    )

    @field_validator("mtu")
    @classmethod
    def _mtu_for_dind(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("type") != "dind":
            raise ValueError("sets dockerd's --mtu and applies to the dind builder only")
        return value

    @property
    def image(self) -> str:
        return self.daemon_image or (DIND_IMAGE if self.type == "dind" else PINK_IMAGE)


class CullConfig(Model):
    """Stopping idle user servers, which is what frees user nodes for the autoscaler."""

    enabled: bool = Field(default=True, description="Run jupyterhub-idle-culler.")
    timeout_seconds: int = Field(default=600, ge=60, description="Stop a server idle this long.")
    every_seconds: int = Field(default=660, ge=30, description="How often the culler checks.")
    max_age_seconds: int = Field(
        default=21600, ge=0, description="Stop any server this old, busy or not (0: no limit)."
    )


class UserResources(Model):
    """Per-user CPU and memory. Guarantees decide how many users fit on a node; limits cap one user."""

    cpu_guarantee: float | None = Field(default=0.5, gt=0, description="CPU reserved per user (cores).")
    cpu_limit: float | None = Field(default=2.0, gt=0, description="Most CPU a user may use (cores).")
    memory_guarantee: Memory | None = Field(default="2G", description="Memory reserved per user, e.g. 2G.")
    memory_limit: Memory | None = Field(
        default="4G", description="Memory at which a user's server is killed."
    )

    @field_validator("cpu_limit")
    @classmethod
    def _cpu_limit(cls, value: float | None, info: ValidationInfo) -> float | None:
        return _limit_not_below(value, info, "cpu_guarantee", float)

    @field_validator("memory_limit")
    @classmethod
    def _memory_limit(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _limit_not_below(value, info, "memory_guarantee", _memory_bytes)

    @property
    def memory_guarantee_bytes(self) -> float | None:
        return _memory_bytes(self.memory_guarantee) if self.memory_guarantee else None


class JupyterHubConfig(Model):
    """The JupyterHub that runs the launched repositories (the chart's `jupyterhub:` subtree)."""

    cull: CullConfig = Field(default_factory=CullConfig, description="Idle culling.")
    user_resources: UserResources = Field(
        default_factory=UserResources, description="Per-user CPU and memory."
    )
    network_policies: bool = Field(
        default=True,
        description=(
            "Kubernetes network policies for the hub, proxy and user servers (users cannot reach private IPs or "
            "the cloud metadata service)."
        ),
    )


class LimitsConfig(Model):
    """Abuse and capacity controls."""

    repo_providers: tuple[RepoProviderPrefix, ...] | None = Field(
        default=None,
        description=(
            "Launch-URL prefixes to serve (e.g. [gh]); unset keeps all of BinderHub's. Restricting them matters "
            "with allowed_specs: a spec rule on gh does not stop a launch through git."
        ),
    )
    allowed_specs: dict[RepoProviderPrefix, tuple[str, ...]] = Field(
        default_factory=dict,
        description=(
            "Per provider prefix, regular expressions a spec (`<owner>/<repo>/<ref>` for gh) must match "
            "(e.g. gh: ['^ProjectPythia/.*']). BinderHub matches from the start of the spec and ignores case, "
            "so `^ProjectPythia/` also admits projectpythia/."
        ),
    )
    banned_specs: dict[RepoProviderPrefix, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Per provider prefix, regular expressions of specs refused (matched the same way).",
    )
    per_repo_quota: int = Field(
        default=0,
        ge=0,
        description="Most concurrent servers from one repository (0: no per-repository limit).",
    )
    total_quota: int | None = Field(
        default=None,
        ge=0,
        description="Most concurrent servers in total (unset: no limit; 0: launches refused, maintenance).",
    )

    @field_validator("allowed_specs", "banned_specs")
    @classmethod
    def _regexes(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for prefix, patterns in value.items():
            for pattern in patterns:
                try:
                    re.compile(pattern, re.IGNORECASE)
                except re.error as exc:
                    raise ValueError(
                        f"{prefix}: {pattern!r} is not a valid regular expression ({exc})"
                    ) from None
        return value

    def allows(self, prefix: RepoProviderPrefix, spec: str) -> bool:
        """Whether BinderHub would build `spec` under these rules: refused when a banned pattern matches,
        or when allowed patterns exist and none does; `re.match` with IGNORECASE, as BinderHub's
        RepoProvider.is_banned does (jupyterhub/binderhub binderhub/repoproviders.py)."""
        if self.repo_providers is not None and prefix not in self.repo_providers:
            return False
        if any(re.match(p, spec, re.IGNORECASE) for p in self.banned_specs.get(prefix, ())):
            return False
        allowed = self.allowed_specs.get(prefix, ())
        return not allowed or any(re.match(p, spec, re.IGNORECASE) for p in allowed)


class BinderHubConfig(Model):
    """The BinderHub Helm release and everything it is configured with."""

    host: Hostname = Field(
        description="Public host name of BinderHub, e.g. binder.cis230085.projects.jetstream-cloud.org."
    )
    hub_host: Hostname = Field(
        description="Public host name of its JupyterHub, e.g. hub.cis230085.projects.jetstream-cloud.org."
    )
    chart_version: str = Field(
        default=BINDERHUB_CHART_VERSION,
        pattern=_EXACT_VERSION,
        description="Exact binderhub chart version (the chart only publishes dev versions; pin one).",
    )
    release_name: ReleaseName = Field(default="binderhub", description="Helm release name.")
    namespace: ReleaseName = Field(
        default="binderhub", description="Namespace of BinderHub, JupyterHub and user pods."
    )
    timeout_minutes: int = Field(
        default=30,
        ge=5,
        le=240,
        description="How long Helm waits for pods to be ready: first pulls of the hub and builder images are slow.",
    )
    atomic: bool = Field(
        default=False,
        description=(
            "Roll back a failed install or upgrade. Off by default: a first install that times out on slow "
            "pulls would be uninstalled and start from nothing; turn on once the site runs."
        ),
    )
    registry: RegistryConfig = Field(description="Container registry for built images.")
    builder: BuilderConfig = Field(default_factory=BuilderConfig, description="Image builder.")
    jupyterhub: JupyterHubConfig = Field(default_factory=JupyterHubConfig, description="JupyterHub settings.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="Abuse and capacity controls.")
    banner_message: str | None = Field(
        default=None, description="HTML shown in a banner on every BinderHub page."
    )
    about_message: str | None = Field(
        default=None, description="HTML added to the about page (who runs it, abuse contact)."
    )
    cors_allow_origin: str | None = Field(
        default=None,
        description=(
            "Origin allowed to call the BinderHub API and the launched servers from other pages "
            "(`BinderHub.cors_allow_origin` and `BinderSpawnerMixin.cors_allow_origin`): `*` for in-page "
            "live code such as Thebe on any site, an origin such as https://projectpythia.org for one site; "
            "unset: same origin only."
        ),
    )
    extra_values: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Raw chart values deep-merged last over the generated ones (Helm rules: mappings merge, lists and "
            "scalars replace, null removes); still validated against the chart's schema. Only for chart settings "
            "the config has no key for: a path the typed config sets is refused (the message names the key), "
            "and so is anything that looks like a secret (values are shown in plans and stored in plain text)."
        ),
    )

    @field_validator("cors_allow_origin")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is not None and value != "*" and not _ORIGIN.match(value):
            raise ValueError(
                "must be `*` or one origin, scheme and host without a path (e.g. https://projectpythia.org): "
                "browsers compare the Origin header with it verbatim"
            )
        return value

    @field_validator("hub_host")
    @classmethod
    def _distinct_hosts(cls, value: str, info: ValidationInfo) -> str:
        if value == info.data.get("host"):
            raise ValueError(
                "is the same as host; BinderHub and JupyterHub each need their own host (their ingresses "
                "would claim the same paths)"
            )
        return value


class HubStackConfig(Model):
    """Everything the BinderHub stack reads from its Pulumi config (namespace `jetstream-binderhub-hub`)."""

    cluster_stack: str | None = Field(
        default=None,
        description=(
            "Stack reference of the cluster layer (default: `organization/jetstream-binderhub/<this stack's "
            "name>`, right for the local file backend; on Pulumi Cloud use `<org>/jetstream-binderhub/<site>`)."
        ),
    )
    profile: str = Field(
        default="jetstream2", description="Site profile: the cloud's external network and DNS zone pattern."
    )
    placement: Placement = Field(default_factory=Placement, description="Node groups for core and user pods.")
    ingress: IngressConfig = Field(
        default_factory=IngressConfig, description="Ingress controller and its public IP."
    )
    dns: DnsConfig = Field(description="DNS for the two hosts.")
    tls: TlsConfig = Field(description="Certificates from Let's Encrypt.")
    binderhub: BinderHubConfig = Field(description="The BinderHub release.")
    dask_gateway: DaskGatewayConfig = Field(
        default_factory=DaskGatewayConfig, description="Dask Gateway beside BinderHub (docs/dask-gateway.md)."
    )
    gpu: GpuConfig | None = Field(
        default=None, description="GPU servers for the repositories that ask for them (docs/gpu.md)."
    )
    support: SupportConfig = Field(
        default_factory=SupportConfig,
        description="What keeps the site running for a year: the allocation's budget (see docs/operating.md).",
    )

    @field_validator("cluster_stack")
    @classmethod
    def _stack_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}", value):
            raise ValueError(
                "must be a stack name: `<stack>`, `<project>/<stack>` or `<org>/<project>/<stack>`"
            )
        return value

    def stack_reference(self, stack: str) -> str:
        from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT

        return self.cluster_stack or f"organization/{CLUSTER_PROJECT}/{stack}"

    def dns_names(self) -> list[str]:
        """The absolute record names of both hosts, as DNS writes them."""
        return [f"{self.binderhub.host}.", f"{self.binderhub.hub_host}."]


def _image_prefix_problems(reg: RegistryConfig) -> list[Problem]:
    key = "binderhub.registry.image_prefix"
    prefix = reg.image_prefix
    host, _, path = prefix.partition("/")
    if host != reg.image_host:
        return [
            Problem(
                key,
                f"{prefix!r} must start with the registry host {reg.image_host!r} ({reg.image_host}/<project>/"
                "<name prefix>): user pods pull the image by this name",
            )
        ]
    parts = path.split("/") if path else []
    if len(parts) < 2 or not all(parts):
        example = f"{reg.image_host}/<project>/binder-"
        return [
            Problem(
                key,
                f"{prefix!r} has no project level: BinderHub strips the host and looks images up as "
                f"<project>/<name>, so use {example} (otherwise every launch rebuilds; binderhub#800)",
            )
        ]
    if reg.provider in ("quay", "dockerhub") and len(parts) != 2:
        return [Problem(key, f"{reg.provider} repositories are <namespace>/<name>; nested paths are refused")]
    bad = [p for p in parts[:-1] if not _IMAGE_COMPONENT.match(p)] + (
        [] if _IMAGE_PREFIX_TAIL.match(parts[-1]) else [parts[-1]]
    )
    if bad:
        return [
            Problem(
                key,
                f"path component {bad[0]!r} is not a valid image name part (lowercase letters, digits and "
                "single '.', '_' or '-' between them)",
            )
        ]
    return []


def _resolve_dns(cfg: HubStackConfig, profile: Profile) -> tuple[HubStackConfig, list[Problem]]:
    dns = cfg.dns
    if dns.provider != "designate":
        return cfg, []
    if dns.zone is None:
        if dns.allocation is None:
            return cfg, [Problem("dns.allocation", "required with provider: designate (or set dns.zone)")]
        if profile.dns_zone_pattern is None:
            return cfg, [
                Problem(
                    "dns.allocation", f"profile {profile.name!r} has no Designate zone pattern; set dns.zone"
                )
            ]
        zone = profile.dns_zone_pattern.format(allocation=dns.allocation)
        cfg = cfg.model_copy(update={"dns": dns.model_copy(update={"zone": zone})})
    zone = cfg.dns.zone
    assert zone is not None
    problems = [
        Problem(
            f"binderhub.{key}",
            f"{host!r} is not inside the Designate zone {zone!r}; Designate only holds records under its zone "
            f"(e.g. {example}.{zone.rstrip('.')})",
        )
        for key, host, example in (
            ("host", cfg.binderhub.host, "binder"),
            ("hub_host", cfg.binderhub.hub_host, "hub"),
        )
        if not host.endswith("." + zone.rstrip("."))
    ]
    return cfg, problems


def _node_group_problems(cfg: HubStackConfig, node_groups: Mapping[str, str]) -> list[Problem]:
    problems: list[Problem] = []
    by_label = {label: name for name, label in node_groups.items()}
    for field in ("core_node_group", "user_node_group"):
        group = getattr(cfg.placement, field)
        if group in node_groups:
            continue
        hint = ""
        if group in by_label:
            hint = f"; {group!r} is the label value of group {by_label[group]!r}, write the group name"
        elif node_group_label_value(group) in by_label:
            hint = f"; did you mean {by_label[node_group_label_value(group)]!r}?"
        problems.append(
            Problem(
                f"placement.{field}",
                f"unknown node group {group!r} (the cluster has: {', '.join(node_groups)}){hint}",
            )
        )
    return problems


def _limit_problems(cfg: HubStackConfig) -> list[Problem]:
    limits = cfg.binderhub.limits
    if limits.repo_providers is None:
        return []
    problems: list[Problem] = []
    for key in ("allowed_specs", "banned_specs"):
        for prefix in getattr(limits, key):
            if prefix not in limits.repo_providers:
                problems.append(
                    Problem(
                        f"binderhub.limits.{key}.{prefix}",
                        f"provider {prefix!r} is not in repo_providers ({', '.join(limits.repo_providers)}), "
                        "so these rules would never apply",
                    )
                )
    if not limits.repo_providers:
        problems.append(
            Problem("binderhub.limits.repo_providers", "BinderHub needs at least one repo provider")
        )
    return problems


def resolve_hub_defaults(cfg: HubStackConfig, profile: Profile) -> HubStackConfig:
    """Fill what the user left to the profile (the floating IP pool)."""
    if cfg.ingress.floating_ip_pool is None:
        cfg = cfg.model_copy(
            update={"ingress": cfg.ingress.model_copy(update={"floating_ip_pool": profile.external_network})}
        )
    return cfg


def check_hub_stack(
    raw: Mapping[str, Any], *, node_groups: Mapping[str, str] | None = None
) -> tuple[HubStackConfig | None, list[Problem]]:
    """Every problem with the BinderHub layer's config (keys without namespace), and the resolved config.

    Collects all problems rather than stopping at the first, so a user fixes the file in one pass.
    """
    unknown = sorted(set(raw) - set(HUB_KEYS))
    problems = [
        Problem(k, f"unknown key for the BinderHub layer (expected: {', '.join(HUB_KEYS)})") for k in unknown
    ]
    known = {k: v for k, v in raw.items() if k in HUB_KEYS and k not in SECRET_KEYS}
    try:
        cfg = HubStackConfig.model_validate(known)
    except ValidationError as exc:
        return None, problems + problems_from_validation_error(exc)
    try:
        profile = load_profile(cfg.profile)
    except ConfigError as exc:
        return None, problems + exc.problems
    cfg, dns_problems = _resolve_dns(cfg, profile)
    problems += dns_problems
    problems += support_problems(cfg)
    problems += _image_prefix_problems(cfg.binderhub.registry)
    problems += _limit_problems(cfg)
    if node_groups is not None:
        problems += _node_group_problems(cfg, node_groups)
        problems += dask_placement_problems(cfg.dask_gateway, node_groups)
    if cfg.gpu is not None:
        others = {"placement.core_node_group": cfg.placement.core_node_group}
        others["placement.user_node_group"] = cfg.placement.user_node_group
        if cfg.dask_gateway.enabled:
            others["the Dask workers' group"] = worker_group(cfg.dask_gateway, cfg.placement.user_node_group)
        problems += gpu_placement_problems(cfg.gpu, others, node_groups)
    from jetstream_binderhub.hub.extra_values import extra_values_problems

    problems += extra_values_problems(cfg)
    return resolve_hub_defaults(cfg, profile), problems


def parse_hub_stack(
    raw: Mapping[str, Any], *, source: str | None = None, node_groups: Mapping[str, str] | None = None
) -> HubStackConfig:
    """Validate the BinderHub layer's config and fill the profile's defaults.

    `node_groups` (group name -> `capi.stackhpc.com/node-group` value) checks the placement against the
    cluster when it is known: from the cluster's config offline, from the cluster stack's outputs live.
    """
    cfg, problems = check_hub_stack(raw, node_groups=node_groups)
    if problems or cfg is None:
        raise ConfigError(problems, source)
    return cfg


def set_secret_command(key: str, site: str | None = None) -> str:
    """The command that stores `key` as a Pulumi secret of the BinderHub stack."""
    stack = f" -s {site}" if site else ""
    return f"pulumi -C binderhub config set --secret {key}{stack}"


def secret_problems(
    present: Collection[str], secret: Collection[str], site: str | None = None
) -> list[Problem]:
    """Secrets that are missing (the registry password) or written in plain text (any of them)."""
    problems = [
        Problem(key, f"is stored in plain text; remove it and run `{set_secret_command(key, site)}`")
        for key in SECRET_KEYS
        if key in present and key not in secret
    ]
    if "registry_password" not in present:
        problems.append(
            Problem(
                "registry_password",
                "is not set: BinderHub cannot push built images without it; run "
                f"`{set_secret_command('registry_password', site)}`",
            )
        )
    return problems
