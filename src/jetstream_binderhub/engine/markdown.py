"""The pull-request comment that shows what a change to a site would do to its cloud resources.

Built for review: the summary table comes first and always survives trimming, replacements and
deletions are listed before anything else and marked loudly, values are shown only when they are
short, non-secret scalars, and no terminal colour codes reach GitHub.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from jetstream_binderhub.engine.changes import (
    UNKNOWN_DISPLAY,
    ChangeOp,
    LayerChanges,
    ResourceChange,
    clean_text,
)
from jetstream_binderhub.engine.guard import ALLOW_UPGRADE_FLAG, TEMPLATE_TYPE, rolling_keys
from jetstream_binderhub.naming import CLUSTER_TYPE, snake_case

COMMENT_LIMIT = 65_536
"""GitHub refuses issue and pull-request comments longer than this."""

DEFAULT_BUDGET = COMMENT_LIMIT - 536
"""Margin under the limit: GitHub may count in UTF-16 units, and a workflow may append a footer."""

MARKER_PREFIX = "jetstream-binderhub-preview:"

_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

_ORDER = {ChangeOp.REPLACE: 0, ChangeOp.DELETE: 1, ChangeOp.UPDATE: 2, ChangeOp.IMPORT: 3, ChangeOp.CREATE: 4}
"""Listing order, which is also the order in which detail survives trimming: the dangerous first."""

_LABEL = {
    ChangeOp.REPLACE: "⚠️ **REPLACE**",
    ChangeOp.DELETE: "🗑️ **DELETE**",
    ChangeOp.UPDATE: "✏️ update",
    ChangeOp.IMPORT: "📥 import",
    ChangeOp.CREATE: "🆕 create",
}

_FULL_KEYS = 20
_COMPACT_KEYS = 5
_MAX_KEY_CHARS = 120
_MAX_DIAGNOSTICS = 10
_MAX_DIAGNOSTIC_CHARS = 300


def marker(site: str) -> str:
    """The comment's first line. A workflow finds its earlier comment by it and edits that one instead of
    adding a new comment on every push, so it must not change between runs."""
    if not _SITE.match(site):
        # The site ends up inside an HTML comment; anything else could close it or change the marker.
        raise ValueError(f"site {site!r} must be letters, digits, '.', '_' and '-' (it names the comment)")
    return f"<!-- {MARKER_PREFIX}{site} -->"


def comment_length(text: str) -> int:
    """Length as GitHub may count it (UTF-16 code units: an emoji counts twice)."""
    return len(text.encode("utf-16-le")) // 2


def _code(text: str) -> str:
    """Inline code that survives any backticks in `text` (CommonMark: a longer fence, padded)."""
    text = clean_text(text).replace("\r", " ").replace("\n", " ")
    runs = [len(run) for run in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _value(text: str) -> str:
    return text if text == UNKNOWN_DISPLAY else _code(text)


def _key(change: ResourceChange, key: str, *, values: bool) -> str:
    shown = _code(_short(key, _MAX_KEY_CHARS))
    if key in change.secret_keys:
        return f"{shown} (secret)"
    value = change.values.get(key) if values else None
    if value is None:
        return shown
    old = _value(value.old) if value.old is not None else "(absent)"
    new = _value(value.new) if value.new is not None else "(removed)"
    return f"{shown}: {old} → {new}"


def _keys(change: ResourceChange, keys: list[str], *, values: bool, limit: int) -> str:
    parts = [_key(change, k, values=values) for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts)


_TEMPLATE_BOOKKEEPING = {"name"}
"""Template keys that say nothing about the cluster (the name follows the content)."""
_TEMPLATE_ALSO_ON_CLUSTER = {"flavor", "master_flavor", "keypair_id", "fixed_network", "fixed_subnet"}
"""Template keys the cluster sets itself too: a change shows (as a replacement) on the cluster's line."""


