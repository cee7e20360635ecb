"""`plan --compare BASE`: the difference between two offline plans, as layer changes.

For pull requests that get no secrets (forks), there is no live preview; what can still be shown is
what the change *asks for*: the offline plan of the base revision against the plan of the working tree,
in the same shape as a live preview (:class:`~jetstream_binderhub.engine.changes.LayerChanges`), so the
same markdown renderer and the same replacement guard read it. It is a plan of intent, never a diff
against the cloud: drift, and replacements a provider decides by itself, do not appear.

The base side is planned by the base revision's *own code* (a `git archive` of it, run in a subprocess
with its `src/` first on the path): a pull request that changes a component is compared against what
the old component declared, not against the new code fed the old config.

Replacements are predicted from the provider properties known to force one (:data:`FORCE_NEW`) and
from the program's own ``replace_on_changes``; changes to keys in ``ignore_changes`` are dropped, as
the engine drops them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jetstream_binderhub.config.stackfile import CLUSTER_PROJECT, HUB_PROJECT, HUB_PROJECT_DIR
from jetstream_binderhub.engine.changes import ChangeOp, LayerChanges, ResourceChange, ValueChange
from jetstream_binderhub.errors import ConfigError, JetstreamBinderHubError, Problem
from jetstream_binderhub.naming import CLUSTER_TYPE, NODE_GROUP_TYPE
from jetstream_binderhub.plan.model import CostChange, CostEstimate, LayerPlan, Plan, PlannedResource
from jetstream_binderhub.plan.render import flatten
from jetstream_binderhub.plan.site import cluster_stack_path, hub_stack_path

PROJECTS = {"cluster": CLUSTER_PROJECT, "binderhub": HUB_PROJECT}

STACK_REFERENCE_TYPE = "pulumi:pulumi:StackReference"
PROVIDER_PREFIX = "pulumi:providers:"

IN_PLACE: dict[str, frozenset[str]] = {
    # Everything else on a Magnum cluster is ForceNew in pulumi-openstack 5.5 (terraform-provider-openstack
    # v3.4); node_count resizes and cluster_template_id upgrades in place.
    CLUSTER_TYPE: frozenset({"node_count", "cluster_template_id"}),
}
"""Per type whose properties are ForceNew by default: the few that change in place."""

FORCE_NEW: dict[str, frozenset[str]] = {
    NODE_GROUP_TYPE: frozenset(
        {"name", "labels", "flavor_id", "image_id", "role", "docker_volume_size", "cluster_id", "region"}
    ),
}
"""Per type whose properties change in place by default: the ones that force a replacement."""

MAX_VALUE_CHARS = 40
SECRET_TEXT = "[secret]"
_SECRET_WORDS = ("password", "secret", "token", "credential", "private", "kubeconfig", "apikey", "cert")


class CompareError(JetstreamBinderHubError):
    """A side of the comparison could not be planned."""

    exit_code = 2


@dataclass(frozen=True)
class Comparison:
    """Two offline plans of one site and what changes between them."""

    site: str
    base_label: str
    head_label: str
    layers: list[LayerChanges]
    cost: CostChange
    notes: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        return f"Plan of intent ({self.base_label} → {self.head_label})"


# --- diffing two plans -----------------------------------------------------------------------


def _top(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _printable(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and "\n" not in value and len(value) <= MAX_VALUE_CHARS:
        return value
    return None


def _secret_path(path: str) -> bool:
    key = "".join(ch for ch in path.lower() if ch.isalpha())
    return any(word in key for word in _SECRET_WORDS)


def _forces_replacement(resource: PlannedResource, key: str) -> bool:
    top = _top(key)
    replace_on = resource.options.get("replace_on_changes") or []
    if "*" in replace_on or top in replace_on:
        return True
    if resource.type in IN_PLACE:
        return top not in IN_PLACE[resource.type]
    return top in FORCE_NEW.get(resource.type, frozenset())


def _whole(site: str, project: str, layer: str, resource: PlannedResource, op: ChangeOp) -> ResourceChange:
    """A resource only one of the two plans has: created or deleted as a whole."""
    return ResourceChange(
        layer=layer, urn=_urn(site, project, resource), type=resource.type, name=resource.name, op=op
    )


def _urn(site: str, project: str, resource: PlannedResource) -> str:
    # The plan records the parent's name, not its type chain; this URN is exact in stack, project, type
    # and name, which is all the renderer and the guard read.
    return f"urn:pulumi:{site}::{project}::{resource.type}::{resource.name}"


def diff_resource(
    site: str, project: str, layer: str, old: PlannedResource, new: PlannedResource
) -> ResourceChange | None:
    """The change from `old` to `new` (same type and name), or None when nothing Pulumi acts on differs."""
    before = dict(flatten(old.inputs))
    after = dict(flatten(new.inputs))
    ignored = set(new.options.get("ignore_changes") or [])
    changed = [
        key
        for key in sorted(set(before) | set(after))
        if before.get(key, _MISSING) != after.get(key, _MISSING) and _top(key) not in ignored
    ]
    if not changed:
        return None
    values: dict[str, ValueChange] = {}
    secret_keys: list[str] = []
    for key in changed:
        old_value, new_value = before.get(key, _MISSING), after.get(key, _MISSING)
        if SECRET_TEXT in (old_value, new_value) or _secret_path(key):
            secret_keys.append(key)
            continue
        old_text = None if old_value is _MISSING else _printable(old_value)
        new_text = None if new_value is _MISSING else _printable(new_value)
        if (old_value is _MISSING or old_text is not None) and (
            new_value is _MISSING or new_text is not None
        ):
            values[key] = ValueChange(old=old_text, new=new_text)
    causes = [key for key in changed if _forces_replacement(new, key)]
    op = ChangeOp.REPLACE if causes else ChangeOp.UPDATE
    return ResourceChange(
        layer=layer,
        urn=_urn(site, project, new),
        type=new.type,
        name=new.name,
        op=op,
        changed_keys=changed,
        replace_causes=causes,
        values=values,
        secret_keys=secret_keys,
        # Pulumi creates the replacement first unless the program says otherwise.
        delete_before_replace=bool(new.options.get("delete_before_replace")) if causes else None,
    )


_MISSING: Any = object()


def diff_layer(site: str, layer: str, base: LayerPlan | None, head: LayerPlan | None) -> LayerChanges:
    either = head or base
    project = either.project if either is not None else PROJECTS.get(layer, layer)
    old = {(r.type, r.name): r for r in (base.resources if base else [])}
    new = {(r.type, r.name): r for r in (head.resources if head else [])}
    changes: list[ResourceChange] = []
    unchanged = 0
    for key, resource in new.items():
        if key not in old:
            changes.append(_whole(site, project, layer, resource, ChangeOp.CREATE))
            continue
        change = diff_resource(site, project, layer, old[key], resource)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    for key, resource in old.items():
        if key not in new:
            changes.append(_whole(site, project, layer, resource, ChangeOp.DELETE))
    # As in a live preview: a stack reference is only read, and provider instances are plumbing unless
    # replaced (a replaced Kubernetes provider re-creates everything it manages).
    shown = [
        c
        for c in changes
        if c.type != STACK_REFERENCE_TYPE
        and not (c.type.startswith(PROVIDER_PREFIX) and c.op is not ChangeOp.REPLACE)
    ]
    return LayerChanges(layer=layer, changes=shown, unchanged=unchanged)


def diff_plans(site: str, base: Plan | None, head: Plan) -> list[LayerChanges]:
    """Per layer (cluster first), the changes from `base` to `head`; a missing base plans as empty."""
    names = [layer.layer for layer in head.layers]
    names += [layer.layer for layer in (base.layers if base else []) if layer.layer not in names]
    base_layers = {layer.layer: layer for layer in (base.layers if base else [])}
    head_layers = {layer.layer: layer for layer in head.layers}
    return [diff_layer(site, name, base_layers.get(name), head_layers.get(name)) for name in names]


# --- planning each side ------------------------------------------------------------------------


def _git(project_dir: Path, *args: str, binary: bool = False) -> Any:
    proc = subprocess.run(
        ["git", "-C", str(project_dir), *args], capture_output=True, check=False, text=not binary
    )
    return proc


def is_revision(project_dir: Path, ref: str) -> bool:
    try:
        proc = _git(project_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except OSError:
        return False
    return proc.returncode == 0


def _extract_revision(project_dir: Path, ref: str, into: Path) -> None:
    top = _git(project_dir, "rev-parse", "--show-toplevel")
    prefix = _git(project_dir, "rev-parse", "--show-prefix").stdout.strip()
    if top.returncode != 0:
        raise CompareError(f"{project_dir} is not in a git repository; pass a site file to --compare instead")
    proc = _git(project_dir, "archive", "--format=tar", ref, binary=True)
    if proc.returncode != 0:
        raise CompareError(f"`git archive {ref}` failed: {proc.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(into, filter="data")
    if prefix:  # the project is a subdirectory of the repository
        nested = into / prefix
        for child in nested.iterdir():
            child.rename(into / child.name)


def plan_revision(site: str, project_dir: Path, ref: str) -> tuple[Plan | None, list[str]]:
    """The offline plan of `site` at git revision `ref`, by that revision's own code.

    None when the site does not exist at that revision (a pull request adding a site: everything is
    created). Falls back to this checkout's code, with a note, when the revision's code cannot plan.
    """
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="jsbh-compare-") as tmp:
        root = Path(tmp)
        _extract_revision(project_dir, ref, root)
        if not cluster_stack_path(root, site).is_file():
            return None, [f"site {site} does not exist at {ref}: everything is planned as new"]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")])),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "jetstream_binderhub.cli", "plan", site, "--json", "-C", str(root)],
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
            env=env,
        )
        if proc.returncode == 0:
            try:
                return Plan.model_validate(json.loads(proc.stdout)), notes
            except ValueError:
                notes.append(
                    f"the plan printed by {ref}'s code could not be read; planned {ref}'s site files with this checkout's code"
                )
        elif proc.returncode == 2:
            # The base's own config is invalid: comparing against it would mislead.
            first = next((line for line in proc.stderr.splitlines() if line.strip()), "")
            raise CompareError(f"the site's config at {ref} does not plan: {first.removeprefix('error: ')}")
        else:
            notes.append(
                f"{ref}'s code could not plan (exit {proc.returncode}); planned {ref}'s site files with this checkout's code"
            )
        from jetstream_binderhub.plan.site import plan_site

        return plan_site(site, root), notes


def _unknown_base(project_dir: Path, base: str) -> str:
    try:
        in_git = _git(project_dir, "rev-parse", "--show-toplevel").returncode == 0
    except OSError:
        in_git = False
    where = f"a revision of the git repository at {project_dir}" if in_git else "a git revision"
    return (
        f"--compare {base}: unknown base: not {where}, nor a site file or directory; give e.g. origin/main, "
        "HEAD~1, or the path of a Pulumi.<site>.yaml"
    )


def plan_files(site: str, project_dir: Path, path: Path) -> tuple[Plan, list[str]]:
    """The plan with `path` standing in for one of the site's stack files (which one, its config
    namespace says), or a directory holding a project's stack files; the rest from `project_dir`."""
    from jetstream_binderhub.config.stackfile import read_stack_file
    from jetstream_binderhub.plan.site import plan_site

    if path.is_dir():
        return plan_site(site, path), []
    if not path.is_file():
        raise CompareError(_unknown_base(project_dir, str(path)))
    stack_file = read_stack_file(path)
    namespaces = {key.split(":", 1)[0] for key in stack_file.values}
    with tempfile.TemporaryDirectory(prefix="jsbh-compare-") as tmp:
        root = Path(tmp)
        (root / HUB_PROJECT_DIR).mkdir()
        for stack_path in (cluster_stack_path, hub_stack_path):
            own = stack_path(project_dir, site)
            if own.is_file():
                stack_path(root, site).write_bytes(own.read_bytes())
        if HUB_PROJECT in namespaces:
            target = hub_stack_path(root, site)
        elif CLUSTER_PROJECT in namespaces:
            target = cluster_stack_path(root, site)
        else:
            raise ConfigError(
                [Problem(str(path), f"has no {CLUSTER_PROJECT}: or {HUB_PROJECT}: keys: not a site file")]
            )
        target.write_bytes(path.read_bytes())
        return plan_site(site, root), []


