"""``coord import``: bring another coordination system's data onto the hub (``coord import redis``: seed 002).

The importer reads the source and writes through the hub's HTTP API as the
hub's admin (``POST /api/coord/imports/seed002``), in batches of one
transaction each. Through the API rather than into the database files,
because that is the one write path with the hub's rules (admin check, halt,
idempotency, events that reach live subscribers, both backends), it works
for a hub on another machine or on PostgreSQL, and it never puts a second
writer behind a running hub's back. Each item is written at most once
however often it is sent, so an import that was interrupted (a kill -9, the
hub or Redis going away) is resumed by running the same command again.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, NoReturn

import typer

from coordhub import jsonbytes
from coordhub.cli.common import EXIT_AUTH, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, JSON_OPT, client, fail
from coordhub.cli.output import console, print_json
from coordhub.client import CoordClient, HubError, Unreachable
from coordhub.hooks.untrusted import one_line

app = typer.Typer(help="Import another coordination system's data into the hub.", no_args_is_help=True)

IMPORT_PATH = "/api/coord/imports/seed002"
SHOWN = 20  # skipped records listed by name in the summary (all of them with --json)
BODY_LIMIT = 1_048_576  # the hub's default max_body_bytes (config.py; its 413 answer says its own as `limit`)
BODY_SLACK = 4096       # below the limit: the request's envelope around the items, and headroom
RETENTION = ("imported messages count as new for the hub's retention: read and acked history is kept for "
             "retain_messages_hours (30 days by default) from its import, then pruned as any other "
             "(coord archive export keeps it); a rerun never imports a pruned message again ('already, pruned')")


@app.command("redis")
def redis_(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", help="Redis to read, e.g. redis://host:6379/0 (default: from "
                                   "REDIS_HOST, REDIS_PORT and REDIS_DB, as seed 002 read them: localhost, 6379, "
                                   "0)."),
    prefix: str | None = typer.Option(None, "--prefix", help="Key prefix (default: $COORD_KEY_PREFIX, else coord)."),
    rename: list[str] = typer.Option([], "--rename", help="OLD=NEW: import instance OLD as session NEW "
                                     "(for names the hub cannot take, e.g. 'qa team=qa-team'); repeatable."),
    batch: int = typer.Option(200, "--batch", min=1, max=1000, help="Records per request (one transaction "
                              "each); fewer when they would pass the hub's request size limit."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and map everything, write nothing."),
    as_json: bool = JSON_OPT,
) -> None:
    """Import seed 002's Redis coordination data: messages, ack state, presence, offline notifications.

    Only reads Redis. Writes as the hub's admin (the local admin.token, or an admin --token). Running it
    again imports nothing twice, so an interrupted import is resumed the same way.
    """
    from coordhub.importers import redis as source

    try:
        renames = source.parse_renames(rename)
        redis_url = source.redis_url(url)
    except ValueError as exc:
        fail(one_line(exc), EXIT_USAGE)
    key_prefix = source.key_prefix(prefix)
    with client(ctx, admin=True) as c:
        if not dry_run:
            _check_admin(c)
        snap = _read(source, redis_url, key_prefix, renames)
        origin = f"{source.shown_url(redis_url)} {key_prefix}:*"
        tally, reports = (_tally(snap), []) if dry_run else _write(c, origin, snap.items, batch)
    summary = _summary(snap, tally, reports, source.shown_url(redis_url), key_prefix, dry_run)
    summary["hints"] = source.hints(redis_url, key_prefix, sum(snap.keys.values()))
    if as_json:
        print_json(summary)
    else:
        _print(summary)


def _check_admin(c: CoordClient) -> None:
    """Fail (nothing written, nothing read) unless the hub answers and this client is its admin."""
    try:
        me = c.call("GET", "/api/coord/whoami")
    except Unreachable as err:
        fail(f"hub at {c.settings.url} is unreachable: {err}; nothing was imported", EXIT_UNREACHABLE)
    except HubError as err:
        fail(f"{err.message} [{err.status} {err.code}]", EXIT_AUTH if err.status in (401, 403) else EXIT_REFUSED)
    if not me.get("admin"):
        fail(f"importing needs the hub's admin: {me.get('session_id')!r} is not one (run it on the hub's machine "
             "with its admin.token, add --admin, or pass an admin --token)", EXIT_AUTH)


def _read(source: Any, url: str, prefix: str, renames: dict[str, str]) -> Any:
    """Connect to Redis and read the snapshot, with a spinner; one-line errors (nothing written)."""
    try:
        r = source.connect(url)
    except source.MissingDriver as exc:
        fail(one_line(exc), EXIT_REFUSED)
    except source.RedisUnavailable as exc:
        fail(one_line(f"{exc}; nothing was imported"), EXIT_UNREACHABLE)
    except ValueError as exc:
        fail(one_line(exc), EXIT_USAGE)
    import redis

    try:
        with _progress() as bar:
            task = bar.add_task("reading Redis (keys)", total=None)
            return source.read(r, prefix, renames, lambda n: bar.update(task, completed=n))
    except redis.RedisError as exc:
        fail(one_line(f"Redis at {source.shown_url(url)} failed while being read ({source.scrubbed(str(exc), url)}); "
                      "nothing was imported"), EXIT_UNREACHABLE)
    finally:
        r.close()


def _write(c: CoordClient, origin: str, items: list[dict[str, Any]],
           batch: int) -> tuple[dict[str, Counter[str]], list[dict[str, Any]]]:
    """Send the items in batches: per-kind counts of outcomes, and the hub's results that carry a reason.

    A batch is at most ``batch`` items and :data:`BODY_LIMIT` bytes less
    :data:`BODY_SLACK` encoded (an item over that goes alone). A batch the
    hub answers 413 (its ``--max-body-bytes`` is smaller) is cut again below
    the limit it names, else in halves, and resent; one item alone that it
    refuses is counted ``skipped``, with the reason, and the import goes on.
    Fails (exit 3, 6 or 1) when the hub stops answering or refuses a batch
    otherwise, saying how far it got: the batches before were written, and a
    rerun skips them.
    """
    tally: dict[str, Counter[str]] = {}
    reports: list[dict[str, Any]] = []
    budget = BODY_LIMIT - BODY_SLACK - len(origin.encode())
    sizes = [len(jsonbytes.dumps(item)) + 1 for item in items]  # as sent (compact UTF-8), and its comma
    todo = _cut(list(range(len(items))), sizes, batch, budget)
    done = 0
    with _progress() as bar:
        task = bar.add_task("importing", total=len(items))
        while todo:
            chunk = todo.pop(0)
            try:
                out = c.call("POST", IMPORT_PATH, body={"source": origin, "items": [items[i] for i in chunk]},
                             queue=False)
            except HubError as err:
                if err.status != 413:
                    _stop(c, err, done, len(items))
                limit = _limit(err)
                if len(chunk) > 1:
                    budget = min(budget, (limit or BODY_LIMIT) - BODY_SLACK - len(origin.encode()))
                    pieces = _cut(chunk, sizes, batch, budget)
                    todo[:0] = pieces if len(pieces) > 1 else [chunk[:len(chunk) // 2], chunk[len(chunk) // 2:]]
                    continue
                out = {"results": [_too_big(items[chunk[0]], sizes[chunk[0]], limit)]}
            except Unreachable as err:
                _stop(c, err, done, len(items))
            for r in out["results"]:
                if r.get("pruned"):  # imported before, since removed by the hub's retention: counted, not listed
                    tally.setdefault(r["kind"], Counter())["already, pruned"] += 1
                    continue
                tally.setdefault(r["kind"], Counter())[r["outcome"]] += 1
                if r["outcome"] == "skipped" or r.get("reason"):
                    reports.append(r)
            done += len(chunk)
            bar.update(task, completed=done)
    return tally, reports


def _cut(indexes: list[int], sizes: list[int], count: int, budget: int) -> list[list[int]]:
    """``indexes`` in order, in runs of at most ``count`` items and ``budget`` bytes (an item over it alone)."""
    runs: list[list[int]] = []
    run: list[int] = []
    used = 0
    for i in indexes:
        if run and (len(run) >= count or used + sizes[i] > budget):
            runs.append(run)
            run, used = [], 0
        run.append(i)
        used += sizes[i]
    return runs + [run] if run else runs


def _limit(err: HubError) -> int | None:
    """The body limit a 413 answer names (``error.limit``), if it does."""
    error = err.body.get("error") if isinstance(err.body, dict) else None
    limit = error.get("limit") if isinstance(error, dict) else None
    return limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else None


def _too_big(item: dict[str, Any], size: int, limit: int | None) -> dict[str, Any]:
    """The result of an item the hub refused (413) even alone: skipped, saying why."""
    hub = f"{limit} bytes" if limit else "its limit"
    return {"kind": item["kind"], "ref": item.get("id") or item.get("key") or item.get("session_id"),
            "outcome": "skipped",
            "reason": f"too big to send: {size} bytes of JSON, and the hub takes requests of at most {hub} "
                      "(its --max-body-bytes): left out"}


def _stop(c: CoordClient, err: HubError | Unreachable, done: int, total: int) -> NoReturn:
    """Fail (exit 3, 6 or 1) saying how far the import got and that a rerun resumes it."""
    why = f"{err.message} [{err.status} {err.code}]" if isinstance(err, HubError) else \
        f"hub at {c.settings.url} is unreachable: {err}"
    fail(one_line(f"{why}; {done} of {total} records were imported. Run the same command again to "
                  "resume: nothing is imported twice"), _code(err))


def _code(err: Exception) -> int:
    if isinstance(err, Unreachable) or (isinstance(err, HubError) and err.status >= 500):
        return EXIT_UNREACHABLE
    if isinstance(err, HubError) and err.status in (401, 403):
        return EXIT_AUTH
    return EXIT_REFUSED


def _tally(snap: Any) -> dict[str, Counter[str]]:
    """A dry run's counts: every item would be offered to the hub."""
    tally: dict[str, Counter[str]] = {}
    for item in snap.items:
        tally.setdefault(item["kind"], Counter())["to import"] += 1
    return tally


