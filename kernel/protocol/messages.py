"""msgpack-rpc envelopes: request ``[0, id, method, params]``, response ``[1, id, error, result]``
and notification ``[2, method, params]``, one per frame.

:func:`decode_message` unpacks a frame body with strict limits (sizes bounded by the frame,
``str`` keys only, no ext types) and validates the envelope's shape; anything else is a
:class:`ProtocolError` naming what was wrong. Per-method payloads are in
:mod:`kernel.protocol.methods`.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any, NoReturn

import msgpack

from kernel.errors import ProtocolError
from kernel.protocol.codes import ErrorCode, clean_message, parse_code
from kernel.protocol.framing import HEADER, MAX_FRAME_SIZE, check_length, write_all

#: Request ids are msgpack-rpc ``uint32``; the kernel picks them, unique among in-flight requests.
MAX_REQUEST_ID = 2**32 - 1


class Kind(IntEnum):
    """The first element of every message array."""

    REQUEST = 0
    RESPONSE = 1
    NOTIFICATION = 2


class Method(StrEnum):
    """Request methods (kernel → provider) and notifications of Protocol 1."""

    #: Request: apply the provider's settings from dso.yaml. Sent first, and again on reload.
    CONFIGURE = "configure"
    #: Request: a batch of references → values and version ids.
    GET = "get"
    #: Request: a batch of references → version ids only (the cheap change check).
    VERSIONS = "versions"
    #: Request: names under an optional prefix (capability ``list``).
    LIST = "list"
    #: Request: liveness; answered even while other requests are in progress.
    PING = "ping"
    #: Request: replace the set of references the provider watches (capability ``watch``).
    WATCH = "watch"
    #: Request: answer, then exit 0 promptly.
    SHUTDOWN = "shutdown"
    #: Notification, provider → kernel, first frame: who the provider is and what it speaks.
    HANDSHAKE = "handshake"
    #: Notification, provider → kernel: watched secrets changed.
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class WireError:
    """``{code, message}``: why a request, or one reference of a batch, failed.

    The message is for humans and never contains a secret value.
    """

    code: ErrorCode
    message: str

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}

    @classmethod
    def from_wire(cls, value: object, where: str = "error") -> WireError:
        doc = expect_map(value, where)
        code = parse_code(doc.get("code"))
        message = doc.get("message")
        if not isinstance(message, str):
            fail(f"{where}.message must be a string, got {type_name(message)}")
        return cls(code, clean_message(message))


@dataclass(frozen=True, slots=True)
class Request:
    """``[0, id, method, params]``: a call the peer must answer with the same id."""

    id: int
    method: str
    params: dict[str, Any]

    def to_wire(self) -> list[Any]:
        return [0, self.id, self.method, self.params]


@dataclass(frozen=True, slots=True)
class Response:
    """``[1, id, error, result]``: exactly one of ``error`` and ``result`` is meaningful."""

    id: int
    error: WireError | None
    result: Any

    def to_wire(self) -> list[Any]:
        error = None if self.error is None else self.error.to_wire()
        return [1, self.id, error, None if error else self.result]


@dataclass(frozen=True, slots=True)
class Notification:
    """``[2, method, params]``: a one-way message, never answered."""

    method: str
    params: dict[str, Any]

    def to_wire(self) -> list[Any]:
        return [2, self.method, self.params]


Message = Request | Response | Notification


# -- validation helpers, shared with methods.py and handshake.py ------------------------------


def fail(message: str) -> NoReturn:
    raise ProtocolError(message)


def type_name(value: object) -> str:
    """The msgpack-ish name of a decoded value's type, for error messages."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    return {bytes: "bin", str: "str", list: "array", dict: "map", int: "int", float: "float"}.get(
        type(value), type(value).__name__
    )


def expect_map(value: object, where: str) -> dict[str, Any]:
    """``value`` if it is a map with string keys, else a ProtocolError naming ``where``."""
    if type(value) is not dict:
        fail(f"{where} must be a map, got {type_name(value)}")
    for key in value:
        if type(key) is not str:
            fail(f"{where} has a non-string key of type {type_name(key)}")
    return value


def expect_str(value: object, where: str, *, max_len: int = 4096) -> str:
    """A non-empty string of at most ``max_len`` characters."""
    if type(value) is not str:
        fail(f"{where} must be a string, got {type_name(value)}")
    if not value:
        fail(f"{where} must not be empty")
    if len(value) > max_len:
        fail(f"{where} is longer than {max_len} characters")
    return value


def expect_time(value: object, where: str) -> float:
    """A finite number of seconds (msgpack int or float)."""
    if type(value) is not float and type(value) is not int:
        fail(f"{where} must be a number, got {type_name(value)}")
    number = float(value)
    if not math.isfinite(number):
        fail(f"{where} must be finite")
    return number


