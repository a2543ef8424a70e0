"""What travels between client, server and env workers: bodies, frames and error payloads.

Pickle bodies use protocol 5 with out-of-band buffers, so large arrays and bytes cross each hop
without being copied into the pickle stream. The layout of a pickle body is::

    b"RHP5" | u32 nbufs | u64 len(pickle) | u64 len(buf) * nbufs | pickle | buf...

Streaming responses (logs, generator items) are a sequence of frames ``kind(1) | u64 len |
payload`` for pickle callers, and newline-delimited JSON for JSON callers.
"""

from __future__ import annotations

import base64
import contextvars
import dataclasses
import datetime
import decimal
import io
import json
import pickle
import struct
import traceback
import uuid
from pathlib import PurePath
from typing import Any, Callable, Iterable, Iterator

import cloudpickle

from rh_core.transport import shm as shared

PICKLE_CT = "application/x-rh-pickle"
JSON_CT = "application/json"
STREAM_CT = "application/x-rh-frames"
NDJSON_CT = "application/x-ndjson"

SERIALIZATIONS = {"pickle": PICKLE_CT, "json": JSON_CT}

_MAGIC = b"RHP5"
_MAGIC_SHM = b"RHS5"  # some buffers are in shared-memory files (see rh_core.shm)
_HEAD = struct.Struct("!4sIQ")
_LEN = struct.Struct("!Q")
FRAME_HEAD = struct.Struct("!cQ")

#: Set by an env worker while it runs a call whose caller streams its logs: calls that code
#: makes to functions on the cluster stream theirs too, so they reach the same caller.
NESTED_LOGS: contextvars.ContextVar[bool] = contextvars.ContextVar("rh_nested_logs",
                                                                   default=False)

# Frame kinds of streaming responses.
LOG, ITEM, RESULT, ERROR = b"L", b"I", b"R", b"E"


class RunRef:
    """Placeholder for a ``.remote()`` result inside call arguments; resolved on the cluster."""

    __slots__ = ("run_key",)

    def __init__(self, run_key: str):
        self.run_key = run_key


class _Pickler(cloudpickle.CloudPickler):
    def __init__(self, file, refs: list[str] | None, **kw):
        super().__init__(file, **kw)
        self._refs = refs

    def persistent_id(self, obj):  # noqa: D102 - pickle protocol
        key = getattr(obj, "__rh_run_ref__", None)
        if isinstance(key, str) and self._refs is not None:
            self._refs.append(key)
            return ("rh-run", key)
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, refs: Callable[[str], Any] | None, **kw):
        super().__init__(file, **kw)
        self._resolve = refs

    def persistent_load(self, pid):  # noqa: D102 - pickle protocol
        if isinstance(pid, tuple) and pid and pid[0] == "rh-run" and self._resolve is not None:
            return self._resolve(pid[1])
        raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")


#: Types whose exact instances the C pickler writes as cloudpickle would (never by reference).
_PLAIN = frozenset({type(None), bool, int, float, complex, str, bytes, bytearray})
#: The most objects a value may have for the plain path; larger values take cloudpickle.
_PLAIN_NODES = 256


def is_plain(obj: Any) -> bool:
    """Whether ``obj`` is made only of None, bools, numbers, strings, bytes, and tuples, lists
    and dicts of them (exact types, at most :data:`_PLAIN_NODES` objects): what the C
    pickler alone writes the same way as cloudpickle, about ten times faster."""
    stack, budget = [obj], _PLAIN_NODES
    while stack:
        budget -= 1
        if budget < 0:
            return False
        x = stack.pop()
        t = type(x)
        if t in _PLAIN:
            continue
        if t is tuple or t is list:
            stack.extend(x)
        elif t is dict:
            stack.extend(x.keys())
            stack.extend(x.values())
        else:
            return False
    return True


