"""Where seed 002's data is: its Redis server and key prefix, read from its environment variables.

Seed 002 read ``REDIS_HOST`` (``localhost``), ``REDIS_PORT`` (6379),
``REDIS_DB`` (0) and ``COORD_KEY_PREFIX`` (``coord``; its keys are
``<prefix>:msg:<id>``, ``<prefix>:timeline`` …), per its README's configuration
table. ``coord import redis`` (:mod:`coordhub.importers.redis`) and the Python
API's ``CoordinationConfig.from_env`` (:mod:`coordhub.client.seed002config`)
read them through these functions, so a value one takes the other takes too.

Each takes the environment as a mapping; a variable unset, empty or blank
takes the seed's default. Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_DB = 0
DEFAULT_PREFIX = "coord"
MAX_PORT = 65535  # TCP's
MAX_DB = 2**31 - 1  # Redis's SELECT takes a C int


def redis_host(env: Mapping[str, str]) -> str:
    """``REDIS_HOST`` without surrounding blanks, else ``localhost``."""
    return (env.get("REDIS_HOST") or "").strip() or DEFAULT_HOST


def redis_port(env: Mapping[str, str]) -> int:
    """``REDIS_PORT``, 1 to 65535, else 6379. ``ValueError`` naming the variable and its value for anything else
    (seed 002's ``int()`` of it failed on a non-number; a URL built from a larger one reads another port)."""
    return whole_number(env, "REDIS_PORT", DEFAULT_PORT, 1, MAX_PORT, f"a port (1 to {MAX_PORT})")


def redis_db(env: Mapping[str, str]) -> int:
    """``REDIS_DB``, 0 to :data:`MAX_DB`, else 0. ``ValueError`` naming the variable and its value for anything
    else (redis-py reads database 0 from a URL whose database it cannot read, without a word)."""
    return whole_number(env, "REDIS_DB", DEFAULT_DB, 0, MAX_DB, "a database number (0, 1, …)")


def key_prefix(env: Mapping[str, str]) -> str:
    """``COORD_KEY_PREFIX`` without surrounding blanks or trailing ``:`` (the seed puts the ``:`` between prefix
    and key itself: ``coord:`` means the keys ``coord:msg:…``), else ``coord``."""
    return (env.get("COORD_KEY_PREFIX") or "").strip().rstrip(":") or DEFAULT_PREFIX


def whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int, what: str) -> int:
    """The whole number (ASCII digits, blanks around them) ``env[name]`` holds, ``low`` to ``high``; ``default``
    when unset, empty or blank. ``ValueError`` "``NAME 'value' is not <what>``" for anything else: a sign, a
    fraction, another script's digits, a number out of range (seed 002's other numeric settings are read so too,
    by ``CoordinationConfig.from_env``)."""
    text = (env.get(name) or "").strip()
    if not text:
        return default
    # the length first: int() of a string past 4,300 digits raises a ValueError naming neither variable nor value
    if not text.isascii() or not text.isdigit() or len(text) > len(str(high)) or not low <= int(text) <= high:
        raise ValueError(f"{name} {text[:80]!r} is not {what}")
    return int(text)
