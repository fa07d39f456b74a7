"""The softfail queue (seed 001): writes that could not reach the hub, kept in order for later.

One JSON object per line in ``.claude/coord-queue.jsonl`` at the project root
(see :mod:`coordhub.client.settings`): ``{"ts", "method", "path", "params",
"body", "idempotency_key", "session", "actor", "hub", "mac"}``. The
idempotency key is the one the first attempt used, so a replay after the hub
had in fact applied the write has no second effect (contract §2.5); ``ts``
is when the write was first tried, sent on replay as ``X-Coord-Queued-At``
so the hub shows it as ``queued_at``.

**Only this user's own entries are replayed** (issue 7 point 7): a queue
file can come with a cloned repository, and replaying it would act with the
user's token. Each entry carries ``mac``, an HMAC-SHA256 under a per-user
secret (``<config dir>/queue.key``, 0600, made on first use) over every
other field, ``hub`` (the origin of the hub it was queued for) included. An
entry is replayed only if its MAC verifies, only to that hub, only by the
credential that queued it (``actor``: a prefix of the token's SHA-256, never
the token), and only as a relative ``/api/coord/…`` path with a write method.
Anything else is *foreign*: reported, left in place, and replayed only when
the user confirms it (``coord sync --review-foreign``), e.g. a queue written by
hand in seed 001's shape (``ts``, ``method``, ``path``, ``body``; its key is
then derived from the line, so replays still dedupe).

**The file must be this user's regular file** of at most
:data:`MAX_QUEUE_BYTES`: it is opened without following a symlink
(``O_NOFOLLOW``; a FIFO is not waited on) and checked with ``fstat`` before a
byte is read or written, so a committed ``coord-queue.jsonl -> /dev/zero`` or
``-> ~/.bashrc`` is neither read without end nor written through
(:class:`QueueUnusable`). :func:`coordhub.client.settings.queue_path` already
passes such a file over for the user's own queue.

The file is 0600 in a 0700 directory. Appends and drains hold an exclusive
``flock`` on that directory, so several CLI processes never interleave or
lose entries, and no lock file is left behind. A drain reads the file once,
walks it once, and rewrites it once at the end (temp file + rename), not
after every entry: after each entry the hub answers, the entry's MAC is
appended (fsynced) to a journal beside the queue (``coord-queue.done.jsonl``),
and a later drain drops the entries the journal names before it sends
anything, then removes the journal. A crash mid-drain thus loses nothing and
at worst replays the one entry that was in flight, which the hub recognises
by its key. The journal names entries by their MAC, which only this user's
secret can make, so a planted journal cannot make a drain drop anything.

**An entry older than the hub remembers idempotency keys is not replayed**
(the hub's ``retain_idempotency_hours``, 168 by default, which ``/health``
advertises as ``idempotency_retention_hours``) if an attempt of it may have
reached the hub: a replay would then apply it a second time. It is moved,
unsent, to ``coord-queue.expired.jsonl`` for the user to check
(``Drained.expired`` counts them). Each entry records (``reached``, under the
MAC) whether any attempt may have reached the hub (a timeout, a connection
dropped after sending, a 5xx answer) or none did (connection refused, never
sent): the latter is replayed however old, as the hub never saw its key; an
entry written before ``reached`` was kept counts as reached.

**An entry the hub keeps answering 5xx to is given up** after
:data:`MAX_FAILED_REPLAYS` such replays (not 502, 503 or 504, a gateway's word
that the hub is down, nor the hub's ``database_unavailable``: an outage is
never counted against an entry) (``failed``, counted in the entry
under the MAC and rewritten with the drain's one rewrite): it is moved to the
rejected file with a ``gave_up`` note (``Drained.gave_up``) and the drain goes
on with the next entry, so one write a hub bug or a gateway always fails does
not hold the queue for good. "Older" keeps a margin of :data:`EXPIRY_MARGIN` of the
retention for clock skew; without an advertised retention
:data:`DEFAULT_MAX_AGE_HOURS` is assumed.

A planted queue of foreign lines costs a drain little: a line that does not
carry this user's actor and hub as this client writes them is never parsed
unless it carries a ``mac`` at all, and at most :data:`MAX_CHECKED` such
lines per drain have their signature checked (to tell the user's entries for
another hub from foreign ones); the rest are counted as foreign unchecked.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from coordhub.client import project
from coordhub.client.settings import MAX_QUEUE_BYTES
from coordhub.client.trust import origin
from coordhub.errors import CoordError
from coordhub.strictjson import MAX_DEPTH

KEY_FILE = "queue.key"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")  # reads are never queued
_PATH = re.compile(r"/api/coord/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
MAX_LINE = 2 * 1024 * 1024  # bytes; a line longer than any request the client makes is not an entry
MAX_CHECKED = 10_000  # signed lines not for this hub and actor whose signature one drain checks at most
DEFAULT_MAX_AGE_HOURS = 168.0  # the hub's default retain_idempotency_hours, for a hub that does not say its own
EXPIRY_MARGIN = 0.1  # of the retention: an entry this close to it is not replayed either (clock skew)
MAX_FAILED_REPLAYS = 8  # replays of one entry the hub answers 5xx to before it is moved to the rejected file
APPLIED, REJECTED = "applied", "rejected"
RETRY = "retry"  # not sent (the hub could not be reached, or it is halted): keep it, count nothing
RETRY_REACHED = "retry-reached"  # may have reached the hub (timeout, dropped connection, its database down)
FAILED = "failed"  # the hub (or a gateway) answered 5xx: may have reached it; counts toward MAX_FAILED_REPLAYS


class QueueUnusable(CoordError):
    """The queue (or a file kept beside it) is not this user's regular file of at most :data:`MAX_QUEUE_BYTES`,
    or a line to add would take it past that bound."""

    status, code = 409, "queue_unusable"


def _open(path: Path, flags: int) -> int:
    """A descriptor of ``path`` opened with ``flags``, checked to be this user's regular file within the bound.

    Never follows a symlink at ``path`` and never blocks on a FIFO. Raises
    :class:`QueueUnusable` (the file is not usable) or ``OSError`` (e.g.
    ``FileNotFoundError`` without ``O_CREAT``).
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO without a reader
            raise QueueUnusable(f"{path}: not used as a softfail queue: it is a symlink or not a regular file "
                                "(a repository may have put it there); move it away") from None
        raise
    problem = project.file_problem(os.fstat(fd), MAX_QUEUE_BYTES)
    if problem is not None:
        os.close(fd)
        raise QueueUnusable(f"{path}: not used as a softfail queue: {problem} (a repository may have put it "
                            "there); move it away")
    os.set_blocking(fd, True)
    return fd


