"""Every AOV profile, round trip: EXRs written the way each renderer writes them -> canonical buffers.

The truth is the demo scene ray-cast exactly from a camera that is both turned and tilted; each
`_encode_*` below re-encodes it following one renderer's conventions (names, normal space and
packing, depth kind and units, background value, camera metadata), independently of the code
under test.
"""

import math

import numpy as np
import OpenImageIO as oiio
import pytest

from renderflow.core.io.aov_profiles import (
    PROFILES,
    PassFile,
    ProfileError,
    detect_profile,
    get_profile,
    load_profile_file,
    parse_aov_option,
)
from renderflow.core.io.cameras import ray_length_factor, to_imath
from renderflow.core.io.exr import Layer, read_exr, write_layers
from renderflow.core.io.gbuffer_io import GBufferError, read_frame, read_sequence, write_canonical_frame
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast

SIZE = 32
FOV = 40.0


@pytest.fixture(scope="module")
def truth():
    camera_to_world = orbit_camera_to_world(angle=0.7, radius=5.0, height=2.5)
    albedo, normal, depth, material = ray_cast(camera_to_world[:3, :3], camera_to_world[:3, 3], SIZE, FOV)
    mask = np.isfinite(depth).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[None, :, None]
    return {
        "camera_to_world": camera_to_world,
        "albedo": albedo,
        "normal": normal,
        "depth": depth,
        "roughness": material[..., :1],
        "metallic": (ramp * mask).astype(np.float32),  # varies, so a swapped channel shows
        "specular": material[..., 2:] * 0.8,
        "mask": mask,
        "beauty": (albedo * 3.0 + 0.05).astype(np.float32),
    }


def _world_normals(truth, world_from_ours=None):
    rotation = truth["camera_to_world"][:3, :3]
    if world_from_ours is not None:
        rotation = world_from_ours @ rotation
    return (truth["normal"] @ rotation.T).astype(np.float32)


def _world_to_camera_imath(truth):
    return to_imath(np.linalg.inv(truth["camera_to_world"]))


def _background(depth, value):
    return np.where(np.isfinite(depth), depth, value).astype(np.float32)


def _diffuse_albedo(truth):
    """What renderers' albedo AOVs hold: the diffuse lobe's colour, (1 - metallic) · base colour."""
    return ((1.0 - truth["metallic"]) * truth["albedo"]).astype(np.float32)


def _specular_colour(truth):
    """The metallic workflow's specular colour F0 = lerp(0.08 · specular, base colour, metallic)."""
    metallic = truth["metallic"]
    return ((1.0 - metallic) * 0.08 * truth["specular"] + metallic * truth["albedo"]).astype(np.float32)


ARNOLD_FAR_CLIP = 9704.0  # Arnold writes the camera's far clip as the background Z


def write_parts(path, parts, attributes):
    """A multi-part EXR as Karma writes it: one part per AOV, named after it, bare channel names."""
    specs, pixels = [], []
    for name, channels, array in parts:
        spec = oiio.ImageSpec(array.shape[1], array.shape[0], len(channels), "float")
        spec.channelnames = tuple(channels)
        spec.attribute("oiio:subimagename", name)
        for key, value in attributes.items():
            if isinstance(value, np.ndarray):  # a 4x4 camera matrix
                spec.attribute(key, oiio.TypeDesc("matrix"), tuple(float(v) for v in value.ravel()))
            else:
                spec.attribute(key, value)
        specs.append(spec)
        pixels.append(np.ascontiguousarray(array, np.float32))
    output = oiio.ImageOutput.create(str(path))
    assert output.open(str(path), specs)
    for index, (spec, array) in enumerate(zip(specs, pixels, strict=True)):
        if index:
            assert output.open(str(path), spec, "AppendSubimage")
        assert output.write_image(array)
    output.close()


def _encode_canonical(truth):
    buffers = {
        k: truth[k] for k in ("beauty", "albedo", "normal", "depth", "roughness", "metallic", "specular")
    }
    return buffers, {}


