"""Classify lease resources and decide whether two of them overlap.

The rule is **sound: may over-report, never miss**. A false "overlap" only
delays a session; a missed one lets two sessions edit the same file. Every
approximation below errs towards reporting an overlap. Standard library only:
the hook script imports this module and must start fast.

Kinds (``classify``):

* NAME: a scheme-like prefix, ``^[A-Za-z][A-Za-z0-9+._-]+:`` (two or more
  characters before the first ``:``, which therefore precedes any ``/``), e.g.
  ``deploy:staging``. A NAME overlaps only an identical NAME (compared
  case-sensitively after stripping surrounding whitespace), never a PATH/GLOB.
* GLOB: otherwise, if it contains any of ``* ? [ {``.
* PATH: everything else. ``C:\\src`` is a PATH: one letter before ``:`` is a
  Windows drive.

Normalization (``normalize``; lexical, no filesystem access): strip
surrounding whitespace; Unicode NFC (macOS writes names decomposed, so an NFD
and an NFC spelling must be one file); ``\\`` becomes ``/`` (in globs too: a
backslash is a Windows separator, never an escape); collapse repeated ``/``;
drop ``.`` segments; resolve ``a/..`` (a ``..`` that climbs above a relative
start is refused, one above an absolute root is dropped); Windows
equivalences: each segment loses trailing dots and spaces and a ``::$DATA`` (or
``:stream:$DATA``) suffix, so ``a.py.``, ``a.py `` and ``a.py::$DATA`` are
``a.py``. A trailing ``**`` segment is dropped and marks a directory, because
a directory already denotes everything beneath it. Letters are case-folded one
character at a time (length-preserving, so ``?`` still counts characters):
the fleet includes case-insensitive Windows and macOS file systems, and
over-reporting on Linux is the accepted price. Class bodies in globs keep
their case (``[A-Z]`` is matched case-insensitively instead). Absolute paths
keep their root (``/`` or ``c:/``; a drive-relative ``C:x`` is read as
``c:/x``), so ``/src`` and ``src`` are *different* paths: callers pass
project-relative paths (the CLI and the hooks convert absolute ones inside the
project). The project root (``.``) and a bare filesystem root (``/``,
``C:\\``) denote everything and overlap every PATH and GLOB. ``normalize``
returns ``.`` for the root, keeps a trailing ``/`` on a directory, and keeps a
leading ``./`` where dropping it would turn ``./ab:c`` into a NAME, ``./c:``
(or a brace alternative, ``./z{:}``) into a drive or strip a space: its
output parses back to the same meaning.

Files and directories (issue 7, point 11). A resource ending in ``/`` (or in
``/**``) is a **directory**: it denotes itself and every file beneath it. A
literal path without one is a **file**, unless the evidence says it is a
directory: another path in the same comparison lies beneath it (``src`` and
``src/a.py``: ``src`` is evidently a directory), or the caller's ``is_dir``
says so (the hub answers from the project's live leases: a path with a live
lease beneath it is a directory). A glob's matches may be files or
directories. So ``src/**/*.py`` does not overlap the file ``src/main.rs`` and
``**/*.md`` does not overlap ``src/a.py``, while ``src/*`` overlaps
``src/sub/a.py`` (its match ``src/sub`` is evidently a directory). The one
trade-off: a directory leased without its ``/`` and without any lease beneath
it is taken as a file by a glob claim; the CLI, the MCP server and the hooks
append the ``/`` for a directory that exists in the working tree.

Overlap: two resources overlap iff some file is denoted by both, i.e. iff
some match ``p`` of one and ``q`` of the other are equal, or one lies beneath
the other at a segment boundary (``src`` covers ``src/x``, not ``srcx``) and
the outer one may be a directory by the rule above.

Glob syntax: ``*`` any run within a segment (it matches dotfiles; a lone
``*`` segment is never empty); ``?`` one character; ``[abc]``, ``[a-z]``,
``[!a-z]``/``[^a-z]`` a class (a leading ``]`` is literal, a reversed range is
swapped; a class never matches ``/``, and a ``[`` without a closing ``]`` in
its segment is a literal); ``**`` as a whole segment matches zero or more
segments; ``**`` inside a segment, and a class naming a non-ASCII character,
are over-approximated (as ``**`` and as ``?``); ``{a,b}`` alternatives nest
and expand to their union (``{a}`` is just ``a``; an unmatched brace is a
literal). If expansion exceeds 64 alternatives each outermost group becomes
a ``**``-like span; a group that could climb (contains ``..``) or change the
root (starts in the first two characters) makes the glob denote everything.

Decision procedure and bounds: see :mod:`coordhub.core.automata`. A glob
whose brace alternatives come to more than :data:`MAX_EXPANDED` characters is
refused (``ValueError`` naming the limit); the searches stop at a step budget
and then answer "overlaps" (sound, never a miss).

Input errors: ``ValueError`` for an empty (or all-whitespace) string, one over
1024 characters, one containing a control character (C0, DEL, C1), a relative
path that climbs above its start with ``..``, or a glob over the bounds.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from coordhub.core.automata import (
    PAIR_BUDGET,
    REQUEST_BUDGET,
    Budget,
    accepts_prefix,
    compile_nfa,
    fold_char,
    has_match_beneath,
    overlap_of,
    scan_class,
)

__all__ = ["PAIR_BUDGET", "REQUEST_BUDGET", "Budget", "OutsideProject", "Resource", "ResourceKind", "classify",
           "contains", "normalize", "overlaps", "parse"]

MAX_LENGTH = 1024
MAX_ALTERNATIVES = 64
MAX_EXPANDED = 2048  # characters over all brace alternatives: roughly the states of the glob's automaton
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+._-]+:")
_DRIVE_RE = re.compile(r"[A-Za-z]:")
_GLOB_RE = re.compile(r"[*?\[{]")
_WILD_RE = re.compile(r"[*?\[]")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STREAM_RE = re.compile(r":[^:]*:\$data\Z", re.IGNORECASE)  # NTFS "a.py::$DATA" / "a.py:s:$DATA" is a.py
# A relative path of plain segments: letters, digits, "._-", none of them empty, "." or "..", none ending in "."
_PLAIN_RE = re.compile(r"[A-Za-z0-9._-]*[A-Za-z0-9_-](?:/[A-Za-z0-9._-]*[A-Za-z0-9_-])*\Z")
_SPAN = "\x00"  # an over-long brace group; valid input never contains NUL

IsDir = Callable[[str], bool]  # is this normalized literal key known to be a directory?


class OutsideProject(ValueError):
    """A relative path that climbs above its start with ``..``: it names nothing inside the project."""


class ResourceKind(enum.StrEnum):
    """What a resource string denotes (a ``str`` subclass: members compare equal to their values)."""

    PATH = "path"  # a file or directory path, relative or absolute
    GLOB = "glob"  # a path pattern
    NAME = "name"  # an opaque name such as "deploy:staging" or "svc:db"


class Resource:
    """A parsed resource (read-only; ``parse`` shares instances): ``key`` is its normalized form.

    ``alternatives`` are its brace-expanded normalized keys (without a
    trailing ``/``), ``universal`` means it denotes every file (the project
    or a filesystem root), ``literal`` that no alternative contains a
    wildcard, ``directory`` that it was written as a directory (a trailing
    ``/`` or ``/**``). ``scope`` is the longest literal segment prefix shared
    by every alternative ("" when there is none): every match lies at or
    beneath it, which is what the hub's lease index files it under. ``dirs``
    are the paths the resource itself shows to be directories (the literal
    segments before a wildcard segment, and proper prefixes of literal
    alternatives). A plain slotted class rather than a dataclass: importing
    ``dataclasses`` would double the hook's import time.
    """

    __slots__ = ("kind", "key", "alternatives", "universal", "literal", "directory", "scope", "dirs")

    def __init__(self, kind: ResourceKind, key: str, alternatives: tuple[str, ...], universal: bool,
                 literal: bool, directory: bool = False, *, plain: bool = False) -> None:
        self.kind, self.key, self.alternatives = kind, key, alternatives
        self.universal, self.literal, self.directory = universal, literal, directory
        if plain:  # one plain path (parse's short cut): no wildcard to look for, its own scope, its proper prefixes
            self.scope, self.dirs = key, _prefixes(key)
            return
        self.scope = key if kind is ResourceKind.NAME else "" if universal else _scope(alternatives)
        self.dirs = frozenset() if kind is ResourceKind.NAME or universal else _evident_dirs(alternatives)

    def __repr__(self) -> str:
        return f"Resource({self.kind.value}, {self.key!r}, alternatives={self.alternatives!r})"

    def overlaps(self, other: Resource, is_dir: IsDir | None = None, budget: Budget | None = None) -> bool:
        """Whether some file is denoted by both (sound: may over-report, never miss).

        ``is_dir(key)`` may say that a literal path written without ``/`` is a
        directory all the same (the hub asks its live leases); without it,
        only the two resources themselves are evidence. ``budget`` bounds the
        work (see :class:`Budget`).
        """
        if self.kind is ResourceKind.NAME or other.kind is ResourceKind.NAME:
            return self.kind is other.kind and self.key == other.key
        if self.universal or other.universal:
            return True
        if self.literal and other.literal:
            return any(_nested(p, q) for p in self.alternatives for q in other.alternatives)
        if self.literal or other.literal:
            lit, glob = (self, other) if self.literal else (other, self)
            return _literal_overlaps_glob(lit, glob, is_dir, budget)
        first, second = sorted((self.alternatives, other.alternatives))  # one cache entry per pair
        if budget is not None and budget.left <= 0:
            budget.spend(1)
            return True
        found, steps = overlap_of(first, second)
        if budget is not None:
            budget.spend(steps)
            budget.exhausted |= steps > PAIR_BUDGET
        return found


def classify(resource: str) -> ResourceKind:
    """The kind of ``resource``; ``ValueError`` on invalid input (see the module docstring)."""
    return parse(resource).kind


def normalize(resource: str) -> str:
    """The canonical form used for comparison (NAMEs: stripped; ``.`` for the root); ``ValueError`` on bad input."""
    return parse(resource).key


def overlaps(a: str, b: str, is_dir: IsDir | None = None, budget: Budget | None = None) -> bool:
    """Whether some file is denoted by both resources; sound: may over-report, never miss.

    Symmetric; NAMEs overlap only an identical NAME. ``is_dir`` and ``budget``
    as in :meth:`Resource.overlaps`. ``ValueError`` on invalid input.
    """
    return parse(a).overlaps(parse(b), is_dir, budget)


def contains(resource: str, path: str) -> bool:
    """Whether holding ``resource`` includes ``path`` and everything beneath it: for *permission* checks.

    Unlike :func:`overlaps` (sound for conflicts: may over-report), this asks
    whether a lease grants acting on ``path``, so it holds only when a match
    of ``resource`` equals ``path`` or one of its ancestors: holding ``src/``
    contains ``src/a.py``, holding ``src/a.py`` does not contain ``src``. NAMEs
    contain only themselves. Over-approximated glob parts (an inner ``**``, a
    non-ASCII class, a brace overflow) still count as matches. ``ValueError``
    if ``path`` is a GLOB or either string is invalid.
    """
    held, target = parse(resource), parse(path)
    if held.kind is ResourceKind.NAME or target.kind is ResourceKind.NAME:
        return held.kind is target.kind and held.key == target.key
    if target.kind is not ResourceKind.PATH:
        raise ValueError(f"contains needs a concrete path, got a {target.kind.value}: {path!r}")
    if held.universal:
        return True
    if target.universal:
        return False
    key = target.alternatives[0]
    if held.literal:
        return any(key.startswith(p) and (len(key) == len(p) or key[len(p)] == "/") for p in held.alternatives)
    return accepts_prefix(compile_nfa(held.alternatives), key, Budget(PAIR_BUDGET))


@lru_cache(maxsize=16384)
def parse(resource: str) -> Resource:
    """Validate, classify and normalize ``resource`` (memoized); ``ValueError`` on invalid input."""
    if len(resource) <= MAX_LENGTH and _PLAIN_RE.match(resource):
        # The usual claim: a relative file path every rule below leaves as it is but for case folding (no
        # root, drive, NAME, wildcard, brace, backslash, dot segment, trailing dot or space; ASCII, so NFC
        # and casefold are lower()). Parsing it the long way cost ~13 µs, once per new path (issue 15);
        # tests/core/test_paths.py checks both ways agree.
        key = resource.lower()
        return Resource(ResourceKind.PATH, key, (key,), False, True, plain=True)
    return _parse(resource)


def _parse(resource: str, again: bool = True) -> Resource:
    """:func:`parse` the long way, for any input (``again``: check that its key parses back to the same extent)."""
    if len(resource) > MAX_LENGTH:
        raise ValueError(f"resource is longer than {MAX_LENGTH} characters")
    if (bad := _CONTROL_RE.search(resource)) is not None:
        raise ValueError(f"resource contains control character {bad.group()!r}")
    text = resource.strip()
    if not text:
        raise ValueError("resource is empty")
    if _NAME_RE.match(text) and not _STREAM_RE.search(text):  # "a.py::$DATA" is a file, not a NAME
        return Resource(ResourceKind.NAME, text, (), False, True)
    text = unicodedata.normalize("NFC", text.replace("\\", "/"))
    kind = ResourceKind.GLOB if _GLOB_RE.search(text) else ResourceKind.PATH
    shown = _split(text, display=True)
    splits = [shown] if kind is ResourceKind.PATH else _glob_splits(text)
    universal = not splits or any(not segs for _, segs in splits)
    alternatives = tuple(sorted({_key(root, segs) for root, segs in splits}))
    expanded = sum(map(len, alternatives))
    if expanded > MAX_EXPANDED:
        raise ValueError(f"glob is too complex: its {len(alternatives)} brace alternatives come to {expanded} "
                         f"characters (limit {MAX_EXPANDED}); use fewer alternatives or several leases")
    literal = not any(_WILD_RE.search(alt) for alt in alternatives)
    written = _without_dot_segments(text)
    directory = not universal and (written.endswith("/") or _ends_in_globstar(written))
    display = _display(*shown, directory)
    if again and not shown[0] and "{" in display.split("/", 1)[0]:
        # each brace alternative is split alone: one that begins with a drive (``z{:}`` is ``z:``, ``{a,z}:b``
        # has ``z:b``) would parse back rooted there, where ``./z{:}`` denotes the file ``z:``
        back = _parse(display, False)  # (a class body keeps its case in a key, not always in the display)
        if back.universal != universal or sorted(map(str.casefold, back.alternatives)) != sorted(
                map(str.casefold, alternatives)):
            display = "./" + display
    return Resource(kind, display, alternatives, universal, literal, directory)


def _without_dot_segments(text: str) -> str:
    """``text`` with its empty, ``.`` and ``seg/..`` segments removed lexically, keeping a trailing ``/``.

    Whether a resource is a directory is read from how it is written (a
    trailing ``/`` or ``**``); a ``..`` takes that from what it returns to, so
    ``a/**/zz/..`` is ``a/**`` (a directory) and ``aa//zz/..`` is ``aa`` (a file).
    """
    kept: list[str] = []
    for seg in text.split("/"):
        if seg == "..":
            if kept and kept[-1] != "..":
                kept.pop()
            else:
                kept.append(seg)  # climbing above the start: the split refuses it
        elif seg not in ("", "."):
            kept.append(seg)
    return "/".join(kept) + ("/" if text.endswith("/") else "")


def _ends_in_globstar(text: str) -> bool:
    """Whether a segment holding ``**`` ends ``text`` or one of its brace alternatives (it then denotes a
    directory: such a last segment, ``**`` or an over-approximated ``a**``, is dropped from the key, so
    ``aa/a**`` is the directory ``aa/``, which overlaps ``**/a`` through ``aa/a``)."""
    return "**" in text.rstrip("/").rsplit("/", 1)[-1] or "**}" in text


def _display(root: str, segs: list[str], directory: bool = False) -> str:
    """The text ``normalize`` returns; it parses back to the same meaning."""
    key = _key(root, segs) or "."
    if not root and (key[0].isspace() or _NAME_RE.match(key) or _DRIVE_RE.match(key)):
        key = "./" + key  # would otherwise be stripped, or read as a NAME or a drive
    if directory and key not in (".", root):
        return key + "/"
    # A trailing space would be stripped: "/." keeps it and, unlike "/", keeps a file a file (". /." is the
    # file ". ", ". /" the directory).
    return key + "/." if key[-1].isspace() else key


def _glob_splits(text: str) -> list[tuple[str, list[str]]]:
    """The normalized (root, segments) of each brace alternative; none at all means "everything"."""
    texts = _expand(text)
    if texts is None:
        spanned = _spanned(text)
        texts = [] if spanned is None else [spanned]
    return [_split(t, display=False) for t in texts]


def _scope(alternatives: tuple[str, ...]) -> str:
    """The longest run of literal leading segments shared by every alternative ("" if none)."""
    common: list[str] | None = None
    for alt in alternatives:
        segs = alt.split("/")
        lead = segs if not _WILD_RE.search(alt) else segs[:next(i for i, s in enumerate(segs) if _WILD_RE.search(s))]
        if common is None:
            common = lead
        else:
            n = 0
            while n < min(len(common), len(lead)) and common[n] == lead[n]:
                n += 1
            common = common[:n]
    return "/".join(common or [])


def _prefixes(path: str) -> frozenset[str]:
    """The proper prefixes of a path of non-empty segments that end before a ``/``: what :func:`_scope` and
    :func:`_evident_dirs` find for such a path without a wildcard, without their regular-expression search of
    each segment (issue 15: a claim of a new path parses it; ~6k instructions less for three segments)."""
    found = []
    slash = path.find("/")
    while slash >= 0:
        found.append(path[:slash])
        slash = path.find("/", slash + 1)
    return frozenset(found)


def _evident_dirs(alternatives: tuple[str, ...]) -> frozenset[str]:
    """Paths a resource shows to be directories: literal segments with something beneath them."""
    found: set[str] = set()
    for alt in alternatives:
        segs = alt.split("/")
        wild = next((i for i, s in enumerate(segs) if _WILD_RE.search(s)), None)
        lead = len(segs) - 1 if wild is None else wild  # a wildcard segment's parent has it beneath
        found.update("/".join(segs[:n]) for n in range(1, lead + 1))
    found.discard("")
    return frozenset(found)


# --- normalization -------------------------------------------------------------------------


def _split(text: str, display: bool) -> tuple[str, list[str]]:
    """Lexically normalize slash-separated ``text`` into (root, segments).

    ``display`` keeps brace groups intact for ``normalize``; otherwise (one
    expanded alternative) segments with an inner ``**`` or span become ``**``.
    ``ValueError`` when a relative path climbs above its start.
    """
    root, rest = "", text
    if _DRIVE_RE.match(text):
        root, rest = text[0].lower() + ":/", text[2:]
    elif text.startswith("/"):
        root = "/"
    out: list[str] = []
    depth = 0  # brace groups open before this segment: a group may span "/" ("{a/ ,b}")
    for seg in rest.split("/"):
        grouped = depth > 0 or "{" in seg or "}" in seg
        depth = max(0, depth + seg.count("{") - seg.count("}"))
        if not (display and grouped):  # a brace group's alternatives are stripped one by one
            seg = _windows_segment(seg)
        if seg == "..":
            _parent(out, bool(root), display)
        elif seg not in ("", "."):
            out.append(seg)
    tidy: list[str] = []
    for seg in out:
        seg = seg if display or not _spans(seg) else "**"
        if not (seg == "**" and tidy and tidy[-1] == "**"):
            tidy.append(seg)
    while tidy and tidy[-1] == "**":  # everything beneath is denoted anyway
        tidy.pop()
    return root, tidy


def _windows_segment(seg: str) -> str:
    """One segment as Windows resolves it: no ``::$DATA`` stream suffix, no trailing dots or spaces.

    A segment of dots and spaces only is left as it is (``.`` and ``..`` keep their meaning).
    """
    seg = _STREAM_RE.sub("", seg)
    return seg.rstrip(". ") or seg


def _parent(out: list[str], absolute: bool, display: bool) -> None:
    """Apply one ``..`` to ``out`` in place, over-approximating after multi-segment wildcards."""
    if display and any("{" in s or "}" in s for s in out):
        out.append("..")  # alternatives may differ in depth; resolved per alternative after expansion
        return
    spanned = False
    while out and _spans(out[-1]):  # S/.. is parent(before S) or beneath before-S: cover both
        out.pop()
        spanned = True
    if spanned and not out:  # the parent of what a leading span matched is anywhere, the root included
        out.append("**")  # (review: `**/../x` was taken as `x`, missing `a/x`)
        return
    if out and out[-1] != "..":
        out.pop()
    elif not absolute and not spanned:
        raise OutsideProject("resource climbs above the project root with '..'; lease a path inside the project")
    if spanned:
        out.append("**")


def _spans(seg: str) -> bool:
    """Whether a segment can stand for several segments (``**`` anywhere, or a brace span)."""
    return "**" in seg or _SPAN in seg


def _key(root: str, segs: list[str]) -> str:
    return root + "/".join(_fold_glob(seg) for seg in segs)


def _fold(text: str) -> str:
    """Case-fold one character at a time, so that lengths are preserved."""
    folded = text.casefold()
    return folded if len(folded) == len(text) else "".join(fold_char(c) for c in text)


def _fold_glob(seg: str) -> str:
    """Fold a segment except inside character classes (``[Z-a]`` must keep its range)."""
    if "[" not in seg:
        return _fold(seg)
    out, i = [], 0
    while i < len(seg):
        found = scan_class(seg, i) if seg[i] == "[" else None
        end = found[0] if found else i + 1
        out.append(seg[i:end] if found else _fold(seg[i]))
        i = end
    return "".join(out)


# --- brace expansion -----------------------------------------------------------------------


def _first_group(text: str, start: int) -> tuple[int, int, list[str]] | None:
    """The leftmost matched ``{...}`` at or after ``start``: (open, close, top-level alternatives)."""
    stack: list[int] = []
    best: tuple[int, int] | None = None
    for j in range(start, len(text)):
        if text[j] == "{":
            stack.append(j)
        elif text[j] == "}" and stack:
            opened = stack.pop()
            best = (opened, j) if best is None or opened < best[0] else best
            if not stack:
                break
    if best is None:
        return None
    opened, closed = best
    alternatives, depth, mark = [], 0, opened + 1
    for j in range(opened + 1, closed):
        depth += (text[j] == "{") - (text[j] == "}")
        if text[j] == "," and depth == 0:
            alternatives.append(text[mark:j])
            mark = j + 1
    return opened, closed, alternatives + [text[mark:closed]]


def _expand(text: str) -> list[str] | None:
    """All brace expansions of ``text``, or None if there would be more than ``MAX_ALTERNATIVES``."""
    pending, done = [(text, 0)], []
    while pending:
        current, start = pending.pop()
        group = _first_group(current, start)
        if group is None:
            done.append(current)
            continue
        opened, closed, alternatives = group
        # The prefix before ``opened`` holds no matched group, so later searches start there.
        pending += [(current[:opened] + alt + current[closed + 1:], opened) for alt in alternatives]
        if len(pending) + len(done) > MAX_ALTERNATIVES:  # each pending item yields at least one
            return None
    return done


def _spanned(text: str) -> str | None:
    """Replace each outermost brace group by a span, or None (denote everything) if unsafe."""
    out, i = [], 0
    while (group := _first_group(text, i)) is not None:
        opened, closed, _ = group
        if opened <= 1 or ".." in text[opened:closed]:
            return None
        out += [text[i:opened], _SPAN]
        i = closed + 1
    return "".join(out) + text[i:]


def _literal_overlaps_glob(lit: Resource, glob: Resource, is_dir: IsDir | None, budget: Budget | None) -> bool:
    """Literal against glob: a match at or above a literal path, or beneath it if it is a directory.

    A literal path is a directory when written so, when either resource
    shows it (``dirs``), or when ``is_dir`` says so; otherwise it is a file
    and the glob's matches beneath it do not count (issue 7, point 11).
    """
    spend = budget if budget is not None else Budget(PAIR_BUDGET)
    if spend.left <= 0:
        spend.spend(1)
        return True
    nfa = compile_nfa(glob.alternatives)
    for key in lit.alternatives:
        if accepts_prefix(nfa, key, spend):
            return True
        directory = lit.directory or key in glob.dirs or key in lit.dirs or (is_dir is not None and is_dir(key))
        if directory and has_match_beneath(nfa, key, spend):
            return True
    return False


def _nested(p: str, q: str) -> bool:
    """Whether one non-root key equals the other or lies beneath it at a segment boundary."""
    if len(p) > len(q):
        p, q = q, p
    return q.startswith(p) and (len(q) == len(p) or q[len(p)] == "/")
