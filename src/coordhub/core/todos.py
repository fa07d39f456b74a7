"""Fleet todos (seed 000): durable reminders that stay until someone marks them done.

Fields are seed 000's: ``text``, ``user``, ``project`` (stored as
``project_key``), ``parent`` (``parent_id``), ``source``, ``auto``,
``created_by_user``, ``created_by_machine``, ``completed_by``; status
``pending`` or ``done``.
"""

from __future__ import annotations

from typing import Any

from coordhub.clock import isoformat
from coordhub.core import paging, projects, quota
from coordhub.core.events import emit
from coordhub.core.identity import Actor, attributed_machine
from coordhub.core.vocab import TodoFilter, TodoStatus, one_of, values
from coordhub.errors import Invalid, NotFound
from coordhub.ids import new_id
from coordhub.store.base import Row
from coordhub.store.tx import Tx

STATUSES = values(TodoStatus)
PAGE = 500  # todos one answer holds at most (and about paging.PAGE_BYTES of their text)
TEXT = ("text", "source")  # what paging.size counts of a todo
LONG = ("source",)  # what a brief list leaves out (paging.page's blank)
ORDERS = ("oldest", "newest")  # a list's orders by created_at


def render(row: Row) -> dict[str, Any]:
    """The JSON form of a todo."""
    return {
        "id": row["id"], "text": row["text"], "user": row["user_name"], "project_key": row["project_key"],
        "parent_id": row["parent_id"], "source": row["source"], "auto": bool(row["auto"]),
        "status": row["status"], "created_by": row["created_by"], "created_by_user": row["created_by_user"],
        "created_by_machine": row["created_by_machine"], "completed_by": row["completed_by"],
        "created_at": isoformat(row["created_at"]), "updated_at": isoformat(row["updated_at"]),
        "completed_at": isoformat(row["completed_at"]), "queued_at": isoformat(row.get("queued_at")),
    }


def add(tx: Tx, actor: Actor, *, text: str, user: str | None = None, project_key: str | None = None,
        parent_id: str | None = None, source: str | None = None, auto: bool = False,
        created_by_user: str | None = None, created_by_machine: str | None = None, queued_at: float | None = None,
        now: float) -> dict[str, Any]:
    """Create a pending todo; ``created_by_machine`` is the actor's machine (from its session id).

    Raises ``Invalid`` for empty text, ``NotFound`` for an unknown parent and
    ``Forbidden`` for a ``created_by_machine`` other than the actor's own
    (:func:`~coordhub.core.identity.attributed_machine`). ``created_by_user``
    is a free label (a token names a session, not a person).

    ``queued_at`` is when a client first tried it (replayed from its softfail
    queue); kept as given unless later than ``now``, which it then becomes.
    """
    machine = attributed_machine(actor, created_by_machine)
    project_key = projects.fold(project_key)
    if not text.strip():
        raise Invalid("a todo needs text", field="text")
    if parent_id is not None and tx.todos.get(parent_id) is None:
        raise NotFound(f"no parent todo {parent_id!r}")
    quota.charge(tx, actor, now, quota.size_of(text, user, project_key, source, created_by_user), "todo")
    row: Row = {"id": new_id(), "text": text, "user_name": user, "project_key": project_key,
           "parent_id": parent_id, "source": source, "auto": int(auto), "status": "pending",
           "created_by": actor.session_id, "created_by_user": created_by_user,
           "created_by_machine": machine, "completed_by": None,
           "created_at": now, "updated_at": now, "completed_at": None,
           "queued_at": None if queued_at is None else min(queued_at, now)}
    tx.todos.add(row)
    emit(tx, "todo.added", now, session_id=actor.session_id, project_key=project_key, subject_id=row["id"],
         text=text[:200])
    return render(row)


def page(tx: Tx, *, user: str | None = None, project_key: str | None = None, status: str = "pending",
         cursor: str | None = None, brief: bool = False,
         order: str = "oldest") -> tuple[list[dict[str, Any]], str | None]:
    """Todos filtered by user, project and status (``pending``, ``done`` or ``all``), oldest first after
    ``cursor`` (``order`` ``newest``: newest first), and the cursor of the ones that follow (None: none follow).

    At most :data:`PAGE` and about :data:`~coordhub.core.paging.PAGE_BYTES` of their text (at least one).
    ``brief``: each ``source`` is null (:data:`LONG`). Raises ``Invalid`` for another status or order, or a cursor
    not from this list. Seed 000 lists oldest first (the default); ``newest`` is the dashboard's, where the oldest
    500 hid every todo added since.
    """
    if status not in values(TodoFilter):
        raise Invalid(f"status must be {one_of(TodoFilter)}, not {status!r}", field="status")
    if order not in ORDERS:
        raise Invalid(f"order must be oldest or newest, not {order[:40]!r}", field="order")
    wanted = None if status == "all" else status
    project_key = projects.fold(project_key)
    find, key = (tx.todos.find_newest, tx.todos.newest_key) if order == "newest" else (tx.todos.find, tx.todos.key)
    rows, more = paging.page(lambda k, a: find(k, a, user_name=user, project_key=project_key, status=wanted),
                             PAGE, TEXT, key, cursor, LONG if brief else ())
    return [render(r) for r in rows], more


def get(tx: Tx, todo_id: str) -> dict[str, Any]:
    """One todo; ``NotFound`` if there is none."""
    row = tx.todos.get(todo_id)
    if row is None:
        raise NotFound(f"no todo {todo_id!r}")
    return render(row)


def done(tx: Tx, actor: Actor, todo_id: str, now: float) -> dict[str, Any]:
    """Mark a todo done, recording the actor as ``completed_by``; idempotent.

    Answers the todo (:func:`render`) plus ``already``: True when it was done before this call, which then
    changed nothing (``completed_by`` stays who did it first). ``NotFound`` for an unknown id.
    """
    row = tx.todos.get(todo_id)
    if row is None:
        raise NotFound(f"no todo {todo_id!r}")
    already = row["status"] == "done"
    if not already:
        tx.todos.change(todo_id, {"status": "done", "completed_by": actor.session_id, "completed_at": now,
                                  "updated_at": now})
        emit(tx, "todo.done", now, session_id=actor.session_id, project_key=row["project_key"], subject_id=todo_id)
    return {**get(tx, todo_id), "already": already}