def _encode_arnold(truth):
    return [
        Layer("", np.concatenate([truth["beauty"], truth["mask"]], -1), "RGBA"),
        Layer("diffuse_albedo", _diffuse_albedo(truth), "RGB"),
        Layer("specular_albedo", _specular_colour(truth), "RGB"),
        Layer("N", _world_normals(truth), "XYZ", half=False),
        Layer("", _background(truth["depth"], ARNOLD_FAR_CLIP), ["Z"], half=False),
        Layer("", truth["roughness"], ["specular_roughness"], half=False),
        Layer("", truth["metallic"], ["metalness"], half=False),
        Layer("", truth["specular"], ["specular_weight"], half=False),
    ], {"worldToCamera": _world_to_camera_imath(truth), "arnold/version": "7.3.1.0"}


def _encode_renderman(truth):
    """RenderMan's display driver names channels in lower case: Ci.r, albedo.g, Nn.x, z."""
    left_handed = truth["normal"] * np.array([1, 1, -1], np.float32)  # RenderMan camera: +Z forward
    return [
        Layer("Ci", np.concatenate([truth["beauty"], truth["mask"]], -1), "rgba"),
        Layer("albedo", truth["albedo"], "rgb"),
        Layer("Nn", left_handed, "xyz", half=False),
        Layer("", _background(truth["depth"], 1e30), ["z"], half=False),
        Layer("", truth["roughness"], ["specularRoughness"], half=False),
        Layer("", truth["metallic"], ["metallic"], half=False),
        Layer("", truth["specular"], ["specular"], half=False),
    ], {"Software": "RenderMan 26.1"}


def _encode_vray(truth):
    return [
        Layer("", truth["beauty"], "RGB"),
        Layer("VRayDiffuseFilter", _diffuse_albedo(truth), "RGB"),
        Layer("VRayReflectionFilter", _specular_colour(truth), "RGB"),
        Layer("VRayNormals", truth["normal"], "XYZ", half=False),
        Layer("", _background(truth["depth"], 1e30), ["Z"], half=False),
        Layer("VRayMtlReflectGlossiness", 1.0 - truth["roughness"], ["R"], half=False),
        Layer("VRayMtlMetalness", truth["metallic"], ["R"], half=False),
        Layer("VRayMtlReflectAmount", truth["specular"], ["R"], half=False),
    ], {"vrayInfo/renderTime": "12.5"}


# Blender's world is Z-up: (x, y, z)_ours -> (x, -z, y)_blender, a proper rotation.
BLENDER_FROM_OURS = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])


def _encode_cycles(truth, albedo_pass="DiffCol"):
    view = "ViewLayer"
    return [
        Layer(f"{view}.Combined", np.concatenate([truth["beauty"], truth["mask"]], -1), "RGBA"),
        Layer(f"{view}.{albedo_pass}", _diffuse_albedo(truth), "RGB"),
        Layer(
            f"{view}.{'GlossCol' if albedo_pass == 'DiffCol' else 'Glossy Color'}",
            _specular_colour(truth),
            "RGB",
        ),
        Layer(f"{view}.Normal", _world_normals(truth, BLENDER_FROM_OURS), "XYZ", half=False),
        Layer(f"{view}.Depth", _background(truth["depth"], 1e10), "Z", half=False),
        Layer(f"{view}.Roughness", truth["roughness"], "X", half=False),
        Layer(f"{view}.Metallic", truth["metallic"], "X", half=False),
        Layer(f"{view}.Specular", truth["specular"], "X", half=False),
    ], {}


def _encode_karma(truth):
    """Karma's multi-part EXR: a part per AOV named after it (C, basecolor, N, Pz, ...), bare channels."""
    return [
        ("C", "RGBA", np.concatenate([truth["beauty"], truth["mask"]], -1)),
        ("basecolor", "RGB", truth["albedo"]),
        ("N", "RGB", _world_normals(truth)),
        ("Pz", ["Pz"], _background(truth["depth"], np.inf)),
        ("roughness", ["roughness"], truth["roughness"]),
        ("metallic", ["metallic"], truth["metallic"]),
        ("reflect", ["reflect"], truth["specular"]),
    ], {"worldToCamera": _world_to_camera_imath(truth), "Software": "Houdini Karma 20.5"}


