"""A key outside the key bounds never reaches ``gpg`` (:func:`coordhub.openpgp.key_fault`); every ``gpg`` run is
timed out (:data:`coordhub.openpgp.GPG_TIMEOUT`).

``gpg`` checks every self-signature of a key it imports, and an RSA check costs what the modulus and the public
exponent cost: an 8192-bit key with a 16,000-bit exponent and 30 user ids (48.6 KB, under ``MAX_KEY_BYTES``)
took 80 s of CPU to register and 0.6 s for every signed turn after. The keys here are built packet by packet
(RFC 4880 §4.2, §5.5.2: new-format packets, a v4 public key, its MPIs) with placeholder signatures: the hub must
refuse them from their packets alone, so nothing checks the signatures. Real keys, made by ``gpg
--quick-generate-key``, still register and sign end to end.
"""

from __future__ import annotations

import base64
import os
import secrets
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gnupg  # type: ignore[import-untyped]
import pytest

from coordhub import openpgp
from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key, org

SESSION = "DESKTOP-0O8A1RL/claude-main"


def _packet(tag: int, body: bytes) -> bytes:
    """A new-format packet (RFC 4880 §4.2.2)."""
    n = len(body)
    if n < 192:
        length = bytes([n])
    elif n < 8384:
        length = bytes([((n - 192) >> 8) + 192, (n - 192) & 0xFF])
    else:
        length = b"\xff" + struct.pack(">I", n)
    return bytes([0xC0 | tag]) + length + body


def _mpi(x: int) -> bytes:
    """A multiprecision integer (RFC 4880 §3.2)."""
    return struct.pack(">H", x.bit_length()) + x.to_bytes((x.bit_length() + 7) // 8, "big")


def _armor(data: bytes) -> str:
    text = base64.b64encode(data).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n" + "\n".join(lines) + "\n-----END PGP PUBLIC KEY BLOCK-----\n"


def _rsa_key(n_bits: int, e: int, user_ids: int = 1) -> str:
    """An armored v4 RSA public key with an ``n_bits`` modulus (random, odd: nothing here factors it), exponent ``e``
    and ``user_ids`` user ids, each followed by a placeholder positive-certification signature packet."""
    n = secrets.randbits(n_bits) | (1 << (n_bits - 1)) | 1
    out = _packet(6, b"\x04" + struct.pack(">I", int(time.time()) - 3600) + b"\x01" + _mpi(n) + _mpi(e))
    for i in range(user_ids):
        sig = bytes([4, 0x13, 1, 8]) + b"\x00\x00" + b"\x00\x00" + b"\x00\x00" + _mpi(secrets.randbits(n_bits))
        out += _packet(13, f"u{i} <u{i}@example.org>".encode()) + _packet(2, sig)
    return _armor(out)


@pytest.fixture
def gpg_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every gpg process started from here on (its arguments): python-gnupg starts each through
    ``GPG._open_subprocess``."""
    runs: list[list[str]] = []
    real = gnupg.GPG._open_subprocess

    def recorded(self: Any, args: list[str], *rest: Any, **kwargs: Any) -> Any:
        runs.append(list(args))
        return real(self, args, *rest, **kwargs)

    monkeypatch.setattr(gnupg.GPG, "_open_subprocess", recorded)
    return runs


@pytest.mark.parametrize(("key", "bound", "limit"), [
    pytest.param(lambda: _rsa_key(2048, secrets.randbits(16000) | (1 << 15999) | 1), "rsa_exponent_bits", 32,
                 id="16000-bit-exponent"),
    pytest.param(lambda: _rsa_key(2048, 2**32 + 1), "rsa_exponent_bits", 32, id="33-bit-exponent"),
    pytest.param(lambda: _rsa_key(8192, 65537), "rsa_bits", 4096, id="8192-bit-modulus"),
    pytest.param(lambda: _rsa_key(2048, 65537, user_ids=17), "user_ids", 16, id="17-user-ids"),
])
def test_a_key_outside_the_bounds_is_refused_before_gpg(api: Api, gpg_keys: tuple[GpgKey, GpgKey],
                                                         gpg_runs: list[list[str]], key: Any, bound: str,
                                                         limit: int) -> None:
    author, _ = gpg_keys
    armored = key()
    assert len(armored) < openpgp.MAX_KEY_BYTES
    headers = api.token(SESSION)
    proof = author.sign(b"anything")  # never checked: the key is refused first
    started = time.monotonic()
    r = api.post("/api/coord/conversations/keys", json={"armored": armored, "proof": proof}, headers=headers)
    elapsed = time.monotonic() - started
    assert gpg_runs == [] and elapsed < 2, (gpg_runs, elapsed)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["code"], err["field"], err["bound"], err["limit"]) == ("invalid", "armored", bound, limit)
    with pytest.raises(openpgp.BadKey):
        openpgp.fingerprint(armored)
    assert gpg_runs == []


def test_a_stored_key_outside_the_bounds_is_not_used_to_verify(gpg_keys: tuple[GpgKey, GpgKey],
                                                               gpg_runs: list[list[str]]) -> None:
    # a key registered before the bounds held: a signed turn checked against it must not start gpg either
    author, _ = gpg_keys
    verdict = openpgp.verify(b"data", author.sign(b"data"), [_rsa_key(8192, 65537)])
    assert not verdict.valid and gpg_runs == [], gpg_runs


def test_a_key_within_the_bounds_passes_the_packet_check() -> None:
    assert openpgp.key_fault(_rsa_key(4096, 65537, user_ids=16)) is None
    assert openpgp.key_fault(_rsa_key(2048, 3)) is None


def test_a_slow_gpg_run_is_stopped_with_a_clear_error(gpg_keys: tuple[GpgKey, GpgKey], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    author, _ = gpg_keys
    data = b"timed out"
    signature = author.sign(data)  # by the real gpg
    # A gpg that never answers: stopped at 0.2 s whatever the machine's load (with a bare 0-second timeout a
    # quick gpg could exit before the stopping thread ran).
    slow = tmp_path / "bin"
    slow.mkdir()
    (slow / "gpg").write_text("#!/bin/sh\nexec sleep 30\n")
    (slow / "gpg").chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}:{os.environ['PATH']}")
    monkeypatch.setattr(openpgp, "GPG_TIMEOUT", 0.2)
    with pytest.raises(openpgp.BadKey, match="longer than"):
        openpgp.fingerprint(author.armored)
    verdict = openpgp.verify(data, signature, [author.armored + "\n"])  # a key set not cached yet
    assert not verdict.valid and "longer than" in (verdict.reason or "")


def _quick_key(home: Path, name: str, algo: str, subkeys: tuple[str, ...]) -> GpgKey:
    """A key made as a user makes one: ``gpg --quick-generate-key`` then ``--quick-add-key`` per subkey."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    gpg = ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run([*gpg, "--quick-generate-key", f"{name} <{name}@example.org>", algo, "default", "never"],
                   capture_output=True, check=True)
    listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], capture_output=True, check=True,
                             text=True).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    for sub in subkeys:
        subprocess.run([*gpg, "--quick-add-key", fingerprint, *sub.split()], capture_output=True, check=True)
    subprocess.run([*gpg, "--quick-add-uid", fingerprint, f"{name} <{name}.work@example.org>"],
                   capture_output=True, check=True)
    armored = subprocess.run([*gpg, "--armor", "--export", fingerprint], capture_output=True, check=True,
                             text=True).stdout
    return GpgKey(home, fingerprint, armored)


