"""``serversync/push``: compare-and-set writes with exactly-once mutation ids (docs/protocol.md §5).

A push is one transaction. Under the collection's lock the hub reads the mutation records of the
push's mutation ids, and the current fields and revisions of its documents, then walks the
changes in order:

* a mutation id already recorded is not applied again: its stored result is returned (for a
  recorded conflict, the document's *current* revision and fields, which is what the client needs
  to resolve it); a mutation id repeated within one push gets the first one's result;
* a change whose fields are invalid (a name that is empty, starts with ``$``, holds a ``.``, or an
  ``_id`` other than the change's id) is ``rejected`` with 400; one the write rule refuses is
  ``rejected`` with 403;
* insert is accepted if the document does not exist (a tombstone does not count); update and
  remove if it exists at revision ``base``. Changes of one push to the same document form a
  chain: after an accepted change, a later one whose ``base`` is the revision the document had
  before the push is accepted too (an edge sends every pending change of a document with the
  revision of its first one);
* everything else is a ``conflict`` carrying the document's current revision and fields (both
  ``null`` when it does not exist).

Every outcome is recorded under its mutation id in the same batch as the accepted changes, the
new counter, and the revisions; then the changes are published (feed entries carry ``m``).

The method is registered with ``raw_params``: the DDP layer validates the changes' EJSON but does
not decode it, so documents are stored in the wire form they came in, with no decode/encode
round trip.
"""

from __future__ import annotations

from typing import Any

from .. import ejson
from ..exceptions import EJSONError, MeteorError
from ..ids import id_parse, id_stringify
from ..typing import WireFields
from .collection import Commit, HubCollection

__all__ = ["MAX_PUSH", "PushChange", "parse_changes", "push"]

MAX_PUSH = 10000
"""Most changes accepted in one push call."""

_OPS = frozenset({"insert", "update", "remove"})


def _bad(reason: str) -> MeteorError:
    return MeteorError(400, reason)


class PushChange:
    """One validated change of a push.

    Attributes:
        mid: The client's mutation id.
        op: ``"insert"``, ``"update"`` or ``"remove"``.
        id: The wire id.
        base: The revision the change was made against (``None`` for an insert).
        doc: Insert: the fields (wire form).
        set: Update: the top-level fields to replace (wire form).
        unset: Update: the top-level field names to remove.
        invalid: Why the change must be rejected with 400, if it must.
    """

    __slots__ = ("base", "doc", "id", "invalid", "mid", "op", "set", "unset")

    def __init__(self, mid: str, op: str, id: str, base: int | None) -> None:
        self.mid = mid
        self.op = op
        self.id = id
        self.base = base
        self.doc: WireFields | None = None
        self.set: WireFields | None = None
        self.unset: list[str] = []
        self.invalid: str | None = None


def _bad_name(name: Any) -> bool:
    return not isinstance(name, str) or not name or name[0] == "$" or "." in name


def _same_id(value: Any, wid: str) -> bool:
    try:
        return id_stringify(ejson.decode(value)) == wid
    except EJSONError:
        return False


def _fields(ch: PushChange, value: Any, what: str) -> WireFields | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"change {ch.mid!r}: {what} must be an object")
    out = value
    for key in value:
        if key[:1] == "$" or "." in key or not key or key == "_id":
            out = {}
            break
    if out is not value:  # rare: an _id or an invalid name to look at
        for key, v in value.items():
            if key == "_id":
                if ch.op == "insert" and _same_id(v, ch.id):
                    continue
                ch.invalid = "A change may not set _id"
            elif _bad_name(key):
                ch.invalid = f"Invalid field name {key!r}"
            else:
                out[key] = v
    return out


def parse_changes(changes: Any) -> list[PushChange]:
    """Validate a push's ``changes`` parameter (in EJSON wire form, as stored).

    Raises:
        MeteorError: 400 when the call is malformed as a whole.
    """
    if not isinstance(changes, list):
        raise _bad("changes must be a list")
    if len(changes) > MAX_PUSH:
        raise _bad(f"at most {MAX_PUSH} changes per push")
    out: list[PushChange] = []
    for raw in changes:
        if not isinstance(raw, dict):
            raise _bad("each change must be an object")
        mid, op, wid, base = raw.get("mid"), raw.get("op"), raw.get("id"), raw.get("base")
        if not isinstance(mid, str) or not mid or len(mid) > 128:
            raise _bad("each change needs a mutation id 'mid' (a non-empty string)")
        if op not in _OPS:
            raise _bad(f"change {mid!r}: op must be 'insert', 'update' or 'remove'")
        if not isinstance(wid, str):
            raise _bad(f"change {mid!r}: id must be a wire id string")
        try:
            id_parse(wid)
        except EJSONError:
            raise _bad(f"change {mid!r}: invalid id {wid!r}") from None
        if base is not None and (not isinstance(base, int) or isinstance(base, bool) or base < 0):
            raise _bad(f"change {mid!r}: base must be a revision or null")
        ch = PushChange(mid, op, wid, base)
        if op == "insert":
            ch.doc = _fields(ch, raw.get("doc"), "doc")
            if ch.doc is None:
                raise _bad(f"change {mid!r}: an insert needs 'doc'")
        elif op == "update":
            ch.set = _fields(ch, raw.get("set"), "set")
            unset = raw.get("unset")
            if unset is not None:
                if not isinstance(unset, list) or not all(isinstance(k, str) for k in unset):
                    raise _bad(f"change {mid!r}: unset must be a list of field names")
                if any(k == "_id" or _bad_name(k) for k in unset):
                    ch.invalid = "Invalid field name in unset"
                ch.unset = unset
        out.append(ch)
    return out


