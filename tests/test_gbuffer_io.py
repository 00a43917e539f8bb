"""Reading G-buffer sequences: validation errors a compositor can act on, user mappings, colour."""

import numpy as np
import pytest

from renderflow.core.io import colour
from renderflow.core.io.aov_profiles import (
    ProfileError,
    get_profile,
    load_profile_file,
    parse_aov_option,
    with_mapping,
)
from renderflow.core.io.exr import Layer, read_exr, write_layers
from renderflow.core.io.gbuffer_io import GBufferError, read_frame, read_sequence, write_canonical_frame
from renderflow.core.io.sequences import FrameRangeError, frame_path, parse_frames, sequence_files


def _buffers(height=8, width=8, seed=0):
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((height, width, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    depth = rng.uniform(1.0, 9.0, (height, width, 1)).astype(np.float32)
    depth[0, 0] = np.inf
    normal[0, 0] = 0.0
    return {
        "albedo": rng.uniform(0.05, 0.9, (height, width, 3)).astype(np.float32),
        "normal": normal,
        "depth": depth,
        "roughness": rng.uniform(0, 1, (height, width, 1)).astype(np.float32),
        "metallic": rng.uniform(0, 1, (height, width, 1)).astype(np.float32),
        "specular": rng.uniform(0, 1, (height, width, 1)).astype(np.float32),
    }


def _sequence(folder, frames=(1001, 1002, 1003), changes=None):
    for index, frame in enumerate(frames):
        buffers = _buffers(seed=index)
        buffers.update((changes or {}).get(frame, {}))
        write_canonical_frame(folder / f"shot.{frame:04d}.exr", buffers)
    return str(folder / "shot.####.exr")


# --- sequences and frame ranges -----------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["shot.####.exr", "shot.%04d.exr", "shot.$F4.exr", "shot.@@@@.exr"])
def test_every_padding_syntax_names_the_same_files(tmp_path, pattern):
    _sequence(tmp_path)
    files = sequence_files(str(tmp_path / pattern), "1001-1003x2")
    assert [(frame, path.name) for frame, path in files] == [(1001, "shot.1001.exr"), (1003, "shot.1003.exr")]
    assert frame_path(str(tmp_path / pattern), 7).name == "shot.0007.exr"


def test_frames_on_disk_are_found_without_a_range(tmp_path):
    pattern = _sequence(tmp_path, frames=(1001, 1002, 1005))
    assert [frame for frame, _ in sequence_files(pattern)] == [1001, 1002, 1005]


@pytest.mark.parametrize(
    ("frames", "message"),
    [("", "is empty"), ("1001-", "not valid"), ("ten", "not valid"), ("1010-1001x0", "not valid")],
)
def test_bad_frame_ranges_say_what_to_type(frames, message):
    with pytest.raises(FrameRangeError, match=message):
        parse_frames(frames)


def test_missing_frames_are_listed(tmp_path):
    pattern = _sequence(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"frames 1004-1006 are missing \(3 of 6\)"):
        sequence_files(pattern, "1001-1006")
    with pytest.raises(FileNotFoundError, match="no frames"):
        sequence_files(str(tmp_path / "other.####.exr"))


def test_read_sequence_stacks_frames_in_the_model_layout(tmp_path):
    pattern = _sequence(tmp_path)
    sequence = read_sequence(pattern, "1001-1003", "auto")
    assert sequence.frames == [1001, 1002, 1003] and sequence.profile.name == "canonical"
    assert sequence.gbuffers.validate() == (3, 8, 8)
    expected = _buffers(seed=1)
    np.testing.assert_allclose(sequence.gbuffers.albedo[1][1:, 1:], expected["albedo"][1:, 1:], atol=2e-3)
    np.testing.assert_array_equal(sequence.gbuffers.material[2, ..., 1:2], _buffers(seed=2)["metallic"])
    assert sequence.mask[0, 0, 0, 0] == 0 and sequence.mask[0, 1, 1, 0] == 1
    assert sequence.beauty is None


# --- validation ---------------------------------------------------------------------------------


def test_frames_of_different_sizes_are_an_error_naming_both(tmp_path):
    pattern = _sequence(tmp_path, frames=(1001, 1002))
    write_canonical_frame(tmp_path / "shot.1003.exr", _buffers(height=6))
    with pytest.raises(GBufferError, match=r"shot\.1003\.exr: frame is 8x6, but .*shot\.1001\.exr is 8x8"):
        read_sequence(pattern, "1001-1003")


def test_nan_in_a_colour_buffer_names_the_layer(tmp_path):
    albedo = _buffers()["albedo"]
    albedo[3, 4, 1] = np.nan
    pattern = _sequence(tmp_path, changes={1002: {"albedo": albedo}})
    with pytest.raises(
        GBufferError, match=r"shot\.1002\.exr: layer albedo\.R,albedo\.G,albedo\.B .* 1 pixels"
    ):
        read_sequence(pattern, "1001-1003")


def test_roughness_outside_zero_one_is_an_error(tmp_path):
    roughness = _buffers()["roughness"] * 3.0
    pattern = _sequence(tmp_path, changes={1001: {"roughness": roughness}})
    with pytest.raises(
        GBufferError, match=r"layer roughness\.Y \(roughness\) ranges over .*expected values in \[0, 1\]"
    ):
        read_sequence(pattern)


def test_missing_required_layer_lists_what_was_tried_and_what_exists(tmp_path):
    path = tmp_path / "partial.exr"
    buffers = _buffers()
    del buffers["normal"]
    write_canonical_frame(path, buffers)
    with pytest.raises(
        GBufferError, match=r"partial\.exr: no layer for normal .*N\.X,N\.Y,N\.Z.*albedo \["
    ) as error:
        read_frame(path, "canonical")
    assert "--aov" in str(error.value)


def test_missing_material_layers_take_defaults_and_say_so(tmp_path, caplog):
    buffers = _buffers()
    for name in ("roughness", "metallic", "specular"):
        del buffers[name]
    for frame in (1, 2):
        write_canonical_frame(tmp_path / f"nomat.{frame}.exr", buffers)
    frame = read_frame(tmp_path / "nomat.1.exr", "canonical")
    assert frame.sources["roughness"] == "default 0.5 (no layer)"
    assert float(frame.buffers["metallic"].max()) == 0.0
    sequence = read_sequence(str(tmp_path / "nomat.#.exr"), profile="canonical")
    np.testing.assert_array_equal(sequence.gbuffers.material[..., 2], 0.5)
    assert caplog.text.count("no roughness layer") == 1  # once per sequence, not per frame


def test_nothing_recognisable_asks_for_a_profile(tmp_path):
    path = tmp_path / "odd.exr"
    write_layers(path, [Layer("foo", np.zeros((2, 2, 3), np.float32), "RGB")])
    with pytest.raises(ProfileError, match=r"odd\.exr: no AOV profile recognises.*--profile"):
        read_frame(path)


def test_a_tie_between_profiles_is_an_error_not_a_guess(tmp_path):
    # albedo, N and depth.Z only: several profiles read these names, and nuke's depth.Z is 1/Z.
    path = tmp_path / "tie.exr"
    buffers = _buffers()
    write_layers(
        path,
        [
            Layer("albedo", buffers["albedo"], "RGB"),
            Layer("N", buffers["normal"], "XYZ", half=False),
            Layer("depth", buffers["depth"], "Z", half=False),
        ],
    )
    with pytest.raises(
        ProfileError, match=r"fit the profiles 'canonical', 'arnold', 'karma', 'nuke' equally.*--profile"
    ):
        read_frame(path)


# --- user mappings ------------------------------------------------------------------------------


def _studio_file(path, buffers):
    write_layers(
        path,
        [
            Layer("diff", buffers["albedo"], "RGB"),
            Layer("myN", buffers["normal"] * 0.5 + 0.5, "XYZ", half=False),  # packed [0, 1]
            Layer("zed", buffers["depth"], "Z", half=False),
        ],
    )


def test_aov_option_maps_studio_layers(tmp_path):
    buffers = _buffers()
    _studio_file(tmp_path / "studio.exr", buffers)
    mapping = dict(parse_aov_option(text) for text in ("albedo=diff.R,diff.G,diff.B", "depth=zed.Z"))
    mapping["normal"] = parse_aov_option("normal = myN.X, myN.Y, myN.Z")[1]
    # read as signed, the packed normals are not unit vectors: an error that says how to read them
    with pytest.raises(GBufferError, match=r"studio\.exr: layer myN\.X,myN\.Y,myN\.Z \(normal\).*packed"):
        read_frame(tmp_path / "studio.exr", with_mapping(get_profile("canonical"), mapping))


def test_toml_profile_file_sets_names_and_conventions(tmp_path):
    buffers = _buffers()
    _studio_file(tmp_path / "studio.exr", buffers)
    toml = tmp_path / "studio.toml"
    toml.write_text(
        'base = "canonical"\nnormal_encoding = "packed"\n'
        '[channels]\nalbedo = ["diff.R", "diff.G", "diff.B"]\nnormal = ["myN.X", "myN.Y", "myN.Z"]\n'
        'depth = ["zed.Z"]\n'
    )
    profile = load_profile_file(toml)
    assert profile.name == "canonical+studio"
    frame = read_frame(tmp_path / "studio.exr", profile)
    np.testing.assert_allclose(frame.buffers["normal"], buffers["normal"], atol=1e-5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("normal=myN.X,myN.Y", r"normal needs 3 channel\(s\), got 2"),
        ("colour=a.R,a.G,a.B", "unknown buffer 'colour'"),
        ("normal", "expected BUFFER=CHANNEL"),
    ],
)
def test_bad_aov_options_say_what_was_expected(text, message):
    with pytest.raises(ProfileError, match=message):
        parse_aov_option(text)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('base = "maya"', "unknown AOV profile 'maya'"),
        ('depth_kind = "log"', r"depth_kind = 'log'; expected one of"),
        ("gamma = 2.2", "unknown key 'gamma'"),
        ('[channels]\ndepth = ["a.Z", "b.Z"]', r"depth needs 1 channel\(s\), got 2"),
        ("base = ", "cannot read the AOV profile"),
    ],
)
def test_bad_profile_files_name_the_file_and_the_key(tmp_path, content, message):
    path = tmp_path / "studio.toml"
    path.write_text(content)
    with pytest.raises(ProfileError, match=message):
        load_profile_file(path)


