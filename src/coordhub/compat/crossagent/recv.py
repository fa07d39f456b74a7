"""``cross-agent-recv <file>``: seed 004's receiver decision on one inbox file, with the hub behind it.

The checks run on the file, in the seed's order; the first that fails decides:

1. frontmatter (:func:`coordhub.core.orgturn.parse`): a missing or malformed
   required field, or an unknown type → ``reject``;
2. ``PROTOCOL_VERSION`` other than ``--protocol-version`` (5) → ``query``;
3. the signature ``<file>.asc`` (unless ``--no-verify``): missing, or not
   verified by ``gpg --verify`` → ``reject``. The user's keyring is tried
   first, as in the seed; when it lacks the signer's key, the keys the turn's
   author registered at the hub are tried in a temporary keyring. A signature
   by a revoked or expired key does not verify (the seed went by gpg's exit
   code, 0 for those; the hub refuses them);
4. dedup (unless ``--no-dedup``): another ``.org`` in the folder with the same
   ``CONVERSATION_ID`` and ``SEQUENCE`` and the same SHA-256 of its bytes →
   ``dedup``;
5. ``REQUIRES_TOOLS``: a tool is available when it is an executable on
   ``PATH`` (the seed's rule) or a tool this session declared at the hub
   (``coord conv tools set``); any missing → ``query``;
6. else ``process``.

Exit codes: 0 process, 1 dedup, 2 query, 3 reject (also a file that does not
exist), 5 halt: a halt over this machine or project at the hub, a hub that
cannot say (fail closed), or this session paused after a resume until it
re-engages (``coord engage``, seed 004's asymmetry); the file is left where
it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.compat.crossagent.common import EXIT_HALT, Me, connect, describe, err, halt_state
from coordhub.compat.orgfiles import read_capped
from coordhub.core import orgturn
from coordhub.errors import Invalid

EXIT_FOR = {"process": 0, "dedup": 1, "query": 2, "reject": 3}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-recv",
                                description="Decide on one cross-agent message file: process, dedup, query or "
                                            "reject (exit 0/1/2/3; 5 when halted).")
    p.add_argument("message_file", type=Path)
    p.add_argument("--no-verify", action="store_true", help="Skip GPG verification (testing only)")
    p.add_argument("--no-dedup", action="store_true", help="Skip SHA-256 dedup against existing files")
    p.add_argument("--protocol-version", default=orgturn.PROTOCOL_VERSION,
                   help=f"Expected protocol version (default: {orgturn.PROTOCOL_VERSION})")
    p.add_argument("--json", action="store_true", help="Emit JSON output")
    p.add_argument("--compact-json", action="store_true", help="Compact JSON (no indent)")
    return p


def emit(decision: str, reason: str | None, keys: dict[str, str], sha256: str | None, args: argparse.Namespace) -> int:
    """Print the decision the seed's way (``key: value`` lines, or its JSON object) and return its exit code."""
    payload = {"decision": decision, "reason": reason, "message_type": keys.get("MESSAGE_TYPE"),
               "conversation_id": keys.get("CONVERSATION_ID"), "sequence": keys.get("SEQUENCE"),
               "timestamp": keys.get("TIMESTAMP"), "sha256": sha256}
    if args.json:
        print(json.dumps(payload, indent=None if args.compact_json else 2))
    else:
        print(f"decision: {decision}")
        if reason:
            print(f"reason: {reason}")
        for k in ("message_type", "conversation_id", "sequence", "timestamp", "sha256"):
            if payload[k] is not None:
                print(f"{k}: {payload[k]}")
    return EXIT_FOR[decision]


def duplicate_of(path: Path, raw: bytes) -> str | None:
    """The name of another ``.org`` beside ``path`` holding exactly ``raw`` (so the same conversation, sequence and
    SHA-256, the seed's rule); else None. Reads at most ``len(raw) + 1`` bytes of each: a sibling of another size
    is no twin, however large."""
    for sibling in sorted(path.parent.iterdir()):
        if sibling.name == path.name or sibling.suffix != ".org" or not sibling.is_file():
            continue
        try:
            if read_capped(sibling, len(raw), "message file") == raw:
                return sibling.name
        except (OSError, Invalid):
            continue
    return None