def _top_key(key: str) -> str:
    return snake_case(re.split(r"[.\[]", key, maxsplit=1)[0])


def _effect(change: ResourceChange) -> str:
    """What a change to the Magnum template or cluster does to the *running* cluster, in words.

    Magnum copies a template's labels into the cluster when it creates it and never updates the copy;
    the driver reads only the image, chart version, network driver and external network from the
    current template (docs/operations.md). A changed label is a new template and nothing more."""
    if change.type == TEMPLATE_TYPE and change.op in (ChangeOp.REPLACE, ChangeOp.UPDATE):
        rolling = rolling_keys(change)
        frozen = [
            k
            for k in change.changed_keys
            if k not in rolling and _top_key(k) not in _TEMPLATE_BOOKKEEPING | _TEMPLATE_ALSO_ON_CLUSTER
        ]
        text = ""
        if rolling:
            text += (
                " — **upgrades the running cluster**: every node group's nodes are replaced one at a time, "
                f"ending the sessions on them (`up` needs `{ALLOW_UPGRADE_FLAG}`)"
            )
        if frozen:
            keys = ", ".join(_code(k) for k in frozen[:_COMPACT_KEYS])
            more = f" and {len(frozen) - _COMPACT_KEYS} more" if len(frozen) > _COMPACT_KEYS else ""
            text += (
                f" — {keys}{more}: fixed when the cluster was created, **no effect on the running cluster** "
                "(only a new cluster gets it)"
            )
        return text
    if (
        change.type == CLUSTER_TYPE
        and change.op is ChangeOp.REPLACE
        and any(_top_key(k) == "flavor" for k in change.replace_causes)
    ):
        return (
            " — `flavor` is `default-worker`'s, fixed when the cluster is created: a new cluster; to give "
            "users another flavor, add a node group instead"
        )
    return ""


def _line(change: ResourceChange, *, compact: bool) -> str:
    limit = _COMPACT_KEYS if compact else _FULL_KEYS
    values = not compact
    text = f"- {_LABEL[change.op]} {_code(_short(change.name, _MAX_KEY_CHARS))} ({_code(change.type)})"
    if change.op is ChangeOp.REPLACE:
        if change.replace_causes:
            text += " — forced by " + _keys(change, change.replace_causes, values=values, limit=limit)
        else:
            text += " — the engine did not say which property forces it"
        others = [k for k in change.changed_keys if k not in change.replace_causes]
        if others:
            text += "; also changes " + _keys(change, others, values=values, limit=limit)
        if change.delete_before_replace:
            text += " — the old one is deleted **before** the new one exists"
        elif change.delete_before_replace is False and change.type == TEMPLATE_TYPE:
            # The expected shape of every Kubernetes upgrade: reviewers should not read it as an outage.
            text += " — the new template is created first and the cluster moves to it in place"
        text += _effect(change)
        if change.type == "pulumi:providers:kubernetes":
            text += " — every Kubernetes resource it manages is re-created with it"
        elif change.is_provider:
            text += " — resources it manages may be replaced with it"
    elif change.op is ChangeOp.UPDATE and change.changed_keys:
        text += " — " + _keys(change, change.changed_keys, values=values, limit=limit)
    if change.failed:
        text += " — ❌ **failed**"
    return text


@dataclass(frozen=True)
class _Entry:
    layer: int
    order: tuple[int, int]
    op: ChangeOp
    full: str
    compact: str


