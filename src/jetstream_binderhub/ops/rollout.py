"""Following a Kubernetes upgrade's rollout through the cluster's own nodes.

Magnum marks the cluster UPDATE_COMPLETE once the Cluster API cluster is Ready and its addons are
deployed (openstack/magnum-capi-helm `driver.py` `_update_status_updating`), which does not wait for
every MachineDeployment to finish replacing its machines. So the nodes are what tell: each node's
kubelet reports its version (`status.nodeInfo.kubeletVersion`) and its `Ready` condition.

How the nodes roll (azimuth-cloud/capi-helm-charts 0.16.0, charts/openstack-cluster/values.yaml): a
node group's MachineDeployment uses `maxSurge: 0, maxUnavailable: 1`, so a group loses one node,
then gets its replacement, and never grows beyond its size; the control plane
(KubeadmControlPlane) uses `maxSurge: 1`, so it adds its new node before removing an old one. A
group at its floor therefore has one node fewer for a while: the rollout is finished only when none
of the nodes that existed before the apply remains (a replacement Machine gets a new generated name,
kubernetes-sigs/cluster-api `internal/controllers/machineset/machineset_controller.go`
`computeDesiredMachine`, and CAPO names the server, hence the node, after it), no
node runs another version when the version changes, every node is Ready and every group has at least
its floor again. The names are what tell a chart upgrade or a rebuilt image of the same Kubernetes
apart: there every node runs the target version before, during and after.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jetstream_binderhub.burn import CONTROL_PLANE_ROLE, NO_GROUP, NodeListError
from jetstream_binderhub.errors import JetstreamBinderHubError
from jetstream_binderhub.naming import CONTROL_PLANE, NODE_GROUP_LABEL


class ClusterUnreachable(NodeListError):
    """The API server could not be reached, or answered with an error other than 401/403."""

    exit_code = 14


class KubeconfigUnusable(NodeListError):
    """The kubeconfig file cannot be used (not YAML, no current context, unreadable)."""

    exit_code = 2


class ClusterAuthFailed(NodeListError):
    exit_code = 5


class ClusterTimedOut(NodeListError):
    exit_code = 13


class RolloutTimedOut(JetstreamBinderHubError):
    """Some group still runs an old version (or a node is not Ready) at the rollout's deadline."""

    exit_code = 13


@dataclass(frozen=True)
class NodeStatus:
    name: str
    group: str
    kubelet_version: str | None
    ready: bool


@dataclass(frozen=True)
class GroupRollout:
    """One group's nodes against the ones it had before the upgrade (and the target version)."""

    group: str
    nodes: int
    new: int
    """Nodes that are not old AND Ready: the ones that count as rolled."""
    old: int
    """Nodes still to be replaced: there before the apply, or on another version than the target."""
    not_ready: int
    floor: int
    """The fewest nodes the group has when it is not rolling (its min_count); 0 when unknown."""

    @property
    def done(self) -> bool:
        return self.old == 0 and self.not_ready == 0 and self.nodes >= self.floor

    def describe(self, target: str | None) -> str:
        extra = []
        if self.old:
            extra.append(f"{self.old} old node{'s' if self.old != 1 else ''} left")
        if self.not_ready:
            extra.append(f"{self.not_ready} NotReady")
        if self.nodes < self.floor:
            extra.append(f"{self.floor - self.nodes} missing below its minimum of {self.floor}")
        tail = f" ({', '.join(extra)})" if extra else ""
        version = f" on {target}" if target else ""
        return f"{self.group}: {self.new}/{self.nodes} new{version} and Ready{tail}"


def node_statuses(doc: Any) -> list[NodeStatus]:
    """The nodes of a v1 NodeList with their kubelet version and readiness."""
    if (
        not isinstance(doc, Mapping)
        or doc.get("kind") != "NodeList"
        or not isinstance(doc.get("items"), list)
    ):
        raise NodeListError("the API server's answer to GET /api/v1/nodes is not a NodeList")
    nodes = []
    for item in doc["items"]:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        status = item.get("status") or {}
        group = labels.get(NODE_GROUP_LABEL) or (CONTROL_PLANE if CONTROL_PLANE_ROLE in labels else NO_GROUP)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        nodes.append(
            NodeStatus(
                name=meta.get("name", "?"),
                group=group,
                kubelet_version=(status.get("nodeInfo") or {}).get("kubeletVersion"),
                ready=ready,
            )
        )
    return nodes


