"""The rf-daemon wire protocol (docs/PROTOCOL.md): pure functions between messages and frames.

A message is a list of frames: frame 0 a UTF-8 JSON header, frames 1..n the binary payloads that
the header's `payloads` list describes, in order. This module imports json and numpy only (never
sockets, never torch) so that Nuke's Python and any small client can load it; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
DEFAULT_PORT = 5557
DEFAULT_ADDRESS = f"tcp://127.0.0.1:{DEFAULT_PORT}"

# Ops a client may send (ARCHITECTURE §4).
OP_HELLO = "hello"
OP_RENDER = "render"
OP_DECOMPOSE = "decompose"
OP_STATUS = "status"
OP_CANCEL = "cancel"
OP_FREE = "free"
OP_SHUTDOWN = "shutdown"
OPS = (OP_HELLO, OP_RENDER, OP_DECOMPOSE, OP_STATUS, OP_CANCEL, OP_FREE, OP_SHUTDOWN)
JOB_OPS = (OP_RENDER, OP_DECOMPOSE, OP_FREE)  # queued for the GPU worker; the rest is answered at once

# Reply kinds; `result` and `error` are final (exactly one per request).
KIND_ACCEPTED = "accepted"
KIND_PROGRESS = "progress"
KIND_RESULT = "result"
KIND_ERROR = "error"
KINDS = (KIND_ACCEPTED, KIND_PROGRESS, KIND_RESULT, KIND_ERROR)
FINAL_KINDS = (KIND_RESULT, KIND_ERROR)

# Payload encodings.
ENCODING_EXR = "exr"  # a whole OpenEXR file
ENCODING_RAW = "raw"  # a little-endian C-order array of `dtype` and `shape`
ENCODINGS = (ENCODING_EXR, ENCODING_RAW)
RAW_DTYPES = ("float32", "float16", "uint8", "uint16", "int32")
EXR_MAGIC = b"\x76\x2f\x31\x01"  # the first four bytes of every OpenEXR file
MAX_JOB_ID_CHARS = 128
MAX_HEADER_BYTES = 1 << 20  # the JSON header frame
MAX_FRAME_NUMBER = 999_999_999  # frame numbers, either sign (a 9-digit #########)
MIN_ENVMAP_SIZE = (16, 8)  # width, height: smaller lat-long maps hold no usable lighting

# Error codes of `error` replies.
E_BAD_MESSAGE = "bad_message"  # frames that are not a message: no header, not JSON, not an object
E_UNSUPPORTED_VERSION = "unsupported_version"
E_UNKNOWN_OP = "unknown_op"
E_BAD_REQUEST = "bad_request"  # header fields missing or of the wrong type, unknown params
E_BAD_PAYLOAD = "bad_payload"  # payload frames that do not match the header
E_TOO_LARGE = "too_large"  # over a limit announced by hello
E_BAD_INPUT = "bad_input"  # the images themselves: missing layers, wrong sizes, NaN, ...
E_DUPLICATE_JOB = "duplicate_job"  # this client already has an active job with this id
E_UNKNOWN_JOB = "unknown_job"  # cancel of a job that is not queued or running
E_CANCELLED = "cancelled"
E_OUT_OF_MEMORY = "out_of_memory"
E_MODEL_UNAVAILABLE = "model_unavailable"  # the model failed to load, or lacks the adapter asked for
E_SHUTTING_DOWN = "shutting_down"
E_FORBIDDEN = "forbidden"  # an admin op (shutdown, free) without the daemon owner's token
E_INTERNAL = "internal"
ERROR_CODES = (
    E_BAD_MESSAGE,
    E_UNSUPPORTED_VERSION,
    E_UNKNOWN_OP,
    E_BAD_REQUEST,
    E_BAD_PAYLOAD,
    E_TOO_LARGE,
    E_BAD_INPUT,
    E_DUPLICATE_JOB,
    E_UNKNOWN_JOB,
    E_CANCELLED,
    E_OUT_OF_MEMORY,
    E_MODEL_UNAVAILABLE,
    E_SHUTTING_DOWN,
    E_FORBIDDEN,
    E_INTERNAL,
)
ADMIN_OPS = (OP_SHUTDOWN, OP_FREE)  # need params.token: the token file the daemon writes for its owner


class ProtocolError(ValueError):
    """A message that breaks the protocol; `code` is the error code its reply carries."""

    def __init__(self, code: str, message: str, job_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.job_id = job_id


@dataclass(frozen=True)
class Limits:
    """What the daemon accepts, announced by `hello` and checked before any work."""

    max_message_bytes: int = 1 << 30  # the whole request, header and payloads
    max_pixels: int = 4096 * 4096  # per frame
    max_frames: int = 240  # per job

    def as_dict(self) -> dict[str, int]:
        return {
            "max_message_bytes": self.max_message_bytes,
            "max_pixels": self.max_pixels,
            "max_frames": self.max_frames,
        }


@dataclass(frozen=True)
class Payload:
    """One binary frame and its descriptor: `frame` numbers a sequence's payloads of one name."""

    name: str
    encoding: str
    data: bytes | memoryview
    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    frame: int | None = None

    @classmethod
    def from_array(cls, name: str, array: np.ndarray, frame: int | None = None) -> Payload:
        if array.dtype.name not in RAW_DTYPES:
            raise ValueError(f"payload {name!r}: dtype {array.dtype.name} is not one of {RAW_DTYPES}")
        little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        return cls(name, ENCODING_RAW, little.tobytes(), array.dtype.name, tuple(array.shape), frame)

    @classmethod
    def exr(cls, name: str, data: bytes, frame: int | None = None) -> Payload:
        return cls(name, ENCODING_EXR, data, frame=frame)

    def array(self) -> np.ndarray:
        """The raw payload as a read-only array (no copy)."""
        if self.encoding != ENCODING_RAW or self.dtype is None or self.shape is None:
            raise ValueError(f"payload {self.name!r} is {self.encoding}, not raw")
        return np.frombuffer(self.data, dtype=np.dtype(self.dtype).newbyteorder("<")).reshape(self.shape)

    def descriptor(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "encoding": self.encoding}
        if self.encoding == ENCODING_RAW:
            entry |= {"dtype": self.dtype, "shape": list(self.shape or ())}
        if self.frame is not None:
            entry["frame"] = self.frame
        return entry


