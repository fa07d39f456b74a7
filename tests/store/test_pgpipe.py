"""The libpq pipeline under the PostgreSQL executor: answers, failures, and its prepared statements."""

from __future__ import annotations

import time
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


def test_a_statement_the_server_cannot_prepare_fails_with_the_servers_own_error(
        conn: psycopg.Connection[Any]) -> None:
    """The PREPARE fails (no such table, no such column), not its execution, which the server only
    aborts: the statement's error is still the server's, with its SQLSTATE, wherever the statement stands."""
    pipe = Pipe(conn)
    done = pipe.run([("INSERT INTO pipe_t (name) VALUES (?)", ("a",)), ("SELECT * FROM no_such_table", ()),
                     ("SELECT 1 AS one", ())])
    assert done.failed == 1 and isinstance(done.error, psycopg.errors.UndefinedTable), done.error
    assert done.error.sqlstate == "42P01"
    pipe.send_ahead([("INSERT INTO pipe_t (name) VALUES (?)", ("b",))])
    done = pipe.run([("SELECT id FROM pipe_t WHERE no_such_column = ?", ("x",))])  # after one sent ahead
    assert done.failed == 1 and isinstance(done.error, psycopg.errors.UndefinedColumn), done.error
    assert pipe.run([("SELECT * FROM no_such_table", ())]).error.sqlstate == "42P01"  # type: ignore[union-attr]


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


def test_statements_sent_ahead_are_answered_first_by_the_next_run(conn: psycopg.Connection[Any]) -> None:
    """What ``send_ahead`` sent runs on the server at once (another connection sees a sequence it moves before
    any answer is read: sequences are not transactional); the next ``run`` returns its answers first, then its
    own, as one pipeline; a statement first prepared in the part sent ahead is known as prepared afterwards."""
    pipe = Pipe(conn)
    fresh = f"INSERT INTO pipe_t (name, at) VALUES (?, ?) -- {uuid.uuid4().hex}"
    sequence = f"pipe_seq_{uuid.uuid4().hex}"
    conn.execute(f"CREATE SEQUENCE {sequence}")
    try:
        assert pipe.send_ahead([(fresh, ("a", 1.0)), (f"SELECT nextval('{sequence}') AS n", ())]) == 2
        with psycopg.connect(conn.info.dsn, autocommit=True) as other:
            for _ in range(500):  # the server runs what was sent while nothing is read back
                if other.execute(f"SELECT is_called FROM {sequence}").fetchone() == (True,):
                    break
                time.sleep(0.01)
            else:
                raise AssertionError("what was sent ahead did not run")
        done = pipe.run([(fresh, ("b", 2.0)), ("SELECT name FROM pipe_t ORDER BY id", ())])
        assert done.error is None and done.failed == 4
        assert [a.rowcount for a in done.answers] == [1, 1, 1, 2]
        assert done.answers[1].rows == [{"n": 1}] and done.answers[3].rows == [{"name": "a"}, {"name": "b"}]
        assert sum(1 for key in pipe._prepared if key[0] == numbered(fresh)) == 1
    finally:
        conn.execute(f"DROP SEQUENCE {sequence}")


def test_a_failure_sent_ahead_is_reported_at_its_place_by_the_next_run(conn: psycopg.Connection[Any]) -> None:
    """A statement sent ahead that fails stops the pipeline there: the next run reports it at its position,
    after the answers of those before it, and nothing after it ran; the pipe is usable afterwards."""
    pipe = Pipe(conn)
    assert pipe.send_ahead([("INSERT INTO pipe_t (name) VALUES (?)", ("a",)),
                            ("INSERT INTO pipe_t (name) VALUES (?)", ("a",))]) == 2
    done = pipe.run([("INSERT INTO pipe_t (name) VALUES (?)", ("c",))])
    assert done.failed == 1 and isinstance(done.error, psycopg.errors.UniqueViolation)
    assert [a.rowcount for a in done.answers] == [1]
    assert pipe.run([("SELECT count(*) AS n FROM pipe_t", ())]).answers[0].rows == [{"n": 0}]


def test_send_ahead_stops_before_a_value_that_cannot_be_adapted(conn: psycopg.Connection[Any]) -> None:
    """Nothing from the unadaptable statement on is sent ahead; the run that sends it reports it in its place."""
    pipe = Pipe(conn)
    statements = [("INSERT INTO pipe_t (name) VALUES (?)", ("a",)), ("INSERT INTO pipe_t (name) VALUES (?)",
                                                                     (object(),)),
                  ("INSERT INTO pipe_t (name) VALUES (?)", ("c",))]
    assert pipe.send_ahead(statements) == 1
    done = pipe.run(statements[1:])
    assert done.failed == 1 and isinstance(done.error, psycopg.ProgrammingError)
    assert conn.execute("SELECT name FROM pipe_t").fetchall() == [{"name": "a"}]


def test_simple_ends_a_pipeline_left_open(conn: psycopg.Connection[Any]) -> None:
    """A batch that failed after sending ahead leaves the pipeline open: ``simple`` (the writer's ROLLBACK)
    ends it first, dropping its answers, and runs."""
    pipe = Pipe(conn)
    pipe.simple(b"BEGIN")
    pipe.send_ahead([("INSERT INTO pipe_t (name) VALUES (?)", ("a",))])
    assert pipe.simple(b"ROLLBACK; SELECT count(*) AS n FROM pipe_t")[1].rows == [{"n": 0}]
    assert pipe.run([("SELECT 1 AS one", ())]).answers[0].rows == [{"one": 1}]
