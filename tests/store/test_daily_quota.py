"""A session's daily quota rows: its first charge of a day forgets its earlier days, its later ones write one row."""

from __future__ import annotations

from coordhub.store import Store
from coordhub.store.tx import Tx


def _rows(store: Store, session_id: str) -> list[tuple[int, int, int]]:
    return store.read_sync(lambda tx: [(int(r["day"]), int(r["turns"]), int(r["bytes"])) for r in tx.ex.all(
        "SELECT day, turns, bytes FROM turn_quota WHERE session_id = ? ORDER BY day", (session_id,))])


def _charge(store: Store, session_id: str, day: int, size: int) -> None:
    def unit(tx: Tx) -> None:  # as the turn checks use it: the first charge of a day is the one with no row yet
        tx.turn_quota.charge(session_id, day, size, first=tx.turn_quota.used(session_id, day) is None)
    store.write_sync(unit)


def test_the_first_charge_of_a_day_forgets_the_days_before(store: Store) -> None:
    for size in (10, 20):
        _charge(store, "m1/a", 100, size)
    _charge(store, "m1/b", 100, 5)  # another session's day is its own
    assert _rows(store, "m1/a") == [(100, 2, 30)]
    _charge(store, "m1/a", 101, 7)
    assert _rows(store, "m1/a") == [(101, 1, 7)]
    _charge(store, "m1/a", 101, 8)
    assert _rows(store, "m1/a") == [(101, 2, 15)] and _rows(store, "m1/b") == [(100, 1, 5)]


def test_a_later_charge_of_the_day_forgets_nothing(store: Store) -> None:
    """Only a day's first charge deletes (one statement less on every other write): a day charged after a later
    one (a clock set back) stays until the next day's first charge."""
    _charge(store, "m1/a", 101, 1)
    _charge(store, "m1/a", 100, 2)  # the clock went back a day
    _charge(store, "m1/a", 101, 3)
    assert _rows(store, "m1/a") == [(100, 1, 2), (101, 2, 4)]
    _charge(store, "m1/a", 102, 4)
    assert _rows(store, "m1/a") == [(102, 1, 4)]
