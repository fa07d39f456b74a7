"""The softfail queue (seed 001): writes that could not reach the hub, kept in order for later.

One JSON object per line in ``.claude/coord-queue.jsonl`` (seed 001's file):
``{"ts", "method", "path", "params", "body", "idempotency_key", "session",
"actor"}``. The idempotency key is the one the first attempt used, so a replay
after the hub had in fact applied the write has no second effect (contract
§2.5). ``actor`` fingerprints the credential that queued the write (a prefix
of the token's SHA-256, never the token): only the same credential replays
it, so one session never sends another's queued writes as itself. Lines in
seed 001's own shape (``ts``, ``method``, ``path``, ``body``; no key) are
accepted too: their key is derived from the line, so replays still dedupe.

Appends and drains hold an exclusive ``flock`` on ``<file>.lock``, so several
CLI processes in one working directory never interleave or lose entries.
After each entry the hub answers, the remaining entries are rewritten
atomically (temp file + rename): a crash mid-drain loses nothing and at worst
replays one entry, which the hub recognises by its key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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

    def to_json(self) -> str:
        """The entry as one JSON line (without the newline)."""
        return json.dumps({"ts": self.ts, "method": self.method, "path": self.path, "params": self.params,
                           "body": self.body, "idempotency_key": self.idempotency_key, "session": self.session,
                           "actor": self.actor}, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Entry:
        """Parse one line; ``ValueError`` if it is not a queue entry."""
        data = json.loads(line)
        if not isinstance(data, dict) or not {"method", "path"} <= data.keys():
            raise ValueError("not a queue entry")
        if not isinstance(data["method"], str) or not isinstance(data["path"], str):
            raise ValueError("not a queue entry")
        key = data.get("idempotency_key") or "seed-" + hashlib.sha256(line.strip().encode()).hexdigest()[:32]
        return cls(method=data["method"].upper(), path=data["path"], body=data.get("body"), idempotency_key=key,
                   params=data.get("params"), session=data.get("session"), ts=data.get("ts", ""),
                   actor=data.get("actor"))


class SoftfailQueue:
    """The queue file at ``path``; ``rejected`` is where entries the hub refused (4xx) are moved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rejected = path.with_name(path.stem + ".rejected" + path.suffix)
        self._lock_path = path.with_name(path.name + ".lock")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, entry: Entry) -> int:
        """Add an entry at the end (durably: fsynced); return how many entries are now queued."""
        entry.ts = entry.ts or datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._locked():
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(entry.to_json() + "\n")
                f.flush()
                os.fsync(f.fileno())
            return len(self._read())

    def _read(self) -> list[str]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return [line.rstrip("\n") for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def pending(self) -> list[Entry]:
        """Every queued entry, oldest first (unparseable lines are skipped)."""
        out = []
        for line in self._read():
            with contextlib.suppress(ValueError):
                out.append(Entry.from_json(line))
        return out

    def __len__(self) -> int:
        return len(self._read()) if self.path.exists() else 0

    def _rewrite(self, lines: list[str]) -> None:
        if not lines:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def drain(self, send: Callable[[Entry], str], actor: str | None = None) -> tuple[int, int, int]:
        """Replay ``actor``'s entries in order through ``send``; return ``(applied, rejected, left)``.

        ``send`` returns ``"applied"`` (2xx), ``"rejected"`` (the hub refused
        it for good: moved to the rejected file) or ``"retry"`` (hub still
        unreachable or halted: stop, keep this and the rest). Entries queued
        by another credential stay where they are; entries with no actor
        (seed 001 lines) are replayed by whoever drains. Lines that do not
        parse are moved to the rejected file. ``left`` counts every entry
        still queued.
        """
        applied = rejected = 0
        with self._locked():
            lines = self._read()
            kept: list[str] = []
            while lines:
                line, lines = lines[0], lines[1:]
                try:
                    entry = Entry.from_json(line)
                except ValueError:
                    entry = None
                if entry is not None and entry.actor not in (None, actor):
                    kept.append(line)
                    continue
                outcome = "rejected" if entry is None else send(entry)
                if outcome == "retry":
                    kept += [line, *lines]
                    break
                if outcome == "rejected":
                    with open(self.rejected, "a", encoding="utf-8") as f:
                        f.write(line + "\n")
                    rejected += 1
                else:
                    applied += 1
                self._rewrite(kept + lines)
            return applied, rejected, len(kept)
