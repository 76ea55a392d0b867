"""aioserversync: asyncio server-to-server syncing of Meteor DDP collections."""

from .version import __version__

__all__ = ["__version__"]
