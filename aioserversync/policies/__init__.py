"""Sync policies, one class per mode, behind :class:`~.base.SyncPolicy`.

``get_policy("write")`` returns a new :class:`WritePolicy`; ``register_policy`` adds a mode.
"""

from __future__ import annotations

from ..exceptions import ConfigurationError
from .base import SyncPolicy
from .online_write import OnlineWritePolicy
from .read import ReadPolicy
from .write import WritePolicy

__all__ = [
    "OnlineWritePolicy",
    "ReadPolicy",
    "SyncPolicy",
    "WritePolicy",
    "get_policy",
    "register_policy",
]

_REGISTRY: dict[str, type[SyncPolicy]] = {
    "read": ReadPolicy,
    "online-write": OnlineWritePolicy,
    "write": WritePolicy,
}


def register_policy(name: str, cls: type[SyncPolicy]) -> None:
    """Register a policy class under a mode name.

    Raises:
        ConfigurationError: If ``cls`` is not a SyncPolicy subclass.
    """
    if not (isinstance(cls, type) and issubclass(cls, SyncPolicy)):
        raise ConfigurationError("a policy must subclass SyncPolicy")
    _REGISTRY[name] = cls


def get_policy(mode: str) -> SyncPolicy:
    """Return a new policy instance for a mode name.

    Raises:
        ConfigurationError: For an unknown mode.
    """
    try:
        return _REGISTRY[mode]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown mode {mode!r}; use one of: {known}") from None
