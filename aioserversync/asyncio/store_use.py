"""The stores of a ``ServerSync``: opened, and closed by the last remote that uses them.

Several remotes may feed one store object (a shared local collection). A remote closes only the
stores it opened itself; when another open remote still uses such a store, the store passes to
that remote instead and closes with it, so closing one remote never pulls a store from under
another. A store opened by the application is never closed here.
"""

from __future__ import annotations

from typing import Any

from ..stores.base import Store

__all__ = ["acquire_store", "release_stores"]

_USERS: dict[int, list[Any]] = {}
"""The open remotes using each store, by ``id(store)`` (an entry lives while its store is used)."""


async def acquire_store(owner: Any, store: Store, opened: list[Store]) -> None:
    """Record that ``owner`` uses ``store``; open it (into ``opened``) if nobody has."""
    users = _USERS.setdefault(id(store), [])
    if not any(u is owner for u in users):
        users.append(owner)
    if any(s is store for s in opened):
        return
    if not getattr(store, "is_open", False):
        await store.open()
        opened.append(store)


def release_stores(owner: Any, opened: list[Store]) -> list[Store]:
    """``owner`` stops using its stores; return the ones it must close now.

    A store in ``opened`` that another remote still uses moves to that remote's ``_opened``.
    """
    for key in [k for k, users in _USERS.items() if any(u is owner for u in users)]:
        _USERS[key] = [u for u in _USERS[key] if u is not owner]
        if not _USERS[key]:
            del _USERS[key]
    to_close: list[Store] = []
    for store in reversed(opened):
        heirs = _USERS.get(id(store))
        if heirs:
            heirs[0]._opened.append(store)
        else:
            to_close.append(store)
    opened.clear()
    return to_close