def rollout_status(
    nodes: list[NodeStatus],
    floors: Mapping[str, int],
    *,
    old_names: Collection[str] | None,
    target: str | None,
) -> list[GroupRollout]:
    """Per group (sorted, the control plane first), how far the nodes are replaced: a node is old
    while its name is among `old_names` or, with a `target`, while it runs another version."""

    def is_old(n: NodeStatus) -> bool:
        return (old_names is not None and n.name in old_names) or (
            target is not None and n.kubelet_version != target
        )

    groups = sorted({n.group for n in nodes} | set(floors), key=lambda g: (g != CONTROL_PLANE, g))
    result = []
    for group in groups:
        members = [n for n in nodes if n.group == group]
        result.append(
            GroupRollout(
                group=group,
                nodes=len(members),
                new=sum(1 for n in members if not is_old(n) and n.ready),
                old=sum(1 for n in members if is_old(n)),
                not_ready=sum(1 for n in members if not n.ready),
                floor=floors.get(group, 0),
            )
        )
    return result


def read_node_list(kubeconfig: Path, *, timeout_seconds: float = 30) -> Any:
    """`GET /api/v1/nodes` with the kubeconfig, as the raw NodeList; errors are one line saying what to check."""
    if not kubeconfig.is_file():
        raise NodeListError(
            f"no kubeconfig at {kubeconfig}: write it with `jetstream-binderhub kubeconfig SITE` (or pass "
            "--kubeconfig)"
        )
    # Imported here: the Kubernetes client is large and only the commands that read nodes need it.
    import urllib3.exceptions
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        # The message names the file, never its content (the kubeconfig holds the client key).
        raise KubeconfigUnusable(
            f"{kubeconfig} is not a usable kubeconfig ({type(exc).__name__}); write a fresh one with "
            "`jetstream-binderhub kubeconfig SITE --force`"
        ) from None
    host = api.configuration.host
    try:
        with api:
            # Unparsed: the raw v1 NodeList, the same document `kubectl get nodes -o json` prints.
            response: Any = client.CoreV1Api(api).list_node(
                _preload_content=False, _request_timeout=timeout_seconds
            )
            return json.loads(response.data)
    except ApiException as exc:
        if exc.status == 401:
            raise ClusterAuthFailed(
                f"the API server at {host} refused the kubeconfig's credentials (401); write a fresh kubeconfig "
                "with `jetstream-binderhub kubeconfig SITE --force` (a replaced cluster has new certificates)"
            ) from None
        if exc.status == 403:
            raise ClusterAuthFailed(
                f"the kubeconfig's user may not list nodes at {host} (403); use the cluster's admin kubeconfig "
                "(`jetstream-binderhub kubeconfig SITE`)"
            ) from None
        raise ClusterUnreachable(
            f"the API server at {host} answered HTTP {exc.status} {exc.reason} to GET /api/v1/nodes; check "
            "`openstack coe cluster show` for the cluster's health"
        ) from None
    except (urllib3.exceptions.TimeoutError, TimeoutError):
        raise ClusterTimedOut(
            f"the API server at {host} did not answer within {timeout_seconds:g} s; check the network and the "
            "cluster's API load balancer (`openstack coe cluster show`)"
        ) from None
    except urllib3.exceptions.MaxRetryError as exc:
        # NewConnectionError (refused, no route) is a ConnectTimeoutError subclass in urllib3: judge it first.
        if isinstance(exc.reason, urllib3.exceptions.TimeoutError) and not isinstance(
            exc.reason, urllib3.exceptions.NewConnectionError
        ):
            raise ClusterTimedOut(
                f"the API server at {host} did not answer within {timeout_seconds:g} s; check the network and "
                "the cluster's API load balancer (`openstack coe cluster show`)"
            ) from None
        raise ClusterUnreachable(
            f"cannot reach the cluster's API server at {host} ({type(exc.reason).__name__}); check the network "
            "and that the kubeconfig is this site's (`jetstream-binderhub kubeconfig SITE`)"
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        raise ClusterUnreachable(
            f"cannot reach the cluster's API server at {host} ({type(exc).__name__}); check the network and "
            "that the kubeconfig is this site's (`jetstream-binderhub kubeconfig SITE`)"
        ) from None
    except json.JSONDecodeError:
        raise ClusterUnreachable(
            f"the answer of {host} to GET /api/v1/nodes is not JSON: is the kubeconfig's server a Kubernetes API?"
        ) from None
