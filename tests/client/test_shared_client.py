"""One :class:`~coordhub.client.client.CoordClient` shared by threads: each call's time budget is its own thread's.

A real hub behind the loopback proxy of :mod:`tests.client.test_queue_order`, whose ``/health`` never answers.
The review's case: the running call's deadline lived on the client, so a thread whose call had spent its budget
on a hung request made another thread's call, made meanwhile, fail without being sent ("did not answer … within
the timeout"), and the other thread's call, ending, cleared the first one's budget.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from coordhub.client import ClientSettings, CoordClient, Unreachable
from tests.client.conftest import serving
from tests.client.test_queue_order import SESSION, FlakyProxy
from tests.conftest import LiveHub


def test_a_call_of_another_thread_is_not_bound_by_a_spent_budget(live_hub: LiveHub, tmp_path: Path) -> None:
    with serving(FlakyProxy(live_hub.url)) as proxy:
        _two_threads(live_hub, proxy, tmp_path)


def _two_threads(live_hub: LiveHub, proxy: FlakyProxy, tmp_path: Path) -> None:
    settings = ClientSettings(url=proxy.url, token=live_hub.token(SESSION), session=None, user=None, machine=None,
                              queue_file=tmp_path / ".claude" / "coord-queue.jsonl", timeout=10.0)
    proxy.hang = "/health"
    spent, done = threading.Event(), threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def short_call(c: CoordClient) -> None:
        """A call whose budget of 0.5 s a hung request spends; it goes on within it until the other call is done."""
        with c.within(time.monotonic() + 0.5):
            try:
                c.health()
            except Unreachable as exc:
                outcome["hung"] = exc
            spent.set()
            done.wait(30)
            try:  # still within the spent budget: nothing more may be sent
                c.call("GET", "/api/coord/whoami")
                outcome["after"] = None
            except Unreachable as exc:
                outcome["after"] = exc

    with CoordClient(settings) as c:
        other = threading.Thread(target=short_call, args=(c,))
        other.start()
        try:
            assert spent.wait(30)
            me = c.call("GET", "/api/coord/whoami")  # this thread's call: a whole timeout of its own
        finally:
            done.set()
            other.join(30)
    assert me["session_id"] == SESSION
    assert isinstance(outcome["hung"], Unreachable)
    after = outcome["after"]
    assert isinstance(after, Unreachable) and not after.sent, after  # the budget outlived the other call
    assert [p for _, _, p in proxy.seen].count("/api/coord/whoami") == 1
