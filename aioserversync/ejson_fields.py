r"""Fast decoding (or checking) of the ``fields`` of DDP data messages, helped by the raw frame.

Walking every value of every document to find the few EJSON special objects is most of the cost
of receiving data. :class:`FieldsCodec` avoids the walk when the frame text proves it needless:

* every special object has a key that starts with ``$``, written literally unless the text holds
  a backslash escape; so a frame without ``$`` and without ``\`` holds no special object;
* documents of one collection mostly share a shape, and the usual special is a top-level date
  (``"createdAt": {"$date": ...}``), or one a level down (the hub's change feed carries the
  document under ``d``). The codec remembers, per collection, the top-level keys and key pairs
  where it last found dates. When the frame has no backslash and its number of ``$`` equals the
  number of ``{"$date": ...}`` objects found at those keys, those dates account for every ``$``
  in the frame, so nothing else can be special: they are converted (or checked) and the rest of
  the document is not visited.

Anything else falls back to the full walk (:func:`aioserversync.ejson.decode_fields` or
:func:`aioserversync.ejson.validate`), which also refreshes the remembered keys. Results are the
same as the full walk's in every case; only the time differs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from .ejson import _decode_date, decode_fields, validate
from .ejson_types import _FAST_MS_LIMIT, DATE_MAX_MS, DATE_MIN_MS, _fromtimestamp

__all__ = ["FieldsCodec"]

_MAX_KEYS = 8
_MAX_COLLECTIONS = 1024


class FieldsCodec:
    """Decodes (or only checks) data-message ``fields``, using the frame text as a hint.

    Args:
        decode: Decode to Python values; ``False`` only checks the EJSON wire form.
    """

    __slots__ = ("_dates", "decode")

    def __init__(self, *, decode: bool) -> None:
        self.decode = decode
        self._dates: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {}

    def process(
        self, collection: str, fields: dict[str, Any], source: str | bytes
    ) -> dict[str, Any]:
        """Decode or check ``fields`` (parsed from ``source``, the whole frame) in place.

        Returns:
            The decoded fields (use it: an escaped top level gives a new dict).

        Raises:
            EJSONError: If a special object is malformed.
        """
        if isinstance(source, str):
            if "\\" in source:
                return self._walk(collection, fields)
            markers = source.count("$")
        else:
            if source.find(b"\\") != -1:
                return self._walk(collection, fields)
            markers = source.count(b"$")
        if markers == 0:
            return fields
        learned = self._dates.get(collection)
        if learned is not None:
            keys, pairs = learned
            if markers <= len(keys) + len(pairs):
                found = 0
                decode = self.decode
                for key in keys:
                    x = fields.get(key)
                    if type(x) is dict and len(x) == 1 and "$date" in x:
                        v = x["$date"]
                        if decode:
                            if type(v) is int and 0 <= v < _FAST_MS_LIMIT:
                                fields[key] = _fromtimestamp(v / 1000, UTC)
                            else:
                                fields[key] = _decode_date(v)
                        elif type(v) is not int or not DATE_MIN_MS <= v <= DATE_MAX_MS:
                            continue  # the walk decides
                        found += 1
                for outer, key in pairs:
                    parent = fields.get(outer)
                    if type(parent) is not dict:
                        continue
                    x = parent.get(key)
                    if type(x) is dict and len(x) == 1 and "$date" in x:
                        v = x["$date"]
                        if decode:
                            if type(v) is int and 0 <= v < _FAST_MS_LIMIT:
                                parent[key] = _fromtimestamp(v / 1000, UTC)
                            else:
                                parent[key] = _decode_date(v)
                        elif type(v) is not int or not DATE_MIN_MS <= v <= DATE_MAX_MS:
                            continue  # the walk decides
                        found += 1
                if found == markers:
                    return fields
        return self._walk(collection, fields)

    def _walk(self, collection: str, fields: dict[str, Any]) -> dict[str, Any]:
        if self.decode:
            fields = decode_fields(fields)
        else:
            validate(fields)
        keys: list[str] = []
        pairs: list[tuple[str, str]] = []
        for k, v in fields.items():
            if self._is_date(v):
                keys.append(k)
            elif type(v) is dict:
                pairs.extend((k, k2) for k2, v2 in v.items() if self._is_date(v2))
        if keys or pairs:
            if collection not in self._dates and len(self._dates) >= _MAX_COLLECTIONS:
                self._dates.clear()
            self._dates[collection] = (tuple(keys[:_MAX_KEYS]), tuple(pairs[:_MAX_KEYS]))
        return fields

    def _is_date(self, v: Any) -> bool:
        if self.decode:
            return type(v) is datetime
        return type(v) is dict and len(v) == 1 and type(v.get("$date")) is int