def _progress() -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from coordhub.cli.output import Console

    err = Console(stderr=True)
    return Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err.rich, transient=True, disable=not sys.stderr.isatty())


def _summary(snap: Any, tally: dict[str, Counter[str]], reports: list[dict[str, Any]], url: str, prefix: str,
             dry_run: bool) -> dict[str, Any]:
    """The summary (what ``--json`` prints): keys found, counts per kind and outcome, what was left out and why."""
    left_out = [p for p in snap.problems if p.skipped]
    hub_skips = [r for r in reports if r["outcome"] == "skipped"]
    for p in left_out:
        tally.setdefault(p.kind, Counter())["left out"] += 1
    return {
        "redis": url, "prefix": prefix, "dry_run": dry_run, "keys": dict(snap.keys),
        "counts": {kind: dict(c) for kind, c in sorted(tally.items())},
        "skipped": [{"kind": p.kind, "ref": p.ref, "reason": p.reason} for p in left_out]
                   + [{"kind": r["kind"], "ref": r["ref"], "reason": r.get("reason")} for r in hub_skips],
        "notes": [{"kind": p.kind, "ref": p.ref, "note": p.reason} for p in snap.problems if not p.skipped]
                 + [{"kind": r["kind"], "ref": r["ref"], "note": r["reason"]} for r in reports
                    if r["outcome"] != "skipped"],
        "unknown_types": dict(snap.unknown_types),
        "retention": RETENTION,
    }