# Unreal's world: left-handed, Z-up, X forward: (x, y, z)_ours -> (-z, x, y)_unreal (a reflection).
UNREAL_FROM_OURS = np.array([[0.0, 0, -1], [1, 0, 0], [0, 1, 0]])


def _unreal_rotator(truth):
    """Pitch and yaw (degrees) of the truth camera, from its forward axis in Unreal's world."""
    forward = UNREAL_FROM_OURS @ -truth["camera_to_world"][:3, 2]
    return math.degrees(math.asin(forward[2])), math.degrees(math.atan2(forward[1], forward[0]))


def _encode_unreal(truth):
    pitch, yaw = _unreal_rotator(truth)
    packed = np.where(truth["mask"] > 0, _world_normals(truth, UNREAL_FROM_OURS) * 0.5 + 0.5, 0.0)
    depth_cm = _background(truth["depth"] * 100.0, 65504.0)  # 16-bit output saturates the sky
    # MRQ's layers: the pass name + the post-process material's (FinalImageMovieRenderQueue_WorldDepth);
    # alpha is 0 everywhere unless the accumulator is told to keep it.
    mrq = "FinalImageMovieRenderQueue_"
    return [
        Layer("FinalImage", np.concatenate([truth["beauty"], np.zeros_like(truth["mask"])], -1), "RGBA"),
        Layer(f"{mrq}BaseColor", truth["albedo"], "RGB"),
        Layer(f"{mrq}WorldNormal", packed.astype(np.float32), "RGB"),
        Layer(f"{mrq}WorldDepth", np.repeat(depth_cm, 3, -1), "RGB"),
        Layer(f"{mrq}Roughness", np.repeat(truth["roughness"], 3, -1), "RGB"),
        Layer(f"{mrq}Metallic", np.repeat(truth["metallic"], 3, -1), "RGB"),
        Layer(f"{mrq}Specular", np.repeat(truth["specular"], 3, -1), "RGB"),
    ], {
        "unreal/camera/curPos/x": "100.0",
        "unreal/camera/curRot/pitch": f"{pitch:.6f}",
        "unreal/camera/curRot/yaw": f"{yaw:.6f}",
        "unreal/camera/curRot/roll": "0.0",
    }


def _encode_nuke(truth):
    with np.errstate(divide="ignore"):
        inverse_z = np.where(np.isfinite(truth["depth"]), 1.0 / truth["depth"], 0.0).astype(np.float32)
    return [
        Layer("", np.concatenate([truth["beauty"], truth["mask"]], -1), "RGBA"),
        Layer("albedo", truth["albedo"], "RGB"),
        Layer("N", _world_normals(truth), "XYZ", half=False),
        Layer("depth", inverse_z, "Z", half=False),
        Layer("roughness", truth["roughness"], "Y", half=False),
        Layer("metallic", truth["metallic"], "Y", half=False),
        Layer("specular", truth["specular"], "Y", half=False),
    ], {"worldToCamera": _world_to_camera_imath(truth), "nuke/node_hash": "5e3a9c"}


ENCODERS = {
    "canonical": _encode_canonical,
    "arnold": _encode_arnold,
    "renderman": _encode_renderman,
    "vray": _encode_vray,
    "cycles": _encode_cycles,
    "karma": _encode_karma,
    "unreal": _encode_unreal,
    "nuke": _encode_nuke,
}


def _write(tmp_path, name, truth):
    path = tmp_path / f"{name}.exr"
    encoded, attributes = ENCODERS[name](truth)
    if name == "canonical":
        write_canonical_frame(path, encoded, attributes)
    elif name == "karma":
        write_parts(path, encoded, attributes)
    else:
        write_layers(path, encoded, attributes)
    return path


def _camera_override(name, truth):
    """Blender writes no camera matrix: the user gives camera.json, here its world->camera rotation."""
    if name != "cycles":
        return None
    return (BLENDER_FROM_OURS @ truth["camera_to_world"][:3, :3]).T


