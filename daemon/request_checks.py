"""What a request may carry, checked before any image is decoded (docs/PROTOCOL.md): params by type,
range and name; payloads by name, encoding, count and size (an EXR's size read from its header
alone). Standard library and the protocol module only.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Any

from renderflow.daemon.protocol import (
    AOV_LAYERS,
    E_BAD_PAYLOAD,
    E_BAD_REQUEST,
    E_TOO_LARGE,
    E_UNKNOWN_OP,
    ENCODING_EXR,
    ENCODING_RAW,
    EXR_MAGIC,
    INTRINSIC_NAMES,
    MIN_ENVMAP_SIZE,
    OP_CANCEL,
    OP_DECOMPOSE,
    OP_FREE,
    OP_HELLO,
    OP_RENDER,
    OP_SHUTDOWN,
    OP_STATUS,
    OPS,
    RENDER_RAW_GBUFFERS,
    Limits,
    Message,
    Payload,
    ProtocolError,
    validate,
)


# -- sizes before decoding --------------------------------------------------------------------------
def payload_size(payload: Payload) -> tuple[int, int]:
    """(width, height) of an image payload, from the EXR header or a raw `[..., H, W, C]` shape.

    Lets the daemon check its pixel limit before any decoding; raises ProtocolError(bad_payload).
    """
    if payload.encoding == ENCODING_RAW:
        shape: tuple[int, ...] = tuple(payload.shape or ())
        if len(shape) < 3:
            raise ProtocolError(
                E_BAD_PAYLOAD, f"payload {payload.name!r}: expected [..., H, W, C], got shape {list(shape)}"
            )
        return shape[-2], shape[-3]
    return exr_data_window_size(payload.data, payload.name)


def exr_data_window_size(data: bytes | memoryview, name: str = "exr") -> tuple[int, int]:
    """(width, height) of an OpenEXR file's data window (first part), read from its header only."""
    view = memoryview(data)
    if bytes(view[:4]) != EXR_MAGIC or len(view) < 8:
        raise ProtocolError(E_BAD_PAYLOAD, f"payload {name!r} is not an OpenEXR file")
    offset = 8  # magic number + version field
    for _ in range(1024):  # a header has far fewer attributes; this bounds a hostile one
        attribute, offset = _c_string(view, offset, name)
        if not attribute:
            break
        _, offset = _c_string(view, offset, name)  # type name
        if offset + 4 > len(view):
            break
        (size,) = struct.unpack_from("<i", view, offset)
        offset += 4
        if size < 0 or offset + size > len(view):
            break
        if attribute == "dataWindow" and size == 16:
            x_min, y_min, x_max, y_max = struct.unpack_from("<4i", view, offset)
            width, height = x_max - x_min + 1, y_max - y_min + 1
            if width < 1 or height < 1:
                raise ProtocolError(E_BAD_PAYLOAD, f"payload {name!r}: empty data window {width}x{height}")
            return width, height
        offset += size
    raise ProtocolError(E_BAD_PAYLOAD, f"payload {name!r}: EXR header has no readable dataWindow")


def _c_string(view: memoryview, offset: int, name: str) -> tuple[str, int]:
    end = offset
    limit = min(len(view), offset + 256)  # EXR names are at most 255 bytes
    while end < limit and view[end] != 0:
        end += 1
    if end >= limit:
        raise ProtocolError(E_BAD_PAYLOAD, f"payload {name!r}: truncated or malformed EXR header")
    return bytes(view[offset:end]).decode("latin-1"), end + 1


_NUMBER = (int, float)
PARAMS: dict[str, dict[str, tuple[type, ...]]] = {
    OP_HELLO: {},
    OP_STATUS: {"token": (str,)},
    OP_FREE: {"token": (str,)},
    OP_SHUTDOWN: {"token": (str,)},
    OP_CANCEL: {"job": (str,)},
    OP_RENDER: {
        "steps": (int,),
        "profile": (str,),
        "aov": (dict,),
        "aov_profile_toml": (str,),
        "colour_space": (str,),
        "camera": (dict,),
        "fov": _NUMBER,
        "view": (str,),
        "env_rotate": _NUMBER,
        "env_flip": (bool,),
        "exposure": _NUMBER,
        "aovs": (list,),
        "keyframe_frames": (list,),
    },
    OP_DECOMPOSE: {
        "steps": (int,),
        "targets": (list,),
        "colour_space": (str,),
        "layer": (str,),
        "view": (str,),
    },
}
MAX_STEPS = 100
# Numbers with a range: params outside it are bad requests, never `internal` errors later.
NUMBER_RANGES = {"fov": (1e-3, 179.999), "env_rotate": (-1e6, 1e6), "exposure": (-64.0, 64.0)}


