"""``python -m aioserversync``: the command-line interface (see :mod:`aioserversync.cli`)."""

from .cli import main

raise SystemExit(main())
