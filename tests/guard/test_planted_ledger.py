"""The guard's ledger (``.git/coordhub/leases.json``) may have come with the repository: an archive brings its own
``.git``. Entries of the wrong shape (``"seen": "x"``, a resource that is a list) ended the guard in a traceback
(``float("x")``), so every commit was refused until someone found the file; they are now left out as unreadable,
as a file that is not JSON is. Real git, a real hub."""

from __future__ import annotations

import json

from tests.guard.conftest import A, Fleet


def test_a_ledger_entry_of_the_wrong_shape_is_left_out_not_a_crash(fleet: Fleet) -> None:
    repo = fleet.repo
    ledger = repo.path / ".git" / "coordhub" / "leases.json"
    ledger.parent.mkdir(parents=True, exist_ok=True)
    entry = {"fence": 1, "resource": "src/app.py", "project_key": "gururmm", "session_id": A, "seen": 0}
    ledger.write_text(json.dumps({"leases": {
        "a": {**entry, "seen": "yesterday"}, "b": {**entry, "resource": ["src"]}, "c": {**entry, "seen": [1]},
        "d": {**entry, "session_id": {"x": 1}}, "e": {**entry, "project_key": 7}, "f": {**entry, "fence": True}}}))
    repo.change("src/app.py", "mine\n")
    r = repo.commit("nothing leased")
    assert r.code == 0 and "Traceback" not in r.err, r