def check_request(message: Message, limits: Limits) -> None:
    """Everything about a request that can be checked without decoding an image, against `limits`.

    Raises ProtocolError (unknown_op, bad_request, bad_payload, too_large) naming the field, with
    the request's id whenever it has one (a client waits for its own id).
    """
    try:
        _check_request(message, limits)
    except ProtocolError as error:
        error.job_id = error.job_id or message.job_id or None
        raise


def _check_request(message: Message, limits: Limits) -> None:
    job_id = message.job_id or None
    if message.op not in OPS:
        raise ProtocolError(
            E_UNKNOWN_OP, f"unknown op {message.header.get('op')!r}; ops: {', '.join(OPS)}", job_id
        )
    problems = validate(message.header)
    problems += _param_problems(message.op, message.params)
    if problems:
        raise ProtocolError(E_BAD_REQUEST, "; ".join(problems), job_id)
    if message.op == OP_RENDER:
        _check_render_payloads(message, limits)
    elif message.op == OP_DECOMPOSE:
        _check_decompose_payloads(message, limits)
    elif message.payloads:
        raise ProtocolError(
            E_BAD_PAYLOAD, f"{message.op} takes no payloads, got {len(message.payloads)}", job_id
        )


def _param_problems(op: str, params: dict[str, Any]) -> list[str]:
    allowed = PARAMS[op]
    problems = []
    for key, value in params.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            problems.append(f"params.{key}: unknown for {op} (known: {known})")
        elif (isinstance(value, bool) and bool not in allowed[key]) or not isinstance(value, allowed[key]):
            names = " or ".join(kind.__name__ for kind in allowed[key])
            problems.append(f"params.{key}: expected {names}, got {type(value).__name__}")
    for key, (low, high) in NUMBER_RANGES.items():
        value = params.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and not low <= value <= high:
            problems.append(f"params.{key}: expected a number from {low:g} to {high:g}, got {value!r}")
    steps = params.get("steps", 1)
    if isinstance(steps, int) and not 1 <= steps <= MAX_STEPS:
        problems.append(f"params.steps: expected 1 to {MAX_STEPS}, got {steps}")
    for key, choices in (("aovs", AOV_LAYERS), ("targets", INTRINSIC_NAMES)):
        values = params.get(key, [])
        if isinstance(values, list) and not all(value in choices for value in values):
            problems.append(f"params.{key}: expected names among {', '.join(choices)}, got {values}")
    if op == OP_CANCEL and "job" not in params:
        problems.append("params.job: the id of the job to cancel is required")
    return problems


def _check_frames(message: Message, payloads: list[Payload], limits: Limits) -> list[int]:
    """The frame numbers of a per-frame payload list: all set, strictly increasing, within the limits."""
    name = payloads[0].name
    frames = [payload.frame for payload in payloads]
    if any(frame is None for frame in frames):
        raise ProtocolError(E_BAD_PAYLOAD, f"every {name!r} payload needs its frame number", message.job_id)
    numbers = [int(frame) for frame in frames if frame is not None]
    if any(b <= a for a, b in itertools.pairwise(numbers)):
        raise ProtocolError(E_BAD_PAYLOAD, f"{name!r} frames must increase, got {numbers}", message.job_id)
    _check_frame_count(message, name, len(numbers), limits)
    return numbers


def _check_frame_count(message: Message, name: str, count: int, limits: Limits) -> None:
    if count > limits.max_frames:
        raise ProtocolError(
            E_TOO_LARGE,
            f"{count} frames of {name!r} in one job; this daemon takes at most {limits.max_frames}: "
            "split the range into several jobs",
            message.job_id,
        )


