"""Glob automata: the decision procedure behind :mod:`coordhub.core.paths` (standard library only).

Each glob compiles to a small NFA whose edges carry character predicates.
Glob against glob (:func:`overlap_of`): with ``Pre(L)`` = ``L`` plus every
segment-prefix of a word of ``L``, A and B overlap iff ``L(A) & Pre(L(B))`` or
``Pre(L(A)) & L(B)`` is non-empty, found by a search of the product
automaton. Two predicates share a character iff their sets of ASCII
characters meet, or both admit every non-ASCII one (see ``_meet``). A literal against a glob
(:func:`accepts_prefix`, :func:`has_match_beneath`) runs the glob's NFA over
the literal. Windows drops trailing dots and spaces of a name, so at the end
of a segment one side may read dots and spaces alone (the product search's
trailing modes; the simulation's closure at each ``/``). Glob-pair decisions
are memoized.

Bounds (issue 8, point 1): one product search takes at most
:data:`PAIR_BUDGET` steps; when they run out the answer is "overlaps" (sound,
never a miss). A :class:`Budget` shared by the checks of one request bounds
their total, and adds what it spends to the :class:`Meter` current where it
was made (:data:`METER`): how a front end learns what a request cost.

Keys given here are normalized by :mod:`coordhub.core.paths` (folded, NFC,
``/``-separated, trailing dots dropped); this module knows glob syntax and
characters, nothing of files, directories or leases.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from functools import lru_cache

__all__ = ["METER", "PAIR_BUDGET", "REQUEST_BUDGET", "Budget", "Meter", "accepts_prefix", "compile_nfa", "fold_char",
           "has_match_beneath", "overlap_of", "scan_class"]

PAIR_BUDGET = 20_000  # state-pair steps one product search may take before answering "overlaps"
REQUEST_BUDGET = 100_000  # steps all the overlap checks of one request may take together


class Meter:
    """Steps spent by every :class:`Budget` made while it was current (:data:`METER`): one request's overlap work.

    ``with meter:`` makes it current for the block (a context variable: per
    thread and per task). A write whose unit runs again (its batch run again
    without a lost unit) counts its last run only (``Hub.mutate``).
    """

    __slots__ = ("steps", "_token")

    def __init__(self) -> None:
        self.steps = 0
        self._token: Token[Meter | None] | None = None

    def __enter__(self) -> Meter:
        self._token = METER.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            METER.reset(self._token)
            self._token = None


#: The :class:`Meter` of the operation running in this context (None: nobody is counting).
METER: ContextVar[Meter | None] = ContextVar("coordhub_overlap_meter", default=None)


class Budget:
    """Steps that the overlap checks of one request may still take (issue 8: bounded work per request).

    Shared by every check of a claim or a conflict query; once spent, the
    remaining checks answer "overlaps" without searching (sound: may
    over-report, never miss). ``exhausted`` tells the caller that some answer
    was given that way (this budget ran out, or one search hit
    :data:`PAIR_BUDGET`).
    """

    __slots__ = ("left", "exhausted", "meter")

    def __init__(self, steps: int = REQUEST_BUDGET) -> None:
        self.left = steps
        self.exhausted = False
        self.meter = METER.get()

    def spend(self, steps: int) -> None:
        """Charge ``steps`` (to the :class:`Meter` current when the budget was made too); mark the budget
        exhausted when it goes below zero."""
        self.left -= steps
        if self.meter is not None:
            self.meter.steps += steps
        if self.left < 0:
            self.exhausted = True


@lru_cache(maxsize=1024)
def fold_char(ch: str) -> str:
    """One character case-folded to one character (itself when every fold of it is longer)."""
    for variant in (ch.casefold(), ch.lower()):
        if len(variant) == 1:
            return variant
    return ch



def scan_class(seg: str, i: int) -> tuple[int, bool, tuple[tuple[str, str], ...]] | None:
    """Parse the class opening at ``seg[i]``: (end index, negated, ranges), or None if unterminated."""
    j = i + 1
    negated = j < len(seg) and seg[j] in "!^"
    start = j = j + negated
    j += j < len(seg) and seg[j] == "]"  # a leading ] is a member
    j = seg.find("]", j)
    if j < 0:
        return None
    body, ranges, k = seg[start:j], [], 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            lo, hi = sorted((body[k], body[k + 2]))
            ranges.append((lo, hi))
            k += 3
        else:
            ranges.append((body[k], body[k]))
            k += 1
    return j + 1, negated, tuple(ranges)


_LIT, _NONSLASH, _CLASS = 0, 1, 2


class _Pred:
    """A set of (folded) characters: one literal, any but ``/``, or an ASCII class. Compared by value.

    A class is held as ``mask``, bit ``n`` set when character ``n`` is admitted (with its case variants: see
    :func:`_class_pred`), so a test costs the same whatever the class's spelling: ``[#####…]`` with a
    thousand members is one bit (a class scanned member by member made one step of the budgets cost
    seconds: the review of 2026-12-06).
    """

    __slots__ = ("kind", "char", "negated", "mask", "_value", "_hash")

    def __init__(self, kind: int, char: str = "", negated: bool = False, mask: int = 0) -> None:
        self.kind, self.char, self.negated, self.mask = kind, char, negated, mask
        self._value = (kind, char, negated, mask)
        self._hash = hash(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Pred) and self._value == other._value

    def __hash__(self) -> int:
        return self._hash


_ANY = _Pred(_NONSLASH)
_SLASH = _Pred(_LIT, "/")


def _matches(pred: _Pred, c: str) -> bool:
    """Whether folded character ``c`` is in ``pred`` (constant time)."""
    if pred.kind == _LIT:
        return c == pred.char
    if c == "/":
        return False
    if pred.kind == _NONSLASH:
        return True
    n = ord(c)
    return (n < 128 and (pred.mask >> n) & 1 == 1) != pred.negated


_ASCII = (1 << 128) - 1
_FOLDED = _ASCII & ~(((1 << 26) - 1) << ord("A")) & ~(1 << ord("/"))  # ASCII a folded key holds, but for "/"


def _ascii(p: _Pred) -> int:
    """The ASCII characters a class or "any but /" predicate admits, as a mask."""
    if p.kind == _NONSLASH:
        return _FOLDED
    return (~p.mask & _ASCII) if p.negated else p.mask


@lru_cache(maxsize=8192)
def _meet(p: _Pred, q: _Pred) -> bool:
    """Whether some folded character satisfies both predicates (constant time).

    A literal is tested against the other. Two classes (or "any but /") meet
    on an ASCII character their masks share, of those a folded key may hold
    (not upper case, not ``/``); or on every non-ASCII character, which a
    class (ASCII only) admits exactly when it is negated.
    """
    if p.kind == _LIT:
        return _matches(q, p.char)
    if q.kind == _LIT:
        return _matches(p, q.char)
    if _ascii(p) & _ascii(q) & _FOLDED:
        return True
    return (p.kind == _NONSLASH or p.negated) and (q.kind == _NONSLASH or q.negated)


class _Builder:
    """Builds an epsilon-free NFA; ``cur`` is the set of states where the next token starts."""

    def __init__(self) -> None:
        self.edges: list[list[tuple[_Pred, int]]] = []
        self.cur: set[int] = set()

    def new(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def step(self, pred: _Pred) -> None:
        target = self.new()
        for s in self.cur:
            self.edges[s].append((pred, target))
        self.cur = {target}

    def star(self) -> None:
        loop = self.new()
        for s in self.cur:
            self.edges[s].append((_ANY, loop))
        self.edges[loop].append((_ANY, loop))
        self.cur = self.cur | {loop}

    def globstar(self, leading: bool) -> None:
        """Zero or more segments: ``(x+ /)*`` when leading, else ``(/ x+)*`` (it takes the separator before it)."""
        a, b = self.new(), self.new()
        first, second = (_ANY, _SLASH) if leading else (_SLASH, _ANY)
        for s in self.cur:
            self.edges[s].append((first, a))
        self.edges[a] += [(_ANY, a)] if leading else []
        self.edges[a].append((second, b))
        self.edges[b] += [(_ANY, a)] if leading else [(_ANY, b), (_SLASH, a)]
        self.cur = self.cur | {b}


class _Nfa:
    __slots__ = ("starts", "edges", "accept", "pre", "dots")

    def __init__(self, starts: tuple[int, ...], edges: tuple[tuple[tuple[_Pred, int], ...], ...],
                 accept: frozenset[int], pre: frozenset[int], dots: tuple[tuple[int, ...], ...]) -> None:
        self.starts, self.edges, self.accept = starts, edges, accept
        self.pre = pre  # the accepting states of Pre(L)
        self.dots = dots  # per state, the targets of edges that can read a trailing dot or space


_LETTERS = ((1 << 26) - 1) << ord("a")
# Folded letters that a non-ASCII character also folds to (U+212A KELVIN SIGN → k, U+017F LONG S → s): an ASCII class
# never holds that variant, so a negated one always admits them.
_FOLDED_FROM_ELSEWHERE = (1 << ord("k")) | (1 << ord("s"))


def _class_pred(negated: bool, ranges: tuple[tuple[str, str], ...]) -> _Pred:
    """The predicate of a class on folded characters: it admits one when a character that folds to it (itself, or
    a case variant: ``K`` for ``k``) is admitted by the class as written. A positive class admits a folded
    character when any of its variants is a member; a negated one when any of its variants is not (``[!t]``
    admits ``T``, so the folded ``t``: review). A non-ASCII member makes it "any but /"."""
    if any(not (lo.isascii() and hi.isascii()) for lo, hi in ranges):
        return _ANY  # a class never admits more than "any but /": over-reporting is sound
    mask = 0
    for lo, hi in ranges:  # one shift per range, however wide (ranges are sorted: lo <= hi)
        mask |= ((1 << (ord(hi) - ord(lo) + 1)) - 1) << ord(lo)
    upper = ((mask >> ord("A")) & ((1 << 26) - 1)) << ord("a")
    if not negated:
        return _Pred(_CLASS, mask=mask | upper)
    # Excluded: a folded letter all of whose variants are members; any other folded character that is one.
    both = mask & upper & _LETTERS & ~_FOLDED_FROM_ELSEWHERE
    return _Pred(_CLASS, negated=True, mask=(mask & ~_LETTERS) | both)


def _compile_segment(builder: _Builder, seg: str) -> None:
    if seg == "*":  # segments are never empty, so a lone star needs a character
        builder.step(_ANY)
    i = 0
    while i < len(seg):
        found = scan_class(seg, i) if seg[i] == "[" else None
        if found is not None:
            builder.step(_class_pred(found[1], found[2]))
            i = found[0]
            continue
        if seg[i] == "*":
            builder.star()
        else:
            builder.step(_ANY if seg[i] == "?" else _Pred(_LIT, seg[i]))
        i += 1


@lru_cache(maxsize=4096)
def compile_nfa(alternatives: tuple[str, ...]) -> _Nfa:
    """One NFA for the union of normalized alternatives (``/a`` starts with an empty segment)."""
    builder, starts, accept = _Builder(), [], set()
    for key in alternatives:
        start = builder.new()
        starts.append(start)
        builder.cur = {start}
        for i, seg in enumerate(key.split("/")):
            if seg == "**":
                builder.globstar(leading=i == 0)
                continue
            if i > 0 and not (i == 1 and key.startswith("**/")):
                builder.step(_SLASH)
            _compile_segment(builder, seg)
        accept |= builder.cur
    edges = tuple(tuple(e) for e in builder.edges)
    # Every predicate is satisfiable, so every state reaches acceptance: a state
    # is in Pre(L) iff it accepts or can read "/" next.
    pre = accept | {s for s, out in enumerate(edges) if any(p == _SLASH for p, _ in out)}
    dots = tuple(tuple(t for p, t in out if _trails(p)) for out in edges)
    return _Nfa(tuple(starts), edges, frozenset(accept), frozenset(pre), dots)


def _trails(pred: _Pred) -> bool:
    """Whether ``pred`` admits a character Windows drops at the end of a segment (a dot or a space)."""
    return _matches(pred, ".") or _matches(pred, " ")


_PAIR_CACHE: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[bool, int]] = {}
_PAIR_CACHE_SIZE = 8192


def overlap_of(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[bool, int]:
    """(``L(a) & Pre(L(b))`` or ``Pre(L(a)) & L(b)`` is non-empty, steps taken); memoized.

    A depth-first product search of at most :data:`PAIR_BUDGET` steps; past
    that the answer is True (sound). A cached answer costs no steps.
    """
    hit = _PAIR_CACHE.get((a, b))
    if hit is not None:
        return hit[0], hit[1] if hit[1] > PAIR_BUDGET else 0  # still say it was undecided
    answer = _search_product(compile_nfa(a), compile_nfa(b))
    if len(_PAIR_CACHE) >= _PAIR_CACHE_SIZE:
        _PAIR_CACHE.clear()
    _PAIR_CACHE[(a, b)] = answer
    return answer


_SYNC, _X_TRAILS, _Y_TRAILS = 0, 1, 2


def _search_product(x: _Nfa, y: _Nfa) -> tuple[bool, int]:
    """Depth-first search of the product for a shared word, modulo trailing dots and spaces.

    In ``_SYNC`` both automata read the same character. At the end of a
    segment one of them may read dots and spaces alone (``_X_TRAILS`` /
    ``_Y_TRAILS``: Windows drops them, so ``a.`` and ``a`` are one name);
    from there only more of those, a shared ``/`` or acceptance may follow.
    """
    stack = [(s, t, _SYNC) for s in x.starts for t in y.starts]
    seen = set(stack)
    steps = 0
    while stack:
        s, t, mode = stack.pop()
        if (s in x.accept and t in y.pre) or (s in x.pre and t in y.accept):
            return True, steps
        nxt: list[tuple[int, int, int]] = []
        if mode != _Y_TRAILS:
            nxt += [(s2, t, _X_TRAILS) for s2 in x.dots[s]]
        if mode != _X_TRAILS:
            nxt += [(s, t2, _Y_TRAILS) for t2 in y.dots[t]]
        xs, ys = x.edges[s], y.edges[t]
        if mode == _SYNC:
            nxt += [(s2, t2, _SYNC) for p, s2 in xs for q, t2 in ys if _meet(p, q)]
        else:  # after trailing dots and spaces only a shared "/" (compiled as _SLASH alone) goes on
            nxt += [(s2, t2, _SYNC) for p, s2 in xs if p is _SLASH for q, t2 in ys if q is _SLASH]
        steps += 1 + len(nxt) + len(xs) * len(ys)
        for state in nxt:
            if state not in seen:
                seen.add(state)
                stack.append(state)
        if steps > PAIR_BUDGET:
            return True, steps  # undecided within the budget: report the overlap
    return False, steps


def _run(nfa: _Nfa, key: str, budget: Budget, stop_at_accepting_prefix: bool) -> set[int] | None:
    """The states after reading ``key`` (None: a segment-prefix was accepted on the way, if asked).

    Charges ``budget`` one step per state-edge considered; an exhausted
    budget gives None, which the callers read as "overlaps" (sound).
    """
    states, previous = set(nfa.starts), "/"
    for c in key:
        if c == "/":
            if previous != "/":  # an empty segment (the root's) has no trailing dots to drop
                states = _trailing(nfa, states)
            if stop_at_accepting_prefix and states & nfa.accept:
                return None
        previous = c
        budget.spend(sum(len(nfa.edges[s]) for s in states))
        if budget.exhausted:
            return None
        states = {t for s in states for p, t in nfa.edges[s] if _matches(p, c)}
        if not states:
            return states
    return _trailing(nfa, states)


def _trailing(nfa: _Nfa, states: set[int]) -> set[int]:
    """``states`` plus those reached by reading trailing dots and spaces (a literal segment ends here)."""
    todo = [t for s in states for t in nfa.dots[s]]
    out = set(states)
    while todo:
        t = todo.pop()
        if t not in out:
            out.add(t)
            todo += nfa.dots[t]
    return out


def accepts_prefix(nfa: _Nfa, key: str, budget: Budget) -> bool:
    """Whether ``key`` or one of its segment-prefixes is in the NFA's language (set simulation)."""
    states = _run(nfa, key, budget, stop_at_accepting_prefix=True)
    return states is None or bool(states & nfa.accept)


def has_match_beneath(nfa: _Nfa, key: str, budget: Budget) -> bool:
    """Whether the NFA matches some path strictly beneath ``key`` (every state reaches acceptance)."""
    states = _run(nfa, key + "/", budget, stop_at_accepting_prefix=False)
    return states is None or bool(states)
