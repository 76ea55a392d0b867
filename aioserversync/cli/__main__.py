"""``python -m aioserversync.cli``: the same as ``python -m aioserversync``."""

from . import main

raise SystemExit(main())