def _entries(layers: Sequence[LayerChanges]) -> list[_Entry]:
    """One entry per listed resource, sorted by layer and, within a layer, dangerous first."""
    entries = [
        _Entry(li, (_ORDER[c.op], ci), c.op, _line(c, compact=False), _line(c, compact=True))
        for li, layer in enumerate(layers)
        for ci, c in enumerate(layer.changes)
        if c.op in _ORDER
    ]
    return sorted(entries, key=lambda e: (e.layer, e.order))


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _heading(site: str, title: str | None, plan_of_intent: bool) -> list[str]:
    if plan_of_intent:
        lines = [
            f"## {clean_text(title or 'Plan of intent')}: {_code(site)} — plan of intent from the offline plan, "
            "not a diff against the live cloud",
            "",
            "> Computed from two offline plans (the programs under Pulumi's mock runtime). It shows what the "
            "configuration change asks for; the cloud was not consulted, so drift and replacements the "
            "provider decides on its own do not appear. The preview against the live cloud runs before apply.",
        ]
    else:
        lines = [f"## {clean_text(title or 'Pulumi preview')}: {_code(site)}"]
    return [*lines, ""]


def _table(layers: Sequence[LayerChanges]) -> list[str]:
    lines = [
        "| Layer | Create | Update | Replace | Delete | Unchanged |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for layer in layers:
        counts = layer.counts
        name = _cell(_code(layer.layer))
        if layer.errors:
            name += " ❌ failed"
        replace = f"⚠️ **{counts[ChangeOp.REPLACE]:,}**" if counts[ChangeOp.REPLACE] else "0"
        delete = f"🗑️ **{counts[ChangeOp.DELETE]:,}**" if counts[ChangeOp.DELETE] else "0"
        create = counts[ChangeOp.CREATE] + counts[ChangeOp.IMPORT]
        lines.append(
            f"| {name} | {create:,} | {counts[ChangeOp.UPDATE]:,} | {replace} | {delete} | {counts[ChangeOp.SAME]:,} |"
        )
    return [*lines, ""]


def _cost(cost: str | None) -> list[str]:
    # Under the table, in the part of the comment that is never trimmed: the allocation is what a
    # reviewer weighs a size or flavor change against.
    if cost is None:
        return []
    return [f"**Allocation:** {clean_text(cost).replace(chr(10), ' ')}", ""]


def _alerts(layers: Sequence[LayerChanges]) -> list[str]:
    lines = []
    replaces = sum(layer.counts[ChangeOp.REPLACE] for layer in layers)
    deletes = sum(layer.counts[ChangeOp.DELETE] for layer in layers)
    if replaces or deletes:
        parts = [_plural(replaces, "replacement")] if replaces else []
        parts += [_plural(deletes, "deletion")] if deletes else []
        what = " and ".join(parts)
        lines.append(f"> ⚠️ **{what}.** They are listed first in each layer below; read them before merging.")
    for layer in layers:
        if layer.missing:
            gaps = ", ".join(f"{n:,} {op}" for op, n in sorted(layer.missing.items()))
            lines.append(
                f"> ⛔ Layer {_code(layer.layer)} is incomplete: the engine counted {gaps} step(s) that never "
                "arrived as events. Do not trust this summary; rerun the preview."
            )
    if not any(layer.has_changes for layer in layers):
        lines.append("No changes.")
    return [*lines, ""] if lines else []


def _diagnostics(layers: Sequence[LayerChanges]) -> list[str]:
    found = [(layer.layer, d) for layer in layers for d in layer.diagnostics]
    if not found:
        return []
    lines = ["### Errors and warnings", ""]
    for severity, mark in (("error", "❌ **error**"), ("warning", "⚠️ warning")):
        picked = [(name, d) for name, d in found if d.severity == severity]
        for layer_name, diag in picked[:_MAX_DIAGNOSTICS]:
            where = f" · {_code(diag.urn.rsplit('::', 1)[-1])}" if diag.urn else ""
            extra = len([line for line in diag.message.splitlines() if line.strip()]) - 1
            more = f" (+{_plural(extra, 'line')})" if extra > 0 else ""
            lines.append(
                f"- {mark} {_code(layer_name)}{where}: {_code(_short(diag.headline, _MAX_DIAGNOSTIC_CHARS))}{more}"
            )
        if len(picked) > _MAX_DIAGNOSTICS:
            lines.append(f"- … {_plural(len(picked) - _MAX_DIAGNOSTICS, severity)} more in the workflow log")
    return [*lines, ""]


def _details(
    layers: Sequence[LayerChanges], entries: list[_Entry], keep: set[int], *, compact: bool
) -> list[str]:
    lines: list[str] = []
    # Entries are sorted by layer, then by listing order.
    for li, group in groupby(range(len(entries)), key=lambda i: entries[i].layer):
        mine = list(group)
        lines += [f"### {_code(layers[li].layer)}", ""]
        lines += [entries[i].compact if compact else entries[i].full for i in mine if i in keep]
        left_out = Counter(entries[i].op for i in mine if i not in keep)
        if left_out:
            parts = ", ".join(
                f"{n:,} {op.value}" for op, n in sorted(left_out.items(), key=lambda kv: _ORDER[kv[0]])
            )
            lines.append(f"- _… {_plural(left_out.total(), 'more resource')} not listed ({parts})_")
        lines.append("")
    return lines


def render_markdown(
    layers: Sequence[LayerChanges],
    *,
    title: str | None = None,
    site: str,
    plan_of_intent: bool = False,
    cost: str | None = None,
    max_chars: int = DEFAULT_BUDGET,
) -> str:
    """A pull-request comment for `site`'s changes, at most `max_chars` long (as GitHub counts).

    `cost` is the SU/hour change of the site (plan.cost.cost_change's line), shown under the summary
    table and, like it, never trimmed.

    When everything does not fit, per-resource detail goes first (old → new values, long key lists),
    then whole resource lines from the least dangerous up (creates, then updates, ...); the summary table
    and a line saying how much was cut always stay. `plan_of_intent` marks a comparison of two offline
    plans so that no reviewer takes it for a diff against the live cloud.
    """
    head = [
        marker(site),
        *_heading(site, title, plan_of_intent),
        *_table(layers),
        *_cost(cost),
        *_alerts(layers),
    ]
    diagnostics = _diagnostics(layers)
    entries = _entries(layers)
    everything = set(range(len(entries)))

    def compose(keep: set[int], compact: bool, diags: list[str], note: list[str]) -> str:
        lines = [*head, *note, *diags, *_details(layers, entries, keep, compact=compact)]
        return "\n".join(lines).rstrip() + "\n"

    text = compose(everything, False, diagnostics, [])
    if comment_length(text) <= max_chars:
        return text

    def note(kept: int, diags_cut: bool = False) -> list[str]:
        cut = len(entries) - kept
        listed = f"{_plural(cut, 'resource')} of {len(entries):,} not listed; " if cut else ""
        diags = "errors and warnings, " if diags_cut else ""
        return [
            f"> ✂️ Trimmed to stay under GitHub's {COMMENT_LIMIT:,}-character comment limit: {listed}"
            f"{diags}old → new values and long key lists left out. The workflow log has everything.",
            "",
        ]

    # Greedy by priority: the dangerous lines are kept first, and each layer lists them first.
    priority = sorted(everything, key=lambda i: entries[i].order)
    for diags in (diagnostics, []):
        cut_diags = bool(diagnostics) and not diags
        base = comment_length(compose(set(), True, diags, note(0, cut_diags)))
        budget = max_chars - base
        keep: set[int] = set()
        for i in priority:
            length = comment_length(entries[i].compact) + 1
            if length > budget:
                break
            keep.add(i)
            budget -= length
        text = compose(keep, True, diags, note(len(keep), cut_diags))
        # "more resources" lines and the note's numbers change with the selection; shed until it fits.
        while comment_length(text) > max_chars and keep:
            for i in sorted(keep, key=lambda i: entries[i].order)[-max(1, len(keep) // 20) :]:
                keep.discard(i)
            text = compose(keep, True, diags, note(len(keep), cut_diags))
        if comment_length(text) <= max_chars:
            return text
    raise ValueError(f"even the summary of {len(layers)} layers does not fit in {max_chars} characters")
