"""The one request codec: what rf-render and the Nuke session send is what the daemon's jobs read."""

import pytest

from renderflow.core.io import colour
from renderflow.daemon import protocol as wire
from renderflow.daemon import request_checks as checks
from renderflow.daemon import requests


def test_render_params_round_trip_through_the_codec_and_pass_the_protocol_checks():
    shot = requests.ShotParams(
        "arnold", {"normal": ("myN.X", "myN.Y", "myN.Z")}, None, "ACEScg", {"frames": []}, 35.0, "right"
    )
    render = requests.RenderParams(4, ("depth",), 90.0, True, -1.5)
    params = requests.render_params(shot, render)
    assert checks._param_problems(wire.OP_RENDER, params) == []
    assert requests.shot_params_of(params) == shot
    assert requests.render_params_of(params) == render


def test_decompose_params_round_trip():
    asked = requests.DecomposeParams(2, ("albedo", "normal"), "ACEScg", "plate", "left")
    params = requests.decompose_params(asked)
    assert checks._param_problems(wire.OP_DECOMPOSE, params) == []
    assert requests.decompose_params_of(params) == asked
    assert checks._param_problems(wire.OP_DECOMPOSE, {**params, "view": 2}) != []


def test_a_channel_mapping_needs_an_explicit_profile_in_one_place():
    with pytest.raises(requests.RequestError, match=r"params\.aov needs an explicit params\.profile"):
        requests.shot_params_of({"profile": "auto", "aov": {"normal": ["myN.X", "myN.Y", "myN.Z"]}})
    with pytest.raises(requests.RequestError, match="--aov needs an explicit --profile"):
        requests.check_mapping_profile("auto", True, "--aov", "--profile")
    studio = requests.shot_params_of({"aov_profile_toml": "base = 'arnold'", "aov": {"depth": ["Z"]}})
    assert studio.aov == {"depth": ("Z",)}  # a studio profile is explicit


def test_a_malformed_mapping_is_a_request_error_naming_the_field():
    with pytest.raises(requests.RequestError, match=r"params\.aov: expected \{buffer: \[channel names\]\}"):
        requests.shot_params_of({"profile": "arnold", "aov": {"normal": 3}})


def test_the_default_colour_space_is_cores():
    assert requests.DEFAULT_COLOUR_SPACE == colour.MODEL_COLOUR_SPACE