@dataclass
class Message:
    """A decoded message: its header and its payloads, checked against each other."""

    header: dict[str, Any]
    payloads: list[Payload] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return str(self.header.get("id", ""))

    @property
    def op(self) -> str:
        return str(self.header.get("op", ""))

    @property
    def kind(self) -> str:
        return str(self.header.get("kind", ""))

    @property
    def params(self) -> dict[str, Any]:
        params = self.header.get("params", {})
        return params if isinstance(params, dict) else {}

    def named(self, name: str) -> list[Payload]:
        """The payloads called `name`, in the order sent."""
        return [payload for payload in self.payloads if payload.name == name]


# -- frames <-> messages ----------------------------------------------------------------------------
def encode(header: dict[str, Any], payloads: Sequence[Payload] = ()) -> list[bytes | memoryview]:
    """Header (its `payloads` list filled in from `payloads`) + payload frames, ready to send."""
    full = {**header, "payloads": [payload.descriptor() for payload in payloads]}
    text = json.dumps(full, separators=(",", ":"), allow_nan=False)
    return [text.encode("utf-8"), *(payload.data for payload in payloads)]


def request(
    op: str, job_id: str, params: dict[str, Any] | None = None, payloads: Sequence[Payload] = ()
) -> list[bytes | memoryview]:
    return encode({"v": PROTOCOL_VERSION, "id": job_id, "op": op, "params": params or {}}, payloads)


def reply(
    job_id: str, kind: str, fields: dict[str, Any] | None = None, payloads: Sequence[Payload] = ()
) -> list[bytes | memoryview]:
    return encode({"v": PROTOCOL_VERSION, "id": job_id, "kind": kind, **(fields or {})}, payloads)


