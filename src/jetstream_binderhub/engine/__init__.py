"""What Pulumi's engine says a preview or update would change, rendered for review and checked for safety.

Pure library: no CLI, no Pulumi CLI. :mod:`.changes` folds engine events into a typed model,
:mod:`.markdown` renders it as a pull-request comment, :mod:`.guard` refuses dangerous applies.
"""

from jetstream_binderhub.engine.changes import (
    ChangeCollector,
    ChangeOp,
    Diagnostic,
    EventStreamError,
    LayerChanges,
    ResourceChange,
    ValueChange,
    changes_from_events,
    read_event_log,
)
from jetstream_binderhub.engine.guard import Danger, GuardRefused, check, find_dangerous
from jetstream_binderhub.engine.markdown import COMMENT_LIMIT, marker, render_markdown

__all__ = [
    "COMMENT_LIMIT",
    "ChangeCollector",
    "ChangeOp",
    "Danger",
    "Diagnostic",
    "EventStreamError",
    "GuardRefused",
    "LayerChanges",
    "ResourceChange",
    "ValueChange",
    "changes_from_events",
    "check",
    "find_dangerous",
    "marker",
    "read_event_log",
    "render_markdown",
]
