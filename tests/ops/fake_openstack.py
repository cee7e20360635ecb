"""A stand-in OpenStack cloud on 127.0.0.1: Keystone's token with its catalog, each service's version
discovery document, and the API answers preflight reads, in the shapes the APIs document
(api-ref: identity v3 tokens, compute os-quota-sets detail, block-storage os-quota-sets ?usage,
networking quotas details, Octavia lbaas quotas and loadbalancers, Designate v2 zones, Glance v2
images, Magnum v1 clustertemplates), and for a deployed site what it holds (Magnum v1 clusters,
compute servers/detail, block-storage volumes/detail, networking floatingips and security-groups).
openstacksdk does its real discovery and requests against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .local_server import running

PROJECT_ID = "8f2bd2e3a4c94ab7bde1b0d4f1c2a3b4"
USER_ID = "1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6"
APP_CRED_ID = "c0ffee00c0ffee00c0ffee00c0ffee00"
APP_CRED_SECRET = "s3cr3t-app-cred-value"
ZONE = "cis230085.projects.jetstream-cloud.org."


def _quota(limit: int, in_use: int, reserved: int = 0) -> dict[str, int]:
    return {"limit": limit, "in_use": in_use, "reserved": reserved}


def _neutron(limit: int, used: int, reserved: int = 0) -> dict[str, int]:
    return {"limit": limit, "used": used, "reserved": reserved}


@dataclass
class Cloud:
    """What the stand-in cloud holds; tests change it before asking."""

    restricted: bool = False
    accept_secret: str = APP_CRED_SECRET
    compute: dict[str, Any] = field(
        default_factory=lambda: {
            "instances": _quota(20, 2),
            "cores": _quota(400, 24),
            "ram": _quota(1_536_000, 92_160),
            "key_pairs": _quota(100, 0),
        }
    )
    volume: dict[str, Any] = field(
        default_factory=lambda: {"volumes": _quota(20, 3), "gigabytes": _quota(1000, 300)}
    )
    network: dict[str, Any] = field(
        default_factory=lambda: {
            "floatingip": _neutron(10, 1),
            "security_group": _neutron(10, 1),
            "security_group_rule": _neutron(100, 4),
        }
    )
    lb_quota: int = 5
    lb_count: int = 0
    zones: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": "a86dba58-0043-4cc6-a1bb-69d5e86f3ca3", "name": ZONE, "project_id": PROJECT_ID}
        ]
    )
    images: list[str] = field(default_factory=lambda: ["ubuntu-jammy-kube-v1.33.2-250626-0848"])
    chart_versions: list[str] = field(default_factory=lambda: ["0.16.0"])
    # What is in the project besides quotas: a deployed site's cluster and its resources (`deploy`).
    clusters: list[dict[str, Any]] = field(default_factory=list)
    servers: list[dict[str, Any]] = field(default_factory=list)
    volume_list: list[dict[str, Any]] = field(default_factory=list)
    load_balancers: list[dict[str, Any]] = field(default_factory=list)
    floating_ips: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[dict[str, Any]] = field(default_factory=list)

    def use(self, **amounts: int) -> None:
        """Count resources into the usage the quota APIs report."""
        for name, amount in amounts.items():
            if name in self.compute:
                self.compute[name]["in_use"] += amount
            elif name in self.volume:
                self.volume[name]["in_use"] += amount
            else:
                self.network[name]["used"] += amount

    def add_server(self, name: str, flavor: str, status: str = "ACTIVE") -> None:
        vcpus, ram = FLAVORS[flavor]
        self.servers.append(
            {
                "id": f"srv-{len(self.servers)}",
                "name": name,
                "status": status,
                "tenant_id": PROJECT_ID,
                # Compute 2.47 and later embed the flavor's description instead of its id.
                "flavor": {
                    "vcpus": vcpus,
                    "ram": ram,
                    "disk": 60,
                    "ephemeral": 0,
                    "swap": 0,
                    "original_name": flavor,
                    "extra_specs": {},
                },
                "links": [],
            }
        )
        self.use(instances=1, cores=vcpus, ram=ram)

    def add_volume(self, name: str, size: int, metadata: dict[str, str] | None = None) -> None:
        self.volume_list.append(
            {
                "id": f"vol-{len(self.volume_list)}",
                "name": name,
                "size": size,
                "status": "in-use",
                "metadata": metadata or {},
                "bootable": "false",
                "attachments": [],
            }
        )
        self.use(volumes=1, gigabytes=size)

    def add_load_balancer(self, name: str, floating_ip: bool = True) -> None:
        index = len(self.load_balancers)
        port = f"port-lb{index}"
        self.load_balancers.append(
            {
                "id": f"lb-site{index}",
                "name": name,
                "project_id": PROJECT_ID,
                "vip_port_id": port,
                "vip_address": f"10.0.0.{100 + index}",
                "provisioning_status": "ACTIVE",
                "operating_status": "ONLINE",
            }
        )
        if floating_ip:
            self.add_floating_ip(port)

    def add_floating_ip(self, port_id: str | None, description: str = "") -> None:
        self.floating_ips.append(
            {
                "id": f"fip-{len(self.floating_ips)}",
                "floating_ip_address": f"149.165.150.{10 + len(self.floating_ips)}",
                "port_id": port_id,
                "description": description,
                "project_id": PROJECT_ID,
                "tenant_id": PROJECT_ID,
                "status": "ACTIVE" if port_id else "DOWN",
            }
        )
        self.use(floatingip=1)

    def add_security_group(self, name: str) -> None:
        self.security_groups.append(
            {
                "id": f"sg-{len(self.security_groups)}",
                "name": name,
                "description": "",
                "project_id": PROJECT_ID,
                "tenant_id": PROJECT_ID,
                "security_group_rules": [],
            }
        )
        self.use(security_group=1)

    def deploy(self, cluster: str, stack_id: str, user_nodes: int, status: str = "UPDATE_COMPLETE") -> None:
        """A running site as the Cluster API driver, its providers and the hub layer leave it: the
        Magnum cluster (v1.1 list shape), servers named after their Machines, the hub's Cinder CSI
        volumes, CAPO's API load balancer and security groups, the ingress Service's load balancer
        (openstack-cloud-controller-manager's name) with the hub's floating IP on it; all in the usage."""
        self.clusters.append(
            {
                "uuid": "5d12f6fd-a196-4bf0-ae4c-1f639a523a52",
                "name": cluster,
                "cluster_template_id": "t0",
                "keypair": None,
                "docker_volume_size": None,
                "labels": {},
                "node_count": 1,
                "master_count": 1,
                "master_flavor_id": "m3.medium",
                "flavor_id": "m3.quad",
                "create_timeout": 60,
                "status": status,
                "health_status": "HEALTHY",
                "stack_id": stack_id,
                "links": [],
            }
        )
        self.add_server(f"{stack_id}-control-plane-7xk2p", "m3.medium")
        self.add_server(f"{stack_id}-default-worker-5d8f9-q2w3e", "m3.quad")
        for i in range(user_nodes):
            self.add_server(f"{stack_id}-user-m3-large-6c7d8-u{i:04d}", "m3.large")
        csi = {CSI_CLUSTER_KEY: stack_id, "csi.storage.k8s.io/pvc/namespace": "binderhub"}
        for claim, size in (("hub-db-dir", 1), ("prometheus", 50), ("grafana", 10), ("alertmanager", 1)):
            self.add_volume(f"pvc-{claim}", size, {**csi, "csi.storage.k8s.io/pvc/name": claim})
        self.add_load_balancer(f"k8s-clusterapi-cluster-magnum-{PROJECT_ID}-{stack_id}-kubeapi")
        self.add_load_balancer(f"kube_service_{stack_id}_traefik_traefik")
        for role in ("controlplane", "worker"):
            self.add_security_group(f"k8s-cluster-magnum-{PROJECT_ID}-{stack_id}-secgroup-{role}")
        self.add_security_group("lb-sg-traefik")


CSI_CLUSTER_KEY = "cinder.csi.openstack.org/cluster"

FLAVORS = {"m3.medium": (8, 30720), "m3.quad": (4, 15360), "m3.large": (16, 61440)}
"""vCPUs and MB of RAM of the Jetstream2 flavors the tests' site uses."""


class FakeOpenStack:
    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.requests: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path))
                if urlsplit(self.path).path.rstrip("/") == "/identity/v3/auth/tokens":
                    status, answer, headers = fake.token(body)
                    self._send(status, answer, headers)
                else:
                    self._send(404, {"error": {"code": 404, "message": "not found"}})

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                parts = urlsplit(self.path)
                status, answer = fake.get(parts.path, parse_qs(parts.query))
                self._send(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    # --- identity ------------------------------------------------------------------------------

    def catalog(self) -> list[dict[str, Any]]:
        b = self.base
        services = {
            "identity": f"{b}/identity/v3",
            "compute": f"{b}/compute/v2.1",
            "block-storage": f"{b}/volume/v3/{PROJECT_ID}",
            "network": f"{b}/network",
            "load-balancer": f"{b}/load-balancer",
            "dns": f"{b}/dns",
            "image": f"{b}/image",
            "container-infra": f"{b}/container-infra/v1",
        }
        return [
            {
                "id": f"svc-{kind}",
                "type": kind,
                "name": kind,
                "endpoints": [
                    {
                        "id": f"ep-{kind}",
                        "interface": "public",
                        "region": "RegionOne",
                        "region_id": "RegionOne",
                        "url": url,
                    }
                ],
            }
            for kind, url in services.items()
        ]

    def token(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        identity = body.get("auth", {}).get("identity", {})
        cred = identity.get("application_credential", {})
        if cred.get("id") != APP_CRED_ID or cred.get("secret") != self.cloud.accept_secret:
            return (
                401,
                {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                },
                {},
            )
        token = {
            "token": {
                "methods": ["application_credential"],
                "user": {"id": USER_ID, "name": "pythia", "domain": {"id": "default", "name": "Default"}},
                "project": {
                    "id": PROJECT_ID,
                    "name": "CIS230085",
                    "domain": {"id": "default", "name": "Default"},
                },
                "roles": [{"id": "r1", "name": "member"}, {"id": "r2", "name": "load-balancer_member"}],
                "application_credential": {
                    "id": APP_CRED_ID,
                    "name": "pulumi",
                    "restricted": self.cloud.restricted,
                },
                "catalog": self.catalog(),
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2026-11-27T10:00:00.000000Z",
                "audit_ids": ["abc"],
            }
        }
        return 201, token, {"X-Subject-Token": "gAAAAA-fake-token"}

    # --- services --------------------------------------------------------------------------------

    def _versions(self, path: str) -> tuple[int, Any] | None:
        b = self.base
        docs: dict[str, Any] = {
            "/compute": {
                "versions": [
                    {
                        "id": "v2.1",
                        "status": "CURRENT",
                        "version": "2.96",
                        "min_version": "2.1",
                        "updated": "2013-07-23T11:33:21Z",
                        "links": [{"rel": "self", "href": f"{b}/compute/v2.1/"}],
                    }
                ]
            },
            "/compute/v2.1": {
                "version": {
                    "id": "v2.1",
                    "status": "CURRENT",
                    "version": "2.96",
                    "min_version": "2.1",
                    "updated": "2013-07-23T11:33:21Z",
                    "links": [{"rel": "self", "href": f"{b}/compute/v2.1/"}],
                }
            },
            "/volume": {
                "versions": [
                    {
                        "id": "v3.0",
                        "status": "CURRENT",
                        "version": "3.70",
                        "min_version": "3.0",
                        "updated": "2023-08-31T00:00:00Z",
                        "links": [{"rel": "self", "href": f"{b}/volume/v3/"}],
                    }
                ]
            },
            "/network": {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "links": [{"rel": "self", "href": f"{b}/network/v2.0/"}],
                    }
                ]
            },
            "/load-balancer": {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "updated": "2023-01-01T00:00:00Z",
                        "links": [{"rel": "self", "href": f"{b}/load-balancer/v2/"}],
                    }
                ]
            },
            "/dns": {
                "versions": {
                    "values": [
                        {"id": "v2", "status": "CURRENT", "links": [{"rel": "self", "href": f"{b}/dns/v2"}]}
                    ]
                }
            },
            "/image": {
                "versions": [
                    {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": f"{b}/image/v2/"}]}
                ]
            },
            "/container-infra": {
                "versions": [
                    {
                        "id": "v1",
                        "status": "CURRENT",
                        "min_version": "1.1",
                        "max_version": "1.11",
                        "links": [{"rel": "self", "href": f"{b}/container-infra/v1/"}],
                    }
                ]
            },
            "/identity": {
                "versions": {
                    "values": [
                        {
                            "id": "v3.14",
                            "status": "stable",
                            "updated": "2020-04-07T00:00:00Z",
                            "links": [{"rel": "self", "href": f"{b}/identity/v3/"}],
                        }
                    ]
                }
            },
        }
        doc = docs.get(path.rstrip("/"))
        if doc is None:
            for version_root in (
                "/volume/v3",
                "/network/v2.0",
                "/load-balancer/v2",
                "/dns/v2",
                "/image/v2",
                "/container-infra/v1",
                "/identity/v3",
            ):
                if path.rstrip("/") in (version_root, f"/volume/v3/{PROJECT_ID}"):
                    root = "/" + version_root.split("/")[1]
                    return 200, docs[root]
            return None
        return 200, doc

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        c = self.cloud
        # Octavia serves its API under both /v2 and /v2.0 (openstacksdk asks for the latter).
        path = path.replace("/load-balancer/v2.0/", "/load-balancer/v2/")
        versions = self._versions(path)
        if versions is not None:
            return versions
        p = PROJECT_ID
        if path == f"/compute/v2.1/os-quota-sets/{p}/detail":
            return 200, {"quota_set": {"id": p, **c.compute}}
        if path == f"/volume/v3/{p}/os-quota-sets/{p}" and query.get("usage") == ["True"]:
            return 200, {"quota_set": {"id": p, **c.volume}}
        if path == f"/network/v2.0/quotas/{p}/details":
            return 200, {"quota": c.network}
        if path == f"/load-balancer/v2/lbaas/quotas/{p}":
            return 200, {
                "quota": {
                    "load_balancer": c.lb_quota,
                    "listener": -1,
                    "pool": -1,
                    "health_monitor": -1,
                    "member": -1,
                }
            }
        if path == "/load-balancer/v2/lbaas/loadbalancers":
            lbs = [
                {"id": f"lb{i}", "name": f"lb{i}", "project_id": p, "provisioning_status": "ACTIVE"}
                for i in range(c.lb_count)
            ]
            return 200, {"loadbalancers": lbs + c.load_balancers, "loadbalancers_links": []}
        if path == "/container-infra/v1/clusters":
            return 200, {"clusters": c.clusters}
        if path == "/compute/v2.1/servers/detail":
            return 200, {"servers": c.servers}
        if path == f"/volume/v3/{p}/volumes/detail":
            return 200, {"volumes": c.volume_list}
        if path == "/network/v2.0/floatingips":
            return 200, {"floatingips": c.floating_ips}
        if path == "/network/v2.0/security-groups":
            return 200, {"security_groups": c.security_groups}
        if path == "/dns/v2/zones":
            name = query.get("name", [None])[0]
            zones = [z for z in c.zones if name is None or z["name"] == name]
            return 200, {
                "zones": zones,
                "links": {"self": f"{self.base}{path}"},
                "metadata": {"total_count": len(zones)},
            }
        if path.startswith("/image/v2/images"):
            rest = path.removeprefix("/image/v2/images").strip("/")
            if rest:
                found = [name for name in c.images if name == rest]
                if not found:
                    return 404, {"message": "Not Found", "code": "404 Not Found", "title": "Not Found"}
                return 200, _image(found[0])
            name = query.get("name", [None])[0]
            return 200, {
                "images": [_image(n) for n in c.images if name is None or n == name],
                "first": "/v2/images",
                "schema": "/v2/schemas/images",
            }
        if path == "/container-infra/v1/clustertemplates":
            templates = [
                {
                    "uuid": f"t{i}",
                    "name": f"kubernetes-1-33-jammy-{v}",
                    "labels": {"capi_helm_chart_version": v, "kube_tag": "v1.33.2"},
                    "links": [],
                }
                for i, v in enumerate(c.chart_versions)
            ]
            return 200, {"clustertemplates": templates}
        return 404, {"itemNotFound": {"code": 404, "message": f"no route {path}"}}


def _image(name: str) -> dict[str, Any]:
    return {
        "id": f"img-{abs(hash(name)) % 10**8}",
        "name": name,
        "status": "active",
        "visibility": "public",
        "tags": ["magnum"],
    }


@contextmanager
def serving(cloud: Cloud | None = None) -> Iterator[FakeOpenStack]:
    fake = FakeOpenStack(cloud or Cloud())
    with running(fake.server):
        yield fake
