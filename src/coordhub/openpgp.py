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

What a key may make ``gpg`` do is bounded before ``gpg`` sees it
(:func:`key_fault`): ``gpg`` checks every self-signature of a key it
imports, and an RSA key's cost grows with its modulus and, without limit,
with its public exponent (one 16,000-bit exponent made each check take
1.3 s; 30 user ids, 80 s of CPU per registration). And every ``gpg`` run is
killed after :data:`GPG_TIMEOUT` seconds (:class:`GpgTimeout`).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gnupg  # type: ignore[import-untyped]

MAX_KEY_BYTES = 64 * 1024   # an armored public key with a few subkeys and signatures is a few KiB
MAX_HOMES = 64
GPG_OPTIONS = ("--no-autostart",)  # every gpg run here: never start a gpg-agent (see the module docstring)
_KEY_ARMOR = "PGP PUBLIC KEY BLOCK"
_BEGIN_KEY = f"-----BEGIN {_KEY_ARMOR}-----"
_SIGNATURE_ARMOR = "PGP SIGNATURE"
SIGNATURE_PACKETS = frozenset({2})  # RFC 4880 §4.3: a detached signature is signature packets only
KEY_PACKETS = frozenset({2, 6, 12, 13, 14, 17})  # signature, public key, trust, user id, public subkey, attribute
GPG_TIMEOUT = 10.0  # seconds one gpg run may take before it is killed; a bounded key's checks take milliseconds

# What a key may hold (:func:`key_fault`): room for any key `gpg --quick-generate-key` makes (RSA up to 4096 bits
# with e = 65537, DSA/ElGamal up to 3072, any curve) with a few subkeys and user ids, and a bound on the checks
# gpg makes importing it (one per signature, each costing what its key's algorithm and size cost).
KEY_VERSIONS = frozenset({4, 5, 6})  # RFC 4880 §5.5.2 (v4), RFC 9580 §5.5.2 (v6), its draft's v5; v3 is MD5-era
MAX_RSA_BITS = 4096
MAX_RSA_EXPONENT_BITS = 32  # e < 2**32: 65537 and the small odd exponents; a verification costs log2(e) squarings
MAX_DL_BITS = 3072  # DSA and ElGamal: the prime p
MAX_USER_IDS = 16  # user id and user attribute packets together
MAX_SUBKEYS = 16
MAX_SIGNATURES = 64  # self-signatures and certifications (`--export-options export-minimal` drops the latter)
_RSA = frozenset({1, 2, 3})  # RFC 4880 §9.1: MPIs n, e
_DL = {16: "ElGamal", 17: "DSA"}  # MPIs p, ...: the cost grows with p
_FIXED_COST = frozenset({18, 19, 22, 25, 26, 27, 28})  # ECDH, ECDSA, EdDSA, X25519, X448, Ed25519, Ed448


class BadKey(ValueError):
    """The text is not one armored OpenPGP public key, or one outside the bounds (message says why; ``bound``
    names the bound it passes and ``limit`` its value, both None when it is not a key)."""

    def __init__(self, message: str, bound: str | None = None, limit: int | None = None) -> None:
        super().__init__(message)
        self.bound, self.limit = bound, limit


class GpgTimeout(RuntimeError):
    """A ``gpg`` run took longer than :data:`GPG_TIMEOUT` seconds and was killed."""


class _GPG(gnupg.GPG):  # type: ignore[misc]
    """python-gnupg's ``GPG``, each ``gpg`` run killed after :data:`GPG_TIMEOUT` seconds (:class:`GpgTimeout`).

    python-gnupg (0.5) has no timeout of its own; every run it makes, ``gpg --version`` at construction
    included, ends in ``_collect_output``, which waits for the process to exit.
    """

    def _collect_output(self, process: subprocess.Popen[bytes], result: Any, *args: Any, **kwargs: Any) -> Any:
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            process.kill()  # does nothing once the process is reaped (Popen checks)

        timer = threading.Timer(GPG_TIMEOUT, stop)
        timer.daemon = True
        timer.start()
        try:
            rc = super()._collect_output(process, result, *args, **kwargs)
        finally:
            timer.cancel()
        if fired.is_set() and process.returncode != 0:
            raise GpgTimeout(f"gpg took longer than {GPG_TIMEOUT:g} s and was stopped")
        return rc


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
        """The home holding ``keys`` (made and cached on first use); :class:`GpgTimeout` when importing them took
        too long (nothing cached then)."""
        digest = hashlib.sha256("\n\x00".join(sorted(keys)).encode()).hexdigest()[:32]
        with self._lock:
            found = self._homes.get(digest)
            if found is not None:
                self._homes.move_to_end(digest)
                return found
        root = self.root()
        home = root / digest
        home.mkdir(mode=0o700, exist_ok=True)
        try:
            gpg = _GPG(gnupghome=str(home), options=list(GPG_OPTIONS))
            for armored in keys:
                gpg.import_keys(armored)
        except GpgTimeout:
            shutil.rmtree(home, ignore_errors=True)
            raise
        entry = (gpg, threading.Lock())
        with self._lock:
            self._homes[digest] = entry
            while len(self._homes) > MAX_HOMES:
                old, _ = self._homes.popitem(last=False)
                shutil.rmtree(root / old, ignore_errors=True)
        return entry