def error_reply(job_id: str, code: str, message: str) -> list[bytes | memoryview]:
    return reply(job_id, KIND_ERROR, {"code": code, "message": message})


def decode(frames: Sequence[bytes | memoryview], limits: Limits | None = None) -> Message:
    """Frames -> Message, with every payload checked against its descriptor before anyone decodes it.

    Raises ProtocolError with the code the reply should carry (bad_message, too_large,
    unsupported_version, bad_request, bad_payload). The op is not checked here: `validate` does.
    """
    if not frames:
        raise ProtocolError(E_BAD_MESSAGE, "empty message: expected a JSON header frame")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise ProtocolError(
            E_TOO_LARGE, f"header frame of {len(frames[0])} bytes is over the limit of {MAX_HEADER_BYTES}"
        )
    header = parse_header(frames[0])
    job_id = header["id"] if isinstance(header.get("id"), str) else None
    if limits is not None:
        size = sum(len(frame) for frame in frames)
        if size > limits.max_message_bytes:
            raise ProtocolError(
                E_TOO_LARGE,
                f"message of {size} bytes is over the limit of {limits.max_message_bytes}",
                job_id,
            )
    if not _is_version(header.get("v")):
        raise ProtocolError(
            E_UNSUPPORTED_VERSION,
            f"protocol version {header.get('v')!r} is not supported; this daemon speaks {PROTOCOL_VERSION}",
            job_id,
        )
    descriptors = header.get("payloads", [])
    problems = _payload_list_problems(descriptors)
    if problems:
        raise ProtocolError(E_BAD_REQUEST, "; ".join(problems), job_id)
    if len(descriptors) != len(frames) - 1:
        raise ProtocolError(
            E_BAD_PAYLOAD,
            f"header describes {len(descriptors)} payloads, the message has {len(frames) - 1}",
            job_id,
        )
    payloads = [_payload(entry, data, job_id) for entry, data in zip(descriptors, frames[1:], strict=True)]
    return Message(header, payloads)


