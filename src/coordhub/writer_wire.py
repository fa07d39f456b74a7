"""The frames between the serving processes and the writer process (:mod:`coordhub.writer_process`).

One Unix stream socket per serving process, in a directory only
this user can enter (0700, made by the supervisor); frames of a 4-byte
big-endian length and a pickle of plain data. A serving process sends
``(id, call, status, idempotency, exemption, ahead)`` (:meth:`Call.plain`,
the idempotency key and fingerprint, the exemption's name, the rows named for
reading ahead) once the writer process has said ``("hello", pid, PROTOCOL)``
in the version the serving process speaks (which it said first: ``("hello",
PROTOCOL)``); the writer process answers ``("ok", id, status, body,
replayed, steps)`` or ``("error", id, CoordError, steps)`` (``steps``: the
call's overlap work, :class:`~coordhub.core.automata.Meter`; or ``("bug", id,
text)``: a 500), and after each commit sends every serving process ``("events", after, rows)``
with the events logged since the last, *before* the answers of that batch: a
sender's answer does not overtake the push of what it sent (except where a
serving process's bus does not reach ``after`` yet, after a start or restart:
it reads the log instead, ``Hub._publish_remote``, which may finish after the
answer). Once a second it reports ``("batches", [(units, seconds), …])``,
its batches since the last report, for the serving processes' ``coord_writer_*``
metrics. Both ends refuse to write anything but plain data and coordhub's
errors (:class:`_Pickler`), and unpickling takes no class but coordhub's own
errors (:class:`_Unpickler`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import pickle
import struct
import sys
from collections.abc import Callable
from typing import Any

from coordhub import errors
from coordhub.errors import CoordError

log = logging.getLogger("coordhub")

_HEADER = struct.Struct("!I")
MAX_FRAME = 64 * 1024 * 1024  # bytes: a call carries one request's body; an events frame at most 10,000 events
#: The frames' version, said by both ends' hellos: a serving process sends calls only to a writer process that
#: speaks its version, and a writer process reports batches only to serving processes that said they read them
#: (an in-place upgrade restarts processes one by one, so both versions may meet).
#: 3: a call carries its actor's token epoch (Actor.token_epoch); 4: an answer carries the call's overlap steps and
#: a call the quotas it names to read ahead (Ahead.quotas).
PROTOCOL = 4


class _Unpickler(pickle.Unpickler):
    """Takes plain data, and :class:`CoordError` subclasses (of any coordhub module) rebuilt whole; refuses every
    other global.

    Defence in depth: only this user's processes can reach the socket (its
    directory is 0700), but a frame must still not name ``os.system``.
    """

    def find_class(self, module: str, name: str) -> Any:
        # only modules already loaded (an error's class is loaded where it was raised): naming one imports nothing
        loaded = sys.modules.get(module) if module.startswith("coordhub.") else None
        found = getattr(loaded, name, None)
        if found is errors._rebuild or (isinstance(found, type) and issubclass(found, CoordError)):
            return found
        raise pickle.UnpicklingError(f"the writer link does not carry {module}.{name}")


class _Pickler(pickle.Pickler):
    """Writes what :class:`_Unpickler` takes, and refuses anything else at the sending end.

    An answer body holding another object (a ``datetime``, an enum, a
    dataclass: what the HTTP encoder would render) would not decode on the
    other side, and a frame that does not decode closes the link with every
    call waiting on it; refused here, it fails only its own call
    (:meth:`WriterServer._run` answers it as a bug). Plain data never reaches
    :meth:`reducer_override` (the pickler's fast paths take it), so it costs
    the frames nothing.
    """

    def reducer_override(self, obj: Any) -> Any:
        carried = isinstance(obj, CoordError) or obj is errors._rebuild or (
            isinstance(obj, type) and issubclass(obj, CoordError))
        if carried:
            return NotImplemented  # pickled as usual: the error whole, through errors._rebuild
        raise pickle.PicklingError(f"the writer link carries plain data, not {type(obj).__module__}."
                                   f"{type(obj).__qualname__}")


def encode(message: Any) -> bytes:
    """One frame: length, then ``message`` pickled (plain data and coordhub's errors only: ``PicklingError``)."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
    data = out.getvalue()
    if len(data) > MAX_FRAME:
        raise ValueError(f"a writer-link frame of {len(data)} bytes is over {MAX_FRAME}")
    return _HEADER.pack(len(data)) + data


def decode(data: bytes | memoryview) -> Any:
    """The message of one frame's body (raises ``pickle.UnpicklingError`` for a global it does not carry)."""
    return _Unpickler(io.BytesIO(data)).load()


def frame_size(data: bytes | bytearray, offset: int = 0) -> int:
    """The body size of the frame whose 4-byte header starts at ``offset`` of ``data``; ``ValueError`` when it
    is over :data:`MAX_FRAME` (a stream that says so is not one of ours, or is corrupt: close it)."""
    (size,) = _HEADER.unpack_from(data, offset)
    if size > MAX_FRAME:
        raise ValueError(f"a writer-link frame of {size} bytes is over {MAX_FRAME}")
    return int(size)


class Frames(asyncio.Protocol):
    """Frames in, frames out, over one stream connection (the serving process's end, on its event loop);
    ``on_frame(message)`` for each whole frame, ``on_lost(exc)`` when the connection ends."""

    def __init__(self, on_frame: Callable[[Any], None], on_lost: Callable[[BaseException | None], None]) -> None:
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._buffer = bytearray()
        self._unsent: list[bytes] = []
        self.transport: Any = None  # asyncio's or uvloop's stream transport (uvloop's is no asyncio.Transport)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        start = 0
        try:
            while len(buf) - start >= 4:
                size = frame_size(buf, start)
                if len(buf) - start - 4 < size:
                    break
                with memoryview(buf)[start + 4:start + 4 + size] as body:
                    message = decode(body)
                start += 4 + size
                try:
                    self._on_frame(message)
                except Exception:  # a frame of a shape this end does not know: that frame's failure, not the link's
                    log.exception("writer link: a frame this end cannot take: %.200r", message)
        except (ValueError, pickle.UnpicklingError, EOFError) as exc:
            log.error("writer link: a frame that does not decode (%s); closing the link", exc)
            del buf[:]
            if self.transport is not None:
                self.transport.close()
            return
        del buf[:start]

    def send(self, frame: bytes) -> None:
        """Write one encoded frame at the end of this turn of the loop, with the others of the turn (one system
        call for them all); dropped once the connection is closing."""
        if not self._unsent:
            asyncio.get_running_loop().call_soon(self._flush)
        self._unsent.append(frame)

    def _flush(self) -> None:
        frames, self._unsent = self._unsent, []
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(b"".join(frames))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_lost(exc)