def test_every_profile_has_an_encoder_here():
    assert set(ENCODERS) == set(PROFILES)


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("profile_choice", ["auto", "explicit"])
def test_profile_round_trip_recovers_the_canonical_buffers(tmp_path, truth, name, profile_choice):
    path = _write(tmp_path, name, truth)
    profile = "auto" if profile_choice == "auto" else name
    frame = read_frame(path, profile, world_to_camera=_camera_override(name, truth))
    assert frame.profile.name == name
    mask = truth["mask"] > 0
    np.testing.assert_array_equal(frame.buffers["mask"], truth["mask"])
    assert np.isinf(frame.buffers["depth"][~mask]).all()
    np.testing.assert_allclose(frame.buffers["depth"][mask], truth["depth"][mask], rtol=1e-5)
    packed = name == "unreal"  # 16-bit-style packed normals lose a little precision
    np.testing.assert_allclose(frame.buffers["normal"], truth["normal"], atol=2e-3 if packed else 1e-5)
    np.testing.assert_allclose(frame.buffers["albedo"], truth["albedo"], atol=2e-3)
    np.testing.assert_allclose(frame.buffers["beauty"], truth["beauty"], rtol=2e-3)
    for material in ("roughness", "metallic", "specular"):
        np.testing.assert_allclose(frame.buffers[material], truth[material], atol=1e-3, err_msg=material)


def test_new_blender_pass_names_read_like_the_old_ones(tmp_path, truth):
    path = tmp_path / "blender5.exr"
    write_layers(path, *_encode_cycles(truth, albedo_pass="Diffuse Color"))
    frame = read_frame(path, "auto", world_to_camera=_camera_override("cycles", truth))
    assert frame.sources["albedo"].startswith(
        "ViewLayer.Diffuse Color.R,ViewLayer.Diffuse Color.G,ViewLayer.Diffuse Color.B (diffuse albedo)"
    )
    np.testing.assert_allclose(frame.buffers["albedo"], truth["albedo"], atol=2e-3)


def test_glossiness_becomes_roughness(tmp_path, truth):
    frame = read_frame(_write(tmp_path, "vray", truth), "vray")
    assert frame.sources["roughness"] == "1 - VRayMtlReflectGlossiness.R"


def test_world_normals_without_a_camera_are_an_error_that_says_what_to_give(tmp_path, truth):
    path = _write(tmp_path, "cycles", truth)
    with pytest.raises(GBufferError, match=r"cycles\.exr.*world-space normals.*--camera"):
        read_frame(path, "cycles")


def test_detection_explains_itself_and_an_explicit_profile_overrides_it(tmp_path, truth):
    path = _write(tmp_path, "arnold", truth)
    detection = detect_profile(read_exr(path))
    assert detection.profile.name == "arnold" and "arnold/*" in detection.reason
    # Read as Nuke on purpose: Z is not a Nuke layer, so it is a clear error, not a silent 1/Z.
    with pytest.raises(
        GBufferError, match=r"no layer for albedo, depth in profile 'nuke'.*diffuse_albedo \[R G B\]"
    ):
        read_frame(path, get_profile("nuke"))


# -- conventions that were read silently wrong (issue #18) --------------------------------------------
def _write_encoded(path, layers, attributes):
    write_layers(path, layers, attributes)
    return path


def test_arnold_far_clip_background_needs_alpha(tmp_path, truth):
    layers, attributes = _encode_arnold(truth)
    without_alpha = [Layer("", truth["beauty"], "RGB"), *layers[1:]]
    path = _write_encoded(tmp_path / "arnold_rgb.exr", without_alpha, attributes)
    with pytest.raises(GBufferError, match=r"arnold_rgb\.exr: profile 'arnold' needs the alpha.*far clip"):
        read_frame(path, "arnold")
    # with A, the far clip is background even though it is a finite, plausible depth
    frame = read_frame(_write(tmp_path, "arnold", truth), "arnold")
    assert np.isinf(frame.buffers["depth"][truth["mask"] == 0]).all()


