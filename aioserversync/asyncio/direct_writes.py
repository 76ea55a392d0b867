"""``online-write`` updates and removes: sent to the server first, applied locally once accepted.

Each document is written with one mutator call by ``_id`` (Meteor's rule for untrusted callers).
The call's data messages precede its ``updated``, so once they are applied the cache shows the
server's result; the write is applied locally only if the server did not publish it (a
publication that does not include the document, or a server that does not publish at all).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..exceptions import NotConnected, OfflineError, SyncTimeout, WriteOutcomeUnknown
from ..ids import id_stringify
from .state import CollectionState
from .writes import write_local

if TYPE_CHECKING:
    from .sync import ServerSync

__all__ = ["write_direct"]


async def write_direct(
    remote: ServerSync,
    cs: CollectionState,
    op: str,
    ids: list[Any],
    modifier: dict[str, Any] | None,
) -> int:
    """Update or remove ``ids`` on the server, then locally; return how many the server matched.

    Raises:
        OfflineError: The link went down before a call was sent.
        WriteOutcomeUnknown: No answer within ``push_timeout`` (the write may still apply).
        MeteorError: The server refused a write (nothing changed locally for it).
    """
    client = remote.client
    timeout = remote._drainer.push_timeout
    count = 0
    method = cs.policy.method_for(cs.remote, op)  # type: ignore[arg-type]
    for _id in ids:
        wid = id_stringify(_id)
        before = (await cs.store.get_fields(cs.local, [wid])).get(wid)
        params: list[Any] = [{"_id": _id}, modifier, {}] if op == "update" else [{"_id": _id}]
        try:
            result = await client.call(method, *params, timeout=timeout)
        except NotConnected as exc:
            raise OfflineError(f"{op} needs a live connection: {exc}") from exc
        except SyncTimeout as exc:
            # The cache follows the server's data messages, whatever the outcome.
            raise WriteOutcomeUnknown(
                f"{op} of {cs.local}/{wid}: no answer from the server within {timeout:g}s; "
                "it may still apply"
            ) from exc
        matched = result if isinstance(result, int) and not isinstance(result, bool) else 1
        count += matched
        if not matched:
            continue
        await remote._sync_barrier()
        after = (await cs.store.get_fields(cs.local, [wid])).get(wid)
        if after == before:
            selector = {"_id": _id}

            async def apply_locally(selector: dict[str, Any] = selector) -> list[Any]:
                return await write_local(cs, op, selector=selector, modifier=modifier, queue=False)

            await remote._engine.applier.submit(apply_locally)
    return count