_homes = _Homes()


def packets(armored: str, kind: str) -> list[tuple[int, bytes]] | None:
    """The OpenPGP packets (RFC 4880 §4.2) in ``armored``, each as its tag and body, when it is one ASCII-armored
    block of ``kind`` (``PGP SIGNATURE``, ``PGP PUBLIC KEY BLOCK``) and nothing else; None when it is not that, or
    a packet's length is not given in full (a partial or indeterminate length: data, never a key's or a
    signature's packet)."""
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
    found, at = [], 0
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
        found.append((tag, data[at:at + size]))
        at += size
    return found


def packet_tags(armored: str, kind: str) -> list[int] | None:
    """The tags of the packets in ``armored`` (:func:`packets`); None when it is not one armored block of ``kind``.

    What a caller checks before handing the text to ``gpg``, which would otherwise unpack whatever it holds: a
    compressed packet of a few KiB (tag 8) inflates to gigabytes, a minute of its CPU per check.
    """
    found = packets(armored, kind)
    return None if found is None else [tag for tag, _ in found]


def only(armored: str, kind: str, allowed: frozenset[int]) -> bool:
    """Whether ``armored`` is one armored block of ``kind`` holding one or more packets, each of a tag in ``allowed``
    (:func:`packet_tags`)."""
    tags = packet_tags(armored, kind)
    return tags is not None and bool(tags) and set(tags) <= allowed


def _mpis(material: bytes, count: int) -> list[int] | None:
    """The first ``count`` multiprecision integers (RFC 4880 §3.2) of ``material``; None when it is shorter."""
    values, at = [], 0
    for _ in range(count):
        if at + 2 > len(material):
            return None
        size = (int.from_bytes(material[at:at + 2], "big") + 7) // 8
        if at + 2 + size > len(material):
            return None
        values.append(int.from_bytes(material[at + 2:at + 2 + size], "big"))
        at += 2 + size
    return values


def _public_key_fault(body: bytes) -> BadKey | None:
    """Why a public key or subkey packet's ``body`` is outside the bounds; None when it is within them.

    RFC 4880 §5.5.2 (v4: version, creation time, algorithm, MPIs), RFC 9580 §5.5.2 (v6, and its draft's v5: the
    same with a four-octet length before the key material). gpg's cost checking a key's signatures grows with an
    RSA modulus and exponent and a DSA or ElGamal prime; an elliptic curve's is fixed."""
    version = body[0] if body else 0
    if version not in KEY_VERSIONS:
        return BadKey(f"a key (or subkey) of version {version}: the hub takes versions 4, 5 and 6", "key_version")
    head = 6 if version == 4 else 10
    if len(body) < head:
        return BadKey("a key (or subkey) packet too short to hold a key", "key_version")
    algorithm, material = body[5], body[head:]
    if algorithm in _RSA:
        mpis = _mpis(material, 2)
        if mpis is None:
            return BadKey("an RSA key (or subkey) packet too short to hold its modulus and exponent", "rsa_bits")
        n, e = mpis
        if n.bit_length() > MAX_RSA_BITS:
            return BadKey(f"an RSA key (or subkey) of {n.bit_length()} bits: at most {MAX_RSA_BITS}", "rsa_bits",
                          MAX_RSA_BITS)
        if e.bit_length() > MAX_RSA_EXPONENT_BITS:
            return BadKey(f"an RSA key (or subkey) with a {e.bit_length()}-bit public exponent: it must be under "
                          f"2^{MAX_RSA_EXPONENT_BITS} (gpg makes 65537)", "rsa_exponent_bits", MAX_RSA_EXPONENT_BITS)
        return None
    if algorithm in _DL:
        mpis = _mpis(material, 1)
        if mpis is None:
            return BadKey(f"a {_DL[algorithm]} key (or subkey) packet too short to hold its prime", "dl_bits")
        if mpis[0].bit_length() > MAX_DL_BITS:
            return BadKey(f"a {_DL[algorithm]} key (or subkey) of {mpis[0].bit_length()} bits: at most "
                          f"{MAX_DL_BITS}", "dl_bits", MAX_DL_BITS)
        return None
    if algorithm in _FIXED_COST:
        return None
    return BadKey(f"a key (or subkey) of public-key algorithm {algorithm}: the hub takes RSA, DSA, ElGamal, ECDSA, "
                  "ECDH and EdDSA (RFC 4880 §9.1, RFC 9580 §9.1)", "key_algorithm")