def test_diffuse_albedo_on_metals_needs_the_specular_colour(tmp_path, truth):
    layers, attributes = _encode_arnold(truth)
    no_specular = [layer for layer in layers if layer.name != "specular_albedo"]
    path = _write_encoded(tmp_path / "metal.exr", no_specular, attributes)
    with pytest.raises(
        GBufferError, match=r"metal\.exr: layer diffuse_albedo.*metal pixels.*specular_colour"
    ):
        read_frame(path, "arnold")
    # read as base colour, the metals would be black: the error the issue measured (0.27-0.31)
    metal = (truth["metallic"][..., 0] > 0.9) & (truth["mask"][..., 0] > 0)
    assert np.abs(_diffuse_albedo(truth) - truth["albedo"])[metal].mean() > 0.2


def test_diffuse_albedo_without_metals_is_divided_back(tmp_path, truth):
    dielectric = dict(truth, metallic=truth["metallic"] * 0.5)  # nothing above 0.5: invertible
    layers, attributes = _encode_arnold(dielectric)
    no_specular = [layer for layer in layers if layer.name != "specular_albedo"]
    frame = read_frame(_write_encoded(tmp_path / "half.exr", no_specular, attributes), "arnold")
    np.testing.assert_allclose(frame.buffers["albedo"], truth["albedo"], atol=4e-3)


STOCK_MATERIAL_LAYERS = {
    "arnold": ("specular_roughness", "metalness", "specular_weight"),
    "vray": ("VRayMtlReflectGlossiness.R", "VRayMtlMetalness.R", "VRayMtlReflectAmount.R"),
    "cycles": ("ViewLayer.Roughness.X", "ViewLayer.Metallic.X", "ViewLayer.Specular.X"),
}


def _stock(name, truth):
    """The renderer's stock multilayer: diffuse and specular colours, no material AOVs (specular 0.5)."""
    stock = dict(truth, specular=np.full_like(truth["specular"], 0.5))
    layers, attributes = ENCODERS[name](stock)
    dropped = STOCK_MATERIAL_LAYERS[name]
    kept = [
        layer
        for layer in layers
        if not any(f"{layer.name}.{c}".lstrip(".") in dropped for c in layer.channels)
    ]
    return stock, kept, attributes


@pytest.mark.parametrize("name", sorted(STOCK_MATERIAL_LAYERS))
def test_stock_layers_without_metallic_recover_metals(tmp_path, truth, name):
    _, layers, attributes = _stock(name, truth)
    path = _write_encoded(tmp_path / f"{name}_stock.exr", layers, attributes)
    frame = read_frame(path, name, world_to_camera=_camera_override(name, truth))
    assert "no metallic layer" in frame.sources["metallic"]
    mask = truth["mask"][..., 0] > 0
    metals = mask & (truth["metallic"][..., 0] >= 0.1)
    np.testing.assert_allclose(frame.buffers["metallic"][metals], truth["metallic"][metals], atol=2e-3)
    assert (frame.buffers["metallic"][mask & (truth["metallic"][..., 0] < 0.09)] == 0).all()
    # the base colour of metals is back (read as a diffuse albedo they would be black); pixels snapped
    # to dielectric keep their diffuse albedo, (1 - m) · base
    np.testing.assert_allclose(frame.buffers["albedo"][metals], truth["albedo"][metals], atol=5e-3)


@pytest.mark.parametrize("name", sorted(STOCK_MATERIAL_LAYERS))
def test_stock_diffuse_albedo_alone_is_refused_where_metals_may_be(tmp_path, truth, name):
    _, layers, attributes = _stock(name, truth)
    specular = ("specular_albedo", "VRayReflectionFilter", "ViewLayer.GlossCol")
    layers = [layer for layer in layers if layer.name not in specular]
    path = _write_encoded(tmp_path / f"{name}_diffuse_only.exr", layers, attributes)
    with pytest.raises(
        GBufferError, match=rf"{name}_diffuse_only\.exr: layer .* black on \d+ geometry pixels"
    ):
        read_frame(path, name, world_to_camera=_camera_override(name, truth))
    # without metals (nothing black) the same layout reads, the diffuse albedo as the base colour
    dielectric = dict(truth, metallic=np.zeros_like(truth["metallic"]))
    _, layers, attributes = _stock(name, dielectric)
    layers = [layer for layer in layers if layer.name not in specular]
    frame = read_frame(
        _write_encoded(tmp_path / f"{name}_plastic.exr", layers, attributes),
        name,
        world_to_camera=_camera_override(name, truth),
    )
    np.testing.assert_allclose(frame.buffers["albedo"], truth["albedo"], atol=2e-3)


