"""``cross-agent-send <dest> <file>``: send a seed-004 message file as a turn through the hub.

What the seed did by SSH and rsync, the hub does in one request: the
destination ``<machine>.<project>`` must be an address some session declared
(else exit 2 with the known ones), the file's frontmatter is checked first
(exit 4), and the answer is the hub's decision.

**Sequence numbers belong to the hub.** The file's ``#+SEQUENCE`` is advisory.
An unsigned turn (``--no-sign``) is renumbered by the hub. A signed turn must
carry the hub's number in its own signed text, so before signing this asks
the hub for the conversation's next sequence, rewrites ``#+SEQUENCE`` in a
copy when it differs (and says so; the file itself is untouched), signs that
copy with ``gpg --detach-sign --armor`` and sends it expecting that sequence.
When another sender took it meanwhile (409 ``sequence_taken``) it renumbers,
re-signs and retries, up to ``--retries`` times.

Key (seed 004's order): ``--key``, ``GPG_USER``, ``git config
user.signingkey``, else gpg's default key.

Exit codes (the seed's): 0 sent (or an identical retry of a turn already
delivered; or a release of a conversation released already, which prints
``already released: <dest>/<file>`` of the release that did it, not
``sent:``), 1 general error,
a refusal by the hub (decision query or reject, with the reason), a sequence still taken after the retries,
or a signed release whose sequence another party's turn took (nothing sent; it names the turn), 2 unknown
destination, 3 the hub unreachable after the retries (a marker is written to
the seed's ``~/.local/state/cross-agent-comms/failed-sends/``), 4 frontmatter invalid, 5 halt (or
this session paused after a resume: it says to ``coord engage``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from coordhub.cli.entry import quiet_on_closed_stdout
from coordhub.client import address
from coordhub.compat.crossagent.common import EXIT_HALT, Me, connect, describe, die, err, halt_state, paused_line
from coordhub.core import orgturn
from coordhub.errors import Invalid
from coordhub.hooks.untrusted import one_line

EXIT_OK, EXIT_GENERAL, EXIT_DEST, EXIT_DELIVERY, EXIT_FRONTMATTER = 0, 1, 2, 3, 4
BACKOFF = (5.0, 30.0, 120.0)  # seconds between attempts when the hub is unreachable (the seed's rsync backoff)
MARKERS = "~/.local/state/cross-agent-comms/failed-sends"  # the seed's, so `cat …/failed-sends/*.json` still finds them


def retries(text: str) -> int:
    """``--retries``: a whole number, 0 or more (fewer would make no attempt at all)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number 0 or more; got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cross-agent-send", description="Send a cross-agent message through the hub.")
    p.add_argument("destination", help="Destination as <machine>.<project> (local.<project>: this machine)")
    p.add_argument("message_file", type=Path, help="Path to the message file (org frontmatter + body)")
    p.add_argument("--no-sign", action="store_true", help="Skip GPG signing (testing only)")
    p.add_argument("--retries", type=retries, default=3,
                   help="Attempts after the first when the hub is unreachable or the sequence was taken (default 3)")
    p.add_argument("--key", help="GPG key id to sign with (default: GPG_USER, git user.signingkey, gpg's default)")
    return p


def mark_failed(destination: str, message: Path, error: str, log: list[str]) -> Path:
    """Write seed 004's failed-send marker (for visibility; it does not retry) in the seed's folder
    (:data:`MARKERS`, where its runbook looks) and return its path. Raises ``OSError`` when it cannot."""
    from coordhub.client import project as places

    folder = places.private_dir(Path(MARKERS).expanduser())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    marker = folder / f"{stamp}-{destination.replace('.', '-')}-{re.sub(r'[^A-Za-z0-9._-]', '_', message.name)}.json"
    marker.write_text(json.dumps({"timestamp": stamp, "destination": destination, "message_path": str(message),
                                  "error": error, "retry_log": log}, indent=2) + "\n", encoding="utf-8")
    return marker


def report_marker(destination: str, message: Path, log: list[str]) -> None:
    """Write the failed-send marker of an unreachable hub and say where on stderr (or why it could not be)."""
    try:
        err(f"marker written: {mark_failed(destination, message, 'hub unreachable', log)}")
    except OSError as exc:  # the send failed either way (exit 3); a marker is for visibility only
        err(f"marker not written: {exc}")


def check_halt(me: Me) -> None:
    """Exit 5 when a halt stands over this machine or project (seed 004 checked before each step), or this session
    is paused after a resume (its writes would be 423 ``paused``: re-engaging, not resuming, lets it go on)."""
    from coordhub.client import HubError, Unreachable

    try:
        found, paused = halt_state(me.client, me.machine, [me.project] if me.project else [])
    except (HubError, Unreachable):
        return  # the send itself meets the halt (423) or the outage
    if found:
        die(f"halt active: {describe(found[0])}\nresume with: cross-agent-resume (or coord resume)", EXIT_HALT)
    if paused:
        die(paused_line(paused), EXIT_HALT)


