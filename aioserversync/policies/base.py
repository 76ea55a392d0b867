"""The small interface every sync policy implements, and the shared default behaviour.

A policy decides, per collection:

* where a local write goes (:meth:`SyncPolicy.route`): only the cache, the durable outbox, or
  straight to the server;
* how a new local write folds into a pending one (:meth:`SyncPolicy.coalesce`);
* what happens to pending writes when the remote's state is known (:meth:`SyncPolicy.reconcile`
  after a resync round, :meth:`SyncPolicy.on_live_change` for a live change), with the conflict
  resolver :meth:`SyncPolicy.resolve` (the remote wins by default);
* how the server's answer to a push is read (:meth:`SyncPolicy.classify_error`,
  :meth:`SyncPolicy.classify_result`).

Policies are pure: they import no I/O and hold no connection. Subclass one to change a rule, for
example :meth:`resolve` for a field-level merge::

    class MergeFields(WritePolicy):
        def resolve(self, local, base, remote):
            if local is None or remote is None:
                return remote
            merged = dict(remote)
            for key, value in local.items():
                if base is None or base.get(key) != value:
                    merged[key] = value          # fields changed only locally survive
            return merged
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, TypeAlias

from ..ejson import decode
from ..exceptions import MeteorError, OfflineError
from ..replication.diff import modifier_for
from ..replication.reconcile import (
    PendingDoc,
    RemoteOp,
    Resolution,
    live_remote_change,
    reconcile_round,
)
from ..typing import WireFields

__all__ = ["ErrorClass", "LocalOp", "Route", "SyncPolicy"]

LocalOp: TypeAlias = Literal["insert", "update", "remove"]
Route: TypeAlias = Literal["local", "queue", "direct"]
ErrorClass: TypeAlias = Literal["settled", "conflict", "reject", "retry"]

_PERMANENT_CODES = frozenset({400, 401, 403, 404, 413, 422, "validation-error", "not-authorized"})
_TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504, "too-many-requests"})


class SyncPolicy:
    """Base class of the sync policies. See the module docstring.

    Attributes:
        name: The mode name this policy implements.
        pushes: Whether local writes are ever sent to the remote.
    """

    name: ClassVar[str] = "base"
    pushes: ClassVar[bool] = True

    # ------------------------------------------------------------------ local writes

    def route(self, op: LocalOp, *, live: bool, unsent_insert: bool = False) -> Route:
        """Decide where a local write goes.

        Args:
            op: The kind of write.
            live: Whether the link is up and the collection's resync round is applied.
            unsent_insert: Whether the document exists only as a local insert not yet sent.

        Raises:
            OfflineError: The write needs a live link and there is none.
        """
        raise NotImplementedError

    def coalesce(self, pending: LocalOp | None, new: LocalOp) -> LocalOp | None:
        """Fold a new local write into the document's pending (unsent) record.

        Args:
            pending: The op of the pending record, or ``None`` if there is none.
            new: The new local write.

        Returns:
            The op the pending record must have now, or ``None`` to drop it (an insert that was
            removed before it was ever sent).
        """
        if pending is None:
            return new
        if pending == "insert":
            return None if new == "remove" else "insert"
        if pending == "remove":
            # Re-created after a local remove: the remote still has the old version.
            return "update" if new == "insert" else "remove"
        return "remove" if new == "remove" else "update"

    # ------------------------------------------------------------------ remote state

    def resolve(
        self, local: WireFields | None, base: WireFields | None, remote: WireFields | None
    ) -> WireFields | None:
        """Return the document to keep when a local change lost against a remote change.

        The default is "the remote wins". Values are EJSON wire form; ``None`` means absent.
        """
        return remote

    def reconcile(self, pending: PendingDoc, remote: WireFields | None) -> Resolution:
        """Decide a pending document after a resync round (see ``replication.reconcile``)."""
        return reconcile_round(pending, remote, resolve=self.resolve)

    def on_live_change(self, pending: PendingDoc, op: RemoteOp) -> Resolution:
        """Decide a live remote change to a document with pending local writes."""
        return live_remote_change(pending, op, resolve=self.resolve)

    # ------------------------------------------------------------------ pushes

    def method_for(self, collection: str, op: LocalOp) -> str:
        """Return the Meteor mutator method for ``op`` on the remote ``collection``."""
        return f"/{collection}/{op}"

    def push_params(
        self, op: LocalOp, doc_id: Any, target: WireFields | None, base: WireFields | None
    ) -> tuple[LocalOp, list[Any]] | None:
        """Return ``(op, params)`` for a stock Meteor mutator, or ``None`` if nothing differs.

        Params hold decoded values. ``None`` means the local state already equals the base.

        Only ``_id`` selectors are used: untrusted callers may use nothing else (ddp-facts §5.4).
        """
        if op == "remove":
            return "remove", [{"_id": doc_id}]
        if target is None:
            return None
        if op == "insert" or base is None:
            return "insert", [{"_id": doc_id, **decode(target)}]
        modifier = modifier_for(base, target)
        if modifier is None:
            return None
        return "update", [{"_id": doc_id}, decode(modifier), {}]

    def classify_error(self, op: LocalOp, error: MeteorError, *, resent: bool) -> ErrorClass:
        """Classify a server error answering a push.

        Args:
            op: The pushed write.
            error: The server's error.
            resent: Whether this write may have been delivered before.

        Returns:
            ``"settled"`` (e.g. 409 duplicate key for an insert: the document exists, as a resent
            insert produces), ``"reject"`` (permanent: dead-letter it), or ``"retry"``.
        """
        code = error.error
        if op == "insert" and code == 409:
            return "settled"
        if code in _TRANSIENT_CODES:
            return "retry"
        if code in _PERMANENT_CODES or isinstance(code, str):
            return "reject"
        return "retry"

    def classify_result(self, op: LocalOp, result: Any) -> ErrorClass:
        """Classify a successful push result.

        An update that matched 0 documents means the remote no longer has the document: a
        conflict the remote wins.
        """
        if op == "update" and result == 0:
            return "conflict"
        return "settled"

    def check_offline(self, op: LocalOp) -> None:
        """Raise the error for a write this policy refuses while offline."""
        raise OfflineError(f"{op} needs a live connection in mode {self.name!r}")
