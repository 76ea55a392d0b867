"""Checking what a hub's ``serversync/pull`` returns, before the applier applies it.

A result's ``docs`` hold ``[id, rev, fields or None]`` entries: ``fields`` an object (the object
form), a JSON string (the text form) or ``None`` (a tombstone). In the page form the documents
come as one JSON string instead, an object ``"<rev>:<id>"`` -> fields (docs/protocol.md, section
3.2), and ``docs`` holds only tombstones. Malformed entries and entries with invalid EJSON are
logged and left out; a result that is not a pull result at all is a 400 :class:`MeteorError`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from ..ejson import only_int_dates, validate
from ..exceptions import EJSONError, MeteorError, StoreError
from ..jsoncheck import object_keys
from ..stores.base import EncodedFields
from ..stores.wireform import revised_keys, split_rev_key
from .state import CollectionState

__all__ = ["PulledPage", "check_page", "checked_rows", "take_result"]

Log = logging.Logger | logging.LoggerAdapter[Any]


def take_result(
    cs: CollectionState, result: dict[str, Any], since: int, log: Log
) -> tuple[list[list[Any]], PulledPage | None, int]:
    """The checked entries of a pull result, its page if it stays text, and their count.

    Raises:
        MeteorError: A page-form result whose ``page`` is not the JSON text of an object.
    """
    rows = checked_rows(cs, result["docs"], log)
    page = None
    if "page" in result:
        page, more = check_page(result, since, cs.remote, log)
        rows += more
    n = len(rows) + (page.count if page is not None else 0)
    cs.stats.received += n
    return rows, page, n


class PulledPage:
    """The documents of a pull result in the page form, parsed once to check them.

    Its EJSON is plain and every key is ``"<rev>:<id>"`` with a revision (checked by
    :func:`check_page`; the store checks that the values are objects as it writes them).

    Attributes:
        text: The ``page`` string as the hub sent it: a JSON object ``"<rev>:<id>"`` -> fields.
        count: Its entries.
        since: The checkpoint the page was pulled from.
        next: The result's ``next``: the checkpoint after the page.
    """

    __slots__ = ("count", "next", "since", "text")

    def __init__(self, text: str, count: int, since: int, next: int) -> None:
        self.text, self.count, self.since, self.next = text, count, since, next

    def rows(self, remote: str, log: Log) -> list[list[Any]]:
        """The well-formed entries as ``[id, rev, fields]``; the rest logged and left out.

        The page's EJSON was checked with its text (see :func:`check_page`).
        """
        return _entries(orjson.loads(self.text), remote, log, checked=True)


def check_page(
    result: dict[str, Any], since: int, remote: str, log: Log
) -> tuple[PulledPage | None, list[list[Any]]]:
    """Check a page-form result's ``page``: a :class:`PulledPage`, or entries when it needs care.

    The text is parsed (orjson is strict, so SQLite never stores text another reader would
    refuse) and the parsed objects dropped at once; with simdjson installed, a text it accepts
    is not parsed into objects at all (:mod:`aioserversync.jsoncheck`). A page whose text alone
    proves its EJSON plain (:func:`~aioserversync.ejson.only_int_dates`), and whose keys are
    all ``"<rev>:<id>"`` (:func:`~aioserversync.stores.wireform.revised_keys`, one regular
    expression over the names), stays text; the values are checked by the store as it writes
    them. Any other page becomes entries, walked one by one (malformed ones logged and left out).

    Raises:
        MeteorError: ``page`` is not the JSON text of an object (400, a malformed result).
    """
    text = result.get("page")
    nxt = result.get("next")
    try:
        if type(text) is not str or not text.startswith("{") or type(nxt) is not int:
            raise ValueError
        plain = only_int_dates(text)
        keys = object_keys(text) if plain else None  # simdjson, when installed
        if keys is not None and revised_keys(keys):
            return PulledPage(text, len(keys), since, max(nxt, since)), []
        parsed = orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError too
        raise MeteorError(400, f"malformed serversync/pull page for {remote!r}") from None
    if plain and revised_keys(parsed):
        count = len(parsed)
        del parsed
        return PulledPage(text, count, since, max(nxt, since)), []
    return None, _entries(parsed, remote, log, checked=plain)


def _entries(parsed: dict[str, Any], remote: str, log: Log, *, checked: bool) -> list[list[Any]]:
    out: list[list[Any]] = []
    for key, fields in parsed.items():
        split = split_rev_key(key)
        if split is None or split[0] is None or type(fields) is not dict:
            log.warning("ignoring a malformed pull entry %r for %r", key, remote)
            continue
        rev, doc_id = split
        if not checked:
            try:
                validate(fields)
            except EJSONError as exc:
                log.warning("ignoring a pull entry for %r with invalid EJSON: %s", remote, exc)
                continue
        out.append([doc_id, rev, fields])
    return out


def checked_rows(cs: CollectionState, docs: list[Any], log: Log) -> list[list[Any]]:
    """The well-formed ``[id, rev, fields or None]`` entries of a pull page, EJSON checked.

    The page arrives unchecked (see ``HubSession._pull``). Fields sent in the text form become
    :class:`EncodedFields`: each is parsed to check it and the parsed dict is dropped at once,
    so a page is never held as thousands of parsed dicts (which the garbage collector would
    walk again and again while the store writes the page). Their EJSON is checked over the
    whole page's text at once (:func:`only_int_dates`); any other page is walked.
    """
    out: list[list[Any]] = []
    texts: list[str] = []
    from_json = EncodedFields.from_json
    plain = False
    for item in docs:
        if type(item) is list and len(item) == 3:
            doc_id, rev, fields = item
            if type(doc_id) is str and type(rev) is int:
                if type(fields) is str:
                    try:
                        enc = from_json(fields)
                    except StoreError:
                        pass
                    else:
                        item[2] = enc  # the page's own list: no new object per entry
                        out.append(item)
                        texts.append(enc.text)
                        continue
                elif fields is None or type(fields) is dict:
                    plain = plain or fields is not None
                    out.append(item)
                    continue
        log.warning("ignoring a malformed pull entry for %r", cs.remote)
    suspect = False
    if plain:  # the object form (a hub without the text form)
        try:
            # A large list: written out by orjson and searched, in C. Only the object-form
            # fields: text-form entries already hold their EncodedFields.
            validate([row[2] for row in out if type(row[2]) is dict])
        except EJSONError:
            suspect = True
    if texts and not suspect:
        suspect = not only_int_dates("".join(texts))
    if suspect:
        out = [row for row in out if _valid_ejson(cs, row, log)]
    return out


def _valid_ejson(cs: CollectionState, row: list[Any], log: Log) -> bool:
    fields = row[2]
    try:
        if type(fields) is EncodedFields:
            validate(fields.decode())
        elif fields is not None:
            validate(fields)
    except EJSONError as exc:
        log.warning("ignoring a pull entry for %r with invalid EJSON: %s", cs.remote, exc)
        return False
    return True