def _conflict(mid: str, state: tuple[WireFields | None, int | None]) -> dict[str, Any]:
    fields, rev = state
    return {
        "mid": mid,
        "status": "conflict",
        "rev": rev if fields is not None else None,
        "doc": fields,
    }


def _rejected(mid: str, code: int, reason: str) -> tuple[dict[str, Any], WireFields]:
    error = {"error": code, "reason": reason}
    return {"mid": mid, "status": "rejected", "error": error}, {"s": "rejected", "e": error}


def _decoded(wid: str, fields: WireFields | None) -> dict[str, Any] | None:
    if fields is None:
        return None
    return {"_id": id_parse(wid), **ejson.decode(fields)}


async def push(coll: HubCollection, identity: Any, changes: Any) -> list[dict[str, Any]]:
    """Apply a push; return its result list (wire form). See the module docstring.

    Raises:
        MeteorError: 400 for a malformed call.
    """
    parsed = parse_changes(changes)
    if not parsed:
        return []
    store = coll.hub.store
    perms = coll.permissions
    name = coll.name

    async def decide(commit: Commit) -> list[dict[str, Any]]:
        mids = list(dict.fromkeys(ch.mid for ch in parsed))
        ids = list(dict.fromkeys(ch.id for ch in parsed))
        recorded = await store.get_fields(coll.side, mids)
        current = await store.get_fields(name, ids)
        metas = await store.get_meta_many(name, list(current)) if current else {}
        state: dict[str, tuple[WireFields | None, int | None]] = {}
        for wid in ids:
            fields = current.get(wid)
            meta = metas.get(wid)
            state[wid] = (fields, meta.rev if fields is not None and meta is not None else None)
        before = {wid: st[1] for wid, st in state.items()}
        chained: set[str] = set()
        seen: dict[str, dict[str, Any]] = {}
        results: list[dict[str, Any]] = []
        for ch in parsed:
            entry = seen.get(ch.mid)
            if entry is None:
                rec = recorded.get(ch.mid)
                if rec is not None:
                    entry = _replay(ch, rec, state[ch.id])
                else:
                    entry = await _apply(ch, commit, state, before, chained)
                seen[ch.mid] = entry
            results.append(entry)
        return results

    async def _apply(
        ch: PushChange,
        commit: Commit,
        state: dict[str, tuple[WireFields | None, int | None]],
        before: dict[str, int | None],
        chained: set[str],
    ) -> dict[str, Any]:
        if ch.invalid is not None:
            entry, record = _rejected(ch.mid, 400, ch.invalid)
            commit.record(ch.mid, record)
            return entry
        cur, rev = state[ch.id]
        if ch.op == "insert":
            ok = cur is None
        else:
            ok = cur is not None and (
                ch.base == rev or (ch.id in chained and ch.base == before[ch.id])
            )
        if not ok:
            commit.record(ch.mid, {"s": "conflict"})
            return _conflict(ch.mid, state[ch.id])
        new: WireFields | None
        if ch.op == "insert":
            new = ch.doc
        elif ch.op == "update":
            assert cur is not None
            new = dict(cur)
            if ch.set:
                new.update(ch.set)
            for key in ch.unset:
                new.pop(key, None)
        else:
            new = None
        if perms.write is not None or not perms.admitted(identity):
            doc = _decoded(ch.id, new if new is not None else cur)
            if not await perms.may_write(identity, name, ch.op, id_parse(ch.id), doc):
                entry, record = _rejected(ch.mid, 403, "Access denied")
                commit.record(ch.mid, record)
                return entry
        if new is None:
            r = commit.remove(ch.id, mid=ch.mid)
            state[ch.id] = (None, None)
        else:
            r = commit.put(ch.id, new, prev=cur, mid=ch.mid)
            state[ch.id] = (new, r)
        chained.add(ch.id)
        commit.record(ch.mid, {"s": "accepted", "v": r})
        return {"mid": ch.mid, "status": "accepted", "rev": r}

    return await coll.write(decide)


def _replay(
    ch: PushChange, record: WireFields, state: tuple[WireFields | None, int | None]
) -> dict[str, Any]:
    status = record.get("s")
    if status == "accepted":
        return {"mid": ch.mid, "status": "accepted", "rev": record.get("v")}
    if status == "rejected":
        return {"mid": ch.mid, "status": "rejected", "error": record.get("e")}
    return _conflict(ch.mid, state)