class Sender:
    """One send: the checks, signing, and the retries."""

    def __init__(self, args: argparse.Namespace, me: Me, text: str, turn: orgturn.Turn, dest: str) -> None:
        self.args = args
        self.me = me
        self.client = me.client
        self.text = text
        self.turn = turn
        self.dest = dest
        self.log: list[str] = []
        self.renumbered: tuple[int | None, int] | None = None  # (the file's sequence, the signed copy's)

    def post(self, content: str, signature: str | None, expect: int | None) -> Any:
        """One request, retried while the hub is unreachable (halt re-checked before each retry)."""
        from coordhub.client import Unreachable

        for attempt in range(self.args.retries + 1):
            if attempt:
                wait = BACKOFF[min(attempt - 1, len(BACKOFF) - 1)]
                err(f"attempt {attempt} failed: {self.log[-1]}; retrying in {wait:.0f}s")
                time.sleep(wait)
                check_halt(self.me)
            try:
                return self.client.send_turn(self.dest, content, signature=signature, expect_sequence=expect,
                                             queue=False, from_machine=self.me.machine,
                                             from_project=self.me.project)
            except Unreachable as exc:
                self.log.append(str(exc))
        err(f"delivery failed after {self.args.retries + 1} attempts: {self.log[-1]}")
        report_marker(self.dest, self.args.message_file, self.log)
        raise SystemExit(EXIT_DELIVERY)

    def signed(self) -> Any:
        """Renumber to the hub's next sequence, sign, send; on ``sequence_taken`` renumber and retry
        (:func:`coordhub.compat.signedturn.send_signed`)."""
        from coordhub.compat import gpg, signedturn

        def renumbered(was: int | None, now: int) -> None:
            self.renumbered = (was, now)  # said once the hub recorded it (send): a dedup recorded nothing

        try:
            return signedturn.send_signed(self.client, self.text, gpg.signing_key(self.args.key),
                                          self.args.retries + 1, self.post, renumbered)
        except gpg.GpgError as exc:
            die(str(exc), EXIT_GENERAL)
        except signedturn.SequenceStillTaken as exc:
            die(str(exc), EXIT_GENERAL)
        except signedturn.ConversationChanged as exc:  # a release signed while the other party's turn arrived
            die(str(exc), EXIT_GENERAL)

    def send(self) -> int:
        from coordhub.client import HubError

        try:
            answer = self.post(self.text, None, None) if self.args.no_sign else self.signed()
        except HubError as exc:
            return refused(exc, self.args.destination)
        decision = answer.get("decision")
        if decision in ("query", "reject"):
            die(f"the hub refused the message: {decision}: {answer.get('reason')}", EXIT_GENERAL)
        where = f"{answer.get('to', self.dest)}/{answer.get('file_name')}"
        if decision == "dedup" and answer.get("type") == "release":  # maybe another party's release, not a retry
            err(one_line(f"note: {answer.get('conversation_id')} was released already, by turn {answer.get('id')} "
                         f"#{answer.get('sequence')} (released by {answer.get('author')}): this release was not "
                         "recorded"))
            print(f"already released: {where}")  # not "sent:": nothing of this file was (the standing release's)
            return EXIT_OK
        if self.renumbered is not None and decision != "dedup":
            was, now = self.renumbered
            err(f"note: #+SEQUENCE {was} -> {now}: the hub numbers turns, so the signed copy carries {now} (your "
                "file is unchanged)")
        if self.args.no_sign and answer.get("sequence") not in (None, self.turn.sequence):
            err(f"note: the hub numbered this turn {answer['sequence']} (the file said {self.turn.sequence})")
        if decision == "dedup":
            err(f"note: identical retry of turn {answer.get('id')}: delivered once")
        print(f"sent: {where}")
        return EXIT_OK


def refused(exc: Any, destination: str) -> int:
    """The exit code (and the one line) for a request the hub refused; ``destination`` as the user gave it."""
    error = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
    if exc.code == "unknown_destination":  # the seed's "destination not found in peers.toml; available peers: …"
        known = error.get("known") or []
        die(f"destination not found: {destination} (no session declared it); available: "
            f"{', '.join(known) or '(none)'}", EXIT_DEST)
    if exc.status == 423 and isinstance(error.get("paused"), dict):  # a resume left this session paused
        die(paused_line(error["paused"]), EXIT_HALT)
    if exc.status == 423:
        # the hub's words carry the halt's reason, anyone's text (common.describe): escaped, on one line
        die(f"halt active: {one_line(exc.message)}\nresume with: cross-agent-resume (or coord resume)", EXIT_HALT)
    if exc.status == 422:
        die(f"message refused by the hub: {exc.message}", EXIT_FRONTMATTER)
    die(f"send failed: {exc.message} [{exc.status} {exc.code}]", EXIT_GENERAL)


@quiet_on_closed_stdout
def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    args = parser().parse_args(argv)
    with connect() as client:
        from coordhub.client import HubError, Unreachable

        me = Me(client)
        try:
            check_halt(me)
            if not args.message_file.is_file():
                die(f"message file not found: {args.message_file}", EXIT_GENERAL)
            try:
                text = orgturn.decode(args.message_file.read_bytes())
                turn = orgturn.parse(text)
            except OSError as exc:
                die(f"cannot read message file: {exc}", EXIT_GENERAL)
            except Invalid as exc:
                die(exc.message, EXIT_FRONTMATTER)
            try:
                dest = str(address.parse(args.destination, me.machine))
            except ValueError as exc:
                die(str(exc), EXIT_DEST)
            return Sender(args, me, text, turn, dest).send()
        except HubError as exc:
            return refused(exc, args.destination)
        except Unreachable as exc:
            err(f"hub at {client.settings.url} is unreachable: {exc}")
            report_marker(args.destination, args.message_file, [str(exc)])
            return EXIT_DELIVERY


if __name__ == "__main__":
    sys.exit(main())