class Receiver:
    """One run of the checks; the hub is asked only for what the file needs (halt always)."""

    def __init__(self, args: argparse.Namespace, me: Me) -> None:
        self.args = args
        self.me = me

    def decide(self) -> int:
        args, path = self.args, self.args.message_file
        if not path.is_file():
            err(f"message file not found: {path}")
            return EXIT_FOR["reject"]
        try:
            raw = read_capped(path, orgturn.MAX_CONTENT_BYTES, "message file")
            text = orgturn.decode(raw)
            keys = orgturn.split(text)[0]
        except OSError as exc:
            return emit("reject", f"cannot read: {exc}", {}, None, args)
        except Invalid as exc:
            return emit("reject", f"cannot read: {exc.message}", {}, None, args)
        try:
            turn = orgturn.parse(text)
        except Invalid as exc:
            return emit("reject", exc.message, keys, None, args)
        if turn.protocol_version != args.protocol_version:
            return emit("query", f"PROTOCOL_VERSION mismatch: expected {args.protocol_version}, got "
                                 f"{turn.protocol_version}", keys, None, args)
        if not args.no_verify:
            failed = self.signature_problem(path, turn)
            if failed is not None:
                return emit("reject", failed, keys, None, args)
        digest = hashlib.sha256(raw).hexdigest()
        if not args.no_dedup:
            twin = duplicate_of(path, raw)
            if twin is not None:
                return emit("dedup", f"identical retry of {twin}", keys, digest, args)
        missing = self.missing_tools(turn.requires_tools)
        if missing:
            return emit("query", f"required tools unavailable: {', '.join(missing)}", keys, digest, args)
        return emit("process", None, keys, digest, args)

    def signature_problem(self, path: Path, turn: orgturn.Turn) -> str | None:
        """Why the signature does not verify, or None when it does."""
        from coordhub.compat import gpg

        sig = path.with_name(path.name + ".asc")
        if not sig.is_file():
            return f"signature file missing: {sig.name}"
        try:
            verdict = gpg.verify(path, sig)
            if not verdict.valid and verdict.no_key:
                keys = self.author_keys(turn)
                if keys:
                    with gpg.keyring(keys) as home:
                        verdict = gpg.verify(path, sig, home)
        except gpg.GpgError as exc:
            return f"gpg verify failed: {exc}"
        return None if verdict.valid else f"gpg verify failed: {verdict.reason}"

    def author_keys(self, turn: orgturn.Turn) -> list[str]:
        """The public keys the turn's author registered at the hub (the conversation's authors when the turn is not
        found by its canonical hash); [] when the hub cannot say."""
        from coordhub.client import HubError, Unreachable

        client = self.me.client
        try:
            conv = client.conversation(turn.conversation_id)
            turns = [t for t in conv.get("turns", []) if isinstance(t, dict)]
            digest = turn.sha256()
            authors = [t["author"] for t in turns if t.get("content_sha256") == digest] or \
                list(dict.fromkeys(t["author"] for t in turns if t.get("author")))
            return [k["armored"] for a in dict.fromkeys(authors) for k in client.keys(a) if k.get("armored")]
        except (HubError, Unreachable, KeyError, TypeError, AttributeError):
            return []

    def missing_tools(self, tools: tuple[str, ...]) -> list[str]:
        """The tools neither on ``PATH`` nor declared by this session at the hub."""
        missing = [t for t in tools if shutil.which(t) is None]
        if not missing:
            return []
        from coordhub.client import HubError, Unreachable

        try:
            declared = set(self.me.profile().get("tools") or [])
        except (HubError, Unreachable):
            declared = set()
        return [t for t in missing if t not in declared]


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    with connect(EXIT_HALT) as client:
        me = Me(client)
        from coordhub.client import HubError, Unreachable

        paused = None
        try:
            found, paused = halt_state(client, me.machine, [me.project] if me.project else [])
            unknown = None
        except (HubError, Unreachable) as exc:
            found, unknown = [], str(exc)
        if found or unknown:
            why = describe(found[0]) if found else f"halt state unknown: {unknown}; treated as halted"
            err(f"halt active; leaving inbound message in place (resume will pick up): {why}")
            return EXIT_HALT
        if paused:  # seed 004's asymmetry: after a resume an agent's polling stays stopped until it re-engages
            err("paused since the halt was lifted; leaving inbound message in place: re-engage this session with "
                "`coord engage`, then receive again")
            return EXIT_HALT
        return Receiver(args, me).decide()


if __name__ == "__main__":
    sys.exit(main())
