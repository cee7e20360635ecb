"""SU burn of a running site: what its nodes cost per hour now, and whether the allocation lasts.

The nodes are read from Kubernetes, not from the config: the autoscaler decides how many there are.
Two labels say what each node is:

- ``node.kubernetes.io/instance-type``: the Nova flavor, set by openstack-cloud-controller-manager from
  the server's flavor ``original_name`` (kubernetes/cloud-provider-openstack pkg/openstack/instances.go,
  ``srvInstanceType``);
- ``capi.stackhpc.com/node-group``: the node group, set through the kubelet's ``node-labels`` for node
  groups only (azimuth-cloud/capi-helm-charts openstack-cluster/templates/node-group/
  kubeadm-config-template.yaml); control-plane nodes carry ``node-role.kubernetes.io/control-plane``
  instead.

Jetstream2 charges a server's flavor rate for every hour it exists, whatever runs on it, so the burn is
the sum of the flavor rates of the nodes that exist.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from jetstream_binderhub.config.support import AllocationConfig
from jetstream_binderhub.errors import JetstreamBinderHubError
from jetstream_binderhub.naming import CONTROL_PLANE, NODE_GROUP_LABEL
from jetstream_binderhub.profiles import Profile

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
NO_GROUP = "(no node group)"


class NodeListError(JetstreamBinderHubError):
    """The nodes could not be read (no kubeconfig, API unreachable, not a NodeList)."""

    exit_code = 2


@dataclass(frozen=True)
class ClusterNode:
    """One Kubernetes node as the burn sees it."""

    name: str
    flavor: str | None
    group: str


@dataclass(frozen=True)
class BurnLine:
    """The nodes of one group and flavor, with what they cost."""

    group: str
    flavor: str | None
    nodes: int
    su_per_hour_each: float | None
    """None for a flavor outside the catalog (or a node without the label): unpriced, never free."""
    resource: str | None
    """The allocation the flavor draws on (cpu, large-memory, gpu)."""

    @property
    def su_per_hour(self) -> float | None:
        return None if self.su_per_hour_each is None else self.su_per_hour_each * self.nodes


@dataclass(frozen=True)
class Burn:
    """The site's burn rate now, against one of the allocation's resources."""

    unit: str
    resource: str
    lines: tuple[BurnLine, ...]
    su_per_hour: float
    """Sum over the nodes whose flavor draws on `resource`."""
    other_resources: Mapping[str, float]
    """SU/hour drawn on the allocation's other resources (a GPU group on a CPU budget)."""
    unpriced_nodes: tuple[str, ...]

    @property
    def su_per_day(self) -> float:
        return self.su_per_hour * 24


def nodes_from_list(doc: Any) -> list[ClusterNode]:
    """The nodes of a v1 NodeList (`kubectl get nodes -o json`, or the API's `GET /api/v1/nodes`)."""
    if (
        not isinstance(doc, Mapping)
        or doc.get("kind") != "NodeList"
        or not isinstance(doc.get("items"), list)
    ):
        raise NodeListError("not a Kubernetes NodeList (expected the output of `kubectl get nodes -o json`)")
    nodes = []
    for item in doc["items"]:
        meta = item.get("metadata") or {}
        labels = meta.get("labels") or {}
        group = labels.get(NODE_GROUP_LABEL) or (CONTROL_PLANE if CONTROL_PLANE_ROLE in labels else NO_GROUP)
        nodes.append(
            ClusterNode(name=meta.get("name", "?"), flavor=labels.get(INSTANCE_TYPE_LABEL), group=group)
        )
    return nodes


