"""A turn's ``#+TIMESTAMP`` is its author's clock; the hub dates turns by its own and refuses a time still to come.

Seed 004 wrote and checked nothing of ``#+TIMESTAMP`` but its presence, and its ``cross-agent-status`` compared it
as text to decide what was pending: a release stamped ahead hid every turn sent after it. The hub keeps its own
time beside the author's (``created_at``/``timestamp`` against ``stated_timestamp``), takes any past time (a file
written earlier, a queued turn, imported history) and refuses one more than
:data:`coordhub.core.turns.MAX_AHEAD` seconds ahead of its clock, signed or not, before ``gpg`` runs.
"""

from __future__ import annotations

import datetime as dt

import pytest

from coordhub.core import turns
from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org
from tests.conversations.test_turns_api import URL, agent, send


def stamp(api: Api, offset: float) -> str:
    """The hub's clock plus ``offset`` seconds as a seed-004 TIMESTAMP in another zone (-05:00)."""
    when = dt.datetime.fromtimestamp(api.hub.clock.now() + offset, dt.timezone(dt.timedelta(hours=-5)))
    return when.isoformat(timespec="seconds")


def test_a_timestamp_ahead_of_the_hubs_clock_is_refused_and_nothing_recorded(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab")
    r = send(api, career, "velox.homelab", org(timestamp=stamp(api, 2 * 3600 + 180)))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["field"], err["limit"], err["ahead_seconds"]) == ("TIMESTAMP", turns.MAX_AHEAD, 2 * 3600 + 180)
    assert "is 2h03m ahead of the hub's clock" in err["message"] and "set it" in err["message"]
    assert err["hub_time"] == dt.datetime.fromtimestamp(api.hub.clock.now(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert api.get(f"{URL}/prep-fixup", headers=career).status_code == 404  # nothing recorded, not even refused
    assert send(api, career, "velox.homelab", org(timestamp=stamp(api, turns.MAX_AHEAD - 10))).status_code == 201


def test_a_past_timestamp_is_taken_and_kept_beside_the_hubs_own_time(api: Api) -> None:
    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab")
    old = stamp(api, -400 * 86400)  # history: a file of last year
    t = send(api, career, "velox.homelab", org(timestamp=old)).json()
    hub_now = dt.datetime.fromtimestamp(api.hub.clock.now(), dt.UTC)
    assert t["stated_timestamp"] == old
    assert t["timestamp"] == hub_now.strftime("%Y-%m-%dT%H:%M:%SZ")  # the hub's time, not the author's
    assert t["file_name"].startswith(hub_now.strftime("%Y%m%dT%H%M%SZ"))


def test_a_signed_turn_ahead_is_refused_before_gpg_runs(api: Api, gpg_keys: tuple[GpgKey, GpgKey],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from coordhub import openpgp

    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab")
    key = gpg_keys[0]
    assert add_key(api, career, key).status_code == 201
    ran: list[int] = []
    real = openpgp.verify

    def counted(*args: object, **kw: object) -> object:
        ran.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(openpgp, "verify", counted)
    text = org(timestamp=stamp(api, 3600))
    r = send(api, career, "velox.homelab", text, signature=key.sign(text.encode()), expect_sequence=1)
    assert r.status_code == 422 and r.json()["error"]["field"] == "TIMESTAMP", r.text
    assert ran == []
    text = org(timestamp=stamp(api, 0))
    r = send(api, career, "velox.homelab", text, signature=key.sign(text.encode()), expect_sequence=1)
    assert r.status_code == 201 and r.json()["verified"] is True and ran == [1], r.text