def _deeper(value: Any, depth: int) -> bool:
    """Whether ``value`` (parsed JSON) nests arrays and objects more than ``depth`` levels; linear in its size."""
    level = [value]
    for _ in range(depth):
        level = [v for x in level if isinstance(x, dict | list) for v in (x.values() if isinstance(x, dict) else x)]
        if not level:
            return False
    return any(isinstance(x, dict | list) for x in level)


def _older(ts: str, limit: float | None) -> bool:
    """Whether the queue time ``ts`` (ISO 8601) is before ``limit`` (POSIX time; None: never); a missing one is not."""
    if limit is None:
        return False
    try:
        when = datetime.fromisoformat(ts)
    except ValueError:
        return False  # this client always writes one (under the MAC); an entry without is replayed as before
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() < limit


def safe_target(method: str, path: str) -> str | None:
    """Why ``method path`` may not be replayed, or None when it is a write to a relative ``/api/coord/`` path."""
    if method not in WRITE_METHODS:
        return f"method {method!r} is not one the client queues ({', '.join(WRITE_METHODS)})"
    if not _PATH.fullmatch(path) or "//" in path or "/../" in path + "/" or "/./" in path + "/":
        return f"path {path[:80]!r} is not a relative /api/coord/ path"
    return None


@dataclass
class Entry:
    """One queued write."""

    method: str
    path: str
    body: Any
    idempotency_key: str
    params: dict[str, Any] | None = None
    session: str | None = None
    ts: str = ""
    actor: str | None = None
    hub: str | None = None
    mac: str | None = None
    reached: bool | None = None  # whether an attempt may have reached the hub (None: written before this was kept)
    failed: int = 0  # replays the hub answered 5xx to

    def fields(self) -> dict[str, Any]:
        """Every field but ``mac``: what the MAC covers (``reached`` and ``failed`` only when set, so an entry
        written before they existed keeps its MAC)."""
        extra: dict[str, Any] = {}
        if self.reached is not None:
            extra["reached"] = self.reached
        if self.failed:
            extra["failed"] = self.failed
        return {"ts": self.ts, "method": self.method, "path": self.path, "params": self.params, "body": self.body,
                "idempotency_key": self.idempotency_key, "session": self.session, **extra, "actor": self.actor,
                "hub": self.hub}

    def may_have_reached(self) -> bool:
        """Whether a replay could apply this write a second time: unknown (an older entry) counts as yes."""
        return self.reached is not False

    def to_json(self) -> str:
        """The entry as one JSON line (without the newline)."""
        return json.dumps({**self.fields(), "mac": self.mac}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Entry:
        """Parse one line; ``ValueError`` if it is not a queue entry."""
        if len(line) > MAX_LINE:
            raise ValueError("line too long")
        try:
            data = json.loads(line)
        except RecursionError:  # '[' x 100,000: a line a repository planted, never one this client wrote
            raise ValueError(f"nested deeper than {MAX_DEPTH + 1} arrays and objects") from None
        # a body the hub takes nests MAX_DEPTH at most (strictjson), one level below the line's own object; deeper
        # is nothing this client wrote, and too deep to sign again safely
        if _deeper(data, MAX_DEPTH + 1):
            raise ValueError(f"nested deeper than {MAX_DEPTH + 1} arrays and objects")
        if not isinstance(data, dict) or not {"method", "path"} <= data.keys():
            raise ValueError("not a queue entry")
        if not isinstance(data["method"], str) or not isinstance(data["path"], str):
            raise ValueError("not a queue entry")
        params = data.get("params")
        if params is not None and not isinstance(params, dict):
            raise ValueError("params is not an object")
        text = {k: data.get(k) if isinstance(data.get(k), str) else None
                for k in ("idempotency_key", "session", "ts", "actor", "hub", "mac")}
        for k in ("idempotency_key", "ts"):  # sent as header values, which are printable ASCII (RFC 9110 §5.5)
            value = text[k]
            if value is not None and not (value.isascii() and value.isprintable()):
                text[k] = None  # a hand-written line's: this client writes a UUID and an ISO time
        key = text["idempotency_key"] or "seed-" + hashlib.sha256(line.strip().encode()).hexdigest()[:32]
        reached, failed = data.get("reached"), data.get("failed")
        return cls(method=data["method"].upper(), path=data["path"], body=data.get("body"), idempotency_key=key,
                   params=params, session=text["session"], ts=text["ts"] or "", actor=text["actor"],
                   hub=text["hub"], mac=text["mac"], reached=reached if isinstance(reached, bool) else None,
                   failed=failed if type(failed) is int and failed > 0 else 0)


class Signer:
    """Signs and verifies entries with this user's secret (``<config dir>/queue.key``)."""

    def __init__(self, key_file: Path | None = None) -> None:
        self.key_file = key_file or project.config_dir() / KEY_FILE
        self._key: bytes | None = None

    def _secret(self, create: bool) -> bytes | None:
        if self._key is None:
            with contextlib.suppress(OSError, ValueError):
                self._key = bytes.fromhex(self.key_file.read_text(encoding="ascii").strip()) or None
        if self._key is None and create:
            import secrets  # only the first write of a user ever needs it

            directory = project.private_dir(self.key_file.parent)
            with project.locked(directory):
                if not self.key_file.exists():  # another process may have made it meanwhile
                    project.write_private(self.key_file, secrets.token_hex(32) + "\n")
                self._key = bytes.fromhex(self.key_file.read_text(encoding="ascii").strip())
        return self._key

    def _mac(self, entry: Entry, key: bytes) -> str:
        canonical = json.dumps(entry.fields(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()

    def sign(self, entry: Entry) -> None:
        """Set ``entry.mac`` (creating the secret on first use)."""
        key = self._secret(create=True)
        assert key is not None
        entry.mac = self._mac(entry, key)

    def verify(self, entry: Entry) -> bool:
        """Whether ``entry`` was signed with this user's secret and not changed since."""
        key = self._secret(create=False)
        return key is not None and entry.mac is not None and hmac.compare_digest(entry.mac, self._mac(entry, key))


class Drained(NamedTuple):
    """What one drain did: entries ``applied`` and ``rejected`` by the hub, and what is ``left`` in the file.

    ``foreign`` counts the entries left because this client did not write
    them (unsigned, forged, unparseable; past :data:`MAX_CHECKED`, any
    signed line not for this hub and credential); ``elsewhere`` those it
    wrote for another hub or another credential. ``left - foreign -
    elsewhere`` is how many of this client's entries for this hub are still
    queued: non-zero only when a failed replay stopped the drain. ``expired``
    counts the entries moved unsent to the expired file (older than the
    hub's idempotency retention and possibly applied already). ``gave_up``
    counts the entries moved to the rejected file after
    :data:`MAX_FAILED_REPLAYS` replays the hub answered 5xx to (not in
    ``rejected``); ``stopped`` is the outcome the drain stopped at
    (:data:`RETRY`, :data:`RETRY_REACHED` or :data:`FAILED`), None if it did not stop. ``held`` is why a newer
    write must be queued behind the entry it stopped at rather than sent (the hub unreachable, unavailable or
    rate-limiting: :meth:`coordhub.client.softfail.Softfail.replay` says), None when nothing holds it back.
    """

    applied: int
    rejected: int
    left: int
    foreign: int = 0
    elsewhere: int = 0
    expired: int = 0
    gave_up: int = 0
    stopped: str | None = None
    held: str | None = None


class Foreign(NamedTuple):
    """A line of the queue this client did not write: the line, its parse (None if it does not parse), and why."""

    line: str
    entry: Entry | None
    reason: str


class SoftfailQueue:
    """The queue file at ``path``; ``rejected`` is where entries the hub refused (4xx) are moved.

    ``git_root``, when the file lies in a git working tree, is where its
    ``info/exclude`` gets the queue's names on first write (never commit a
    queue). ``signer`` defaults to this user's.
    """

    def __init__(self, path: Path, *, signer: Signer | None = None, git_root: Path | None = None) -> None:
        self.path = path
        self.rejected = path.with_name(path.stem + ".rejected" + path.suffix)
        self.journal = path.with_name(path.stem + ".done" + path.suffix)  # MACs of entries a drain has settled
        self.expired = path.with_name(path.stem + ".expired" + path.suffix)
        self.signer = signer or Signer()
        self.git_root = git_root
        self._untracked: set[Path] = set()  # files git was asked about and does not track (once per client)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.path.parent.is_dir():
            project.private_dir(self.path.parent)
        with project.locked(self.path.parent):
            yield

    def _ignore_in_git(self) -> None:
        if self.git_root is None:
            return
        try:
            names = tuple("/" + p.resolve().relative_to(self.git_root.resolve()).as_posix()
                          for p in (self.path, self.rejected, self.journal, self.expired))
        except ValueError:
            return  # the queue is outside the repository
        project.exclude(self.git_root, names)

    def _append_line(self, target: Path, line: str) -> None:
        """Append ``line`` to ``target`` (fsynced). :class:`QueueUnusable`, and nothing added, when the line would
        take the file past :data:`MAX_QUEUE_BYTES`: past it the file would be refused whole, queued writes and
        all, as one a repository planted.

        A file that does not end in a newline (an append cut short by a crash or a full disk) gets one first:
        the torn line stays a line of its own (foreign, reported) instead of swallowing this one. A file others
        may read or write is made 0600 first: what is queued holds message bodies. :class:`QueueUnusable` too
        for a file git tracks (asked once per file and client): a repository can commit an empty queue, and the
        user's queued writes would be published by the next ``git commit -a``; and when the line cannot be
        written (a full disk): what part of it was is taken back.
        """
        if self.git_root is not None and target not in self._untracked:
            inside = Path(os.path.abspath(target)).is_relative_to(os.path.abspath(self.git_root))
            if inside and os.path.lexists(target) and project.tracked(self.git_root, target):
                raise QueueUnusable(f"{target}: not used as a softfail queue: git tracks it (a repository may have "
                                    "committed it), and what is queued, message bodies included, would be "
                                    "committed with it; nothing was added. Move it away, or `git rm --cached` it")
            self._untracked.add(target)
        data = (line + "\n").encode("utf-8")
        made = not os.path.lexists(target)  # under the directory's lock: no other client makes it meanwhile
        fd = _open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT)  # read too: the last byte is looked at
        try:
            status = os.fstat(fd)
            if status.st_mode & 0o077:  # a file this client did not make (git checks a committed one out 0644)
                os.fchmod(fd, 0o600)  # on the descriptor, checked to be this user's regular file
            size = status.st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            if size + len(data) > MAX_QUEUE_BYTES:
                raise QueueUnusable(f"{target} is full: {size} bytes, and {len(data)} more would pass its bound of "
                                    f"{MAX_QUEUE_BYTES}; nothing was added to it. "
                                    + ("Send what is queued with `coord sync` when the hub is back"
                                       if target == self.path else "Check its entries and move it away"))
            try:
                left = memoryview(data)
                while left:
                    left = left[os.write(fd, left):]
                os.fsync(fd)
                if made:  # the new file's name is durable only once its directory is synced too
                    project.sync_dir(target.parent)
            except OSError as exc:  # a full disk (ENOSPC), a file size limit (EFBIG): take the part written back
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # the lock on the directory keeps any other append out meanwhile
                raise QueueUnusable(f"{target} could not be written ({exc.strerror}); nothing was added to it"
                                    ) from None
        finally:
            os.close(fd)

    def append(self, entry: Entry) -> int:
        """Sign and add an entry at the end (durably: fsynced); return how many entries are now queued.
        :class:`QueueUnusable` (nothing added) when the file is not usable or the entry would take it past
        :data:`MAX_QUEUE_BYTES`."""
        entry.ts = entry.ts or datetime.now(UTC).isoformat().replace("+00:00", "Z")
        self.signer.sign(entry)
        project.private_dir(self.path.parent)
        with self._locked():
            if not os.path.lexists(self.path):
                self._ignore_in_git()
            self._append_line(self.path, entry.to_json())
            return len(self._read())

    def _read(self, path: Path | None = None) -> list[str]:
        """The non-blank lines of the queue (or ``path``); [] when there is no file. Raises :class:`QueueUnusable`."""
        path = path or self.path
        try:
            fd = _open(path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_QUEUE_BYTES + 1)
        if len(data) > MAX_QUEUE_BYTES:  # grew since fstat
            raise QueueUnusable(f"{path}: not used as a softfail queue: it is larger than {MAX_QUEUE_BYTES} "
                                "bytes")
        text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads
        return [line for line in text.split("\n") if line.strip()]

    def pending(self) -> list[Entry]:
        """Every entry that parses, oldest first, whoever wrote it."""
        out = []
        for line in self._read():
            with contextlib.suppress(ValueError):
                out.append(Entry.from_json(line))
        return out

    def __len__(self) -> int:
        return len(self._read()) if os.path.lexists(self.path) else 0

    def _rewrite(self, lines: list[str]) -> None:
        if not lines:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        project.write_private(self.path, "".join(line + "\n" for line in lines))

    def _classify(self, line: str, hub: str, actor: str | None) -> tuple[Entry | None, str]:
        """(entry, verdict): ``own``, ``elsewhere`` (ours, for another hub or credential) or a foreign reason."""
        try:
            entry = Entry.from_json(line)
        except ValueError:
            return None, "not a queue entry"
        if entry.mac is None:
            return entry, "not signed (written by hand or by another program)"
        if not self.signer.verify(entry):
            return entry, "its signature is not this user's"
        if entry.hub != origin(hub) or entry.actor != actor:
            return entry, "elsewhere"
        return entry, "own"

    def drain(self, send: Callable[[Entry], str], hub: str, actor: str | None, *,
              retention_hours: Callable[[], float | None] | None = None, now: datetime | None = None) -> Drained:
        """Replay this client's entries for ``hub`` in order through ``send``; see the module docstring.

        ``send`` returns ``"applied"`` (2xx), ``"rejected"`` (the hub refused
        it for good: moved to the rejected file) or, to stop and keep this
        entry and the rest, :data:`RETRY` (not sent: hub unreachable or
        halted), :data:`RETRY_REACHED` (it may have reached the hub: the entry
        is marked so) or :data:`FAILED` (the hub answered 5xx: marked so, and
        counted; at the :data:`MAX_FAILED_REPLAYS`-th the entry is moved to the
        rejected file instead, with a ``gave_up`` note, and the drain goes on). Entries of
        another hub or credential and foreign entries stay where they are.
        Linear in the file's size; the file is rewritten at most once, and
        not at all when nothing was settled or marked. ``retention_hours`` says how
        long the hub keeps idempotency keys (None: forever); it is asked
        once, when the first entry to send is met (default: always
        :data:`DEFAULT_MAX_AGE_HOURS`); an entry older than that (less
        :data:`EXPIRY_MARGIN`) at ``now`` is moved to the expired file unsent,
        unless no attempt of it can have reached the hub (``reached`` false:
        only connections refused), as a replay then applies it only once.
        """
        applied = rejected = foreign = elsewhere = expired = gave_up = 0
        stop: str | None = None
        limit: list[float | None] = []  # the oldest queue time still replayed, once asked
        with self._locked():
            lines = self._read()
            settled = set(self._read(self.journal))  # by a drain that did not finish (crash)
            classify = self._classifier(hub, actor)
            kept: list[str] = []
            stopped = changed = False
            for line in lines:
                entry, verdict = classify(line)
                if verdict != "own":
                    kept.append(line)
                    elsewhere += verdict == "elsewhere"
                    foreign += verdict != "elsewhere"
                    continue
                assert entry is not None and entry.mac is not None
                if entry.mac in settled:  # applied or rejected before the crash: never sent twice
                    changed = True
                    continue
                if stopped:
                    kept.append(line)
                    continue
                if not limit:
                    limit.append(self._oldest(retention_hours, now))
                if entry.may_have_reached() and _older(entry.ts, limit[0]):
                    self._append_line(self.expired, line)
                    expired += 1
                    self._append_line(self.journal, entry.mac)
                    changed = True
                    continue
                outcome = "rejected" if safe_target(entry.method, entry.path) else send(entry)
                if outcome in (RETRY_REACHED, FAILED):  # counted and marked in the entry, rewritten below
                    mac = entry.mac  # the file holds the line under this one until the rewrite
                    entry.reached = True
                    entry.failed += outcome == FAILED
                    self.signer.sign(entry)
                    line, changed = entry.to_json(), True
                    if entry.failed >= MAX_FAILED_REPLAYS:
                        note = {"gave_up": f"the hub answered 5xx to {entry.failed} replays of this write; not "
                                           "sent again (it may or may not have taken effect): check and redo it"}
                        self._append_line(self.rejected, line[:-1] + "," + json.dumps(note)[1:])
                        gave_up += 1
                        self._append_line(self.journal, mac)
                        continue
                if outcome not in (APPLIED, REJECTED):
                    stopped, stop = True, outcome if outcome in (RETRY_REACHED, FAILED) else RETRY
                    kept.append(line)
                    continue
                if outcome == "rejected":
                    self._append_line(self.rejected, line)
                    rejected += 1
                else:
                    applied += 1
                self._append_line(self.journal, entry.mac)  # durable before the next entry is sent
                changed = True
            if changed:
                self._rewrite(kept)
            if changed or settled:
                with contextlib.suppress(FileNotFoundError):
                    self.journal.unlink()
            return Drained(applied, rejected, len(kept), foreign, elsewhere, expired, gave_up, stop)

    @staticmethod
    def _oldest(retention_hours: Callable[[], float | None] | None, now: datetime | None) -> float | None:
        """The POSIX time before which a queued entry is not replayed, or None (the hub keeps keys forever)."""
        hours = retention_hours() if retention_hours is not None else DEFAULT_MAX_AGE_HOURS
        if hours is None or hours <= 0:
            return None
        return (now or datetime.now(UTC)).timestamp() - hours * (1 - EXPIRY_MARGIN) * 3600

    def _classifier(self, hub: str, actor: str | None) -> Callable[[str], tuple[Entry | None, str]]:
        """:meth:`_classify` for one drain, cheap on lines that cannot be this client's for ``hub``.

        An entry this client wrote carries ``"actor":…,"hub":…,"mac":"`` exactly
        as :meth:`Entry.to_json` lays it out; a line without that is not ``own``
        and is parsed only if it carries a ``mac`` at all, for at most
        :data:`MAX_CHECKED` lines (then it may be ``elsewhere``); past that, or
        without a ``mac``, it is counted foreign unread.
        """
        mark = json.dumps({"actor": actor, "hub": origin(hub)}, separators=(",", ":"))[1:-1] + ',"mac":"'
        checked = 0

        def classify(line: str) -> tuple[Entry | None, str]:
            nonlocal checked
            if mark not in line:
                if checked >= MAX_CHECKED or '"mac":"' not in line:
                    return None, "foreign"
                checked += 1
            return self._classify(line, hub, actor)

        return classify

    def foreign(self, hub: str, actor: str | None) -> list[Foreign]:
        """The entries this client did not write, oldest first (nothing is changed)."""
        out = []
        for line in self._read():
            entry, verdict = self._classify(line, hub, actor)
            if verdict not in ("own", "elsewhere"):
                out.append(Foreign(line, entry, verdict))
        return out

    def settle(self, line: str, outcome: str) -> None:
        """Take one foreign ``line`` out of the queue after the user had it replayed: ``applied`` drops it,
        ``rejected`` moves it to the rejected file (nothing happens if the line is gone meanwhile)."""
        with self._locked():
            lines = self._read()
            if line not in lines:
                return
            lines.remove(line)
            if outcome == "rejected":
                self._append_line(self.rejected, line)
            self._rewrite(lines)