def key_fault(armored: str) -> BadKey | None:
    """Why ``armored`` is not a key the hub hands to ``gpg`` (its ``bound`` and ``limit`` None when it is not a key
    at all); None when it is one.

    A key is one armored ``PGP PUBLIC KEY BLOCK`` of at most :data:`MAX_KEY_BYTES` bytes whose first packet is its
    one public key, the rest user ids, subkeys and signatures (nothing ``gpg`` would unpack), within the bounds:
    at most :data:`MAX_USER_IDS` user ids, :data:`MAX_SUBKEYS` subkeys and :data:`MAX_SIGNATURES` signatures; the
    key and each subkey of a version in :data:`KEY_VERSIONS` and, for RSA, at most :data:`MAX_RSA_BITS` bits with a
    public exponent under 2^:data:`MAX_RSA_EXPONENT_BITS`, for DSA and ElGamal at most :data:`MAX_DL_BITS` bits.
    Reads the text only: runs no ``gpg``.
    """
    text = armored.strip()
    if len(text.encode("utf-8")) > MAX_KEY_BYTES or not text.startswith(_BEGIN_KEY):
        return BadKey(f"a key must be one ASCII-armored OpenPGP public key ({_BEGIN_KEY} …, at most "
                      f"{MAX_KEY_BYTES} bytes), as `gpg --armor --export KEYID` writes")
    found = packets(text, _KEY_ARMOR)
    if not found or not {tag for tag, _ in found} <= KEY_PACKETS:
        return BadKey("a key must be one ASCII-armored OpenPGP public key: its packets a public key, user ids, "
                      "subkeys and their signatures, nothing else (no compressed or literal data)")
    primaries = sum(1 for tag, _ in found if tag == 6)
    if found[0][0] != 6 or primaries != 1:
        return BadKey(f"expected one public key, found {primaries} public key packets (the first packet must be one)")
    counts = [(sum(1 for tag, _ in found if tag in (13, 17)), MAX_USER_IDS, "user ids", "user_ids"),
              (sum(1 for tag, _ in found if tag == 14), MAX_SUBKEYS, "subkeys", "subkeys"),
              (sum(1 for tag, _ in found if tag == 2), MAX_SIGNATURES, "signatures", "signatures")]
    for count, bound, what, name in counts:
        if count > bound:
            return BadKey(f"a key with {count} {what}: at most {bound} (gpg checks each one it imports)", name, bound)
    for tag, body in found:
        if tag in (6, 14) and (fault := _public_key_fault(body)) is not None:
            return fault
    return None


def fingerprint(armored: str) -> str:
    """The primary fingerprint of one armored public key (upper-case hex); :class:`BadKey` otherwise.

    Refuses, before any ``gpg`` runs, whatever :func:`key_fault` refuses (secret keys, several keys in one block,
    text over :data:`MAX_KEY_BYTES`, keys outside the bounds); :class:`BadKey` too when ``gpg`` takes longer than
    :data:`GPG_TIMEOUT` seconds.
    """
    fault = key_fault(armored)
    if fault is not None:
        raise fault
    text = armored.strip()
    with tempfile.TemporaryDirectory(prefix="coordhub-gpg-key-") as home:
        os.chmod(home, 0o700)
        try:
            result = _GPG(gnupghome=home, options=list(GPG_OPTIONS)).scan_keys_mem(text)
        except GpgTimeout as exc:
            raise BadKey(f"reading the key: {exc}") from None
        public = [k for k in result if k.get("type") == "pub"]
        if len(result) != 1 or len(public) != 1:
            raise BadKey(f"expected one public key, found {len(public)} public and "
                            f"{len(result) - len(public)} other key(s)")
        return str(public[0]["fingerprint"]).upper()


def verify(data: bytes, signature: str, keys: list[str]) -> Verdict:
    """Check a detached armored ``signature`` over ``data`` against ``keys`` (armored public keys).

    Blocking (runs ``gpg``, at most :data:`GPG_TIMEOUT` seconds per run). With no keys the answer is not valid,
    reason ``no key``. Keys outside the bounds (:func:`key_fault`; registered before the bounds held) are not
    used. Never raises for a bad signature: the verdict says why.
    """
    if not keys:
        return Verdict(False, reason="no key registered")
    if not only(signature, _SIGNATURE_ARMOR, SIGNATURE_PACKETS):
        return Verdict(False, reason="not one armored detached signature (`gpg --detach-sign --armor` writes one): "
                                     "signature packets only")
    usable = tuple(key for key in keys if key_fault(key) is None)
    if not usable:
        return Verdict(False, reason="no registered key is within the hub's key bounds (docs/conversations.md)")
    with tempfile.NamedTemporaryFile("w", suffix=".asc", delete=False, encoding="utf-8") as sig:
        sig.write(signature)
    try:
        gpg, lock = _homes.get(usable)
        with lock:
            result = gpg.verify_data(sig.name, data)
    except GpgTimeout as exc:
        return Verdict(False, reason=str(exc))
    finally:
        os.unlink(sig.name)
    if result.valid:
        primary = result.pubkey_fingerprint or result.fingerprint
        return Verdict(True, fingerprint=str(primary).upper())
    status = result.status or "no valid signature"
    if result.key_id and status == "no public key":
        status = f"signed by key {result.key_id}, which is not registered for this session"
    return Verdict(False, reason=status)
