"""The hub's signature checks (``coordhub.openpgp``) leave no ``gpg-agent`` behind.

gpg starts an agent daemon per home directory unless told not to; the hub
makes one home per set of keys it checks against, so every new set a caller
registered would leave one more daemon running, after its home was evicted
and after the hub exited (seen: one per key set, surviving the process).
"""

from __future__ import annotations

import subprocess

from coordhub import openpgp
from tests.conversations.conftest import GpgKey


def _agents_under(root: str) -> list[str]:
    """Command lines of the gpg-agent processes whose home is under ``root``."""
    found = subprocess.run(["pgrep", "-fa", "gpg-agent"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if root in line]


def test_checking_signatures_against_new_key_sets_starts_no_agent(gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    author, stranger = gpg_keys
    data = b"#+TITLE: signed\n"
    assert openpgp.fingerprint(author.armored) == author.fingerprint
    good = openpgp.verify(data, author.sign(data), [author.armored])
    assert good.valid and good.fingerprint == author.fingerprint
    forged = openpgp.verify(data, stranger.sign(data), [author.armored])
    assert not forged.valid and forged.reason
    both = openpgp.verify(data, stranger.sign(data), [author.armored, stranger.armored])  # another key set
    assert both.valid and both.fingerprint == stranger.fingerprint
    assert _agents_under(str(openpgp._homes.root())) == []
