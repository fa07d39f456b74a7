"""One exception tree for the whole hub.

Every error a client can cause is a :class:`CoordError` subclass carrying the
HTTP status, a stable machine-readable ``code`` and a human message; the API
turns them into the one JSON error envelope (see ``coordhub.api.errors``), the
CLI into a one-line message and an exit code. Anything that is not a
``CoordError`` is a bug in the hub and is reported as a 500.
"""

from __future__ import annotations

from typing import Any


class CoordError(Exception):
    """Root of all errors the hub reports to clients.

    ``details`` holds extra JSON-serialisable fields that go into the error
    envelope next to ``code`` and ``message`` (for a lease conflict: the holder,
    its lease id, description and time left).
    """

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole (the writer process answers with it: coordhub.writer_process): the default pickles only
        # ``args`` and calls the class with them, which loses ``details`` and fails for subclasses whose
        # constructor takes other arguments.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[CoordError], args: tuple[Any, ...], state: dict[str, Any]) -> CoordError:
    """A pickled :class:`CoordError` again, without calling its constructor."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class BadRequest(CoordError):
    """The request is malformed (400): bad JSON, non-UTF-8, bad query value."""

    status, code = 400, "bad_request"


class Unauthorized(CoordError):
    """No bearer token, or one that is unknown or revoked (401)."""

    status, code = 401, "unauthorized"


class Forbidden(CoordError):
    """The caller is known but may not do this (403): impersonation, non-holder release, non-admin."""

    status, code = 403, "forbidden"


class SessionMismatch(Forbidden):
    """A request's token acts as one session and its ``X-Coord-Session`` header names another (403): refused
    rather than done as the token's session behind the caller's back (a stale token beside an identity that
    names someone else). Details: ``session`` (the header's), ``acting_as`` (the token's)."""

    code = "session_mismatch"


class NotFound(CoordError):
    """The named object does not exist (404)."""

    status, code = 404, "not_found"


class Conflict(CoordError):
    """The request conflicts with current state (409)."""

    status, code = 409, "conflict"


class LeaseConflict(Conflict):
    """Another live session holds an overlapping lease (409); details name the holder."""

    code = "lease_conflict"


class StaleFence(Conflict):
    """A fencing token is no longer the current holder's (409).

    Rule: fencing tokens as described by Kleppmann, "How to do distributed
    locking" (2016): a write carrying an older fence than the current grant is
    refused where the effect happens.
    """

    code = "stale_fence"


class PayloadTooLarge(CoordError):
    """The request body exceeds the configured limit (413)."""

    status, code = 413, "payload_too_large"


class Invalid(CoordError):
    """The body or query is well-formed but its values are wrong (422)."""

    status, code = 422, "invalid"


class IdempotencyKeyReused(CoordError):
    """An ``Idempotency-Key`` was replayed with a different request (422).

    Status per the IETF draft "The Idempotency-Key HTTP Header Field"
    (draft-ietf-httpapi-idempotency-key-header), section 2.7.
    """

    status, code = 422, "idempotency_key_reused"


class Halted(CoordError):
    """A halt covers the caller (the fleet, its machine or its project); its writes are refused (423)."""

    status, code = 423, "halted"


class Paused(CoordError):
    """The caller was active under a halt since lifted and has not re-engaged (423; seed 004's asymmetry)."""

    status, code = 423, "paused"


class RateLimited(CoordError):
    """The caller's token sent more requests than its rate limit allows (429); retry after ``retry_after``."""

    status, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class TooManyStreams(RateLimited):
    """The caller (or the whole hub) holds its limit of SSE streams and long-polls (429); close one or retry."""

    code = "too_many_streams"


class Unavailable(CoordError):
    """The database cannot be reached (503); clients should retry after ``retry_after`` seconds.

    Body and header follow seed 001: ``Retry-After: 30`` and a JSON body saying
    the database is unavailable.
    """

    status, code = 503, "database_unavailable"

    def __init__(self, message: str = "Database unavailable. Retry after 30 seconds.", retry_after: int = 30) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class WriterLost(Unavailable):
    """A write handed to the writer process whose answer was lost with the link to it (503, ``Retry-After: 1``).

    It may or may not have been applied, as with a database lost during a
    commit, and the ``Idempotency-Key`` makes the retry safe; but the database
    itself is not known to be down, and the next write runs at once (on the
    serving process's own writer while the writer process restarts). So the
    message says so, the wait is a second, and ``/health`` is not marked
    disconnected (``coord serve --writer-process``, docs/scaling.md).
    """

    def __init__(self, message: str = "the writer process went away during this write: it may or may not have "
                                      "been applied; retry with the same Idempotency-Key") -> None:
        super().__init__(message, retry_after=1)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s text, or its class name when it has none: how a log line names a failure of
    a library (psycopg's errors run over several lines, with the query's context)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


MAX_UNKNOWN_FIELDS = 16  # unknown fields of one object refused one by one; more are refused as one problem
NAMED_UNKNOWN = 5  # the unknown fields such a refusal names


def too_many_unknown(names: list[str]) -> str:
    """One problem for more than :data:`MAX_UNKNOWN_FIELDS` unknown fields (REST bodies, MCP arguments): their
    count and the first :data:`NAMED_UNKNOWN`, each cut to 40 characters, so the refusal stays small whatever
    was sent (a 1 MiB object of 130,000 unknown keys made an 11 MiB refusal, review of issue 8)."""
    named = ", ".join(repr(str(k)[:40]) for k in names[:NAMED_UNKNOWN])
    return f"{len(names)} unknown fields ({named}, …); none is taken"


def describe_problem(kind: str, where: str, message: str, value: object = None) -> str:
    """One invalid value in words, the same from every front end (REST 422 bodies, MCP argument errors).

    ``kind`` is pydantic's error type (``missing``, ``extra_forbidden``,
    ``uuid_parsing`` …), ``where`` the dotted field path, ``message`` pydantic's
    own text (used for every other kind), ``value`` the input.
    """
    if kind == "extra_forbidden":
        return f"unknown field {where!r}"
    if kind.startswith("uuid"):
        return f"{where.split('.')[-1]} {value!r} is not a valid id (a UUID)"
    if kind == "missing":
        return f"missing field {where!r}"
    if kind in _JSON_TYPES and isinstance(value, str):
        # seed 001's server (FastAPI, pydantic's lax mode) read "ttl_hours": "2" as 2; request bodies here convert
        # no types, and "Input should be a valid number" for "2" read as nonsense to a script that sent it so
        shown = value if len(value) <= 40 else value[:40] + "…"
        return f"{where}: send {_JSON_TYPES[kind]}, not a string ({shown!r}): the hub converts no types"
    return f"{where}: {message}"


_JSON_TYPES = {"float_type": "a JSON number (2, 0.5)", "int_type": "a JSON integer (10)",
               "bool_type": "JSON true or false"}  # pydantic's strict-mode error types: what the field takes