def read_node_list_file(path: Path) -> list[ClusterNode]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NodeListError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeListError(f"{path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    return nodes_from_list(doc)


def read_cluster_nodes(kubeconfig: Path, *, timeout_seconds: float = 30) -> list[ClusterNode]:
    """The live cluster's nodes, read with the kubeconfig (`jetstream-binderhub kubeconfig SITE` writes it)."""
    if not kubeconfig.is_file():
        raise NodeListError(
            f"no kubeconfig at {kubeconfig}: write it with `jetstream-binderhub kubeconfig SITE`, or pass "
            "--nodes with the output of `kubectl get nodes -o json`"
        )
    # The one NodeList reader (ops.rollout): unreachable, refused credentials (401/403) and timeouts
    # are each one line with what to check, and their own exit codes.
    from jetstream_binderhub.ops.rollout import read_node_list

    doc = read_node_list(kubeconfig, timeout_seconds=timeout_seconds)
    return nodes_from_list(doc)


def burn_rate(nodes: Iterable[ClusterNode], profile: Profile, resource: str = "cpu") -> Burn:
    """SU/hour of the nodes that exist, grouped by node group and flavor."""
    counts: dict[tuple[str, str | None], int] = {}
    unpriced: list[str] = []
    for node in nodes:
        counts[(node.group, node.flavor)] = counts.get((node.group, node.flavor), 0) + 1
        if node.flavor is None or profile.flavor(node.flavor) is None:
            unpriced.append(node.name)
    lines = []
    total = 0.0
    other: dict[str, float] = {}
    for (group, flavor_name), count in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        flavor = profile.flavor(flavor_name) if flavor_name else None
        line = BurnLine(
            group=group,
            flavor=flavor_name,
            nodes=count,
            su_per_hour_each=flavor.su_per_hour if flavor else None,
            resource=flavor.resource if flavor else None,
        )
        lines.append(line)
        if flavor is not None and line.su_per_hour is not None:
            if flavor.resource == resource:
                total += line.su_per_hour
            else:
                other[flavor.resource] = other.get(flavor.resource, 0.0) + line.su_per_hour
    return Burn(
        unit=profile.su_unit,
        resource=resource,
        lines=tuple(lines),
        su_per_hour=total,
        other_resources=other,
        unpriced_nodes=tuple(unpriced),
    )


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def allocation_hours(allocation: AllocationConfig) -> float:
    """Hours from the reading (the start of `as_of`) to the end of the allocation's last day."""
    return (
        _start_of(allocation.end_date + timedelta(days=1)) - _start_of(allocation.as_of)
    ).total_seconds() / 3600


def sustainable_rate(allocation: AllocationConfig) -> float:
    """The SU/hour that spends exactly `su_remaining` by the end date; burning faster runs out early.

    The same number is the threshold of the monitoring's budget alert, so `cost` and the alert agree.
    """
    return allocation.su_remaining / allocation_hours(allocation)


@dataclass(frozen=True)
class Projection:
    """The allocation at the current burn rate, from the operator's last reading to its end date."""

    su_per_hour: float
    sustainable_su_per_hour: float
    estimated_remaining: float
    """`su_remaining` minus what the current rate burned since `as_of` (an estimate: the rate varies)."""
    needed_until_end: float
    hours_left: float
    runs_out_at: datetime | None
    """When the remaining SUs reach zero at this rate; None when nothing burns."""
    end: datetime

    @property
    def runs_out_before_end(self) -> bool:
        return self.runs_out_at is not None and self.runs_out_at < self.end

    @property
    def surplus(self) -> float:
        """SUs left at the end at this rate; negative is the shortfall."""
        return self.estimated_remaining - self.needed_until_end


def project(su_per_hour: float, allocation: AllocationConfig, now: datetime) -> Projection:
    """Project `su_per_hour` from the last reading of the allocation to its end date."""
    end = _start_of(allocation.end_date + timedelta(days=1))
    since = max((now - _start_of(allocation.as_of)).total_seconds() / 3600, 0.0)
    hours_left = max((end - now).total_seconds() / 3600, 0.0)
    remaining = allocation.su_remaining - su_per_hour * since
    runs_out = None
    if su_per_hour > 0:
        runs_out = now + timedelta(hours=max(remaining, 0.0) / su_per_hour)
    return Projection(
        su_per_hour=su_per_hour,
        sustainable_su_per_hour=sustainable_rate(allocation),
        estimated_remaining=remaining,
        needed_until_end=su_per_hour * hours_left,
        hours_left=hours_left,
        runs_out_at=runs_out,
        end=end,
    )


# --- what Prometheus recorded ------------------------------------------------------------------------

PROMETHEUS_SERVICE = "prometheus-server:80"
"""The prometheus chart's server Service and its default `server.service.servicePort`."""


class BurnHistoryUnavailable(Exception):
    """Prometheus could not be asked; `cost` says so in one line and still shows the live rate."""


def _start_of_month(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def burn_history_queries(resource: str, now: datetime) -> dict[str, str]:
    """PromQL for the SUs spent today and this month (UTC) from the recorded SU/hour.

    The average of the recorded rate over the window times its hours: a gap in the samples (Prometheus
    down) is counted at the average rate rather than as zero."""
    from jetstream_binderhub.hub.support import RULE_PREFIX

    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    queries = {}
    for key, start in (("today", day), ("month_to_date", _start_of_month(now))):
        seconds = max(60, int((now - start).total_seconds()))
        series = f'{RULE_PREFIX}:su_per_hour{{resource="{resource}"}}'
        queries[key] = f"avg_over_time({series}[{seconds}s]) * {seconds / 3600:.6g}"
    return queries


def read_burn_history(
    kubeconfig: Path, namespace: str, resource: str, now: datetime, *, timeout_seconds: float = 15
) -> dict[str, float | None]:
    """SUs spent today and month to date, asked of Prometheus through the API server's service proxy.

    None for a window Prometheus holds no samples of."""
    import urllib3.exceptions
    from kubernetes import config
    from kubernetes.client.exceptions import ApiException

    try:
        api = config.new_client_from_config(config_file=str(kubeconfig))
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        raise BurnHistoryUnavailable(
            f"{kubeconfig} is not a usable kubeconfig ({type(exc).__name__})"
        ) from None
    path = f"/api/v1/namespaces/{namespace}/services/{PROMETHEUS_SERVICE}/proxy/api/v1/query"
    caller: Any = api  # the client's call_api keyword options are untyped
    found: dict[str, float | None] = {}
    try:
        with api:
            for key, query in burn_history_queries(resource, now).items():
                method, url, headers, _, _ = caller.param_serialize(
                    "GET",
                    path,
                    query_params=[("query", query), ("time", f"{now.timestamp():.3f}")],
                    auth_settings=["BearerToken"],
                )
                response: Any = caller.call_api(
                    method, url, header_params=headers, _request_timeout=timeout_seconds
                )
                response.read()
                if response.status >= 400:
                    raise ApiException(status=response.status, reason=response.reason)
                found[key] = _instant_value(json.loads(response.data))
    except ApiException as exc:
        raise BurnHistoryUnavailable(
            f"Prometheus in namespace {namespace} did not answer through the API server: HTTP {exc.status}"
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        raise BurnHistoryUnavailable(f"cannot reach the cluster's API server: {type(exc).__name__}") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise BurnHistoryUnavailable("Prometheus' answer is not its query API's JSON") from None
    return found


def _instant_value(body: Any) -> float | None:
    """The value of Prometheus' `{"status":"success","data":{"resultType":"vector","result":[...]}}`."""
    if body.get("status") != "success":
        raise ValueError(body.get("error", "query failed"))
    result = body["data"]["result"]
    if not result:
        return None
    return sum(float(item["value"][1]) for item in result)


# --- the `cost SITE` view ---------------------------------------------------------------------------


def burn_report(
    site: str,
    project_dir: Path,
    *,
    kubeconfig: Path,
    nodes_file: Path | None,
    now: datetime,
    history: bool = True,
) -> dict[str, Any]:
    """The burn of a site's live nodes (or a recorded node list) against its allocation, as JSON-ready data."""
    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.stackfile import HUB_PROJECT, read_stack_file
    from jetstream_binderhub.plan.site import hub_stack_path, load_cluster_file
    from jetstream_binderhub.profiles import load_profile

    _, cluster = load_cluster_file(project_dir, site)
    allocation = None
    namespace = "support"
    hub_path = hub_stack_path(project_dir, site)
    if hub_path.is_file():
        hub = read_stack_file(hub_path)
        support = parse_hub_stack(hub.namespace(HUB_PROJECT), source=str(hub_path)).support
        allocation = support.allocation
        if support.monitoring is not None:
            namespace = support.monitoring.namespace
    profile = load_profile(cluster.profile)
    nodes = read_node_list_file(nodes_file) if nodes_file else read_cluster_nodes(kubeconfig)
    burn = burn_rate(nodes, profile, allocation.resource if allocation else "cpu")
    report: dict[str, Any] = {
        "site": site,
        "unit": burn.unit,
        "resource": burn.resource,
        "su_per_hour": burn.su_per_hour,
        "su_per_day": burn.su_per_day,
        "groups": [
            {
                "group": line.group,
                "flavor": line.flavor,
                "nodes": line.nodes,
                "su_per_hour_each": line.su_per_hour_each,
                "su_per_hour": line.su_per_hour,
                "resource": line.resource,
            }
            for line in burn.lines
        ],
        "other_resources": dict(burn.other_resources),
        "unpriced_nodes": list(burn.unpriced_nodes),
        "allocation": None,
        "spent": None,
        "spent_unavailable": None,
    }
    if history and nodes_file is None:
        try:
            report["spent"] = read_burn_history(kubeconfig, namespace, burn.resource, now)
        except BurnHistoryUnavailable as exc:
            report["spent_unavailable"] = str(exc)
    if allocation is not None:
        p = project(burn.su_per_hour, allocation, now)
        report["allocation"] = {
            "su_remaining": allocation.su_remaining,
            "as_of": allocation.as_of.isoformat(),
            "end_date": allocation.end_date.isoformat(),
            "sustainable_su_per_hour": p.sustainable_su_per_hour,
            "estimated_remaining": p.estimated_remaining,
            "needed_until_end": p.needed_until_end,
            "runs_out_at": p.runs_out_at.isoformat() if p.runs_out_at else None,
            "runs_out_before_end": p.runs_out_before_end,
            "surplus": p.surplus,
        }
    return report


def _n(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


def render_burn(report: Mapping[str, Any]) -> str:
    unit = report["unit"]
    lines = [
        f"{report['site']}: {_n(report['su_per_hour'])} {unit}/hour now ({_n(report['su_per_day'])} {unit}/day) "
        f"on the {report['resource']} allocation"
    ]
    rows = [("group", "flavor", "nodes", f"{unit}/h each", f"{unit}/h")]
    for g in report["groups"]:
        each = "unpriced" if g["su_per_hour_each"] is None else _n(g["su_per_hour_each"])
        total = "?" if g["su_per_hour"] is None else _n(g["su_per_hour"])
        rows.append((g["group"], g["flavor"] or "(no label)", str(g["nodes"]), each, total))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines += [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    spent = report.get("spent")
    if spent is not None:
        shown = {k: "no data" if v is None else f"{_n(v)} {unit}" for k, v in spent.items()}
        lines.append(
            f"  spent (from Prometheus): {shown['today']} today, {shown['month_to_date']} this month (UTC)"
        )
    elif report.get("spent_unavailable"):
        lines.append(f"  today and month to date unknown: {report['spent_unavailable']}")
    for resource, rate in sorted(report["other_resources"].items()):
        lines.append(f"  also {_n(rate)} {unit}/hour on the {resource} allocation (not counted above)")
    if report["unpriced_nodes"]:
        lines.append(
            f"  unpriced (flavor not in the profile's catalog): {', '.join(report['unpriced_nodes'])}; the rate above "
            "leaves them out"
        )
    alloc = report["allocation"]
    if alloc is None:
        lines.append(
            "  no allocation budget in the config (support.allocation): set su_remaining, as_of and end_date to "
            "project it"
        )
        return "\n".join(lines) + "\n"
    lines.append(
        f"allocation: {_n(alloc['su_remaining'])} {unit} left on {alloc['as_of']}, ends {alloc['end_date']}; "
        f"sustainable rate {_n(alloc['sustainable_su_per_hour'])} {unit}/hour"
    )
    lines.append(
        f"  at the current rate: about {_n(alloc['estimated_remaining'])} {unit} left now, "
        f"{_n(alloc['needed_until_end'])} {unit} needed until the end date"
    )
    if alloc["runs_out_before_end"]:
        lines.append(
            f"  WARNING: runs out on {alloc['runs_out_at'][:10]}, before the end date "
            f"(short by {_n(-alloc['surplus'])} {unit}); scale down, or ask for a supplement"
        )
    else:
        lines.append(f"  lasts to the end date with about {_n(alloc['surplus'])} {unit} to spare")
    return "\n".join(lines) + "\n"