def _print(s: dict[str, Any]) -> None:
    """The summary for a person. Key names, ids and reasons come from Redis: every line goes through
    ``one_line`` (control characters escaped, so no terminal escape reaches the terminal) and is printed as
    plain text (``Console.print`` of a string: no Rich markup)."""
    def say(text: str) -> None:
        console.print(one_line(text))

    head = "would import (dry run)" if s["dry_run"] else "imported"
    say(f"{head} from {s['redis']} prefix {s['prefix']}: " +
        (", ".join(f"{n} {role} key(s)" for role, n in sorted(s["keys"].items())) or "no keys"))
    for kind, counts in s["counts"].items():
        say(f"  {kind + 's':<14} " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())))
    if s["unknown_types"]:
        say("  message types outside seed 002's set, kept as labels: " +
            ", ".join(f"{t} ({n})" for t, n in sorted(s["unknown_types"].items())))
    if s["skipped"]:
        say(f"left out ({len(s['skipped'])}):")
        for p in s["skipped"][:SHOWN]:
            say(f"  {p['kind']} {p['ref']}: {p['reason']}")
        if len(s["skipped"]) > SHOWN:
            say(f"  … and {len(s['skipped']) - SHOWN} more (all of them with --json)")
    if s["notes"]:
        say(f"{len(s['notes'])} record(s) mapped with a change (see --json for each)")
    for hint in s.get("hints", []):
        say(f"note: {hint}")
    if s["counts"].get("message"):
        say(RETENTION)