# --- colour -------------------------------------------------------------------------------------


def test_acescg_to_linear_rec709_matches_the_published_matrix():
    # First column of the AP1 -> linear Rec.709 (Bradford D60 -> D65) matrix.
    red = colour.convert(np.array([[1.0, 0.0, 0.0]]), "ACEScg", "lin_rec709")
    np.testing.assert_allclose(red[0], [1.70505, -0.13026, -0.02400], atol=2e-5)
    white = colour.convert(np.array([[0.18, 0.18, 0.18]]), "ACEScg", "lin_rec709")
    np.testing.assert_allclose(white[0], [0.18, 0.18, 0.18], atol=1e-5)
    pixels = np.random.default_rng(0).random((4, 4, 3)).astype(np.float32)
    back = colour.from_model(colour.to_model(pixels, "ACEScg"), "ACEScg")
    np.testing.assert_allclose(back, pixels, atol=1e-5)


def test_unknown_colour_space_lists_the_scene_linear_ones():
    with pytest.raises(colour.ColourSpaceError, match=r"unknown colour space 'rec709'.*ACEScg"):
        colour.convert(np.zeros((1, 3)), "rec709", "lin_rec709")


def test_colour_conversion_touches_colour_buffers_only(tmp_path):
    path = tmp_path / "frame.exr"
    buffers = _buffers()
    buffers["beauty"] = np.full((8, 8, 3), [2.0, 0.5, 0.1], np.float32)
    write_canonical_frame(path, buffers)
    linear = read_frame(path, "canonical")
    aces = read_frame(path, "canonical", colour_space="ACEScg")
    for data in ("normal", "depth", "roughness", "metallic", "specular", "mask"):
        np.testing.assert_array_equal(aces.buffers[data], linear.buffers[data], err_msg=data)
    expected_beauty = colour.convert(linear.buffers["beauty"], "ACEScg", "lin_rec709")
    np.testing.assert_allclose(aces.buffers["beauty"], expected_beauty, rtol=1e-5)
    assert not np.allclose(aces.buffers["albedo"], linear.buffers["albedo"])


def test_canonical_writer_uses_float_for_beauty_and_data_and_half_for_albedo(tmp_path):
    path = tmp_path / "frame.exr"
    buffers = _buffers()
    buffers["beauty"] = (
        np.random.default_rng(1).uniform(0, 2e5, (8, 8, 3)).astype(np.float32)
    )  # suns: > 65504
    write_canonical_frame(path, buffers)
    image = read_exr(path)
    np.testing.assert_array_equal(image.select(["R", "G", "B"]), buffers["beauty"])  # float: exact, finite
    np.testing.assert_array_equal(image.select(["depth.Z"]), buffers["depth"])  # float: exact, inf kept
    np.testing.assert_array_equal(image.select(["N.X", "N.Y", "N.Z"]), buffers["normal"])
    assert not np.array_equal(image.select(["albedo.R", "albedo.G", "albedo.B"]), buffers["albedo"])  # half