@pytest.fixture(scope="module")
def quick_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GpgKey]]:
    """An RSA 3072 key and an ed25519 key, each with subkeys, as ``gpg --quick-generate-key`` makes them."""
    root = tmp_path_factory.mktemp("quick")
    made = [_quick_key(root / "rsa", "rsa3072", "rsa3072", ("rsa3072 encr", "rsa3072 sign")),
            _quick_key(root / "ed", "ed25519", "ed25519", ("cv25519 encr", "ed25519 sign"))]
    yield made
    for key in made:
        subprocess.run(["gpgconf", "--homedir", str(key.home), "--kill", "all"], capture_output=True,
                       env={**os.environ, "GNUPGHOME": str(key.home)})


def test_keys_gpg_makes_register_and_sign_turns(api: Api, quick_keys: list[GpgKey]) -> None:
    url = "/api/coord/conversations"
    receiver = api.token("velox/homelab")
    profile = api.put(f"{url}/profile", json={"machine": "velox", "project": "homelab"}, headers=receiver)
    assert profile.status_code == 200, profile.text
    for i, key in enumerate(quick_keys):
        assert openpgp.key_fault(key.armored) is None
        headers = api.token(f"ratio/k{i}")
        profile = api.put(f"{url}/profile", json={"machine": "ratio", "project": f"k{i}"}, headers=headers)
        assert profile.status_code == 200, profile.text
        r = add_key(api, headers, key)
        assert r.status_code == 201 and r.json()["fingerprint"] == key.fingerprint, r.text
        content = org(conversation=f"bounds-{i}")
        t = api.post(f"{url}/turns", json={"to": "velox.homelab", "content": content,
                                           "signature": key.sign(content.encode())}, headers=headers).json()
        assert (t["decision"], t["verified"], t["signer"]) == ("process", True, key.fingerprint), t
