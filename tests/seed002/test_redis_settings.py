"""Seed 002's Redis variables read one way by both that read them: ``CoordinationConfig.from_env`` and
``coord import redis`` (coordhub.core.seed002env).

Each had its own rule: ``REDIS_PORT=70000`` made a config (port 70000) and was refused by the importer, and
``COORD_KEY_PREFIX=coord:`` was ``coord:`` in the one and ``coord`` in the other, so a config said the data was
somewhere the import did not read.
"""

from __future__ import annotations

import pytest

from coordhub.client.seed002 import CoordinationConfig, CoordinationError
from coordhub.importers.redis import key_prefix, redis_url

REFUSED = [("REDIS_PORT", "70000"), ("REDIS_PORT", "0"), ("REDIS_PORT", "abc"), ("REDIS_PORT", "-1"),
           ("REDIS_PORT", "６３７９"), ("REDIS_DB", "x"), ("REDIS_DB", "-1"), ("REDIS_DB", "9" * 5000)]


@pytest.mark.parametrize(("name", "value"), REFUSED)
def test_a_value_one_refuses_the_other_refuses_naming_it(name: str, value: str) -> None:
    with pytest.raises(CoordinationError, match=f"^{name} '.*' is not a") as config:
        CoordinationConfig.from_env({name: value})
    with pytest.raises(ValueError, match=f"^{name} '.*' is not a") as importer:
        redis_url(env={name: value})
    assert config.value.code == "invalid" and "--url" in str(importer.value)
    assert str(config.value).split(":")[0] == str(importer.value).split(":")[0]  # the same problem, each its advice


@pytest.mark.parametrize("env", [
    {}, {"REDIS_HOST": "  ", "REDIS_PORT": " ", "REDIS_DB": ""},
    {"REDIS_HOST": " redis.lan ", "REDIS_PORT": " 65535 ", "REDIS_DB": "15"},
    {"REDIS_HOST": "::1", "REDIS_PORT": "1", "REDIS_DB": "2147483647"},
])
def test_a_value_one_takes_the_other_reads_as_the_same_server(env: dict[str, str]) -> None:
    config = CoordinationConfig.from_env(env)
    host = f"[{config.redis_host}]" if ":" in config.redis_host else config.redis_host
    assert redis_url(env=env) == f"redis://{host}:{config.redis_port}/{config.redis_db}"


@pytest.mark.parametrize(("value", "prefix"), [
    (None, "coord"), ("", "coord"), ("coord:", "coord"), (" team: ", "team"), ("a:b::", "a:b"), (":", "coord"),
])
def test_the_key_prefix_is_the_same_for_both(value: str | None, prefix: str) -> None:
    env = {} if value is None else {"COORD_KEY_PREFIX": value}
    assert CoordinationConfig.from_env(env).key_prefix == key_prefix(env=env) == prefix
    assert key_prefix(value, env={"COORD_KEY_PREFIX": "ignored"}) == (prefix if value else "ignored")
