"""Wire-form document handling shared by the stores.

Documents travel through :meth:`Store.apply` in EJSON wire form (plain JSON, DDP's ``fields``
without ``_id``). This module owns the operations every backend needs on that form: validating
collection names and ids, serialising fields to JSON text, top-level patching exactly as a DDP
``changed`` does, equality as Meteor's mergebox sees it, and turning a stored row back into a
decoded document with ``_id`` first.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import orjson

from ..ejson import decode_inplace
from ..exceptions import ConfigurationError, EJSONError, StoreError
from ..ids import id_parse
from ..typing import Document, JSONValue, WireFields

__all__ = [
    "OUTBOX_STATES",
    "EncodedFields",
    "check_collection",
    "check_id",
    "check_origin_rev",
    "check_outbox_state",
    "check_stage_docs",
    "dedupe",
    "dump_fields",
    "dump_json",
    "fields_to_doc",
    "index_keys",
    "load_fields",
    "load_json",
    "patch_fields",
    "patch_owned",
    "revised_keys",
    "row_to_doc",
    "split_put_docs",
    "split_rev_key",
    "split_stage_docs",
    "wire_equal",
]

OUTBOX_STATES = frozenset(("pending", "in_flight", "unknown", "failed"))
_DUMP_OPTS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_dumps = orjson.dumps
_new = object.__new__
_SPECIAL_ONE = ("$date", "$InfNaN", "$binary", "$escape")


def check_collection(name: object) -> str:
    """Return ``name`` if it is a usable collection name.

    Any non-empty string without a NUL character is accepted; backends quote it as needed.

    Raises:
        ConfigurationError: For a non-string, empty, or NUL-containing name.
    """
    if type(name) is not str:
        raise ConfigurationError(f"collection name must be a string, got {type(name).__name__}")
    if not name or "\x00" in name:
        raise ConfigurationError(f"invalid collection name {name!r}")
    return name


def check_id(doc_id: object) -> str:
    """Return ``doc_id`` if it is a wire id (a string).

    Raises:
        StoreError: For anything else.
    """
    if type(doc_id) is not str:
        raise StoreError(f"document ids must be wire-id strings, got {type(doc_id).__name__}")
    return doc_id


def check_origin_rev(origin: object, rev: object) -> None:
    """Check the ``origin``/``rev`` of a document operation.

    Raises:
        StoreError: ``origin`` is not a string or ``None``, or ``rev`` not an int or ``None``.
    """
    if origin is not None and type(origin) is not str:
        raise StoreError(f"origin must be a string or None, got {origin!r}")
    if rev is not None and type(rev) is not int:
        raise StoreError(f"rev must be an int or None, got {rev!r}")


def check_outbox_state(state: object) -> None:
    """Check an outbox state.

    Raises:
        StoreError: It is not one of :data:`OUTBOX_STATES`.
    """
    if state not in OUTBOX_STATES:
        raise StoreError(f"invalid outbox state {state!r}")


def dump_json(value: JSONValue) -> str:
    """Serialise plain JSON to text.

    Raises:
        StoreError: If the value is not plain JSON (dates, bytes, sets, non-string keys, …).
    """
    try:
        return orjson.dumps(value, option=_DUMP_OPTS).decode()
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise StoreError(f"value is not plain JSON: {exc}") from exc


class EncodedFields:
    """Wire-form fields serialised to JSON text once, as they are received.

    A :class:`~aioserversync.stores.StagePut` or :class:`~aioserversync.stores.PutDoc` may carry
    these instead of the dict. SQLiteStore and MemoryStore keep documents as JSON text, so
    nothing is lost, and the parsed dict can be freed as soon as the document arrives: holding
    the parsed documents of a whole batch (thousands) until the store ran it made the cyclic
    garbage collector walk them again and again (an initial sync of 100k documents into
    SQLiteStore was measured 25 % faster with the documents encoded on arrival, and 20 % slower
    when the same encoding ran at the start of the store's batch). MongoStore decodes them.

    The text is always written here by orjson from a dict (see :meth:`from_json` for text
    received as such), so it is always a JSON object in one canonical spelling.

    Args:
        fields: The wire-form fields (a dict of plain JSON values).

    Raises:
        StoreError: ``fields`` is not a dict of plain JSON values.
    """

    __slots__ = ("text",)

    def __init__(self, fields: WireFields) -> None:
        if type(fields) is not dict:
            raise StoreError(
                f"fields must be a dict in EJSON wire form, got {type(fields).__name__}"
            )
        try:
            self.text: str = _dumps(fields, option=_DUMP_OPTS).decode()
        except TypeError as exc:  # orjson.JSONEncodeError
            raise StoreError(f"fields are not EJSON wire form (plain JSON): {exc}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> EncodedFields:
        """Encode fields received as JSON text (a hub's pull page in its text form).

        The text is parsed and written again, so a malformed text is refused and the stored text
        has the one spelling every other write gives (duplicate keys, spacing and number forms
        are not carried over). The parsed dict is dropped at once, which is what keeps this cheap
        for the garbage collector (see the class doc).

        Raises:
            StoreError: ``text`` is not JSON text of an object.
        """
        try:
            fields = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"fields are not valid JSON: {exc}") from exc
        if type(fields) is not dict:
            raise StoreError(f"fields must be a JSON object, got {type(fields).__name__}")
        enc = _new(cls)
        enc.text = _dumps(fields).decode()  # parsed JSON is plain JSON: this cannot fail
        return enc

    def decode(self) -> WireFields:
        """Return the fields as a new dict."""
        fields: WireFields = orjson.loads(self.text)
        return fields

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EncodedFields):
            return self.text == other.text
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"EncodedFields({self.text[:200]})"


def dump_fields(fields: object) -> str:
    """Serialise wire-form fields (a dict of plain JSON, or :class:`EncodedFields`) to JSON text.

    Raises:
        StoreError: If ``fields`` is not a dict of plain JSON values.
    """
    if type(fields) is EncodedFields:
        return fields.text
    if type(fields) is not dict:
        raise StoreError(f"fields must be a dict in EJSON wire form, got {type(fields).__name__}")
    try:
        return orjson.dumps(fields, option=_DUMP_OPTS).decode()
    except TypeError as exc:
        raise StoreError(f"fields are not EJSON wire form (plain JSON): {exc}") from exc


def check_stage_docs(docs: object) -> str:
    """Return the text of a ``StageDocs`` if it can be a JSON object (it starts with ``{``).

    Raises:
        StoreError: For anything else.
    """
    if type(docs) is not str or not docs.startswith("{"):
        raise StoreError(f"StageDocs needs the JSON text of an object, got {docs!r:.80}")
    return docs


def split_stage_docs(docs: object, revs: bool = False) -> list[tuple[str, str, int | None]]:
    """The ``(id, fields text, rev)`` entries of a ``StageDocs`` text, each in the usual spelling.

    With ``revs`` each key is ``"<rev>:<id>"`` (see :func:`split_rev_key`); otherwise it is the
    id, and ``rev`` is ``None``. An id given twice keeps its last fields, as a later
    ``StagePut`` replaces an earlier one.

    Raises:
        StoreError: ``docs`` is not the JSON text of an object whose values are objects, or
            with ``revs`` a key is not ``"<rev>:<id>"``.
    """
    try:
        parsed = orjson.loads(check_stage_docs(docs))
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"StageDocs needs a JSON object of wire-form fields: {exc}") from None
    out: list[tuple[str, str, int | None]] = []
    for key, fields in parsed.items():
        if type(fields) is not dict:
            raise StoreError(f"StageDocs: the fields of {key!r} are not an object")
        rev = None
        doc_id = key
        if revs:
            split = split_rev_key(key)
            if split is None:
                raise StoreError(f'StageDocs: {key!r} is not "<rev>:<id>"')
            rev, doc_id = split
        out.append((doc_id, _dumps(fields).decode(), rev))
    return out


def split_rev_key(key: str) -> tuple[int | None, str] | None:
    """``(rev, id)`` of a ``PutDocs`` key ``"<rev>:<id>"``, or ``None`` if it is not one.

    ``rev`` is ``None`` when empty; a key without a colon, or whose revision is not 1-18 ASCII
    digits, is not one.
    """
    rev, colon, doc_id = key.partition(":")
    if not colon:
        return None
    if not rev:
        return None, doc_id
    if not (rev.isascii() and rev.isdigit() and len(rev) < 19):
        return None
    return int(rev), doc_id


_REVISED_KEYS = re.compile(r"[0-9]{1,18}:[^\n]*(?:\n[0-9]{1,18}:[^\n]*)*")


def revised_keys(keys: Collection[str]) -> bool:
    """Whether every key is ``"<rev>:<id>"`` with a revision of 1-18 ASCII digits.

    That is :func:`split_rev_key`'s form with the revision required (a hub's pull page; see
    ``PutDocs.keys_checked``). One regular expression runs over the keys joined by newlines, in
    about 0.1 us per key: each key starts a line, and a line only matches if the key's first
    colon follows 1-18 digits from its start. A key holding a newline itself may be refused
    although it is one (never the reverse); JSON text without backslash escapes cannot hold one.
    """
    return not keys or _REVISED_KEYS.fullmatch("\n".join(keys)) is not None


def split_put_docs(docs: object) -> list[tuple[str, WireFields, int | None]]:
    """The ``(id, fields, rev)`` entries of a ``PutDocs`` text, in order.

    Raises:
        StoreError: ``docs`` is not the JSON text of an object whose keys are ``"<rev>:<id>"``
            (``rev`` decimal digits or empty) and whose values are objects.
    """
    if type(docs) is not str or not docs.startswith("{"):
        raise StoreError(f"PutDocs needs the JSON text of an object, got {docs!r:.80}")
    try:
        parsed = orjson.loads(docs)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"PutDocs needs a JSON object of wire-form fields: {exc}") from None
    out = []
    for key, fields in parsed.items():
        split = split_rev_key(key)
        if split is None:
            raise StoreError(f'PutDocs: {key!r} is not "<rev>:<id>"')
        if type(fields) is not dict:
            raise StoreError(f"PutDocs: the fields of {key!r} are not an object")
        out.append((split[1], fields, split[0]))
    return out


def load_json(text: str | bytes | None) -> JSONValue:
    """Parse JSON text written by :func:`dump_json` (``None`` stays ``None``).

    Raises:
        StoreError: If the stored text is not valid JSON.
    """
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"corrupt JSON in store: {exc}") from exc


def load_fields(text: str | bytes) -> WireFields:
    """Parse stored fields text back to wire form.

    Raises:
        StoreError: If the stored text is not a JSON object.
    """
    value = load_json(text)
    if type(value) is not dict:
        raise StoreError("corrupt document in store: fields are not a JSON object")
    return value


def fields_to_doc(wire_id: str, fields: WireFields) -> Document:
    """Decode wire fields (consuming them) into a document with ``_id`` first.

    Raises:
        StoreError: If the fields do not decode to an object.
    """
    try:
        decoded = decode_inplace(fields)
        doc: Document = {"_id": id_parse(wire_id)}
    except EJSONError as exc:
        raise StoreError(f"corrupt EJSON in stored document {wire_id!r}: {exc}") from exc
    if type(decoded) is not dict:
        raise StoreError(f"corrupt document {wire_id!r}: fields do not decode to an object")
    doc.update(decoded)
    return doc


def row_to_doc(wire_id: str, text: str | bytes) -> Document:
    """Decode a stored ``(id, fields JSON text)`` row into a document with ``_id`` first.

    Raises:
        StoreError: If the row is not valid JSON or EJSON.
    """
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise StoreError(f"corrupt JSON in stored document {wire_id!r}: {exc}") from exc
    return fields_to_doc(wire_id, fields)


def _unwrap(fields: WireFields) -> WireFields:
    # A whole ``fields`` object that looks special travels as {"$escape": {...}} (ddp-facts §6).
    if len(fields) == 1 and "$escape" in fields and type(fields["$escape"]) is dict:
        inner: WireFields = fields["$escape"]
        return inner
    return fields


def _wrap(fields: WireFields) -> WireFields:
    n = len(fields)
    if n == 1:
        for k in _SPECIAL_ONE:
            if k in fields:
                return {"$escape": fields}
    elif n == 2 and (
        ("$regexp" in fields and "$flags" in fields) or ("$type" in fields and "$value" in fields)
    ):
        return {"$escape": fields}
    return fields


def _check_patch_fields(fields: object) -> None:
    if fields is not None and type(fields) is not dict:
        raise StoreError(f"fields must be a dict in EJSON wire form, got {type(fields).__name__}")


def _clear(out: WireFields, cleared: Iterable[str]) -> None:
    if isinstance(cleared, str):
        raise StoreError("cleared must be a sequence of field names, not a string")
    for name in cleared:
        if type(name) is not str:
            raise StoreError(f"cleared field names must be strings, got {name!r}")
        out.pop(name, None)


def fold_patches(current: WireFields | None, patches: Iterable[Any]) -> WireFields:
    """Apply several DDP ``changed`` in order, as repeated :func:`patch_fields` would.

    ``patches`` holds objects with ``fields`` and ``cleared`` (``PatchDoc``). The document is
    copied once, not once per patch. ``current`` is never modified.

    Raises:
        StoreError: As :func:`patch_fields`.
    """
    out: WireFields | None = None if current is None else dict(_unwrap(current))
    for op in patches:
        fields = op.fields
        _check_patch_fields(fields)
        if out is None:
            out = {}  # a missing document is created from the fields; cleared is ignored
        elif op.cleared:
            _clear(out, op.cleared)
        if fields:
            out.update(_unwrap(fields))
    return _wrap(out if out is not None else {})


def patch_fields(
    current: WireFields | None,
    fields: WireFields | None,
    cleared: Iterable[str] | None,
) -> WireFields:
    """Apply a DDP ``changed`` to wire fields: replace or remove top-level fields (no deep merge).

    ``current`` is never modified. A missing document (``None``) is created from ``fields`` and
    ``cleared`` is then ignored (ddp-facts §3.3). A name both set and cleared ends up set.

    Raises:
        StoreError: If ``fields`` is not a dict or ``cleared`` holds a non-string.
    """
    _check_patch_fields(fields)
    if current is None:
        out: WireFields = {}
    else:
        out = dict(_unwrap(current))
        if cleared:
            _clear(out, cleared)
    if fields:
        out.update(_unwrap(fields))
    return _wrap(out)


def patch_owned(
    current: WireFields, fields: WireFields | None, cleared: Iterable[str] | None
) -> WireFields:
    """Like :func:`patch_fields` for an existing document, changing ``current`` in place.

    Only for dicts the caller owns (freshly parsed or built). Returns the patched fields, which
    may be a new dict when the top level needs ``$escape`` handling.

    Raises:
        StoreError: If ``fields`` is not a dict or ``cleared`` holds a non-string.
    """
    if (len(current) == 1 and "$escape" in current) or (
        fields and len(fields) == 1 and "$escape" in fields
    ):
        return patch_fields(current, fields, cleared)
    if cleared:
        _clear(current, cleared)
    _check_patch_fields(fields)
    if fields:
        current.update(fields)
    return _wrap(current) if len(current) <= 2 else current


def wire_equal(a: Any, b: Any) -> bool:
    """Compare two wire values as Meteor's ``EJSON.equals`` does.

    Object key order is ignored; numbers compare by value whether written as ``1`` or ``1.0``;
    booleans never equal numbers.
    """
    ta = type(a)
    tb = type(b)
    if ta is not tb:
        if (ta is int or ta is float) and (tb is int or tb is float):
            return bool(a == b)
        return False
    if ta is dict:
        if len(a) != len(b):
            return False
        return all(k in b and wire_equal(v, b[k]) for k, v in a.items())
    if ta is list:
        if len(a) != len(b):
            return False
        return all(wire_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def dedupe(ids: Sequence[str]) -> list[str]:
    """Return ``ids`` without duplicates, first occurrence kept, each checked as a wire id.

    Raises:
        StoreError: If an id is not a string.
    """
    if isinstance(ids, str):
        raise StoreError("expected a sequence of wire ids, not a string")
    seen: dict[str, None] = {}
    for i in ids:
        seen[check_id(i)] = None
    return list(seen)


def index_keys(keys: Sequence[str | tuple[str, int]]) -> list[tuple[str, int]]:
    """Normalise index keys to ``[(path, 1 | -1), …]``.

    Raises:
        StoreError: If ``keys`` is empty or holds anything but paths and ``(path, ±1)`` pairs.
    """
    if isinstance(keys, str) or not keys:
        raise StoreError("index keys must be a non-empty sequence of paths or (path, direction)")
    out: list[tuple[str, int]] = []
    for key in keys:
        if isinstance(key, tuple):
            if len(key) != 2 or key[1] not in (1, -1) or type(key[1]) is bool:
                raise StoreError(f"invalid index key {key!r}")
            path, direction = key
        else:
            path, direction = key, 1
        if type(path) is not str or not path or "\x00" in path:
            raise StoreError(f"invalid index key {key!r}")
        out.append((path, direction))
    return out
