"""Start and stop an nx-27017 MongoDB wire-protocol server for tests and benchmarks.

``nx-27017 --db memory`` runs on 127.0.0.1 on a free port; :func:`start_nx27017` waits until it
answers ``hello`` and :meth:`MongoServer.stop` sends ``SIGTERM`` to that process's PID (never a
kill by name). When ``MONGODB_URI`` is set, :func:`mongo_uri_from_env` returns it so tests can run
against a real MongoDB instead.

Usage::

    server = start_nx27017(tmp_path)
    try:
        client = AsyncMongoClient(server.uri)
        ...
    finally:
        server.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

__all__ = ["MongoServer", "free_port", "mongo_uri_from_env", "start_nx27017"]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mongo_uri_from_env() -> str | None:
    """The real MongoDB to use instead of nx-27017, from ``MONGODB_URI``."""
    return os.environ.get("MONGODB_URI") or None


def _executable() -> str:
    candidate = Path(sys.executable).parent / "nx-27017"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nx-27017")
    if found is None:
        raise RuntimeError("nx-27017 is not installed (pip install 'nx-27017>=0.8.1,<0.9')")
    return found


@dataclass
class MongoServer:
    """A running nx-27017 process.

    Attributes:
        port: Its port on 127.0.0.1.
        process: The process (its ``pid`` is the one stopped).
        workdir: Where its PID and log files are.
    """

    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def uri(self) -> str:
        """A connection string for PyMongo."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def log_file(self) -> Path:
        """The server's log file."""
        return self.workdir / "nx-27017.log"

    def stop(self, timeout: float = 10.0) -> None:
        """Send SIGTERM to the server's PID and wait for it to exit (SIGKILL after ``timeout``)."""
        if self._stopped:
            return
        self._stopped = True
        proc = self.process
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)


def start_nx27017(
    workdir: str | os.PathLike[str] | None = None, *, timeout: float = 30.0
) -> MongoServer:
    """Start ``nx-27017 --db memory`` on a free loopback port and wait until it answers ``hello``.

    Args:
        workdir: Directory for the PID and log files (a new temporary directory if ``None``).
        timeout: Seconds to wait for ``hello``.

    Raises:
        RuntimeError: nx-27017 is missing, exited, or did not answer in time.
    """
    wd = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="nx27017-"))
    wd.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [
        _executable(),
        "--db",
        "memory",
        "--host",
        "127.0.0.1",
        "-p",
        str(port),
        "--pid-file",
        str(wd / "nx-27017.pid"),
        "--log-file",
        str(wd / "nx-27017.log"),
    ]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    server = MongoServer(port, proc, wd)
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nx-27017 exited with {proc.returncode}; see {server.log_file}")
        client: MongoClient[dict[str, object]] = MongoClient(
            server.uri, serverSelectionTimeoutMS=250, connectTimeoutMS=250
        )
        try:
            if client.admin.command("hello").get("isWritablePrimary"):
                return server
        except PyMongoError as exc:
            last_error = exc
        finally:
            client.close()
        time.sleep(0.05)  # polling interval of a bounded wait for the server's readiness
    server.stop()
    raise RuntimeError(f"nx-27017 did not answer hello within {timeout}s: {last_error}")
