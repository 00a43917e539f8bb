"""The wire protocol as pure functions on lists of bytes, and a property-based fuzz of the decoder."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from renderflow.core.io.exr import write_exr
from renderflow.daemon import protocol as wire
from renderflow.daemon import request_checks as checks

LIMITS = wire.Limits(max_message_bytes=1 << 20, max_pixels=64 * 64, max_frames=4)


def exr_bytes(tmp_path, width=16, height=8, name="a.exr"):
    path = tmp_path / name
    write_exr(path, np.ones((height, width, 3), np.float32), ["R", "G", "B"])
    return path.read_bytes()


def test_raw_payload_round_trips_without_loss():
    array = np.arange(24, dtype=np.float32).reshape(1, 2, 4, 3)
    frames = wire.request("render", "job-1", {"steps": 1}, [wire.Payload.from_array("albedo", array)])
    message = wire.decode(frames)
    assert message.op == "render" and message.job_id == "job-1" and message.params == {"steps": 1}
    np.testing.assert_array_equal(message.payloads[0].array(), array)
    assert message.header["payloads"] == [
        {"name": "albedo", "encoding": "raw", "dtype": "float32", "shape": [1, 2, 4, 3]}
    ]


def test_header_is_compact_json_with_the_fields_of_protocol_md():
    frames = wire.request("hello", "a")
    assert json.loads(frames[0]) == {"v": 1, "id": "a", "op": "hello", "params": {}, "payloads": []}
    error = json.loads(wire.error_reply("a", wire.E_BAD_INPUT, "no normal layer")[0])
    assert error == {
        "v": 1,
        "id": "a",
        "kind": "error",
        "code": "bad_input",
        "message": "no normal layer",
        "payloads": [],
    }


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([], wire.E_BAD_MESSAGE),
        ([b"\xff\xfe"], wire.E_BAD_MESSAGE),
        ([b"[1, 2]"], wire.E_BAD_MESSAGE),
        ([b'{"v": 99, "id": "x", "op": "hello"}'], wire.E_UNSUPPORTED_VERSION),
        ([b'{"v": 1, "id": "x", "op": "render", "payloads": "no"}'], wire.E_BAD_REQUEST),
        (
            [b'{"v": 1, "id": "x", "op": "render", "payloads": [{"name": "a", "encoding": "raw"}]}', b""],
            wire.E_BAD_REQUEST,
        ),
        (
            [b'{"v": 1, "id": "x", "op": "render", "payloads": [{"name": "a", "encoding": "exr"}]}'],
            wire.E_BAD_PAYLOAD,
        ),
        (
            [
                b'{"v": 1, "id": "x", "op": "render", "payloads": '
                b'[{"name": "a", "encoding": "raw", "dtype": "float32", "shape": [2, 2]}]}',
                b"12345678",
            ],
            wire.E_BAD_PAYLOAD,
        ),
        (
            [
                b'{"v": 1, "id": "x", "op": "render", "payloads": [{"name": "a", "encoding": "exr"}]}',
                b"GIF89a..",
            ],
            wire.E_BAD_PAYLOAD,
        ),
    ],
)
def test_broken_messages_raise_protocol_errors_with_their_codes(frames, code):
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(frames, LIMITS)
    assert raised.value.code == code


def test_payload_that_lies_about_its_size_is_named():
    frames = wire.request(
        "render", "x", payloads=[wire.Payload.from_array("depth", np.zeros((2, 2), np.float32))]
    )
    with pytest.raises(wire.ProtocolError, match="'depth' has 12 bytes; its header says float32 \\[2, 2\\]"):
        wire.decode([frames[0], bytes(frames[1])[:12]])


def test_message_over_the_size_limit_is_too_large():
    frames = wire.request(
        "render", "x", payloads=[wire.Payload.from_array("a", np.zeros(1 << 18, np.float32))]
    )
    with pytest.raises(wire.ProtocolError) as raised:
        wire.decode(frames, LIMITS)
    assert raised.value.code == wire.E_TOO_LARGE and raised.value.job_id == "x"  # D1: the id was readable


def test_validate_names_each_bad_field():
    problems = wire.validate({"v": 1, "id": "", "op": "paint", "params": [], "payloads": [{"name": 3}]})
    text = "\n".join(problems)
    for field in ("id:", "op:", "params:", "payloads[0].name", "payloads[0].encoding"):
        assert field in text


def test_check_request_rejects_unknown_ops_params_and_types():
    def check(op, params):
        checks.check_request(wire.decode(wire.request(op, "x", params)), LIMITS)

    with pytest.raises(wire.ProtocolError) as raised:
        check("paint", {})
    assert raised.value.code == wire.E_UNKNOWN_OP
    for params, text in [
        ({"colour": "red"}, "params.colour: unknown"),
        ({"steps": True}, "params.steps: expected int"),
        ({"steps": 0}, "params.steps: expected 1 to 100"),
        ({"aovs": ["beauty"]}, "params.aovs"),
    ]:
        with pytest.raises(wire.ProtocolError, match=text):
            check("render", params)
    with pytest.raises(wire.ProtocolError, match=r"params\.job"):
        check("cancel", {})


def test_exr_data_window_is_read_from_the_header_alone(tmp_path):
    data = exr_bytes(tmp_path, width=24, height=8)
    assert checks.exr_data_window_size(data) == (24, 8)
    with pytest.raises(wire.ProtocolError, match=r"malformed|dataWindow"):
        checks.exr_data_window_size(data[:40])


def test_render_limits_are_checked_before_decoding_any_image(tmp_path):
    big = exr_bytes(tmp_path, width=128, height=64)
    small = exr_bytes(tmp_path, name="b.exr")
    too_big = [wire.Payload.exr("gbuffers", big, 1), wire.Payload.exr("envmap", small)]
    with pytest.raises(wire.ProtocolError, match="128x64 = 8192 pixels") as raised:
        checks.check_request(wire.decode(wire.request("render", "x", payloads=too_big)), LIMITS)
    assert raised.value.code == wire.E_TOO_LARGE
    too_many = [wire.Payload.exr("gbuffers", small, frame) for frame in range(5)] + [
        wire.Payload.exr("envmap", small)
    ]
    with pytest.raises(wire.ProtocolError, match="5 frames"):
        checks.check_request(wire.decode(wire.request("render", "x", payloads=too_many)), LIMITS)


@pytest.mark.parametrize(
    ("names", "text"),
    [
        ([("gbuffers", 2), ("gbuffers", 1), ("envmap", None)], "must increase"),
        ([("gbuffers", None), ("envmap", None)], "needs its frame number"),
        ([("gbuffers", 1)], "one 'envmap'"),
        ([("gbuffers", 1), ("envmap", None), ("keyframe", 7)], "keyframes at frames \\[7\\]"),
        ([("paint", None)], "unknown payloads"),
    ],
)
def test_render_payload_lists_that_make_no_sense_are_bad_payloads(tmp_path, names, text):
    data = exr_bytes(tmp_path)
    payloads = [wire.Payload.exr(name, data, frame) for name, frame in names]
    with pytest.raises(wire.ProtocolError, match=text) as raised:
        checks.check_request(wire.decode(wire.request("render", "x", payloads=payloads)), LIMITS)
    assert raised.value.code == wire.E_BAD_PAYLOAD


def test_reply_validation_accepts_what_the_daemon_sends():
    for frames in (
        wire.reply("a", wire.KIND_ACCEPTED, {"queue_position": 0}),
        wire.reply("a", wire.KIND_PROGRESS, {"done": 1, "total": 2, "message": ""}),
        wire.error_reply("a", wire.E_CANCELLED, "cancelled"),
    ):
        assert wire.validate_reply(wire.decode(frames).header) == []
    assert wire.validate_reply({"id": "a", "kind": "progress", "done": "1"}) != []


# -- fuzz ------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
header_like = st.fixed_dictionaries(
    {},
    optional={
        "v": st.sampled_from([1, 1, 2, "1", None]),
        "id": st.text(max_size=140) | st.integers(),
        "op": st.sampled_from([*wire.OPS, "paint", 3]),
        "params": json_values,
        "payloads": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": st.sampled_from(["gbuffers", "envmap", "albedo", "image", "", 5]),
                    "encoding": st.sampled_from(["exr", "raw", "png", None]),
                    "dtype": st.sampled_from([*wire.RAW_DTYPES, "object", 1]),
                    "shape": st.lists(st.integers(-2, 6), max_size=5) | json_values,
                    "frame": st.integers(-3, 3) | st.booleans() | st.text(max_size=2),
                },
            ),
            max_size=4,
        )
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=5))
def test_decoder_turns_any_bytes_into_a_message_or_a_protocol_error(frames):
    try:
        message = wire.decode(frames, LIMITS)
        checks.check_request(message, LIMITS)
    except wire.ProtocolError as error:
        assert error.code in wire.ERROR_CODES


@settings(max_examples=400, deadline=None)
@given(
    header_like, st.lists(st.binary(max_size=48) | st.just(wire.EXR_MAGIC + b"\x02\x00\x00\x00"), max_size=5)
)
def test_decoder_turns_any_header_into_a_message_or_a_protocol_error(header, payload_frames):
    frames = [json.dumps(header).encode(), *payload_frames]
    try:
        message = wire.decode(frames, LIMITS)
        checks.check_request(message, LIMITS)
    except wire.ProtocolError as error:
        assert error.code in wire.ERROR_CODES
    else:
        assert message.op in wire.OPS and len(message.payloads) == len(payload_frames)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(wire.RAW_DTYPES),
            st.lists(st.integers(0, 4), min_size=1, max_size=4),
            st.integers(0, 2**31 - 1),
        ),
        max_size=4,
    )
)
def test_raw_payloads_survive_encode_and_decode_exactly(specs):
    payloads = []
    for index, (dtype, shape, seed) in enumerate(specs):
        rng = np.random.default_rng(seed)
        array = (rng.random(shape) * 100).astype(dtype)
        payloads.append(wire.Payload.from_array(f"p{index}", array, frame=index))
    message = wire.decode(wire.request("render", "x", payloads=payloads))
    for sent, received in zip(payloads, message.payloads, strict=True):
        np.testing.assert_array_equal(sent.array(), received.array())
        assert received.frame == sent.frame
