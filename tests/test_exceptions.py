"""The exception tree: its drawing matches the classes, builtin bases, the error-code registry."""

from __future__ import annotations

import builtins
import re

import pytest

from aioserversync import exceptions as exc_mod
from aioserversync.exceptions import (
    ConfigurationError,
    ConnectionClosed,
    ConnectionClosedOK,
    MeteorError,
    MethodError,
    MethodNotFound,
    NotAuthorized,
    RemoteProtocolError,
    ServerErrorMessage,
    ServerSyncError,
    SubscriptionError,
    SubscriptionNotFound,
    VersionMismatch,
    WriteConflict,
    WriteOutcomeUnknown,
    WriteRejected,
    meteor_error_from_wire,
    register_error_code,
)


def _drawn_tree() -> dict[str, tuple[str | None, list[str]]]:
    """Parse the module docstring's tree into {class: (drawn parent, builtin extras)}."""
    doc = exc_mod.__doc__ or ""
    tree: dict[str, tuple[str | None, list[str]]] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        m = re.match(r"^(\s*)((?:[│ ]   )*)(?:[├└]── )?(\w+)(?: \(\+ ([\w, ]+)\))?", line)
        if not m or not m.group(3)[0].isupper() or not hasattr(exc_mod, m.group(3)):
            continue
        depth = len(m.group(2)) // 4 + (1 if ("├" in line or "└" in line) else 0)
        name = m.group(3)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent = stack[-1][1] if stack else None
        extras = [x.strip() for x in m.group(4).split(",")] if m.group(4) else []
        tree[name] = (parent, extras)
        stack.append((depth, name))
    return tree


def test_the_drawing_matches_the_classes() -> None:
    tree = _drawn_tree()
    assert tree["ServerSyncError"] == (None, [])
    assert len(tree) >= 30
    for name, (parent, extras) in tree.items():
        cls = getattr(exc_mod, name)
        if parent is None:
            continue
        assert issubclass(cls, getattr(exc_mod, parent)), (name, parent)
        for builtin in extras:
            assert issubclass(cls, getattr(builtins, builtin)), (name, builtin)


def test_every_public_exception_is_drawn_and_exported() -> None:
    tree = _drawn_tree()
    for name in dir(exc_mod):
        obj = getattr(exc_mod, name)
        if isinstance(obj, type) and issubclass(obj, ServerSyncError):
            assert name in tree, f"{name} missing from the drawing"
            assert name in exc_mod.__all__, f"{name} missing from __all__"


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (exc_mod.EJSONError, ValueError),
        (exc_mod.NotConnected, ConnectionError),
        (exc_mod.OfflineError, ConnectionError),
        (exc_mod.ConfigurationError, ValueError),
        (exc_mod.InvalidState, RuntimeError),
        (exc_mod.ConcurrencyError, RuntimeError),
        (exc_mod.SyncTimeout, TimeoutError),
        (exc_mod.QueryError, ValueError),
        (exc_mod.ModifierError, ValueError),
    ],
)
def test_builtin_bases(cls: type[BaseException], builtin: type[BaseException]) -> None:
    assert issubclass(cls, builtin)
    assert issubclass(cls, ServerSyncError)
    with pytest.raises(builtin):
        raise cls("x")


def test_attributes() -> None:
    assert VersionMismatch("pre2").suggested == "pre2"
    assert "pre2" in str(VersionMismatch("pre2"))
    closed = ConnectionClosedOK("bye", code=1000, reason="done")
    assert (closed.code, closed.reason) == (1000, "done")
    assert isinstance(closed, ConnectionClosed)
    assert RemoteProtocolError("bad", frame=b"{").frame == b"{"
    conflict = WriteConflict(
        "c", local={"a": 1}, base=None, remote={"a": 2}, collection="t", doc_id="x"
    )
    assert (conflict.local, conflict.remote, conflict.collection, conflict.doc_id) == (
        {"a": 1},
        {"a": 2},
        "t",
        "x",
    )
    rejected = WriteRejected("r", cause_error=NotAuthorized(403, "no"), seq=4)
    assert rejected.seq == 4 and isinstance(rejected.cause_error, NotAuthorized)
    assert WriteOutcomeUnknown("u").seq is None


def test_meteor_error_message_and_wire_form() -> None:
    err = MeteorError("not-authorized", "You must log in", {"when": "x"})
    assert err.message == "You must log in [not-authorized]" == str(err)
    assert err.to_wire() == {
        "isClientSafe": True,
        "error": "not-authorized",
        "reason": "You must log in",
        "details": {"when": "x"},
        "message": "You must log in [not-authorized]",
        "errorType": "Meteor.Error",
    }
    bare = MeteorError(500)
    assert bare.message == "[500]"
    assert bare.to_wire() == {
        "isClientSafe": True,
        "error": 500,
        "message": "[500]",
        "errorType": "Meteor.Error",
    }
    assert "MeteorError(500" in repr(bare)
    server = ServerErrorMessage("Bad request", {"msg": "x"})
    assert (server.reason, server.offending_message) == ("Bad request", {"msg": "x"})


@pytest.mark.parametrize(
    ("wire", "context", "cls", "code"),
    [
        ({"error": 404, "reason": "Method 'x' not found"}, "method", MethodNotFound, 404),
        ({"error": 404}, "sub", SubscriptionNotFound, 404),
        ({"error": 403}, "method", NotAuthorized, 403),
        ({"error": 403}, "sub", NotAuthorized, 403),
        ({"error": 404.0}, "method", MethodNotFound, 404),
        ({"error": "too-many-requests"}, "sub", SubscriptionError, "too-many-requests"),
        ({"error": 500, "reason": "Internal server error"}, "method", MethodError, 500),
        ({"reason": "no code"}, "method", MethodError, 500),
        ({"error": True}, "method", MethodError, "True"),
        ({"error": [1]}, "method", MethodError, "[1]"),
        ("not an object", "method", MethodError, 500),
        (None, "sub", SubscriptionError, 500),
    ],
)
def test_meteor_error_from_wire(
    wire: object, context: str, cls: type[MeteorError], code: object
) -> None:
    err = meteor_error_from_wire(wire, context=context)
    assert type(err) is cls
    assert err.error == code


def test_reason_and_details_are_kept() -> None:
    err = meteor_error_from_wire({"error": 409, "reason": 5, "details": {"k": [1]}})
    assert (err.reason, err.details) == ("5", {"k": [1]})


def test_register_error_code_by_number_and_string() -> None:
    class RateLimited(MethodError):
        pass

    class Gone(SubscriptionError):
        pass

    register_error_code("too-many-requests", RateLimited)
    register_error_code(410, Gone, context="sub")
    assert type(meteor_error_from_wire({"error": "too-many-requests"})) is RateLimited
    assert type(meteor_error_from_wire({"error": 410}, context="sub")) is Gone
    assert type(meteor_error_from_wire({"error": 410}, context="method")) is MethodError
    with pytest.raises(ConfigurationError):
        register_error_code(1, ValueError)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        register_error_code(1, RateLimited, context="other")
    # undo, so other tests see the defaults
    exc_mod._METHOD_CODES.pop("too-many-requests")
    exc_mod._SUB_CODES.pop(410)
