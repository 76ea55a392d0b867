"""Checking a large JSON text without building its Python objects, when simdjson is installed.

A hub's pull page arrives as one JSON text that goes into the store as it is (docs/protocol.md,
3.2). It still has to be proven valid first: the store's readers parse it with orjson, so text
that orjson refuses must never be stored. ``orjson.loads`` builds every object of the page only
to drop them again: about 20 ms for a page of 10,000 documents, a third of an edge's CPU time in
an initial sync through the hub. With the optional ``pysimdjson`` package (``pip install
"aioserversync[fast]"``), simdjson checks the same text in C without creating Python objects, in
about 2 ms.

simdjson is only ever a fast *yes*. It refuses some texts that orjson accepts (integers beyond
64 bits, nesting exactly 1,024 levels deep), so a refusal returns ``None`` and the caller asks
orjson, which stays the judge. Every text simdjson accepts, orjson accepts too;
``tests/test_jsoncheck.py`` checks that on generated and mutated texts.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["available", "object_keys"]

log = logging.getLogger("aioserversync.jsoncheck")

_simdjson: Any
try:
    import simdjson as _simdjson
except ImportError:  # the optional extra is not installed: orjson checks every text
    _simdjson = None


def available() -> bool:
    """Whether the fast check is installed (the ``pysimdjson`` package)."""
    return _simdjson is not None


def object_keys(text: str) -> list[str] | None:
    """The member names of ``text``, if the fast check proves it a valid JSON object.

    A new parser per call: parsers are not thread-safe, and one costs about 0.25 ms for a
    10,000-document page. Listing the names adds about 0.5 ms to the 1.6 ms of the check (a
    pull page's keys are checked with them: :func:`~aioserversync.stores.wireform.revised_keys`).

    Args:
        text: The JSON text.

    Returns:
        The member names in order (a name given twice is listed twice), or ``None`` when the
        fast check is not installed, refuses the text, or finds something other than an object.
        ``None`` says nothing about validity.
    """
    module = _simdjson
    if module is None:
        return None
    try:
        # A str goes in as it is: an ASCII text's own bytes (or the UTF-8 form cached in the
        # str, which the store's binding then reuses), not an encoded copy.
        parsed = module.Parser().parse(text)
        if not isinstance(parsed, module.Object):
            return None
        return list(parsed.keys())
    except Exception as exc:  # refused (ValueError, RuntimeError for depth): orjson decides
        log.debug("simdjson refused a text of %d characters: %s", len(text), exc)
        return None
