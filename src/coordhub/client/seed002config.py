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

__all__ = ["CoordinationConfig", "get_coordination_config", "reset_coordination_config"]

# Seed 002's variables, with the fields they set and their defaults (its README's configuration table and more).
INTEGERS = {"REDIS_PORT": "redis_port", "REDIS_DB": "redis_db", "COORD_MESSAGE_TTL_DAYS": "message_ttl_days",
            "COORD_PRESENCE_TIMEOUT_MINUTES": "presence_timeout_minutes",
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
        ``COORD_TIMELINE_MAX_SIZE``, each unset or empty taking its default.

        Raises :class:`CoordinationError` (code ``invalid``) naming the variable when a number is none (or is
        negative, or over :data:`MAX_SETTING`); seed 002 raised a bare ``ValueError``.
        """
        e = os.environ if environ is None else environ
        numbers: dict[str, int] = {}
        for name, attr in INTEGERS.items():
            text = (e.get(name) or "").strip()
            if not text:
                continue
            # the length first: int() of a string past 4,300 digits raises a bare ValueError
            if not text.isascii() or not text.isdigit() or len(text) > len(str(MAX_SETTING)) or int(text) > MAX_SETTING:
                raise CoordinationError(f"{name} {text[:40]!r} is not a whole number from 0 to {MAX_SETTING}: fix it "
                                        "or unset it (the default is seed 002's)", 400, "invalid")
            numbers[attr] = int(text)
        return cls(redis_host=(e.get("REDIS_HOST") or "").strip() or cls.redis_host,
                   key_prefix=(e.get("COORD_KEY_PREFIX") or "").strip() or cls.key_prefix, **numbers)

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