def dumps_pickle(obj: Any, refs: list[str] | None = None, shm: str | None = None,
                 shm_names: list[str] | None = None) -> list[bytes | memoryview]:
    """Serialize ``obj`` into body parts (send them in order, without joining them).

    Run handles found in ``obj`` are written as references and their keys appended to ``refs``.
    With ``shm`` (a shared-memory folder), large buffers go there and only their names travel;
    the names are appended to ``shm_names``. Plain values (:func:`is_plain`: the arguments and
    results of most calls) skip cloudpickle.
    """
    if is_plain(obj):
        main = pickle.dumps(obj, 5)
        return [_HEAD.pack(_MAGIC, 0, len(main)), main]
    buffers: list[pickle.PickleBuffer] = []
    out = io.BytesIO()
    _Pickler(out, refs, protocol=5, buffer_callback=buffers.append).dump(obj)
    main = out.getbuffer()
    raws: list = [b.raw() for b in buffers]
    flags = bytearray(len(raws))
    if shm is not None:
        for i, raw in enumerate(raws):
            if raw.nbytes >= shared.MIN_SIZE:
                try:
                    name = shared.write(shm, raw)
                except OSError:  # /dev/shm full or gone: this buffer travels inline
                    continue
                if shm_names is not None:
                    shm_names.append(name)
                raws[i] = f"{name}:{raw.nbytes}".encode()
                flags[i] = 1
    magic = _MAGIC_SHM if any(flags) else _MAGIC
    head = _HEAD.pack(magic, len(raws), main.nbytes) + b"".join(
        _LEN.pack(r.nbytes if isinstance(r, memoryview) else len(r)) for r in raws
    )
    if magic == _MAGIC_SHM:
        head += bytes(flags)
    return [head, main, *raws]


def _split(data) -> tuple[memoryview, list[tuple[int, memoryview]]]:
    """The pickle stream of a body and its buffers as ``(in shared memory?, view)``."""
    view = memoryview(data)
    if view.nbytes < _HEAD.size:
        raise ValueError("pickle body is too short")
    magic, nbufs, main_len = _HEAD.unpack_from(view)
    if magic not in (_MAGIC, _MAGIC_SHM):
        raise ValueError("body is not an rh pickle body (bad magic)")
    pos = _HEAD.size
    if view.nbytes < pos + 8 * nbufs:
        raise ValueError("pickle body header is too short")
    sizes = [_LEN.unpack_from(view, pos + 8 * i)[0] for i in range(nbufs)]
    pos += 8 * nbufs
    flags = bytes(nbufs)
    if magic == _MAGIC_SHM:
        flags = bytes(view[pos : pos + nbufs])
        pos += nbufs
    main = view[pos : pos + main_len]
    pos += main_len
    bufs = []
    for size, flag in zip(sizes, flags, strict=True):
        bufs.append((flag, view[pos : pos + size]))
        pos += size
    if pos != view.nbytes:
        raise ValueError("pickle body length does not match its header")
    return main, bufs


def _take(buf: memoryview, shm: str | None) -> memoryview:
    if shm is None:
        raise ValueError("the body names shared-memory buffers, which this side cannot use")
    name, _, length = bytes(buf).decode().partition(":")
    return shared.take(shm, name, int(length))


def loads_pickle(data: bytes | bytearray | memoryview, refs: Callable[[str], Any] | None = None,
                 shm: str | None = None):
    """Inverse of :func:`dumps_pickle`; buffers are views into ``data`` (no copy), or into the
    shared-memory files it names (only taken from the ``shm`` folder). Without ``refs``, a body
    that names a run is refused (as an unpickling error)."""
    view = memoryview(data).cast("B")
    if refs is None and view.nbytes >= _HEAD.size:
        magic, nbufs, main_len = _HEAD.unpack_from(view)
        if magic == _MAGIC and nbufs == 0:  # the common small body: no buffers to find
            if _HEAD.size + main_len != view.nbytes:
                raise ValueError("pickle body length does not match its header")
            return pickle.loads(view[_HEAD.size:])
    main, bufs = _split(view)
    buffers = [_take(buf, shm) if flag else buf for flag, buf in bufs]
    return _Unpickler(io.BytesIO(main), refs, buffers=buffers).load()


def inline(data, shm: str | None = None) -> list[bytes | memoryview]:
    """A body as parts with every buffer in it (those in shared memory taken from the ``shm``
    folder): what can be kept and sent more than once. Nothing is unpickled."""
    main, bufs = _split(data)
    raws = [_take(buf, shm) if flag else buf for flag, buf in bufs]
    head = _HEAD.pack(_MAGIC, len(raws), main.nbytes) + b"".join(_LEN.pack(r.nbytes) for r in raws)
    return [head, main, *raws]


