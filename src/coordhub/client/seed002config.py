"""Seed 002's ``CoordinationConfig`` on the hub: its settings, read from its environment variables as it read them.

Seed 002 exported ``CoordinationConfig``, ``get_coordination_config`` and
``reset_coordination_config`` from its package, and its client took a config
as its second argument (``CoordinationClient(redis_client, config)``), so
code written for it builds one. On the hub only ``presence_timeout_minutes``
still means something: a client given a config reads presence with it as the
seed's ``get_presence`` did (an instance silent longer is inactive). The Redis
settings and the key prefix say where the data to import is (``coord import
redis`` reads the same variables); the message TTL and the timeline size are
the hub's retention (``retain_messages_hours``, docs/retention.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from coordhub.client.seed002types import CoordinationError
from coordhub.core import seed002env

__all__ = ["CoordinationConfig", "get_coordination_config", "reset_coordination_config"]

# Seed 002's variables other than where its Redis data is (coordhub.core.seed002env reads those, for `coord import
# redis` too), with the fields they set (its README's configuration table and more).
INTEGERS = {"COORD_MESSAGE_TTL_DAYS": "message_ttl_days", "COORD_PRESENCE_TIMEOUT_MINUTES": "presence_timeout_minutes",
            "COORD_TIMELINE_MAX_SIZE": "timeline_max_size"}
MAX_SETTING = 10**9  # no setting of the seed's is larger; a bigger number is a typo, not a setting


@dataclass(frozen=True)
class CoordinationConfig:
    """Seed 002's settings, with its defaults and field names (see the module's docstring for what each does here)."""

    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_db: int = 0
    key_prefix: str = "coord"
    message_ttl_days: int = 30
    presence_timeout_minutes: int = 5
    timeline_max_size: int = 1000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CoordinationConfig:
        """The settings from ``environ`` (default ``os.environ``): ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``,
        ``COORD_KEY_PREFIX``, ``COORD_MESSAGE_TTL_DAYS``, ``COORD_PRESENCE_TIMEOUT_MINUTES``,
        ``COORD_TIMELINE_MAX_SIZE``, each unset or empty taking its default. The Redis settings and the key prefix
        are read as ``coord import redis`` reads them (:mod:`coordhub.core.seed002env`: ``REDIS_PORT`` 1 to 65535,
        a trailing ``:`` of the prefix dropped).

        Raises :class:`CoordinationError` (code ``invalid``) naming the variable when a number is none (or is
        negative, or over :data:`MAX_SETTING`, or no port or database number); seed 002 raised a bare
        ``ValueError``.
        """
        e = os.environ if environ is None else environ
        try:
            numbers = {attr: seed002env.whole_number(e, name, getattr(cls, attr), 0, MAX_SETTING,
                                                     f"a whole number from 0 to {MAX_SETTING}")
                       for name, attr in INTEGERS.items()}
            numbers.update(redis_port=seed002env.redis_port(e), redis_db=seed002env.redis_db(e))
        except ValueError as exc:
            raise CoordinationError(f"{exc}: fix it or unset it (the default is seed 002's)", 400, "invalid") from None
        return cls(redis_host=seed002env.redis_host(e), key_prefix=seed002env.key_prefix(e), **numbers)

    @property
    def message_ttl_seconds(self) -> int:
        """``message_ttl_days`` in seconds."""
        return self.message_ttl_days * 86400


_config: CoordinationConfig | None = None


def get_coordination_config() -> CoordinationConfig:
    """The process's settings, read from the environment on the first call (:meth:`CoordinationConfig.from_env`)."""
    global _config
    if _config is None:
        _config = CoordinationConfig.from_env()
    return _config


def reset_coordination_config() -> None:
    """Forget the settings read, so the next :func:`get_coordination_config` reads the environment again."""
    global _config
    _config = None