def test_vray_metalness_from_an_extra_tex_element(tmp_path, truth):
    layers, attributes = _encode_vray(truth)
    layers = [
        Layer("VRayExtraTex_metalness", truth["metallic"], ["R"], half=False)
        if layer.name == "VRayMtlMetalness"
        else layer
        for layer in layers
    ]
    frame = read_frame(_write_encoded(tmp_path / "extratex.exr", layers, attributes), "vray")
    assert frame.sources["metallic"] == "VRayExtraTex_metalness.R"
    np.testing.assert_allclose(frame.buffers["metallic"], truth["metallic"], atol=1e-3)
    np.testing.assert_allclose(frame.buffers["albedo"], truth["albedo"], atol=2e-3)


def test_normalised_vray_zdepth_is_refused_then_read_with_its_range(tmp_path, truth):
    near, far = 2.0, 12.0  # V-Ray's ZDepth element: black at near, white at far, clamped to 0-1
    normalised = np.clip((truth["depth"] - near) / (far - near), 0.0, 1.0)
    normalised = np.where(np.isfinite(truth["depth"]), normalised, 1.0).astype(np.float32)
    layers, attributes = _encode_vray(truth)
    layers = [layer for layer in layers if layer.channels != ["Z"]] + [
        Layer("VRayZDepth", normalised, "R", half=False),
        Layer("", truth["mask"], "A"),
    ]
    path = _write_encoded(tmp_path / "vray.exr", layers, attributes)
    with pytest.raises(GBufferError, match=r"vray\.exr: layer VRayZDepth\.R holds depth normalised to 0-1"):
        read_frame(path, "vray")
    toml = tmp_path / "vray_zdepth.toml"
    toml.write_text(f'base = "vray"\ndepth_kind = "normalised"\ndepth_black = {near}\ndepth_white = {far}\n')
    frame = read_frame(path, load_profile_file(toml))
    mask = truth["mask"] > 0
    np.testing.assert_allclose(frame.buffers["depth"][mask], truth["depth"][mask], rtol=1e-4)


def test_signed_normals_under_a_packed_profile_are_refused(tmp_path, truth):
    layers, attributes = _encode_unreal(truth)
    signed = _world_normals(truth, UNREAL_FROM_OURS)
    layers = [
        Layer(layer.name, signed, "RGB") if layer.name.endswith("WorldNormal") else layer for layer in layers
    ]
    path = _write_encoded(tmp_path / "unreal.exr", layers, attributes)
    with pytest.raises(GBufferError, match=r"unreal\.exr: layer .*WorldNormal.*negative values.*signed"):
        read_frame(path, "unreal")


def test_display_window_is_the_frame(tmp_path, truth):
    """A data window inside the display window (a renderer's crop): read at the display size."""
    encoded, attributes = _encode_nuke(truth)
    path = tmp_path / "crop.exr"
    full = 48
    names = [name for layer in encoded for name in layer.channel_names()]
    pixels = np.concatenate([layer.pixels for layer in encoded], axis=-1)
    specs = oiio.ImageSpec(SIZE, SIZE, len(names), "float")
    specs.channelnames = tuple(names)
    specs.x, specs.y, specs.full_x, specs.full_y, specs.full_width, specs.full_height = (
        10,
        6,
        0,
        0,
        full,
        full,
    )
    specs.attribute("worldToCamera", oiio.TypeDesc("matrix"), tuple(attributes["worldToCamera"].ravel()))
    output = oiio.ImageOutput.create(str(path))
    assert output.open(str(path), specs) and output.write_image(np.ascontiguousarray(pixels))
    output.close()
    frame = read_frame(path, "nuke")
    assert frame.size == (full, full)
    depth = frame.buffers["depth"]
    mask = truth["mask"] > 0
    np.testing.assert_allclose(depth[6 : 6 + SIZE, 10 : 10 + SIZE][mask], truth["depth"][mask], rtol=1e-5)
    assert np.isinf(depth[:6]).all() and np.isinf(depth[:, :10]).all()  # outside the data: background