def compare(site: str, project_dir: Path, base: str) -> Comparison:
    """Compare `base` (a git revision, a site file or a project directory) with the working tree."""
    from jetstream_binderhub.plan.site import plan_site

    head = plan_site(site, project_dir)
    if is_revision(project_dir, base):
        base_plan, notes = plan_revision(site, project_dir, base)
        label = base
    else:
        base_plan, notes = plan_files(site, project_dir, Path(base))
        label = str(base)
    from jetstream_binderhub.engine.guard import find_dangerous
    from jetstream_binderhub.plan.cost import cost_change

    changes = diff_plans(site, base_plan, head)
    # What `up` would refuse, with the guard's own way out (for a node group's new flavor: a new group
    # beside the old, then the old removed): a reviewer reads it here before anyone runs `up`.
    refusals = [f"`up` would refuse this: {danger}" for danger in find_dangerous(changes)]
    base_cost = _with_resources(base_plan.cost, head.profile) if base_plan else None
    cost = CostChange(before=base_cost, after=head.cost, line=cost_change(base_cost, head.cost))
    # The allocation is what a reviewer weighs a size or flavor change against: say it first.
    notes = [
        cost.line,
        *refusals,
        *notes,
        *head.warnings,
        *head.notes,
    ]
    return Comparison(site, label, "working tree", changes, cost, notes)


def _with_resources(cost: CostEstimate, profile_name: str) -> CostEstimate:
    """`cost` with each priced line's allocation resource: a plan printed by code older than the
    resource field has none, and would otherwise count on no allocation at all."""
    if all(line.resource or line.su_per_hour_each is None for line in cost.lines):
        return cost
    from jetstream_binderhub.profiles import load_profile

    profile = load_profile(profile_name)
    lines = []
    for line in cost.lines:
        flavor = profile.flavor(line.flavor)
        if line.resource is None and line.su_per_hour_each is not None and flavor is not None:
            line = line.model_copy(update={"resource": flavor.resource})
        lines.append(line)
    return cost.model_copy(update={"lines": lines})


def render_comparison(comparison: Comparison) -> str:
    """The pull-request comment for a comparison: the preview's shape, labelled a plan of intent."""
    from jetstream_binderhub.automation.comment import render_comment

    return render_comment(
        comparison.layers,
        site=comparison.site,
        title=comparison.title,
        plan_of_intent=True,
        notes=comparison.notes,
    )
