"""The pull-request comment, with this tool's notes (skipped layers, planning fallbacks) after the
engine renderer's output; the notes' room comes out of the renderer's budget so the whole comment
stays under GitHub's limit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jetstream_binderhub.engine.changes import LayerChanges, clean_text
from jetstream_binderhub.engine.markdown import DEFAULT_BUDGET, comment_length, render_markdown

MAX_NOTES = 20
MAX_NOTE_CHARS = 500


def render_comment(
    layers: Sequence[LayerChanges],
    *,
    site: str,
    title: str | None = None,
    plan_of_intent: bool = False,
    notes: Sequence[str] = (),
    cost: str | None = None,
    max_chars: int = DEFAULT_BUDGET,
) -> str:
    tail = ""
    if notes:
        lines = [f"- {clean_text(n).replace(chr(10), ' ')[:MAX_NOTE_CHARS]}" for n in notes[:MAX_NOTES]]
        tail = "\n**Notes**\n\n" + "\n".join(lines) + "\n"
    body = render_markdown(
        layers,
        site=site,
        title=title,
        plan_of_intent=plan_of_intent,
        cost=cost,
        max_chars=max_chars - comment_length(tail),
    )
    return body + tail


def write_comment(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
