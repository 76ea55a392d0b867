"""Change events: what a synced collection tells its listeners after the store has changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..exceptions import WriteConflict, WriteError

__all__ = ["ChangeEvent", "ChangeOp", "ChangeSource", "remote_event"]

ChangeOp: TypeAlias = Literal["added", "changed", "removed", "resync", "conflict", "rejected"]
ChangeSource: TypeAlias = Literal["remote", "local"]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One change to a local collection, emitted after it was committed to the store.

    Attributes:
        op: ``added``, ``changed`` or ``removed`` for document changes; ``resync`` when many
            documents changed at once (after a resync round, or when a listener fell behind and
            its backlog was dropped): re-read the collection; ``conflict`` when a local change lost
            against the remote; ``rejected`` when the server refused a queued local write for good.
        collection: The local collection name.
        id: The document ``_id`` (parsed), ``None`` for ``resync``.
        fields: For ``added`` the whole document without ``_id``; for ``changed`` the top-level
            fields that changed (decoded values); ``None`` otherwise.
        cleared: Top-level fields removed by a ``changed``.
        origin: The remote the change came from (or is for), ``None`` for local-only documents.
        source: ``"remote"`` if the change came from the server, ``"local"`` if from this process.
        error: For ``conflict`` a :class:`~aioserversync.exceptions.WriteConflict` (with the
            discarded local document, its base and the winning remote document); for ``rejected``
            a :class:`~aioserversync.exceptions.WriteRejected`.
    """

    op: ChangeOp
    collection: str
    id: Any = None
    fields: dict[str, Any] | None = None
    cleared: tuple[str, ...] = ()
    origin: str | None = None
    source: ChangeSource = "remote"
    error: WriteError | None = field(default=None, compare=False)

    @property
    def conflict(self) -> WriteConflict | None:
        """The conflict details of a ``conflict`` event, else ``None``."""
        return self.error if isinstance(self.error, WriteConflict) else None


_SETTERS = tuple(
    ChangeEvent.__dict__[f].__set__
    for f in ("op", "collection", "id", "fields", "cleared", "origin", "source", "error")
)


def remote_event(
    op: ChangeOp,
    collection: str,
    id: Any,
    fields: dict[str, Any] | None,
    cleared: tuple[str, ...],
    origin: str | None,
) -> ChangeEvent:
    """``ChangeEvent(op, collection, id, fields, cleared, origin=origin)`` of a remote change.

    Built by filling the slots directly: a frozen dataclass's ``__init__`` costs about 2 us, and
    live changes with a listener build one event per change.
    """
    ev = object.__new__(ChangeEvent)
    s_op, s_coll, s_id, s_fields, s_cleared, s_origin, s_source, s_error = _SETTERS
    s_op(ev, op)
    s_coll(ev, collection)
    s_id(ev, id)
    s_fields(ev, fields)
    s_cleared(ev, cleared)
    s_origin(ev, origin)
    s_source(ev, "remote")
    s_error(ev, None)
    return ev
