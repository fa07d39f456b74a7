"""The ``gpg`` binary as seed 004 used it: detached armored signatures, verification, key export.

Seed 004's users already sign with GPG (``gpg --detach-sign --armor``), so the
drop-in commands run the same binary with the same arguments and never do
crypto of their own. Verification reads gpg's machine-readable status lines
(``--status-fd``, doc/DETAILS in GnuPG) to tell "bad signature" from "key not
in this keyring"; the human reason shown is gpg's last stderr line, as the
seed showed it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coordhub import openpgp
from coordhub.compat.orgfiles import read_capped
from coordhub.core import orgturn
from coordhub.errors import Invalid

# A good signature by a key out of good standing: gpg still exits 0 and says VALIDSIG (doc/DETAILS), so these
# status lines, not the exit code, decide. The hub's check (python-gnupg) refuses the same three.
OUT_OF_STANDING = {"REVKEYSIG": "signing key {} was revoked", "EXPKEYSIG": "signing key {} has expired",
                   "EXPSIG": "the signature by key {} has expired"}


# Only keys already in the keyring vouch for a file: a user's gpg.conf may say auto-key-retrieve (fetch an unknown
# signer's key from a keyserver or WKD) or auto-key-import (take the key a signature carries), either of which
# would make a signature by anyone's key good, and keep that key for later checks.
NO_KEY_FETCHING = ("--no-auto-key-retrieve", "--no-auto-key-import")


class GpgError(Exception):
    """gpg is missing or failed; the message says what it said."""


@dataclass(frozen=True)
class Verdict:
    """``valid``: the signature verifies; ``fingerprint`` of the signing key when valid; ``no_key`` when gpg could
    not check it for lack of the public key; ``reason`` gpg's last stderr line when not valid."""

    valid: bool
    fingerprint: str | None = None
    no_key: bool = False
    reason: str = ""


def _run(args: list[str], home: Path | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    cmd = ["gpg", *(["--homedir", str(home)] if home is not None else []), *args]
    try:
        return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, check=False)
    except FileNotFoundError:
        raise GpgError("gpg not found; install gnupg or use --no-sign for testing") from None
    except subprocess.TimeoutExpired:
        raise GpgError("gpg timed out (a pinentry waiting for a passphrase?)") from None


def _last_line(stderr: bytes, code: int) -> str:
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else f"exit {code}"


def signing_key(explicit: str | None) -> str | None:
    """The key to sign with, seed 004's order: ``--key``, ``GPG_USER``, ``git config user.signingkey``, else None
    (gpg's default key, the first secret key)."""
    if explicit:
        return explicit
    if os.environ.get("GPG_USER"):
        return os.environ["GPG_USER"]
    try:
        found = subprocess.run(["git", "config", "user.signingkey"], capture_output=True, text=True, timeout=10,
                               check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None


def sign(data: bytes, key: str | None) -> str:
    """A detached ASCII-armored signature of ``data`` (``gpg --detach-sign --armor [--local-user KEY]``)."""
    with tempfile.TemporaryDirectory(prefix="coordhub-sign-") as tmp:
        message, sig = Path(tmp) / "message.org", Path(tmp) / "message.org.asc"
        message.write_bytes(data)
        args = ["--detach-sign", "--armor", "--yes", "--output", str(sig)]
        if key:
            args += ["--local-user", key]
        done = _run([*args, str(message)])
        if done.returncode != 0 or not sig.is_file():
            raise GpgError(f"signing failed: {_last_line(done.stderr, done.returncode)}")
        return sig.read_text(encoding="ascii")


def verify(message: Path, signature: Path, home: Path | None = None) -> Verdict:
    """Check ``signature`` (a detached signature file) over ``message`` with the keyring of ``home`` (default:
    the user's, as the seed's ``gpg --verify``).

    Valid only when gpg exits 0 with ``VALIDSIG`` and no signature in the file is by a revoked or expired key or
    itself expired (:data:`OUT_OF_STANDING`; the seed, trusting gpg's exit code, accepted those). gpg never sees a
    file over :data:`~coordhub.core.orgturn.MAX_SIGNATURE_BYTES` or one that is not one armored block of signature
    packets (the hub's check, :func:`coordhub.openpgp.only`): a compressed packet of a few KiB would have gpg
    inflate gigabytes first, on every check of the file.
    """
    try:
        armored = read_capped(signature, orgturn.MAX_SIGNATURE_BYTES, signature.name)
    except Invalid as exc:
        return Verdict(False, reason=exc.message)
    except OSError as exc:
        return Verdict(False, reason=f"cannot read {signature.name}: {exc.strerror or exc}")
    if not openpgp.only(armored.decode("ascii", "replace"), "PGP SIGNATURE", openpgp.SIGNATURE_PACKETS):
        return Verdict(False, reason=f"{signature.name} is not one armored detached signature (`gpg --detach-sign "
                                     "--armor` writes one): signature packets only")
    # a private home never starts an agent: verifying needs none, and one started under load may time out
    quiet = ["--no-autostart"] if home is not None else []
    # gpg reads the bytes checked above (on stdin), not the file again, which may have changed meanwhile
    done = _run(["--batch", *quiet, *NO_KEY_FETCHING, "--status-fd", "1", "--verify", "-", str(message)], home,
                armored)
    status = [line.split()[1:] for line in done.stdout.decode("utf-8", "replace").splitlines()
              if line.startswith("[GNUPG:] ")]
    valid = [s for s in status if s and s[0] == "VALIDSIG"]
    standing = next((s for s in status if s and s[0] in OUT_OF_STANDING), None)
    if standing is not None:
        return Verdict(False, reason=OUT_OF_STANDING[standing[0]].format(standing[1] if len(standing) > 1 else "?"))
    if done.returncode == 0 and valid:
        fields = valid[0]
        return Verdict(True, fingerprint=(fields[10] if len(fields) > 10 else fields[1]).upper())
    no_key = any(s and s[0] == "NO_PUBKEY" for s in status)
    return Verdict(False, no_key=no_key, reason=_last_line(done.stderr, done.returncode))


def export(key_id: str) -> str:
    """The armored public key ``key_id`` (``gpg --armor --export``); ``GpgError`` when the keyring has none."""
    done = _run(["--batch", "--armor", "--export", key_id])
    text = done.stdout.decode("ascii", "replace").strip()
    if done.returncode != 0 or not text:
        raise GpgError(f"gpg --armor --export {key_id} gave no key" +
                       (f": {_last_line(done.stderr, done.returncode)}" if done.stderr.strip() else
                        " (is it in your keyring? `gpg --list-keys`)"))
    return text + "\n"


@contextlib.contextmanager
def keyring(armored_keys: list[str]) -> Iterator[Path]:
    """A private, temporary gpg home holding only ``armored_keys``; removed afterwards.

    For checking a signature against the keys a sender registered at the hub
    without adding them to the user's own keyring.
    """
    home = Path(tempfile.mkdtemp(prefix="coordhub-gpg-"))
    try:
        os.chmod(home, 0o700)
        for armored in armored_keys:
            _run(["--batch", "--no-autostart", "--import"], home, armored.encode("utf-8"))
        yield home
    finally:
        with contextlib.suppress(OSError, GpgError, subprocess.SubprocessError):
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True, timeout=10,
                           check=False)
        shutil.rmtree(home, ignore_errors=True)