def test_blender_passes_in_their_own_files(tmp_path, truth):
    """Blender's File Output node writes one pass per file: Image, Normal, Depth, DiffCol, GlossCol."""
    layers, _ = _encode_cycles(truth)
    names = {
        "Combined": "Image",
        "Normal": "Normal",
        "Depth": "Depth",
        "DiffCol": "DiffCol",
        "GlossCol": "GlossCol",
    }
    for layer in layers:
        pass_name = layer.name.split(".", 1)[1]
        if pass_name in names:
            suffixes = "RGBA" if pass_name == "Combined" else ("Z",) if pass_name == "Depth" else "RGB"
            write_layers(tmp_path / f"{names[pass_name]}.1001.exr", [Layer("", layer.pixels, suffixes)])
    passes = {
        "normal": PassFile(str(tmp_path / "Normal.####.exr")),
        "depth": PassFile(str(tmp_path / "Depth.####.exr")),
        "diffuse_albedo": PassFile(str(tmp_path / "DiffCol.####.exr")),
        "specular_colour": PassFile(str(tmp_path / "GlossCol.####.exr")),
    }
    sequence = read_sequence(
        str(tmp_path / "Image.####.exr"),
        profile="cycles",
        world_to_camera=[_camera_override("cycles", truth)],
        pass_files=passes,
    )
    mask = truth["mask"] > 0
    np.testing.assert_allclose(sequence.gbuffers.depth[0][mask], truth["depth"][mask], rtol=1e-5)
    np.testing.assert_allclose(sequence.gbuffers.normal[0], truth["normal"], atol=1e-3)
    # no Metallic pass given: the default 0 means the diffuse colour is the base colour
    dielectric = truth["metallic"][..., 0] == 0
    np.testing.assert_allclose(
        sequence.gbuffers.albedo[0][dielectric], truth["albedo"][dielectric], atol=2e-3
    )
    assert parse_aov_option("normal=passes/Normal.####.exr:X,Y,Z") == (
        "normal",
        PassFile("passes/Normal.####.exr", ("X", "Y", "Z")),
    )


def test_a_plate_is_not_mistaken_for_a_tie_between_profiles(tmp_path):
    path = tmp_path / "plate.exr"
    write_layers(path, [Layer("", np.ones((4, 4, 5), np.float32), "RGBAZ")])
    with pytest.raises(
        ProfileError, match=r"plate\.exr: the channels fit .* none of them finds albedo, normal"
    ):
        detect_profile(read_exr(path))


def test_ray_distance_depth_labelled_planar_is_caught_by_the_normals(tmp_path, truth):
    """Blender before 2.80 wrote ray distance in the Depth pass; read as planar it was 13 % off."""
    layers, attributes = _encode_cycles(truth)
    ray = truth["depth"] * ray_length_factor(SIZE, SIZE, FOV)
    layers = [
        Layer(layer.name, _background(ray, 1e10), "Z", half=False) if layer.name.endswith("Depth") else layer
        for layer in layers
    ]
    path = _write_encoded(tmp_path / "blender279.exr", layers, attributes)
    camera = _camera_override("cycles", truth)
    with pytest.raises(
        GBufferError, match=r"blender279\.exr: layer ViewLayer\.Depth\.Z looks like ray distance"
    ):
        read_frame(path, "cycles", world_to_camera=camera, vertical_fov_degrees=FOV)
    toml = tmp_path / "blender279.toml"
    toml.write_text('base = "cycles"\ndepth_kind = "ray"\n')
    frame = read_frame(path, load_profile_file(toml), world_to_camera=camera, vertical_fov_degrees=FOV)
    mask = truth["mask"] > 0
    np.testing.assert_allclose(frame.buffers["depth"][mask], truth["depth"][mask], rtol=1e-5)
    # the right reading of every profile passes the same check
    for name in ENCODERS:
        read_frame(
            _write(tmp_path, name, truth),
            name,
            world_to_camera=_camera_override(name, truth),
            vertical_fov_degrees=FOV,
        )
