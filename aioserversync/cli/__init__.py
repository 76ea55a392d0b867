"""The ``aioserversync`` command (also ``python -m aioserversync``).

Commands:

* ``hub``: serve collections from a store as a hub (:mod:`aioserversync.hub`).
* ``mirror URL COLLECTION...``: run an edge until SIGINT/SIGTERM (:mod:`.mirror`).
* ``status --store URL``: inspect a local cache without connecting (:mod:`.status`).
* ``demo``: a self-contained tour: a hub, two edges, a network cut and a conflict (:mod:`.demo`).

Exit codes: ``0`` success, ``1`` a runtime failure, ``2`` bad arguments or configuration (one
line on stderr), ``130`` interrupted before a clean shutdown could start.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..exceptions import ConfigurationError, ServerSyncError
from ..version import __version__

__all__ = ["build_parser", "main"]

_MODES = ("read", "online-write", "write")
_STORE_SCHEMES = ("sqlite", "memory", "mongodb", "mongodb+srv")


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _ddp_url(value: str) -> str:
    from ..asyncio.urls import websocket_url

    try:
        websocket_url(value)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _store_url(value: str) -> str:
    scheme, sep, _ = value.partition("://")
    if not sep:
        raise argparse.ArgumentTypeError(
            f"store URL {value!r} has no scheme (use sqlite:///path, memory:// or mongodb://…)"
        )
    if scheme.lower() not in _STORE_SCHEMES:
        raise argparse.ArgumentTypeError(
            f"unknown store URL scheme {scheme!r} in {value!r} "
            f"(use one of: {', '.join(s + '://' for s in _STORE_SCHEMES)})"
        )
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} out of range 0-65535")
    return port


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {value!r}") from None
    if not seconds >= 0:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more, got {value!r}")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``aioserversync`` command."""
    parser = _Parser(
        prog="aioserversync",
        description="Server-to-server syncing of Meteor DDP collections into a local store.",
    )
    parser.add_argument("--version", action="version", version=f"aioserversync {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    hub = sub.add_parser("hub", help="serve collections from a store as a hub")
    hub.add_argument("--store", type=_store_url, required=True, help="the hub's store URL")
    hub.add_argument(
        "--collection", action="append", required=True, dest="collections",
        metavar="NAME", help="a collection to serve (repeat for more)",
    )  # fmt: skip
    hub.add_argument("--host", default="127.0.0.1", help="address to listen on")
    hub.add_argument("--port", type=_port, default=3000, help="port to listen on (0: any free)")
    hub.add_argument("--tls-cert", metavar="FILE", help="TLS certificate chain (PEM)")
    hub.add_argument("--tls-key", metavar="FILE", help="TLS private key (PEM)")
    hub.add_argument(
        "--tokens", metavar="FILE", help="JSON file mapping resume tokens to identities"
    )
    hub.add_argument(
        "--allow-anonymous", action="store_true", help="let callers without a token read and write"
    )
    hub.add_argument(
        "--insecure-bind", action="store_true",
        help="allow a non-loopback --host without --tokens",
    )  # fmt: skip
    hub.add_argument("--json", action="store_true", help="print one JSON object per event")
    hub.set_defaults(run=_run_hub)

    mirror = sub.add_parser("mirror", help="sync collections from a remote until interrupted")
    mirror.add_argument("url", type=_ddp_url, help="the remote: http(s)://host:port or ws(s)://…")
    mirror.add_argument("collections", nargs="+", metavar="COLLECTION")
    mirror.add_argument("--mode", choices=_MODES, default="online-write")
    mirror.add_argument(
        "--store", type=_store_url, default="sqlite:///aioserversync.sqlite3",
        help="local store URL (default: sqlite:///aioserversync.sqlite3)",
    )  # fmt: skip
    mirror.add_argument("--token", help="resume token to log in with")
    mirror.add_argument("--name", help="origin key for this remote (default: the URL)")
    mirror.add_argument("--json", action="store_true", help="print one JSON object per event")
    mirror.add_argument("--metrics-port", type=_port, help="serve Prometheus metrics on this port")
    mirror.add_argument("--metrics-host", default="127.0.0.1", help="address for metrics")
    mirror.add_argument(
        "--drain-timeout", type=_seconds, default=5.0,
        help="seconds to wait for queued writes on shutdown (default 5)",
    )  # fmt: skip
    mirror.add_argument(
        "--resync", action="store_true",
        help="resync every collection in full at start (a hub: instead of from its checkpoint)",
    )  # fmt: skip
    mirror.set_defaults(run=_run_mirror)

    status = sub.add_parser("status", help="inspect a local cache without connecting")
    status.add_argument("--store", type=_store_url, required=True, help="the store URL")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(run=_run_status)

    demo = sub.add_parser("demo", help="a hub, two edges, a network cut and a conflict")
    demo.add_argument("--json", action="store_true", help="print one JSON object per step")
    demo.add_argument(
        "--timeout", type=_seconds, default=45.0, help="give up after this many seconds"
    )
    demo.set_defaults(run=_run_demo)
    return parser


def _run_hub(args: argparse.Namespace) -> int:
    from .hub import HubOptions, run_hub
    from .output import make_output

    opts = HubOptions(
        store=args.store,
        collections=args.collections,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tokens=args.tokens,
        allow_anonymous=args.allow_anonymous,
        insecure_bind=args.insecure_bind,
    )
    out = make_output(json=args.json, live=False)
    try:
        return asyncio.run(run_hub(opts, out))
    finally:
        out.close()


def _run_mirror(args: argparse.Namespace) -> int:
    from .mirror import MirrorOptions, run_mirror
    from .output import make_output

    opts = MirrorOptions(
        url=args.url,
        collections=args.collections,
        mode=args.mode,
        store=args.store,
        token=args.token,
        name=args.name,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        drain_timeout=args.drain_timeout,
        resync=args.resync,
    )
    out = make_output(json=args.json)
    try:
        return asyncio.run(run_mirror(opts, out))
    finally:
        out.close()


def _run_status(args: argparse.Namespace) -> int:
    from .status import run_status

    return asyncio.run(run_status(args.store, json=args.json, stream=sys.stdout))


def _run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return asyncio.run(run_demo(json=args.json, timeout=args.timeout, stream=sys.stdout))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (the console script exits with it)."""
    from .runtime import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    run: Any = args.run
    try:
        return int(run(args))
    except ConfigurationError as exc:
        sys.stderr.write(f"aioserversync: error: {_one_line(str(exc))}\n")
        return 2
    except ServerSyncError as exc:
        sys.stderr.write(f"aioserversync: {type(exc).__name__}: {_one_line(str(exc))}\n")
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.stderr.write("aioserversync: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``… | head``): nothing more to say.
        return 0
