"""A signed turn the hub refuses for any reason but its signature is refused before ``gpg`` runs.

``gpg`` costs milliseconds of CPU for a normal key (up to its timeout for a hostile file), and a refused turn is
neither recorded nor charged to its author's day (:mod:`coordhub.core.turnbounds`): checked first, every refused
turn bought one token a free ``gpg`` run (security review). Every check but the signature's now runs first, and a
turn that fails one of them and its signature gets that check's error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from coordhub import openpgp
from coordhub.core import turnbounds
from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org
from tests.conversations.test_turns_api import URL, agent, send


@pytest.fixture
def gpg_runs(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The data of every signature check the hub makes from now on (``openpgp.verify``, which runs ``gpg``)."""
    runs: list[bytes] = []
    real: Callable[..., openpgp.Verdict] = openpgp.verify

    def counted(data: bytes, signature: str, keys: list[str]) -> openpgp.Verdict:
        runs.append(data)
        return real(data, signature, keys)

    monkeypatch.setattr(openpgp, "verify", counted)
    return runs


@pytest.fixture
def signer(api: Api, gpg_keys: tuple[GpgKey, GpgKey]) -> dict[str, str]:
    """``career`` (ratio.career) with the author's key registered; ``velox.homelab`` exists."""
    career = agent(api, "ratio/career", "ratio", "career")
    agent(api, "velox/homelab", "velox", "homelab")
    assert add_key(api, career, gpg_keys[0]).status_code == 201
    return career


def _signed(api: Api, headers: dict[str, str], key: GpgKey, content: str, to: str = "velox.homelab",
            **extra: Any) -> Any:
    return send(api, headers, to, content, signature=key.sign(content.encode()), **extra)


def _error(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


@pytest.mark.parametrize("forged", [False, True], ids=["signed", "forged"])
def test_refused_signed_turns_run_no_gpg(api: Api, signer: dict[str, str], gpg_keys: tuple[GpgKey, GpgKey],
                                         gpg_runs: list[bytes], forged: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    key = gpg_keys[1] if forged else gpg_keys[0]  # a forged turn gets the other check's error, not a reject
    r = _signed(api, signer, key, org(conversation="c1", sequence=5))
    assert _error(r) == (409, "sequence_taken") and r.json()["error"]["next_sequence"] == 1
    assert _error(_signed(api, signer, key, org(conversation="c1"), expect_sequence=3)) == (409, "sequence_taken")
    r = _signed(api, signer, key, org(conversation="c1"), to="nowhere.nobody")
    assert _error(r) == (422, "unknown_destination") and "velox.homelab" in r.json()["error"]["known"]
    web = agent(api, "tiny/web", "tiny", "web")
    homelab = api.token("velox/homelab")
    assert send(api, homelab, "tiny.web", org(conversation="theirs")).status_code == 201
    assert _error(_signed(api, signer, key, org(conversation="theirs", sequence=2))) == (404, "not_found")
    assert _error(_signed(api, signer, key, org(conversation="c1"), from_project="bad name!"))[0] == 422
    monkeypatch.setattr(turnbounds, "MAX_SESSION_TURNS_PER_DAY", 0)
    assert _error(_signed(api, signer, key, org(conversation="c1"))) == (429, "turn_quota")
    assert gpg_runs == []
    assert api.get(f"{URL}/c1", headers=signer).status_code == 404  # nothing was recorded
    assert web


def test_a_turn_that_passes_the_other_checks_is_still_verified(api: Api, signer: dict[str, str],
                                                               gpg_keys: tuple[GpgKey, GpgKey],
                                                               gpg_runs: list[bytes]) -> None:
    author, stranger = gpg_keys
    good = org(conversation="c1")
    t = _signed(api, signer, author, good).json()
    assert (t["decision"], t["verified"], t["sequence"]) == ("process", True, 1)
    forged = org(conversation="c1", sequence=2, body="Forged.\n")
    bad = _signed(api, signer, stranger, forged).json()  # passes every other check: recorded as a reject
    assert (bad["decision"], bad["verified"], bad["sequence"]) == ("reject", False, None)
    # an identical retry is answered as one after the check, as before
    again = _signed(api, signer, author, good)
    assert again.status_code == 200 and again.json()["decision"] == "dedup"
    assert gpg_runs == [good.encode(), forged.encode(), good.encode()]


def test_a_replayed_signed_turn_runs_no_gpg(api: Api, signer: dict[str, str], gpg_keys: tuple[GpgKey, GpgKey],
                                            gpg_runs: list[bytes]) -> None:
    """A retry under the same ``Idempotency-Key`` answers what the first request got, which read the verdict
    already: gpg runs once, however often the turn is replayed (review: each replay bought a free gpg run)."""
    author, _ = gpg_keys
    content = org(conversation="c1")
    body = {"to": "velox.homelab", "content": content, "signature": author.sign(content.encode())}
    headers = {**signer, "Idempotency-Key": "turn-1"}
    first = api.post(URL + "/turns", json=body, headers=headers)
    assert first.status_code == 201 and first.json()["decision"] == "process", first.text
    for _ in range(3):
        again = api.post(URL + "/turns", json=body, headers=headers)
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.text
        assert again.json() == first.json()
    assert len(gpg_runs) == 1, gpg_runs
