"""A receiver that follows seed 004's documented receive rules (cross-agent-recv.md), written for the tests.

The format's source is the seed's documentation of ``cross-agent-recv``
(shared/seeds/004_…, "Behavior", steps 1–6), not its script and not
:mod:`coordhub.core.orgturn`: this is an independent reading of the format,
so a file that passes here is one a seed-004 agent's polling loop would
accept. Steps, first failure decides:

1. frontmatter: ``#+KEY: value`` lines at the top of the file; TITLE,
   CONVERSATION_ID, MESSAGE_TYPE (one of seven types), SEQUENCE (an integer),
   TIMESTAMP (ISO 8601 with an explicit offset) and PROTOCOL_VERSION must be
   there → else ``reject``;
2. PROTOCOL_VERSION must be the expected one (5) → else ``query``;
3. ``<file>.asc`` must be beside the file and ``gpg --verify`` must accept it
   → else ``reject``;
4. another file in the folder with the same CONVERSATION_ID and SEQUENCE and
   the same SHA-256 → ``dedup``;
5. every REQUIRES_TOOLS name must be an executable on PATH → else ``query``;
6. ``process``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

TYPES = {"request", "progress", "query", "pushback", "complete", "release", "escalate"}
NEEDED = ("TITLE", "CONVERSATION_ID", "MESSAGE_TYPE", "SEQUENCE", "TIMESTAMP", "PROTOCOL_VERSION")
ISO_WITH_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def header(path: Path) -> dict[str, str]:
    """The ``#+KEY: value`` lines at the top of a file (any lines before the first one skipped, as seed 004's
    ``parse_frontmatter`` does)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if found:
                break
            continue
        match = re.match(r"#\+([A-Z_]+):\s*(.*)$", line)
        if not match:
            if found:
                break
            continue
        found[match.group(1)] = match.group(2).strip()
    return found


def receive(path: Path, gnupghome: Path | None = None, expected_version: str = "5") -> tuple[str, str | None]:
    """``(decision, reason)`` for one inbox file, by the documented steps."""
    h = header(path)
    absent = [k for k in NEEDED if k not in h]
    if absent:
        return "reject", f"missing {absent}"
    if h["MESSAGE_TYPE"] not in TYPES:
        return "reject", "type"
    if not h["SEQUENCE"].isdigit():
        return "reject", "sequence"
    if not ISO_WITH_OFFSET.fullmatch(h["TIMESTAMP"]):
        return "reject", "timestamp"
    if h["PROTOCOL_VERSION"] != expected_version:
        return "query", "version"
    signature = Path(str(path) + ".asc")
    if not signature.exists():
        return "reject", "no .asc"
    env = dict(os.environ, **({"GNUPGHOME": str(gnupghome)} if gnupghome else {}))
    checked = subprocess.run(["gpg", "--batch", "--verify", str(signature), str(path)], env=env,
                             capture_output=True, check=False)
    if checked.returncode != 0:
        return "reject", checked.stderr.decode(errors="replace").strip().splitlines()[-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for other in path.parent.glob("*.org"):
        if other != path:
            o = header(other)
            if (o.get("CONVERSATION_ID"), o.get("SEQUENCE")) == (h["CONVERSATION_ID"], h["SEQUENCE"]) and \
                    hashlib.sha256(other.read_bytes()).hexdigest() == digest:
                return "dedup", other.name
    tools = [t.strip() for t in h.get("REQUIRES_TOOLS", "").split(",") if t.strip()]
    if any(shutil.which(t) is None for t in tools):
        return "query", "tools"
    return "process", None