def _check_pixels(message: Message, payload: Payload, limits: Limits) -> tuple[int, int]:
    width, height = payload_size(payload)
    if width * height > limits.max_pixels:
        raise ProtocolError(
            E_TOO_LARGE,
            f"payload {payload.name!r} is {width}x{height} = {width * height} pixels per frame; this daemon "
            f"takes at most {limits.max_pixels}",
            message.job_id,
        )
    return width, height


def _check_render_payloads(message: Message, limits: Limits) -> None:
    job_id = message.job_id
    known = {"gbuffers", "envmap", "keyframe", "keyframes", "envmap_cam", *RENDER_RAW_GBUFFERS}
    unknown = sorted({payload.name for payload in message.payloads} - known)
    if unknown:
        raise ProtocolError(E_BAD_PAYLOAD, f"render: unknown payloads {unknown}", job_id)
    for payload in message.payloads:
        width, height = _check_pixels(message, payload, limits)
        small = width < MIN_ENVMAP_SIZE[0] or height < MIN_ENVMAP_SIZE[1]
        if payload.name in ("envmap", "envmap_cam") and small:
            raise ProtocolError(
                E_BAD_PAYLOAD,
                f"payload {payload.name!r} is {width}x{height}; a lat-long env map needs at least "
                f"{MIN_ENVMAP_SIZE[0]}x{MIN_ENVMAP_SIZE[1]}",
                job_id,
            )
    gbuffers = message.named("gbuffers")
    if gbuffers:
        _expect_encoding(message, ("gbuffers", "envmap", "keyframe"), ENCODING_EXR)
        frames = _check_frames(message, gbuffers, limits)
        if len(message.named("envmap")) != 1:
            raise ProtocolError(
                E_BAD_PAYLOAD, "render: expected one 'envmap' payload (a lat-long EXR)", job_id
            )
        extra = [name for name in (*RENDER_RAW_GBUFFERS, "envmap_cam", "keyframes") if message.named(name)]
        if extra:
            raise ProtocolError(E_BAD_PAYLOAD, f"render: 'gbuffers' EXRs and raw {extra} do not mix", job_id)
        outside = [p.frame for p in message.named("keyframe") if p.frame not in frames]
        if outside:
            raise ProtocolError(
                E_BAD_PAYLOAD, f"render: keyframes at frames {outside} have no G-buffers", job_id
            )
        return
    missing = [name for name in (*RENDER_RAW_GBUFFERS, "envmap_cam") if len(message.named(name)) != 1]
    if missing:
        raise ProtocolError(
            E_BAD_PAYLOAD,
            f"render: expected 'gbuffers' + 'envmap' EXRs, or one raw payload each of albedo, normal, depth, "
            f"material and envmap_cam; missing or repeated: {missing}",
            job_id,
        )
    _expect_encoding(message, (*RENDER_RAW_GBUFFERS, "envmap_cam", "keyframes"), ENCODING_RAW)
    shape = message.named("albedo")[0].shape or ()
    _check_frame_count(message, "albedo", shape[0] if shape else 0, limits)


def _check_decompose_payloads(message: Message, limits: Limits) -> None:
    images = message.named("image")
    if not images or len(images) != len(message.payloads):
        raise ProtocolError(E_BAD_PAYLOAD, "decompose: expected only 'image' payloads", message.job_id)
    for payload in images:
        _check_pixels(message, payload, limits)
    if images[0].encoding == ENCODING_EXR:
        _expect_encoding(message, ("image",), ENCODING_EXR)
        _check_frames(message, images, limits)
    elif len(images) != 1:
        raise ProtocolError(E_BAD_PAYLOAD, "decompose: one raw 'image' [F, H, W, 3] payload", message.job_id)
    else:
        _check_frame_count(message, "image", (images[0].shape or (0,))[0], limits)


def _expect_encoding(message: Message, names: Sequence[str], encoding: str) -> None:
    wrong = sorted({p.name for p in message.payloads if p.name in names and p.encoding != encoding})
    if wrong:
        raise ProtocolError(E_BAD_PAYLOAD, f"payloads {wrong} must be {encoding}", message.job_id)
