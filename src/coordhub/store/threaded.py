"""The shape both backends share: one batch writer, a few reader threads."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from coordhub.store.base import Store
from coordhub.store.readers import ReaderConnection, ReaderThreads
from coordhub.store.tx import Tx
from coordhub.store.writer import BatchWriter, WriterConnection

T = TypeVar("T")


class ThreadedStore(Store):
    """A store whose writes go through one :class:`BatchWriter` and reads through :class:`ReaderThreads`.

    Subclasses provide ``connect`` (a new connection, usable by the writer and
    by readers; ``writer_connect`` when the writer's differs) and
    ``is_unavailable`` (does an exception mean the database is lost?), optionally
    ``is_stale`` (does running a read or a batch again cure it? :class:`ReaderThreads`, :class:`BatchWriter`), and
    call :meth:`_start_writer` at the end of ``open``.
    """

    def __init__(self, connect: Callable[[], Any], is_unavailable: Callable[[BaseException], bool], *,
                 readers: int, name: str, writer_connect: Callable[[], Any] | None = None,
                 is_stale: Callable[[BaseException], bool] | None = None) -> None:
        writer: Callable[[], WriterConnection] = writer_connect or connect
        reader_connect: Callable[[], ReaderConnection] = connect
        self._readers = ReaderThreads(reader_connect, Tx, is_unavailable, threads=readers, is_stale=is_stale)
        self._writer = BatchWriter(writer, Tx, is_unavailable, name=f"coord-{name}-writer", is_stale=is_stale)

    def set_after_commit(self, listener: Callable[[Any], None] | None,
                         before: Callable[[Any], None] | None = None) -> None:
        self._writer.after_commit, self._writer.before_commit = listener, before

    def set_batch_observer(self, observer: Callable[[int, float], None] | None) -> None:
        self._writer.on_batch = observer

    def writer_runs_again(self) -> dict[str, int]:
        return dict(self._writer.runs_again)

    def _start_writer(self) -> None:
        self._writer.start()

    def close(self) -> None:
        self._writer.stop()
        self._readers.close()

    def submit_write(self, fn: Callable[[Any], T]) -> Future[T]:
        return self._writer.submit(fn)

    def submit_read(self, fn: Callable[[Any], T]) -> Future[T]:
        return self._readers.submit(fn)

    async def write(self, fn: Callable[[Any], T]) -> T:
        result: T = await self._writer.submit_async(fn)
        return result
