"""Fixtures for conversations: a real GnuPG key made per test session, and org-file builders."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

KEY_PARAMS = """%no-protection
Key-Type: EDDSA
Key-Curve: ed25519
Name-Real: {name}
Name-Email: {email}
Expire-Date: 0
%commit
"""


@dataclass(frozen=True)
class GpgKey:
    """A secret key in its own GNUPGHOME; ``armored`` is the public half."""

    home: Path
    fingerprint: str
    armored: str

    def sign(self, data: bytes) -> str:
        """An armored detached signature over ``data``, as `gpg --detach-sign --armor` makes it."""
        out = subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes", "--detach-sign", "--armor",
                              "--output", "-"], input=data, capture_output=True, check=True)
        return out.stdout.decode("ascii")


def add_key(api: Any, headers: dict[str, str], key: GpgKey, signer: GpgKey | None = None) -> Any:
    """``POST /conversations/keys`` of ``key`` with its proof of possession, signed by ``signer`` (default: the key
    itself) over the statement naming the hub and the session of ``headers``."""
    from coordhub.core.signingkeys import proof_statement

    hub_id = api.get("/health").json()["hub_id"]
    session = api.get("/api/coord/whoami", headers=headers).json()["session_id"]
    proof = (signer or key).sign(proof_statement(hub_id, session, key.fingerprint))
    return api.post("/api/coord/conversations/keys", json={"armored": key.armored, "proof": proof}, headers=headers)


def make_key(home: Path, name: str) -> GpgKey:
    """Generate an ed25519 key without passphrase in ``home`` (a fresh GNUPGHOME)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    params = KEY_PARAMS.format(name=name, email=f"{name.lower().replace(' ', '.')}@example.org")
    subprocess.run(["gpg", "--homedir", str(home), "--batch", "--gen-key"], input=params.encode(),
                   capture_output=True, check=True)
    listing = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--with-colons", "--list-secret-keys"],
                             capture_output=True, check=True, text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    armored = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--armor", "--export", fingerprint],
                             capture_output=True, check=True, text=True).stdout
    return GpgKey(home, fingerprint, armored)


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GpgKey, GpgKey]]:
    """Two keys (made once per test session): the author's and a stranger's."""
    root = tmp_path_factory.mktemp("gpg")
    yield make_key(root / "author", "Career Agent"), make_key(root / "stranger", "Someone Else")
    for home in ("author", "stranger"):
        subprocess.run(["gpgconf", "--homedir", str(root / home), "--kill", "all"], capture_output=True)


def org(conversation: str = "prep-fixup", kind: str = "request", sequence: int = 1,
        timestamp: str = "2026-04-27T04:11:42-05:00", version: str = "5", tools: str | None = None,
        body: str = "Please fix the prep script.\n", title: str = "Prep fix-up") -> str:
    """A seed-004 message file's text."""
    lines = [f"#+TITLE: {title}", f"#+CONVERSATION_ID: {conversation}", f"#+MESSAGE_TYPE: {kind}",
             f"#+SEQUENCE: {sequence}", f"#+TIMESTAMP: {timestamp}", f"#+PROTOCOL_VERSION: {version}"]
    if tools is not None:
        lines.append(f"#+REQUIRES_TOOLS: {tools}")
    return "\n".join(lines) + "\n\n" + body
