"""`upgrade`: a Kubernetes upgrade (a new cluster image or capi_helm_chart_version) without cutting
running sessions short.

A new image or chart version rolls every node group, ending the sessions on each node. So: check the
allocation first (preflight), drain (BinderHub's ``binderhub.limits.total_quota`` to 0 refuses new
launches), wait for the user pods BinderHub counts to reach 0 or a deadline, record the nodes, apply
the new template with the upgrade guard lifted, follow the nodes until none of the recorded ones is
left (and, when the Kubernetes version changes, every one runs the new kubelet) and all are Ready, and
restore the quota.

Each finished step is recorded in ``.state/upgrade-<site>.json`` (mode 0600) before the next starts,
so a re-run after an interruption resumes at the first unfinished one. The old quota is recorded
before the file says 0, so an interruption never loses it.

Sessions are read from BinderHub's ``/health``: its "Pod quota" check (KubernetesHealthHandler in
jupyterhub/binderhub ``binderhub/health.py``) reports ``user_pods`` without credentials, cached for
a few seconds.

The apply step changes only ``cluster.image`` and ``cluster.capi_helm_chart_version``: the template
gets a new name, and the provider moves the running cluster to it in place (terraform-provider-openstack
``openstack/resource_openstack_containerinfra_cluster_v1.go``: ``cluster_template_id`` is not ForceNew,
and Update calls Magnum's cluster upgrade API on its change, then waits for UPDATE_COMPLETE). The
driver reads the chart version from the cluster's current template (magnum-capi-helm ``driver.py``
``_get_chart_version``), so a chart change reaches the cluster this way too.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jetstream_binderhub.automation.results import Layer
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError

Step = Literal["drain", "wait", "apply", "rollout", "restore"]
STEPS: tuple[Step, ...] = ("drain", "wait", "apply", "rollout", "restore")

POLL_SECONDS = 30.0
"""Between /health and node reads: BinderHub caches its pod count (`at_most_every`), and a node takes
minutes to be replaced; faster tells nothing new."""

DEADLINE_MINUTES = 60.0
ROLLOUT_MINUTES = 120.0
"""A node takes about 5 minutes to be replaced (zonca's Jetstream2 notes) and each group replaces one
at a time, in parallel with the others: two hours covers a group of about twenty nodes."""

QUOTA_KEY = "binderhub.limits.total_quota"
IMAGE_KEY = "cluster.image"
CHART_KEY = "cluster.capi_helm_chart_version"

_CHART_VERSION = re.compile(r"\d+\.\d+\.\d+")
"""The shape `cluster.capi_helm_chart_version` takes (config.cluster.ClusterConfig)."""


class UpgradeError(JetstreamBinderHubError):
    """A bad --image/--chart-version, nothing to upgrade, or a state file of another upgrade."""

    exit_code = 2


class SessionsUnknown(JetstreamBinderHubError):
    """BinderHub's /health could not be read while waiting; the state is kept for a re-run."""

    exit_code = 14


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class UpgradeState(BaseModel):
    """What the state file holds between runs."""

    model_config = ConfigDict(extra="forbid")

    site: str
    image: str | None = Field(description="The new cluster.image; None: the image does not change.")
    chart_version: str | None = Field(
        default=None, description="The new capi_helm_chart_version; None: it does not change."
    )
    target_version: str | None = Field(
        default=None, description="The kubelet version every node runs when the rollout is finished."
    )
    version_changes: bool = Field(
        default=True,
        description="The upgrade changes the kubelet version: the rollout also waits for every node to run it.",
    )
    old_nodes: list[str] | None = Field(
        default=None,
        description="The nodes when the apply step started: the rollout is finished when none is left.",
    )
    done: list[Step] = Field(default_factory=list)
    old_total_quota: int | None = None
    had_total_quota: bool = Field(default=False, description="False: the key was absent, restore removes it.")
    quota_recorded: bool = False
    wait_until: float | None = Field(
        default=None, description="The deadline, wall-clock seconds since epoch."
    )
    wait_minutes: float | None = Field(default=None, description="The --deadline wait_until was set from.")
    rollout_until: float | None = None
    rollout_minutes: float | None = None


class UpgradeResult(_Out):
    site: str
    image: str | None
    chart_version: str | None
    target_version: str | None
    resumed_at: Step | None = Field(description="The step a re-run started from; None for a fresh run.")
    sessions_left: int | None = Field(description="User pods still running when the image was applied.")
    deadline_reached: bool
    restored_total_quota: int | None


def state_path(project_dir: Path, site: str) -> Path:
    return project_dir / ".state" / f"upgrade-{site}.json"


def _describe(image: str | None, chart_version: str | None) -> str:
    parts = ([image] if image else []) + ([f"chart {chart_version}"] if chart_version else [])
    return " and ".join(parts)


def _options(image: str | None, chart_version: str | None) -> str:
    return " ".join(
        ([f"--image {image}"] if image else [])
        + ([f"--chart-version {chart_version}"] if chart_version else [])
    )


def _load_state(path: Path, site: str, image: str | None, chart_version: str | None) -> UpgradeState | None:
    if not path.is_file():
        return None
    try:
        state = UpgradeState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UpgradeError(f"{path} is not an upgrade state file this version wrote; move it aside") from None
    # An option left out on a re-run means "as before": only a different value is another upgrade.
    if (image is not None and image != state.image) or (
        chart_version is not None and chart_version != state.chart_version
    ):
        option = "--image" if image is not None and image != state.image else "--chart-version"
        raise UpgradeError(
            f"{option}: an upgrade of {site} to {_describe(state.image, state.chart_version)} is unfinished "
            f"(after {', '.join(state.done) or 'no step'}; {path}): re-run with "
            f"{_options(state.image, state.chart_version)} to finish it first"
        )
    return state


def _save_state(path: Path, state: UpgradeState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(state.model_dump(mode="json"), out, indent=2, sort_keys=True)
    tmp.replace(path)  # a Ctrl-C mid-write never leaves half a state file


def check_image(image: str, *, existing_template: bool) -> None:
    """Refuse an image the upgrade cannot use, before anything is drained."""
    from jetstream_binderhub.config.cluster import kube_version_of

    if existing_template:
        raise UpgradeError(
            f"--image ({IMAGE_KEY}): the site uses cluster.existing_template_id, so the template decides "
            "the image; upgrade that template in Magnum instead"
        )
    if not image.strip() or image != image.strip():
        raise UpgradeError(f"--image ({IMAGE_KEY}): {image!r} is not a Glance image name")
    if kube_version_of(image) is None:
        raise UpgradeError(
            f"--image ({IMAGE_KEY}): {image!r} carries no Kubernetes version in its name (kube-vX.Y.Z, as in "
            "ubuntu-jammy-kube-v1.33.2-250626-0848); Jetstream2's Magnum images are named so "
            "(`openstack image list | grep kube`)"
        )


def check_chart_version(version: str, *, existing_template: bool) -> None:
    if existing_template:
        raise UpgradeError(
            f"--chart-version ({CHART_KEY}): the site uses cluster.existing_template_id, so the template decides "
            "the chart version; upgrade that template in Magnum instead"
        )
    if not _CHART_VERSION.fullmatch(version):
        raise UpgradeError(
            f"--chart-version ({CHART_KEY}): {version!r} is not an exact version: three numbers without a 'v', "
            "e.g. 0.16.0 (the capi_helm_chart_version label of the cloud's templates)"
        )


def user_pods(read_health: Callable[[], Any]) -> int:
    """The user pods BinderHub's /health counts; raises :class:`SessionsUnknown` when it cannot tell."""
    from jetstream_binderhub.ops.verify import Outcome

    result = read_health()
    if result.health is None or result.outcome is Outcome.UNREACHABLE:
        raise SessionsUnknown(f"cannot count the sessions: {result.message}")
    for check in result.health.checks:
        if check.service == "Pod quota" and isinstance(check.details.get("user_pods"), int):
            return check.details["user_pods"]
    raise SessionsUnknown(
        "cannot count the sessions: BinderHub's /health has no 'Pod quota' check with user_pods (it reports "
        "one when it builds on Kubernetes); wait for the sessions by hand (docs/operations.md)"
    )


def _deadline(
    until: float | None, minutes_then: float | None, minutes: float | None, default: float, now: float
) -> tuple[float, float]:
    """(deadline, minutes) for a step: set once when it starts; a re-run with another value moves it
    by the difference, so the deadline always counts from when the step first started."""
    if until is None:
        chosen = default if minutes is None else minutes
        return now + chosen * 60, chosen
    if minutes is None or minutes == minutes_then:
        return until, minutes_then if minutes_then is not None else default
    if minutes_then is None:  # a state file without the minutes it was set from
        return now + minutes * 60, minutes
    return until + (minutes - minutes_then) * 60, minutes


def upgrade(
    site: str,
    *,
    image: str | None = None,
    chart_version: str | None = None,
    current_image: str | None,
    current_chart_version: str | None,
    cluster_file: Path,
    hub_file: Path,
    state_file: Path,
    existing_template: bool,
    apply: Callable[[Layer, bool], None],
    read_health: Callable[[], Any],
    read_nodes: Callable[[], Any],
    node_floors: Mapping[str, int],
    check_cluster: Callable[[], object],
    check_hub: Callable[[], object],
    check_target: Callable[[str | None, str | None], None] = lambda image, chart: None,
    check_environment: Callable[[], None] = lambda: None,
    preflight: Callable[[str | None, str | None], None] | None = None,
    deadline_minutes: float | None = None,
    rollout_minutes: float | None = None,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> UpgradeResult:
    """Drain, wait, apply the image and/or chart version, follow the rollout, restore; each finished
    step recorded in `state_file`.

    `apply(layer, allow_upgrade)` applies one layer (`Site.up`); `read_health()` returns what
    :func:`jetstream_binderhub.ops.verify.read_health` does; `read_nodes()` the cluster's v1 NodeList
    (:func:`jetstream_binderhub.ops.rollout.read_node_list`); `node_floors` each group's fewest nodes
    (its min_count). `check_cluster`/`check_hub` re-read a stack file after an edit (a
    :class:`ConfigError` puts the file back); `check_target(image, chart)` validates the site as it
    would be; `preflight(image, chart)` checks the cloud. Both run before anything is drained, on a
    fresh run only. `check_environment()` (the Pulumi CLI, login, passphrase, credentials) runs on
    every run, after the options are judged and before anything is read or changed. `None` deadlines: the default on a fresh run, the recorded one on a re-run.
    """
    from jetstream_binderhub.config.cluster import kube_version_of
    from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, edit_stack_file
    from jetstream_binderhub.ops.rollout import (
        ClusterTimedOut,
        ClusterUnreachable,
        GroupRollout,
        RolloutTimedOut,
        node_statuses,
        rollout_status,
    )

    for option, minutes in (("--deadline", deadline_minutes), ("--rollout-timeout", rollout_minutes)):
        if minutes is not None and minutes < 0:
            raise UpgradeError(f"{option}: must be 0 or more minutes, got {minutes:g}")
    if image is not None:
        check_image(image, existing_template=existing_template)
    if chart_version is not None:
        check_chart_version(chart_version, existing_template=existing_template)
    state = _load_state(state_file, site, image, chart_version)
    resumed_at: Step | None = None
    if state is None:
        if image is None and chart_version is None:
            raise UpgradeError(
                "upgrade needs --image IMAGE, --chart-version VERSION or both: the only two settings an "
                "upgrade carries to a running cluster"
            )
        # A fresh run: only what differs from the site is an upgrade.
        new_image = image if image != current_image else None
        new_chart = chart_version if chart_version != current_chart_version else None
        if new_image is None and new_chart is None:
            raise UpgradeError(
                f"{'--image' if image is not None else '--chart-version'}: {site} already runs "
                f"{_describe(current_image, current_chart_version)}: nothing to upgrade, nothing changed"
            )
        check_target(new_image, new_chart)
        check_environment()
        target_version = kube_version_of(new_image or current_image)
        if preflight is not None:
            preflight(new_image, new_chart)
        # Before any user is turned away: the rollout must be followable (kubeconfig, API server).
        node_statuses(read_nodes())
        state = UpgradeState(
            site=site,
            image=new_image,
            chart_version=new_chart,
            target_version=target_version,
            version_changes=target_version != kube_version_of(current_image),
        )
    else:
        check_environment()  # a re-run applies layers too: an incomplete machine must not drain or restore
        resumed_at = next(s for s in STEPS if s not in state.done)
        say(
            f"resuming the upgrade of {site} to {_describe(state.image, state.chart_version)} at {resumed_at} ({state_file})"
        )
    described = _describe(state.image, state.chart_version)

    def finish(step: Step) -> None:
        state.done.append(step)
        _save_state(state_file, state)

    def hub_limits(config: Any) -> Any:
        hub = config.setdefault(f"{HUB_PROJECT}:binderhub", {})
        return hub.setdefault("limits", {})

    if "drain" not in state.done:
        if not state.quota_recorded:
            from ruamel.yaml import YAML

            doc = YAML().load(hub_file.read_text(encoding="utf-8"))
            limits = ((doc.get("config") or {}).get(f"{HUB_PROJECT}:binderhub") or {}).get("limits") or {}
            state.had_total_quota = "total_quota" in limits
            state.old_total_quota = limits.get("total_quota")
            state.quota_recorded = True
            _save_state(state_file, state)  # before the file says 0: an interruption never loses it
        old = state.old_total_quota if state.had_total_quota else "unset"
        say(f"1/5 drain: {QUOTA_KEY} {old} -> 0 in {hub_file} (no new launches); applying binderhub")
        edit_stack_file(hub_file, lambda c: hub_limits(c).__setitem__("total_quota", 0), check_hub)
        apply(Layer.BINDERHUB, False)
        finish("drain")

    sessions: int | None = None
    reached = False
    if "wait" not in state.done:
        until, minutes = _deadline(
            state.wait_until, state.wait_minutes, deadline_minutes, DEADLINE_MINUTES, clock()
        )
        if (until, minutes) != (state.wait_until, state.wait_minutes):
            if state.wait_until is not None:
                say(f"2/5 wait: the deadline is now {minutes:g} min from the start of the wait")
            state.wait_until, state.wait_minutes = until, minutes
            _save_state(state_file, state)
        while True:
            sessions = user_pods(read_health)
            left = until - clock()
            if sessions == 0:
                say("2/5 wait: 0 sessions running")
                break
            if left <= 0:
                reached = True
                say(f"2/5 wait: deadline reached with {sessions} sessions running: the upgrade ends them")
                break
            say(f"2/5 wait: {sessions} sessions running, {left / 60:.1f} min to the deadline")
            sleep(min(poll_seconds, left))
        finish("wait")

    if "apply" not in state.done:
        changes = ([f"{IMAGE_KEY} -> {state.image}"] if state.image else []) + (
            [f"{CHART_KEY} -> {state.chart_version}"] if state.chart_version else []
        )
        say(f"3/5 apply: {', '.join(changes)} in {cluster_file}; applying cluster (rolls every node group)")

        def set_target(config: Any) -> None:
            cluster = config[f"{CLUSTER_PROJECT}:cluster"]
            if state.image:
                cluster["image"] = state.image
            if state.chart_version:
                cluster["capi_helm_chart_version"] = state.chart_version

        if state.old_nodes is None:
            # Recorded before `up` and kept by a re-run: once the template changes, Cluster API starts
            # replacing machines, and a node read after that would be waited for in vain.
            state.old_nodes = sorted(n.name for n in node_statuses(read_nodes()))
            _save_state(state_file, state)
        edit_stack_file(cluster_file, set_target, check_cluster)
        apply(Layer.CLUSTER, True)
        finish("apply")

    if "rollout" not in state.done:
        # A chart upgrade or a rebuilt image keeps the kubelet version: then only the names tell.
        target = state.target_version if state.version_changes else None
        if target is None and state.old_nodes is None:  # a state file of an earlier version
            say(
                "4/5 rollout: neither the nodes before the apply nor a new Kubernetes version are known, "
                "so the nodes cannot be followed"
            )
        else:
            until, minutes = _deadline(
                state.rollout_until, state.rollout_minutes, rollout_minutes, ROLLOUT_MINUTES, clock()
            )
            if (until, minutes) != (state.rollout_until, state.rollout_minutes):
                if state.rollout_until is not None:
                    say(f"4/5 rollout: the timeout is now {minutes:g} min from the start of the rollout")
                state.rollout_until, state.rollout_minutes = until, minutes
                _save_state(state_file, state)
            shown: dict[str, str] = {}
            rolling: list[GroupRollout] = []
            unread: str | None = None
            while True:
                try:
                    groups = rollout_status(
                        node_statuses(read_nodes()), node_floors, old_names=state.old_nodes, target=target
                    )
                except (ClusterUnreachable, ClusterTimedOut) as exc:
                    # The API's load balancer changes members while the control plane rolls: a read
                    # that fails then is expected, and the next one usually works. Refused
                    # credentials and a missing kubeconfig still stop at once.
                    if unread is None:
                        say(
                            f"4/5 rollout: cannot read the nodes now, trying again every {poll_seconds:g} s: {exc}"
                        )
                    unread = str(exc)
                else:
                    if unread is not None:
                        say("4/5 rollout: the nodes can be read again")
                    unread = None
                    for g in groups:
                        line = g.describe(target)
                        if shown.get(g.group) != line:  # only what moved: a poll every 30 s for an hour
                            say(f"4/5 rollout: {line}")
                            shown[g.group] = line
                    rolling = [g for g in groups if not g.done]
                    if not rolling:
                        nodes = sum(g.nodes for g in groups)
                        runs = f"run {target} and are Ready" if target else "are Ready"
                        say(f"4/5 rollout: no old node left; all {nodes} nodes {runs}")
                        break
                left = until - clock()
                if left <= 0:
                    where = (
                        f"the nodes could not be read ({unread})"
                        if unread is not None
                        else "still rolling: " + "; ".join(g.describe(target) for g in rolling)
                    )
                    raise RolloutTimedOut(
                        f"rollout: not finished after {minutes:g} min, {where}. Launches stay drained; check "
                        "`openstack coe cluster show` and `kubectl get nodes`, then re-run with a longer "
                        f"--rollout-timeout to keep following ({state_file})"
                    )
                sleep(min(poll_seconds, left))
        finish("rollout")

    restored = state.old_total_quota if state.had_total_quota else None
    if "restore" not in state.done:
        say(
            f"5/5 restore: {QUOTA_KEY} -> {restored if state.had_total_quota else 'unset (key removed)'}; "
            "applying binderhub"
        )

        def restore(config: Any) -> None:
            limits = hub_limits(config)
            if state.had_total_quota:
                limits["total_quota"] = state.old_total_quota
            else:
                limits.pop("total_quota", None)

        edit_stack_file(hub_file, restore, check_hub)
        apply(Layer.BINDERHUB, False)
        finish("restore")
    state_file.unlink(missing_ok=True)  # done: the next upgrade starts afresh
    say(f"upgraded {site} to {described}")
    return UpgradeResult(
        site=site,
        image=state.image,
        chart_version=state.chart_version,
        target_version=state.target_version,
        resumed_at=resumed_at,
        sessions_left=sessions,
        deadline_reached=reached,
        restored_total_quota=restored,
    )


def upgrade_site(
    site: str,
    project_dir: Path,
    image: str | None = None,
    *,
    chart_version: str | None = None,
    apply: Callable[[Layer, bool], None],
    read_health: Callable[[], Any],
    read_nodes: Callable[[], Any],
    check_environment: Callable[[], None] = lambda: None,
    preflight: Callable[[str | None, str | None], None] | None = None,
    deadline_minutes: float | None = None,
    rollout_minutes: float | None = None,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> UpgradeResult:
    """:func:`upgrade` for a site of the repository: its two stack files, its `.state/`."""
    import copy

    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.load import parse_cluster_stack
    from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, read_stack_file
    from jetstream_binderhub.naming import CONTROL_PLANE, DEFAULT_WORKER
    from jetstream_binderhub.plan.site import cluster_stack_path, hub_stack_path, load_cluster_file

    cluster_file, cluster = load_cluster_file(project_dir, site)
    hub_path = hub_stack_path(project_dir, site)
    if not hub_path.is_file():
        raise UpgradeError(f"upgrade drains the BinderHub layer first: {hub_path} does not exist")

    def check_hub() -> object:
        return parse_hub_stack(
            read_stack_file(hub_path).namespace(HUB_PROJECT),
            source=str(hub_path),
            node_groups=cluster.cluster.label_values(),
        )

    def check_target(new_image: str | None, new_chart: str | None) -> None:
        # The site as the apply step will write it, validated as `up` will: e.g. a chart version other
        # than the cloud's own templates' is refused while autoscaling is on, before anyone is drained.
        raw = copy.deepcopy(dict(cluster_file.namespace(CLUSTER_PROJECT)))
        target = raw.setdefault("cluster", {})
        for key, value in (("image", new_image), ("capi_helm_chart_version", new_chart)):
            if value is not None:
                target[key] = value
        try:
            parse_cluster_stack(raw, source=str(cluster_stack_path(project_dir, site)))
        except ConfigError as exc:
            for problem in exc.problems:
                for option, key in (("--image", IMAGE_KEY), ("--chart-version", CHART_KEY)):
                    if problem.key == key:
                        raise UpgradeError(f"{option} ({key}): {problem.message}") from None
            raise

    check_hub()
    c = cluster.cluster
    floors = {
        CONTROL_PLANE: c.control_plane.count,
        DEFAULT_WORKER: c.default_worker.min_count,
        **{g.label_value: g.min_count for g in c.node_groups},
    }
    return upgrade(
        site,
        image=image,
        chart_version=chart_version,
        current_image=c.image,
        current_chart_version=c.capi_helm_chart_version,
        cluster_file=cluster_stack_path(project_dir, site),
        hub_file=hub_path,
        state_file=state_path(project_dir, site),
        existing_template=c.existing_template_id is not None,
        apply=apply,
        read_health=read_health,
        read_nodes=read_nodes,
        node_floors=floors,
        check_cluster=lambda: load_cluster_file(project_dir, site),
        check_hub=check_hub,
        check_target=check_target,
        check_environment=check_environment,
        preflight=preflight,
        deadline_minutes=deadline_minutes,
        rollout_minutes=rollout_minutes,
        say=say,
        clock=clock,
        sleep=sleep,
        poll_seconds=poll_seconds,
    )
