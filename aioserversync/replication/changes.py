"""Change events: what a synced collection tells its listeners after the store has changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from ..exceptions import WriteConflict, WriteError

__all__ = ["ChangeEvent", "ChangeOp", "ChangeSource"]

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