def to_shm(data, shm: str) -> list[bytes | memoryview]:
    """A body (with its buffers inline) as parts whose large buffers are written into new files
    of the ``shm`` folder, for a receiver on this machine (see :mod:`rh_core.transport.shm`)."""
    main, bufs = _split(data)
    raws: list = []
    flags = bytearray(len(bufs))
    for i, (flag, buf) in enumerate(bufs):
        if not flag and buf.nbytes >= shared.MIN_SIZE:
            try:
                buf = memoryview(f"{shared.write(shm, buf)}:{buf.nbytes}".encode())
                flags[i] = 1
            except OSError:  # /dev/shm full or gone: this buffer travels inline
                pass
        raws.append(buf)
    magic = _MAGIC_SHM if any(flags) else _MAGIC
    head = _HEAD.pack(magic, len(raws), main.nbytes) + b"".join(_LEN.pack(r.nbytes) for r in raws)
    return [head + (bytes(flags) if any(flags) else b""), main, *raws]


def joined(parts: Iterable[bytes | memoryview]) -> bytes:
    return b"".join(parts)


def dumps_json(obj: Any) -> bytes:
    """Compact JSON bytes. Common types JSON has no word for get their natural form (see
    :func:`jsonable`); anything else is a TypeError."""
    return json.dumps(obj, separators=(",", ":"), default=jsonable).encode()


def jsonable(obj: Any) -> Any:
    """The JSON form of a value ``json`` cannot write itself: a numpy array or a pandas Series
    as a list, a numpy scalar as a number, a DataFrame as a list of records, a set as a sorted
    list, a date or time as ISO text, bytes as base64 text, a dataclass or attrs record as an
    object, a path, UUID or Decimal as text. (Looked up by attribute and type name, so numpy and
    pandas are never imported here.)"""
    kind = type(obj).__name__
    if kind == "DataFrame" and hasattr(obj, "to_dict"):
        return obj.to_dict(orient="records")
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars, Series
        return obj.tolist()
    if isinstance(obj, (set, frozenset)):
        try:
            return sorted(obj)
        except TypeError:
            return list(obj)
    if isinstance(obj, (datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(obj)).decode()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(type(obj), "__attrs_attrs__"):
        return {a.name: getattr(obj, a.name) for a in type(obj).__attrs_attrs__}
    if isinstance(obj, (PurePath, uuid.UUID, decimal.Decimal)):
        return str(obj)
    raise TypeError(f"Object of type {kind} is not JSON serializable")


def frame(kind: bytes, payload: bytes | memoryview) -> list[bytes | memoryview]:
    return [FRAME_HEAD.pack(kind, len(payload) if isinstance(payload, bytes) else payload.nbytes),
            payload]


def iter_frames(chunks: Iterable[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """Split a byte stream made of :func:`frame` frames back into ``(kind, payload)``."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= FRAME_HEAD.size:
            kind, size = FRAME_HEAD.unpack_from(buf)
            end = FRAME_HEAD.size + size
            if len(buf) < end:
                break
            yield kind, buf[FRAME_HEAD.size : end]
            del buf[:end]
    if buf:
        raise ValueError("stream ended inside a frame")


# ----------------------------------------------------------------------------- errors


def type_path(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


def error_payload(exc: BaseException, kind: str = "user", tb: str | None = None) -> dict:
    """JSON-able description of an exception raised on the cluster."""
    if tb is None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return {"type": type_path(type(exc)), "message": str(exc), "traceback": tb, "kind": kind}


def pickled_exception(exc: BaseException) -> bytes | None:
    """The exception pickled, or None when it (or its arguments) cannot be pickled."""
    try:
        data = cloudpickle.dumps(exc, protocol=5)
        pickle.loads(data)
        return data
    except Exception:
        return None


class SerializationFailure(TypeError):
    """Raised on the cluster when a result cannot be serialized."""


_N = struct.Struct("!I")


def pack_parts(parts: list[bytes | memoryview]) -> list[bytes | memoryview]:
    """Several byte strings as one body: ``u32 n | u64 len * n | parts``."""
    sizes = [p.nbytes if isinstance(p, memoryview) else len(p) for p in parts]
    return [_N.pack(len(parts)) + b"".join(_LEN.pack(s) for s in sizes), *parts]


def unpack_parts(data: bytes | bytearray | memoryview) -> list[memoryview]:
    view = memoryview(data)
    if view.nbytes < 4:
        raise ValueError("multi-part body is too short")
    (n,) = _N.unpack_from(view)
    if n > 1_000_000 or view.nbytes < 4 + 8 * n:
        raise ValueError("multi-part body header is invalid")
    sizes = struct.unpack_from(f"!{n}Q", view, 4)
    pos, out = 4 + 8 * n, []
    for s in sizes:
        out.append(view[pos : pos + s])
        pos += s
    if pos != view.nbytes:
        raise ValueError("multi-part body length does not match its header")
    return out