def readable_id(frames: Sequence[bytes | memoryview]) -> str:
    """The request id of frames the strict decoding refused, when a lenient read finds one (a header
    with NaN, too deep, or too long still names its id); "" otherwise. Only for error replies."""
    if not frames:
        return ""
    try:
        header = json.loads(bytes(frames[0]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return ""
    job_id = header.get("id") if isinstance(header, dict) else None
    return job_id if isinstance(job_id, str) else ""


def parse_header(frame: bytes | memoryview) -> dict[str, Any]:
    """Frame 0 as a JSON object; NaN, Infinity and nesting beyond what JSON needs are bad messages."""
    try:
        header = json.loads(bytes(frame).decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(E_BAD_MESSAGE, f"header frame is not UTF-8 JSON ({error})") from error
    except RecursionError as error:
        raise ProtocolError(E_BAD_MESSAGE, "header frame is nested too deeply") from error
    if not isinstance(header, dict):
        raise ProtocolError(E_BAD_MESSAGE, f"header must be a JSON object, got {type(header).__name__}")
    return header


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _is_version(value: object) -> bool:
    return type(value) is int and value == PROTOCOL_VERSION  # `true` is not 1


def validate(header: dict[str, Any]) -> list[str]:
    """The problems of a request header, each naming the field and what was expected; [] if none."""
    problems = []
    if not _is_version(header.get("v")):
        problems.append(f"v: expected {PROTOCOL_VERSION}, got {header.get('v')!r}")
    job_id = header.get("id")
    if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID_CHARS:
        problems.append(f"id: expected a string of 1 to {MAX_JOB_ID_CHARS} characters, got {job_id!r}")
    if header.get("op") not in OPS:
        problems.append(f"op: expected one of {', '.join(OPS)}, got {header.get('op')!r}")
    if not isinstance(header.get("params", {}), dict):
        problems.append(f"params: expected an object, got {type(header.get('params')).__name__}")
    return problems + _payload_list_problems(header.get("payloads", []))


def validate_reply(header: dict[str, Any]) -> list[str]:
    """The problems of a reply header; [] if none."""
    problems = []
    if not isinstance(header.get("id"), str):
        problems.append(f"id: expected a string, got {header.get('id')!r}")
    kind = header.get("kind")
    if kind not in KINDS:
        problems.append(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
    if kind == KIND_ERROR and not (
        isinstance(header.get("code"), str) and isinstance(header.get("message"), str)
    ):
        problems.append("error replies need a string code and message")
    if kind == KIND_PROGRESS and not all(isinstance(header.get(key), int) for key in ("done", "total")):
        problems.append("progress replies need integer done and total")
    return problems


def _payload_list_problems(descriptors: object) -> list[str]:
    if not isinstance(descriptors, list):
        return [f"payloads: expected a list, got {type(descriptors).__name__}"]
    problems = []
    for index, entry in enumerate(descriptors):
        where = f"payloads[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object, got {type(entry).__name__}")
            continue
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            problems.append(f"{where}.name: expected a non-empty string")
        frame = entry.get("frame", 0)
        if not isinstance(frame, int) or isinstance(frame, bool) or abs(frame) > MAX_FRAME_NUMBER:
            problems.append(
                f"{where}.frame: expected an integer within ±{MAX_FRAME_NUMBER}, got {entry['frame']!r}"
            )
        encoding = entry.get("encoding")
        if encoding == ENCODING_RAW:
            if entry.get("dtype") not in RAW_DTYPES:
                problems.append(
                    f"{where}.dtype: expected one of {', '.join(RAW_DTYPES)}, got {entry.get('dtype')!r}"
                )
            shape = entry.get("shape")
            if not (
                isinstance(shape, list)
                and len(shape) <= 8
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            ):
                problems.append(
                    f"{where}.shape: expected a list of at most 8 non-negative integers, got {shape!r}"
                )
        elif encoding != ENCODING_EXR:
            problems.append(f"{where}.encoding: expected exr or raw, got {encoding!r}")
    return problems


def _payload(entry: dict[str, Any], data: bytes | memoryview, job_id: str | None) -> Payload:
    name, encoding = entry["name"], entry["encoding"]
    if encoding == ENCODING_RAW:
        dtype, shape = entry["dtype"], tuple(entry["shape"])
        expected = math.prod(shape) * np.dtype(dtype).itemsize
        if len(data) != expected:
            raise ProtocolError(
                E_BAD_PAYLOAD,
                f"payload {name!r} has {len(data)} bytes; its header says {dtype} {list(shape)} "
                f"= {expected} bytes",
                job_id,
            )
        return Payload(name, encoding, data, dtype, shape, entry.get("frame"))
    if bytes(data[:4]) != EXR_MAGIC:
        raise ProtocolError(
            E_BAD_PAYLOAD, f"payload {name!r} is not an OpenEXR file (no EXR magic number)", job_id
        )
    return Payload(name, encoding, data, frame=entry.get("frame"))


# -- what each op carries -----------------------------------------------------------------------------
# render, EXR form: `gbuffers` (one EXR per frame, any AOV profile, `frame` set), `envmap` (one
# world-space lat-long EXR), `keyframe` (optional, beauty EXRs whose `frame` is one of the G-buffers').
# render, raw form: `albedo`, `normal`, `material` [F, H, W, 3], `depth` [F, H, W, 1], `envmap_cam`
# [F or 1, He, We, 3] float32 in the canonical conventions, optional `keyframes` [K, H, W, 3] with
# params.keyframe_frames (their frame indices).
# decompose: `image` (one RGB EXR per frame, `frame` set) or one raw `image` [F, H, W, 3] float32.
RENDER_RAW_GBUFFERS = ("albedo", "normal", "depth", "material")
AOV_LAYERS = ("alpha", "albedo", "normal", "depth", "roughness", "metallic", "specular")
INTRINSIC_NAMES = ("albedo", "normal", "depth", "roughness", "metallic")
