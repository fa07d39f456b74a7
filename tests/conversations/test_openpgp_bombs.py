"""A signature or key that is compressed data never reaches ``gpg`` (:func:`coordhub.openpgp.packet_tags`).

``gpg`` unpacks whatever packets it is handed: a "proof" of possession
(``POST /conversations/keys``, at most 16 KiB) or a turn's signature that is
one bzip2-compressed packet of zeros inflates to gigabytes (measured: 374
armored characters made gpg spend 1.2 s; 16 KiB, about a minute), and an
armored "key" (64 KiB) the same in ``gpg``'s key scan. Each such request
held a thread of the hub's default executor, which the shared rate limits
also use, and a core. A detached signature is signature packets only, a
key its key, user id, subkey and signature packets: anything else is refused
before ``gpg`` runs.
"""

from __future__ import annotations

import base64
import bz2
from typing import Any

import gnupg  # type: ignore[import-untyped]
import pytest

from coordhub import openpgp
from coordhub.core.signingkeys import proof_statement
from tests.conftest import Api
from tests.conversations.conftest import GpgKey, add_key

SESSION = "DESKTOP-0O8A1RL/claude-main"


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def _bomb(kind: str, mib: int = 32) -> str:
    """One armored block of ``kind``: a bzip2-compressed packet (RFC 4880 §5.6) of a literal data packet of ``mib``
    MiB of zeros."""
    c = bz2.BZ2Compressor(9)
    parts = [c.compress(b"\xaf" + b"b\x00\x00\x00\x00\x00")]  # literal data, old format, indeterminate length
    parts += [c.compress(bytes(1 << 20)) for _ in range(mib)]
    body = b"\x03" + b"".join(parts) + c.flush()  # 3: BZip2
    packet = bytes([0x80 | (8 << 2) | 1]) + len(body).to_bytes(2, "big") + body
    text = base64.b64encode(packet).decode()
    crc = base64.b64encode(_crc24(packet).to_bytes(3, "big")).decode()
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return f"-----BEGIN {kind}-----\n\n" + "\n".join(lines) + f"\n={crc}\n-----END {kind}-----\n"


@pytest.fixture
def gpg_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The gpg operations run from here on (their names), as python-gnupg is asked for them."""
    runs: list[str] = []
    for name in ("verify_data", "scan_keys_mem"):
        real = getattr(gnupg.GPG, name)

        def recorded(self: Any, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            runs.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(gnupg.GPG, name, recorded)
    return runs


def test_a_compressed_proof_is_refused_without_running_gpg(api: Api, gpg_keys: tuple[GpgKey, GpgKey],
                                                          gpg_runs: list[str]) -> None:
    author, _ = gpg_keys
    headers = api.token(SESSION)
    bomb = _bomb("PGP SIGNATURE")
    assert len(bomb) < 1000
    verdict = openpgp.verify(proof_statement("h", SESSION, author.fingerprint), bomb, [author.armored])
    assert not verdict.valid and gpg_runs == []
    r = api.post("/api/coord/conversations/keys", json={"armored": author.armored, "proof": bomb}, headers=headers)
    assert r.status_code == 422 and "verify_data" not in gpg_runs, (r.text, gpg_runs)
    assert add_key(api, headers, author).status_code == 201  # a real proof still registers it
    assert "verify_data" in gpg_runs


def test_a_compressed_key_is_refused_without_running_gpg(gpg_keys: tuple[GpgKey, GpgKey],
                                                        gpg_runs: list[str]) -> None:
    author, _ = gpg_keys
    with pytest.raises(openpgp.BadKey):
        openpgp.fingerprint(_bomb("PGP PUBLIC KEY BLOCK"))
    assert gpg_runs == []
    assert openpgp.fingerprint(author.armored) == author.fingerprint  # an exported key still passes


def test_a_real_signature_and_key_are_what_the_check_lets_through(gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    author, _ = gpg_keys
    assert openpgp.packet_tags(author.sign(b"data"), "PGP SIGNATURE") == [2]
    tags = openpgp.packet_tags(author.armored, "PGP PUBLIC KEY BLOCK")
    assert tags is not None and tags[0] == 6 and set(tags) <= openpgp.KEY_PACKETS
    assert openpgp.packet_tags(author.sign(b"data").replace("SIGNATURE", "MESSAGE"), "PGP SIGNATURE") is None
