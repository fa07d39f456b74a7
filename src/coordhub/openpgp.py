"""OpenPGP keys and detached signatures, checked by the ``gpg`` binary through python-gnupg.

Seed 004 signs every message file with ``gpg --detach-sign --armor``; its
users keep their GPG keys. The hub verifies those signatures (issue 9) and
never does crypto of its own: each check runs ``gpg`` in a private home
directory holding only the keys the caller passed, so the machine's own
keyring never decides what the hub trusts.

Every call runs a ``gpg`` subprocess (tens of milliseconds): call from a
worker thread, never from the event loop. Home directories are cached per
set of keys (at most :data:`MAX_HOMES`), so repeated checks of one sender
cost one ``gpg --verify``. No ``gpg`` run here may start a ``gpg-agent``
(:data:`GPG_OPTIONS`): importing and verifying public keys needs none, and
gpg would otherwise leave one agent daemon per home directory running after
the home was evicted and after the hub exited, one more for every new set of
keys a caller makes the hub check.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gnupg  # type: ignore[import-untyped]

MAX_KEY_BYTES = 64 * 1024   # an armored public key with a few subkeys and signatures is a few KiB
MAX_HOMES = 64
GPG_OPTIONS = ("--no-autostart",)  # every gpg run here: never start a gpg-agent (see the module docstring)
_KEY_ARMOR = "PGP PUBLIC KEY BLOCK"
_BEGIN_KEY = f"-----BEGIN {_KEY_ARMOR}-----"
_SIGNATURE_ARMOR = "PGP SIGNATURE"
SIGNATURE_PACKETS = frozenset({2})  # RFC 4880 §4.3: a detached signature is signature packets only
KEY_PACKETS = frozenset({2, 6, 12, 13, 14, 17})  # signature, public key, trust, user id, public subkey, attribute


class BadKey(ValueError):
    """The text is not one armored OpenPGP public key (message says why)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a detached signature.

    ``valid``: the signature verifies against one of the given keys;
    ``fingerprint``: the primary key's fingerprint (upper-case hex) when valid;
    ``reason``: why not, in words, when not valid.
    """

    valid: bool
    fingerprint: str | None = None
    reason: str | None = None


class _Homes:
    """Private gpg home directories, one per key set, least recently used evicted."""

    def __init__(self) -> None:
        self._root: Path | None = None  # made at the first check, removed when the process exits
        self._homes: OrderedDict[str, tuple[gnupg.GPG, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def root(self) -> Path:
        """The directory holding the homes (made once, on first use; removed at exit)."""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="coordhub-gpg-"))
                atexit.register(shutil.rmtree, self._root, True)
            return self._root

    def get(self, keys: tuple[str, ...]) -> tuple[gnupg.GPG, threading.Lock]:
        digest = hashlib.sha256("\n\x00".join(sorted(keys)).encode()).hexdigest()[:32]
        with self._lock:
            found = self._homes.get(digest)
            if found is not None:
                self._homes.move_to_end(digest)
                return found
        root = self.root()
        home = root / digest
        home.mkdir(mode=0o700, exist_ok=True)
        gpg = gnupg.GPG(gnupghome=str(home), options=list(GPG_OPTIONS))
        for armored in keys:
            gpg.import_keys(armored)
        entry = (gpg, threading.Lock())
        with self._lock:
            self._homes[digest] = entry
            while len(self._homes) > MAX_HOMES:
                old, _ = self._homes.popitem(last=False)
                shutil.rmtree(root / old, ignore_errors=True)
        return entry


_homes = _Homes()


def packet_tags(armored: str, kind: str) -> list[int] | None:
    """The tags of the OpenPGP packets (RFC 4880 §4.2) in ``armored``, one ASCII-armored block of ``kind`` (``PGP
    SIGNATURE``, ``PGP PUBLIC KEY BLOCK``) and nothing else; None when it is not that, or a packet's length is
    not given in full (a partial or indeterminate length: data, never a key's or a signature's packet).

    What a caller checks before handing the text to ``gpg``, which would otherwise unpack whatever it holds: a
    compressed packet of a few KiB (tag 8) inflates to gigabytes, a minute of its CPU per check.
    """
    lines = armored.strip().splitlines()
    if len(lines) < 3 or lines[0].strip() != f"-----BEGIN {kind}-----" or lines[-1].strip() != f"-----END {kind}-----":
        return None
    body = [line.strip() for line in lines[1:-1]]
    while body and ":" in body[0]:  # armor headers (Version:, Comment:, Hash: …), then a blank line
        body.pop(0)
    if body and body[-1].startswith("=") and len(body[-1]) == 5:  # the checksum line
        body.pop()
    try:
        data = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        return None
    tags, at = [], 0
    while at < len(data):
        head = data[at]
        if not head & 0x80:
            return None
        if head & 0x40:  # new format: the tag, then a one, two or five octet length
            tag, first = head & 0x3F, data[at + 1] if at + 1 < len(data) else 256
            if first < 192:
                size, at = first, at + 2
            elif first < 224 and at + 2 < len(data):
                size, at = ((first - 192) << 8) + data[at + 2] + 192, at + 3
            elif first == 255 and at + 5 < len(data):
                size, at = int.from_bytes(data[at + 2:at + 6], "big"), at + 6
            else:
                return None
        else:  # old format: the tag and a length type (0-2: one, two or four octets; 3: indeterminate)
            tag, kind_of_length = (head >> 2) & 0x0F, head & 0x03
            if kind_of_length == 3:
                return None
            octets = 1 << kind_of_length
            size, at = int.from_bytes(data[at + 1:at + 1 + octets], "big"), at + 1 + octets
        if at + size > len(data):
            return None
        tags.append(tag)
        at += size
    return tags


def only(armored: str, kind: str, allowed: frozenset[int]) -> bool:
    """Whether ``armored`` is one armored block of ``kind`` holding one or more packets, each of a tag in ``allowed``
    (:func:`packet_tags`)."""
    tags = packet_tags(armored, kind)
    return tags is not None and bool(tags) and set(tags) <= allowed


def fingerprint(armored: str) -> str:
    """The primary fingerprint of one armored public key (upper-case hex); :class:`BadKey` otherwise.

    Refuses secret keys, several keys in one block, and text over
    :data:`MAX_KEY_BYTES`.
    """
    text = armored.strip()
    if len(text.encode("utf-8")) > MAX_KEY_BYTES or not text.startswith(_BEGIN_KEY):
        raise BadKey(f"a key must be one ASCII-armored OpenPGP public key ({_BEGIN_KEY} …, at most "
                        f"{MAX_KEY_BYTES} bytes), as `gpg --armor --export KEYID` writes")
    if not only(text, _KEY_ARMOR, KEY_PACKETS):
        raise BadKey("a key must be one ASCII-armored OpenPGP public key: its packets a public key, user ids, "
                     "subkeys and their signatures, nothing else (no compressed or literal data)")
    with tempfile.TemporaryDirectory(prefix="coordhub-gpg-key-") as home:
        os.chmod(home, 0o700)
        gpg = gnupg.GPG(gnupghome=home, options=list(GPG_OPTIONS))
        result = gpg.scan_keys_mem(text)
        public = [k for k in result if k.get("type") == "pub"]
        if len(result) != 1 or len(public) != 1:
            raise BadKey(f"expected one public key, found {len(public)} public and "
                            f"{len(result) - len(public)} other key(s)")
        return str(public[0]["fingerprint"]).upper()


def verify(data: bytes, signature: str, keys: list[str]) -> Verdict:
    """Check a detached armored ``signature`` over ``data`` against ``keys`` (armored public keys).

    Blocking (runs ``gpg``). With no keys the answer is not valid, reason
    ``no key``. Never raises for a bad signature: the verdict says why.
    """
    if not keys:
        return Verdict(False, reason="no key registered")
    if not only(signature, _SIGNATURE_ARMOR, SIGNATURE_PACKETS):
        return Verdict(False, reason="not one armored detached signature (`gpg --detach-sign --armor` writes one): "
                                     "signature packets only")
    gpg, lock = _homes.get(tuple(keys))
    with tempfile.NamedTemporaryFile("w", suffix=".asc", delete=False, encoding="utf-8") as sig:
        sig.write(signature)
    try:
        with lock:
            result = gpg.verify_data(sig.name, data)
    finally:
        os.unlink(sig.name)
    if result.valid:
        primary = result.pubkey_fingerprint or result.fingerprint
        return Verdict(True, fingerprint=str(primary).upper())
    status = result.status or "no valid signature"
    if result.key_id and status == "no public key":
        status = f"signed by key {result.key_id}, which is not registered for this session"
    return Verdict(False, reason=status)
