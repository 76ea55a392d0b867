"""Pulling from a hub (``serversync/pull``): catch-up by checkpoint, and full pulls.

:class:`HubPulls` is the part of :class:`~.hubsync.HubSession` that pulls pages: from a
checkpoint, each page applied with its checkpoint (:mod:`.pulled`); from 0, a full pull, either
straight into a cache that holds nothing of this remote or staged as a resync round with a sweep.
The next page is asked for while one is applied. The later pages of a full pull carry its first
page's purge mark (``full``, docs/protocol.md section 3), and a full pull that a purge overtakes
starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..exceptions import MeteorError, StoreError
from ..stores.base import EncodedFields, Op, StageDelete, StageDocs
from ..stores.fast_ops import stage_put
from .engine import Engine, Round
from .pull_check import PulledPage, take_result
from .pulled import apply_pulled, direct_pull
from .state import CollectionState

__all__ = ["HubPulls"]

_FULL_PULL_TRIES = 3


class HubPulls:
    """Pull methods of a hub session (a mixin of :class:`~.hubsync.HubSession`)."""

    engine: Engine
    max_pull: int
    text_pull: bool
    page_pull: bool
    full_pull: bool
    pulled: int

    if TYPE_CHECKING:

        async def _ask(self, method: str, *params: Any, **options: Any) -> Any: ...

    async def _pull(
        self, cs: CollectionState, since: int, staging: bool, full: int | None
    ) -> dict[str, Any]:
        # The page form where its text goes to the store as it is: pages applied directly, and
        # the pages of a full resync round without a ``query=`` filter (staged as they are).
        params: tuple[Any, ...] = (cs.remote, since, self.max_pull)
        options: dict[str, Any] = {}
        as_text = direct_pull(cs) or (staging and cs.matcher is None)
        if self.page_pull and getattr(cs.store, "reads_page_text", False) and as_text:
            options["page"] = True
        elif self.text_pull:
            options["text"] = True
        if full is not None and since > 0 and self.full_pull:
            options["full"] = full
        if options:
            params += (options,)
        # Unchecked: take_result checks each entry's EJSON (cheaper than a walk of the text form).
        result = await self._ask("serversync/pull", *params, raw_result="unchecked")
        if not isinstance(result, dict) or not isinstance(result.get("docs"), list):
            raise MeteorError(400, f"malformed serversync/pull result for {cs.remote!r}")
        return result

    async def _pull_incremental(self, cs: CollectionState, since: int) -> int:
        """Pull and apply changes after ``since``; return the new checkpoint."""
        engine = self.engine
        return await self._pull_pages(
            cs, since, lambda rows, page: apply_pulled(engine, cs, rows, page)
        )

    async def _pull_pages(
        self,
        cs: CollectionState,
        since: int,
        apply: Callable[[list[Any], PulledPage | None], Awaitable[None]],
        staging: bool = False,
    ) -> int:
        """Pull pages from ``since`` until the hub has no more; return the last checkpoint.

        A pull from 0 is a full pull: its later pages carry the purge mark its first page
        reported (``full``), so that tombstones purged before it started, which it does not
        need, do not expire it (docs/protocol.md, 3).

        The next page is asked for as soon as one arrives (the request goes out once that page
        is checked: sent earlier, the hub, the check and the store shared two cores three ways
        and it was slower), and each page is applied while the next is read: the hub's reads
        and the local store's writes overlap (at most three pages are held).
        """
        engine = self.engine
        applying: asyncio.Future[Any] | None = None
        full: int | None = None
        pulling: asyncio.Future[dict[str, Any]] | None = asyncio.ensure_future(
            self._pull(cs, since, staging, full)
        )
        try:
            while pulling is not None:
                result = await pulling
                pulling = None
                start = since
                if start == 0:
                    purged = result.get("purged")
                    full = purged if type(purged) is int and purged >= 0 else 0
                nxt = result.get("next")
                since = nxt if isinstance(nxt, int) and nxt >= since else since
                if result.get("more"):
                    pulling = asyncio.ensure_future(self._pull(cs, since, staging, full))
                rows, page, n = take_result(cs, result, start, engine.log)
                self.pulled += n
                if applying is not None:
                    await applying
                    applying = None
                if rows or page is not None:
                    applying = asyncio.ensure_future(
                        engine.applier.submit(lambda r=rows, p=page: apply(r, p))  # type: ignore[misc]
                    )
            return since
        finally:
            if pulling is not None:
                pulling.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pulling
            if applying is not None:
                await applying

    async def _pull_full_again(self, cs: CollectionState) -> int:
        """:meth:`_pull_full`, started again (up to 3 times) if a purge on the hub overtakes it.

        A purge during a full pull may drop the tombstone of a document removed after the pull
        read it: the hub then answers 410 and the pull starts over (its staged round with it).
        """
        tries = 1
        while True:
            try:
                return await self._pull_full(cs)
            except MeteorError as exc:
                if exc.error != 410:
                    raise
                if tries >= _FULL_PULL_TRIES:
                    self.engine.log.error(
                        "purges on the hub overtook the full pull of %r %d times: its tombstone "
                        "retention is shorter than a full pull takes",
                        cs.local,
                        tries,
                    )
                    raise
            tries += 1
            self.engine.log.warning(
                "a purge on the hub overtook the full pull of %r; pulling again", cs.local
            )

    async def _pull_full(self, cs: CollectionState) -> int:
        """Pull everything; stage it and commit it as a round with a sweep (see the module doc)."""
        engine = self.engine
        direct = await engine.applier.submit(lambda: self._cache_is_empty(cs))
        if direct:
            cs.checkpoint = 0
            return await self._pull_incremental(cs, 0)
        scope = f"hub:{cs.origin}:{cs.local}"
        await engine.applier.submit(lambda: engine.begin_round([cs], scope))

        store, local = cs.store, cs.local

        def stage(i: str, r: int, f: Any) -> Op:
            # A tombstone unstages its document: one pulled in an earlier page and removed since
            # must not outlive the round (the feed starts after that tombstone). So does a
            # version that no longer passes the ``query=`` filter, unless the document is
            # pending (scope.py).
            if f is None or not (
                cs.matcher is None
                or i in cs.pending
                or cs.wants(i, f.decode() if type(f) is EncodedFields else f)
            ):
                return StageDelete(scope, local, i)
            return stage_put(scope, local, i, f, r)

        async def staged(rows: list[Any], page: PulledPage | None) -> None:
            if page is not None:
                if cs.matcher is None:
                    # The page's text staged as the hub sent it (see _pull: the page form).
                    ops = [StageDocs(scope, local, page.text, revs=True, keys_checked=True)]
                    try:
                        await store.apply(ops + [stage(*row) for row in rows])
                    except StoreError as exc:
                        engine.log.warning(
                            "a pull page for %r was refused (%s); checking each entry",
                            cs.remote,
                            exc,
                        )
                    else:
                        return
                rows = rows + page.rows(cs.remote, engine.log)
            await store.apply([stage(*row) for row in rows])

        since = await self._pull_pages(cs, 0, staged, staging=True)
        rnd = Round({cs}, set(), scope=scope, checkpoints={cs.local: since})
        await engine.applier.submit(lambda: engine.commit_round(rnd))
        return since

    async def _cache_is_empty(self, cs: CollectionState) -> bool:
        if cs.pending:
            return False
        async for _ in cs.store.iter_ids(cs.local, origin=cs.origin, batch_size=1):
            return False
        return True