def _check_id(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_REQUEST_ID:
        fail(f"message id must be a uint32, got {type_name(value)} {value!r:.30}")
    return value


def _check_method(value: object) -> str:
    return expect_str(value, "method name", max_len=64)


# -- decoding ---------------------------------------------------------------------------------


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"msgpack ext type {code} is not allowed")


def unpack_body(body: bytes) -> Any:
    """Unpack exactly one msgpack object, with every size bounded by the frame."""
    limit = len(body)
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=limit,
            max_bin_len=limit,
            max_array_len=limit,
            max_map_len=limit,
            max_ext_len=0,
            ext_hook=_reject_ext,
        )
    except UnicodeDecodeError:
        fail("frame is not valid msgpack: a str is not valid UTF-8 (use bin for bytes)")
    except Exception as exc:  # msgpack raises a zoo: ValueError, ExtraData, TypeError, ...
        fail(f"frame is not one valid msgpack message: {type(exc).__name__}: {str(exc)[:120]}")


def decode_message(body: bytes) -> Message:
    """Unpack and validate one frame body; raises :class:`ProtocolError` on any defect."""
    obj = unpack_body(body)
    if type(obj) is not list or not obj:
        fail(f"message must be a non-empty array, got {type_name(obj)}")
    kind = obj[0]
    if kind == Kind.REQUEST and type(kind) is int:
        if len(obj) != 4:
            fail(f"request must have 4 elements [0, id, method, params], got {len(obj)}")
        return Request(
            _check_id(obj[1]), _check_method(obj[2]), expect_map(obj[3], "request params")
        )
    if kind == Kind.RESPONSE and type(kind) is int:
        if len(obj) != 4:
            fail(f"response must have 4 elements [1, id, error, result], got {len(obj)}")
        msg_id = _check_id(obj[1])
        if obj[2] is None:
            return Response(msg_id, None, obj[3])
        error = WireError.from_wire(obj[2], "response error")
        if obj[3] is not None:
            fail("response carries both an error and a result")
        return Response(msg_id, error, None)
    if kind == Kind.NOTIFICATION and type(kind) is int:
        if len(obj) != 3:
            fail(f"notification must have 3 elements [2, method, params], got {len(obj)}")
        return Notification(_check_method(obj[1]), expect_map(obj[2], "notification params"))
    fail(f"message type must be 0, 1 or 2, got {type_name(kind)} {kind!r:.30}")


# -- encoding ---------------------------------------------------------------------------------


def _packer() -> msgpack.Packer:
    return msgpack.Packer(use_bin_type=True, autoreset=True, datetime=False)


def encode_message(message: Message | list[Any], max_size: int = MAX_FRAME_SIZE) -> bytes:
    """One message as a complete frame (header + body). Not for hot loops: see MessageWriter."""
    wire = message if isinstance(message, list) else message.to_wire()
    body: bytes = _packer().pack(wire)
    check_length(len(body), max_size)
    return HEADER.pack(len(body)) + body


#: Put in place of a response whose frame would exceed the maximum frame size.
OVERSIZED_RESPONSE_MESSAGE = (
    "the answer would exceed the maximum frame size of {max} bytes;"
    " ask for fewer references per batch (or the value itself is too large)"
)


class MessageWriter:
    """Packs messages into frames and writes them to a blocking file descriptor.

    Thread-safe: one lock covers packing (a ``msgpack.Packer`` is not thread-safe) and the
    write, so frames from concurrent senders never interleave. A response too large for a frame
    is replaced by an ``invalid_request`` error response with the same id, so every request is
    still answered; any other oversized message raises :class:`ProtocolError` and is not sent.
    """

    __slots__ = ("_fd", "_lock", "_max", "_pack")

    def __init__(self, fd: int, max_frame_size: int = MAX_FRAME_SIZE) -> None:
        self._fd = fd
        self._max = max_frame_size
        self._lock = threading.Lock()
        self._pack = _packer().pack

    def send(self, wire: list[Any]) -> None:
        """Write one message given as its wire array (e.g. ``Response(...).to_wire()``)."""
        with self._lock:
            write_all(self._fd, self._frame(wire))

    def send_many(self, wires: list[list[Any]]) -> None:
        """Write several messages with one system call (pipelined answers)."""
        with self._lock:
            write_all(self._fd, b"".join([self._frame(wire) for wire in wires]))

    def _frame(self, wire: list[Any]) -> bytes:
        body: bytes = self._pack(wire)
        length = len(body)
        if not 0 < length <= self._max:
            if wire[0] != Kind.RESPONSE or length == 0:
                check_length(length, self._max)
            message = OVERSIZED_RESPONSE_MESSAGE.format(max=self._max)
            error = WireError(ErrorCode.INVALID_REQUEST, message)
            body = self._pack(Response(wire[1], error, None).to_wire())
            length = len(body)
        return HEADER.pack(length) + body
