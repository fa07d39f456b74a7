"""The libpq pipeline under the PostgreSQL executor: answers, failures, and its prepared statements."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from coordhub.store.pgpipe import Pipe, numbered

pytestmark = pytest.mark.postgres


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    c = psycopg.connect(pg_url, autocommit=True, row_factory=dict_row)
    c.execute("CREATE TEMP TABLE pipe_t "
              "(id BIGINT GENERATED ALWAYS AS IDENTITY, name TEXT UNIQUE, at DOUBLE PRECISION)")
    yield c
    c.close()


def test_placeholders_are_numbered() -> None:
    assert numbered("SELECT ? + ?, '%s' FROM t WHERE a = ?") == b"SELECT $1 + $2, '%s' FROM t WHERE a = $3"


def test_answers_carry_the_rows_and_counts_a_cursor_would(conn: psycopg.Connection[Any]) -> None:
    pipe = Pipe(conn)
    done = pipe.run([("INSERT INTO pipe_t (name, at) VALUES (?, ?), (?, ?)", ("a", 1.5, "b", None)),
                     ("SELECT id, name, at FROM pipe_t ORDER BY id", ()),
                     ("UPDATE pipe_t SET at = ? WHERE name = ?", (2.0, "zz"))])
    assert done.error is None and done.failed == 3
    assert [a.rowcount for a in done.answers] == [2, 2, 0]
    assert done.answers[1].rows == conn.execute("SELECT id, name, at FROM pipe_t ORDER BY id").fetchall()
    assert done.answers[1].rows[1] == {"id": 2, "name": "b", "at": None}


def test_a_failure_stops_the_pipeline_at_the_failing_statement(conn: psycopg.Connection[Any]) -> None:
    pipe = Pipe(conn)
    done = pipe.run([("INSERT INTO pipe_t (name) VALUES (?)", ("a",)),
                     ("INSERT INTO pipe_t (name) VALUES (?)", ("a",)),
                     ("INSERT INTO pipe_t (name) VALUES (?)", ("c",))])
    assert done.failed == 1 and isinstance(done.error, psycopg.errors.UniqueViolation)
    assert done.answers[0].rowcount == 1
    # Outside BEGIN, what a pipeline sends before its sync is one transaction: the first insert is undone too.
    assert conn.execute("SELECT count(*) AS n FROM pipe_t").fetchone() == {"n": 0}


def test_a_value_that_cannot_be_adapted_fails_its_statement_after_the_ones_before_ran(
        conn: psycopg.Connection[Any]) -> None:
    pipe = Pipe(conn)
    done = pipe.run([("INSERT INTO pipe_t (name) VALUES (?)", ("a",)),
                     ("INSERT INTO pipe_t (name) VALUES (?)", (object(),))])
    assert done.failed == 1 and isinstance(done.error, psycopg.ProgrammingError)
    assert conn.execute("SELECT count(*) AS n FROM pipe_t").fetchone() == {"n": 1}


def test_a_statement_whose_prepare_was_skipped_is_prepared_again(conn: psycopg.Connection[Any]) -> None:
    """A PREPARE behind a failure in the same pipeline never ran; the next use must not take it as prepared."""
    pipe = Pipe(conn)
    fresh = f"SELECT name FROM pipe_t WHERE name = ? -- {uuid.uuid4().hex}"
    done = pipe.run([("SELECT 1/0", ()), (fresh, ("a",))])
    assert done.failed == 0 and isinstance(done.error, psycopg.errors.DivisionByZero)
    for _ in range(2):  # the first use prepares it, the second runs what was prepared
        again = pipe.run([(fresh, ("a",))])
        assert again.error is None and again.answers[0].rows == []


def test_simple_runs_several_statements_and_raises_the_first_failure(conn: psycopg.Connection[Any]) -> None:
    pipe = Pipe(conn)
    answers = pipe.simple(b"BEGIN; SELECT 7 AS seven; COMMIT")
    assert [a.rows for a in answers] == [[], [{"seven": 7}], []]
    with pytest.raises(psycopg.errors.UndefinedTable):
        pipe.simple(b"SELECT 1; SELECT * FROM no_such_table")
    assert pipe.simple(b"SELECT 2 AS two")[0].rows == [{"two": 2}]
