"""`upgrade`: a Kubernetes upgrade (a new cluster image) without cutting running sessions short.

A new image rolls every node group, ending the sessions on each node. So: drain (BinderHub's
``binderhub.limits.total_quota`` to 0 refuses new launches), wait for the user pods BinderHub counts
to reach 0 or a deadline, apply the image with the upgrade guard lifted, and restore the quota.

Each finished step is recorded in ``.state/upgrade-<site>.json`` (mode 0600) before the next starts,
so a re-run after an interruption resumes at the first unfinished one. The old quota is recorded
before the file says 0, so an interruption never loses it.

Sessions are read from BinderHub's ``/health``: its "Pod quota" check (KubernetesHealthHandler in
jupyterhub/binderhub ``binderhub/health.py``) reports ``user_pods`` without credentials, cached for
a few seconds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jetstream_binderhub.automation.results import Layer
from jetstream_binderhub.errors import JetstreamBinderHubError

Step = Literal["drain", "wait", "apply", "restore"]
STEPS: tuple[Step, ...] = ("drain", "wait", "apply", "restore")

POLL_SECONDS = 30.0
"""Between /health reads: BinderHub caches its pod count (`at_most_every`), faster tells nothing new."""

QUOTA_KEY = "binderhub.limits.total_quota"
IMAGE_KEY = "cluster.image"


class UpgradeError(JetstreamBinderHubError):
    """A bad --image or a state file that belongs to another upgrade."""

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
    image: str
    done: list[Step] = Field(default_factory=list)
    old_total_quota: int | None = None
    had_total_quota: bool = Field(default=False, description="False: the key was absent, restore removes it.")
    quota_recorded: bool = False
    wait_until: float | None = Field(
        default=None, description="The deadline, wall-clock seconds since epoch."
    )


class UpgradeResult(_Out):
    site: str
    image: str
    resumed_at: Step | None = Field(description="The step a re-run started from; None for a fresh run.")
    sessions_left: int | None = Field(description="User pods still running when the image was applied.")
    deadline_reached: bool
    restored_total_quota: int | None


def state_path(project_dir: Path, site: str) -> Path:
    return project_dir / ".state" / f"upgrade-{site}.json"


def _load_state(path: Path, site: str, image: str) -> UpgradeState | None:
    if not path.is_file():
        return None
    try:
        state = UpgradeState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UpgradeError(f"{path} is not an upgrade state file this version wrote; move it aside") from None
    if state.image != image:
        raise UpgradeError(
            f"--image: an upgrade of {site} to {state.image} is unfinished (after {', '.join(state.done) or 'no step'}; "
            f"{path}): re-run with --image {state.image} to finish it first"
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


def upgrade(
    site: str,
    image: str,
    *,
    cluster_file: Path,
    hub_file: Path,
    state_file: Path,
    existing_template: bool,
    apply: Callable[[Layer, bool], None],
    read_health: Callable[[], Any],
    check_cluster: Callable[[], object],
    check_hub: Callable[[], object],
    deadline_minutes: float = 60.0,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> UpgradeResult:
    """Drain, wait, apply the image, restore; each finished step recorded in `state_file`.

    `apply(layer, allow_upgrade)` applies one layer (`Site.up`); `read_health()` returns what
    :func:`jetstream_binderhub.ops.verify.read_health` does; `check_cluster`/`check_hub` re-read a
    stack file after an edit (a :class:`ConfigError` puts the file back).
    """
    from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, edit_stack_file

    if deadline_minutes < 0:
        raise UpgradeError(f"--deadline: must be 0 or more minutes, got {deadline_minutes:g}")
    check_image(image, existing_template=existing_template)
    state = _load_state(state_file, site, image)
    resumed_at: Step | None = None
    if state is None:
        state = UpgradeState(site=site, image=image)
    else:
        resumed_at = next(s for s in STEPS if s not in state.done)
        say(f"resuming the upgrade of {site} to {image} at {resumed_at} ({state_file})")

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
        say(f"1/4 drain: {QUOTA_KEY} {old} -> 0 in {hub_file} (no new launches); applying binderhub")
        edit_stack_file(hub_file, lambda c: hub_limits(c).__setitem__("total_quota", 0), check_hub)
        apply(Layer.BINDERHUB, False)
        finish("drain")

    sessions: int | None = None
    reached = False
    if "wait" not in state.done:
        if state.wait_until is None:
            state.wait_until = clock() + deadline_minutes * 60
            _save_state(state_file, state)
        while True:
            sessions = user_pods(read_health)
            left = state.wait_until - clock()
            if sessions == 0:
                say("2/4 wait: 0 sessions running")
                break
            if left <= 0:
                reached = True
                say(f"2/4 wait: deadline reached with {sessions} sessions running: the upgrade ends them")
                break
            say(f"2/4 wait: {sessions} sessions running, {left / 60:.1f} min to the deadline")
            sleep(min(poll_seconds, left))
        finish("wait")

    if "apply" not in state.done:
        say(f"3/4 apply: {IMAGE_KEY} -> {image} in {cluster_file}; applying cluster (rolls every node group)")
        edit_stack_file(
            cluster_file,
            lambda c: c[f"{CLUSTER_PROJECT}:cluster"].__setitem__("image", image),
            check_cluster,
        )
        apply(Layer.CLUSTER, True)
        finish("apply")

    restored = state.old_total_quota if state.had_total_quota else None
    if "restore" not in state.done:
        say(
            f"4/4 restore: {QUOTA_KEY} -> {restored if state.had_total_quota else 'unset (key removed)'}; "
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
    say(f"upgraded {site} to {image}")
    return UpgradeResult(
        site=site,
        image=image,
        resumed_at=resumed_at,
        sessions_left=sessions,
        deadline_reached=reached,
        restored_total_quota=restored,
    )


def upgrade_site(
    site: str,
    project_dir: Path,
    image: str,
    *,
    apply: Callable[[Layer, bool], None],
    read_health: Callable[[], Any],
    deadline_minutes: float = 60.0,
    say: Callable[[str], None] = print,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> UpgradeResult:
    """:func:`upgrade` for a site of the repository: its two stack files, its `.state/`."""
    from jetstream_binderhub.config.hub import parse_hub_stack
    from jetstream_binderhub.config.stackfile import HUB_PROJECT, read_stack_file
    from jetstream_binderhub.plan.site import cluster_stack_path, hub_stack_path, load_cluster_file

    _, cluster = load_cluster_file(project_dir, site)
    hub_path = hub_stack_path(project_dir, site)
    if not hub_path.is_file():
        raise UpgradeError(f"upgrade drains the BinderHub layer first: {hub_path} does not exist")

    def check_hub() -> object:
        return parse_hub_stack(
            read_stack_file(hub_path).namespace(HUB_PROJECT),
            source=str(hub_path),
            node_groups=cluster.cluster.label_values(),
        )

    check_hub()
    return upgrade(
        site,
        image,
        cluster_file=cluster_stack_path(project_dir, site),
        hub_file=hub_path,
        state_file=state_path(project_dir, site),
        existing_template=cluster.cluster.existing_template_id is not None,
        apply=apply,
        read_health=read_health,
        check_cluster=lambda: load_cluster_file(project_dir, site),
        check_hub=check_hub,
        deadline_minutes=deadline_minutes,
        say=say,
        clock=clock,
        sleep=sleep,
        poll_seconds=poll_seconds,
    )
