"""`rf-render inspect` over every kind of file the openexr-images corpus holds, made here: scanline,
tiled, mip-mapped, multi-part, multi-view, deep, display windows, luminance/chroma, damaged and
truncated files, non-UTF-8 attribute names. Each ends in a correct read or a one-line error."""

import re

import numpy as np
import OpenImageIO as oiio
import pytest
from click.testing import CliRunner

from renderflow.core.io.cameras import to_imath
from renderflow.core.io.gbuffer_io import write_canonical_frame
from renderflow.core.shot.demo_scene import orbit_camera_to_world, ray_cast
from renderflow.daemon.rf_render.cli import main as rf_render

SIZE = 16


def _write(path, specs, pixels, deep=False):
    output = oiio.ImageOutput.create(str(path))
    assert output.open(str(path), specs) if len(specs) > 1 else output.open(str(path), specs[0])
    for index, (spec, array) in enumerate(zip(specs, pixels, strict=True)):
        if index:
            assert output.open(str(path), spec, "AppendSubimage")
        if deep:
            data = oiio.DeepData()
            data.init(spec)
            for pixel in range(spec.width * spec.height):
                data.set_samples(pixel, 1)
                for channel in range(spec.nchannels):
                    data.set_deep_value(pixel, channel, 0, 1.0)
            assert output.write_deep_image(data)
        else:
            assert output.write_image(np.ascontiguousarray(array, np.float32))
    output.close()
    return path


def _spec(channels, **settings):
    spec = oiio.ImageSpec(SIZE, SIZE, len(channels), "half")
    spec.channelnames = tuple(channels)
    for key, value in settings.items():
        if key in (
            "x",
            "y",
            "full_x",
            "full_y",
            "full_width",
            "full_height",
            "tile_width",
            "tile_height",
            "deep",
        ):
            setattr(spec, key, value)
        else:
            spec.attribute(key, value)
    return spec


def _rgba():
    return np.random.default_rng(0).random((SIZE, SIZE, 4), dtype=np.float32)


def _gbuffers(path):
    camera = orbit_camera_to_world(angle=0.3)
    albedo, normal, depth, _ = ray_cast(camera[:3, :3], camera[:3, 3], SIZE, 40.0)
    buffers = {
        "albedo": albedo,
        "normal": normal,
        "depth": depth,
        "alpha": np.isfinite(depth).astype(np.float32),
    }
    write_canonical_frame(path, buffers, {"worldToCamera": to_imath(np.linalg.inv(camera))})
    return path


def _corpus(folder):
    files = {}
    files["scanline"] = _write(folder / "scanline.exr", [_spec("RGBA")], [_rgba()])
    files["tiled"] = _write(folder / "tiled.exr", [_spec("RGBA", tile_width=8, tile_height=8)], [_rgba()])
    files["mipmap"] = _write(
        folder / "mipmap.exr",
        [_spec("RGBA", tile_width=8, tile_height=8, **{"openexr:levelmode": 1})],
        [_rgba()],
    )
    files["multipart"] = _write(
        folder / "multipart.exr",
        [_spec("RGBA", **{"oiio:subimagename": "rgba"}), _spec("RGB", **{"oiio:subimagename": "diffuse"})],
        [_rgba(), _rgba()[..., :3]],
    )
    files["multiview"] = _write(
        folder / "multiview.exr",
        [
            _spec("RGBA", **{"oiio:subimagename": "rgba.left", "view": "left"}),
            _spec("RGBA", **{"oiio:subimagename": "rgba.right", "view": "right"}),
        ],
        [_rgba(), _rgba()],
    )
    files["singlepart_views"] = _write(
        folder / "views.exr",
        [_spec(["R", "G", "B", "right.R", "right.G", "right.B"], multiView="left right")],
        [np.concatenate([_rgba()[..., :3]] * 2, -1)],
    )
    files["luminance_chroma"] = _write(folder / "yc.exr", [_spec(["Y", "RY", "BY"])], [_rgba()[..., :3]])
    files["display_window"] = _write(
        folder / "window.exr",
        [_spec("RGBA", x=-4, y=3, full_x=0, full_y=0, full_width=24, full_height=20)],
        [_rgba()],
    )
    files["deep"] = _write(folder / "deep.exr", [_spec(["A", "Z"], deep=True)], [None], deep=True)
    files["gbuffers"] = _gbuffers(folder / "gbuffers.exr")
    data = files["scanline"].read_bytes()
    (folder / "truncated.exr").write_bytes(data[: len(data) // 2])
    (folder / "header_only.exr").write_bytes(data[:40])
    damaged = bytearray(data)
    damaged[8:40] = b"\xff" * 32  # inside the header's attribute list
    (folder / "damaged.exr").write_bytes(bytes(damaged))
    (folder / "empty.exr").write_bytes(b"")
    (folder / "not_exr.exr").write_text("this is a text file")
    (folder / "bad_attribute.exr").write_bytes(
        _write(folder / "named.exr", [_spec("RGBA", owner="x")], [_rgba()])
        .read_bytes()
        .replace(b"owner", b"\xf0wner")
    )
    # a cube-face env map: OpenImageIO cannot write one, so the header's envmap attribute is set by hand
    _write(folder / "cube_source.exr", [_spec("RGB", cubeplaceholder="c")], [_rgba()[..., :3]])
    placeholder = b"cubeplaceholder\0string\0" + (1).to_bytes(4, "little") + b"c"
    envmap = b"envmap\0envmap\0" + (1).to_bytes(4, "little") + b"\x01"
    (folder / "cube.exr").write_bytes((folder / "cube_source.exr").read_bytes().replace(placeholder, envmap))
    for name in ("truncated", "header_only", "damaged", "empty", "not_exr", "bad_attribute", "cube"):
        files[name] = folder / f"{name}.exr"
    return files


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _corpus(tmp_path_factory.mktemp("corpus"))


CASES = [
    "scanline",
    "tiled",
    "mipmap",
    "multipart",
    "multiview",
    "singlepart_views",
    "luminance_chroma",
    "display_window",
    "deep",
    "gbuffers",
    "truncated",
    "header_only",
    "damaged",
    "empty",
    "not_exr",
    "bad_attribute",
    "cube",
]


@pytest.mark.parametrize("name", CASES)
def test_inspect_reads_or_says_why_in_one_line(corpus, name):
    profile = ["--profile", "canonical"] if name == "gbuffers" else []
    result = CliRunner().invoke(rf_render, ["inspect", str(corpus[name]), *profile])
    assert result.exc_info[0] is SystemExit, result.exc_info  # never a traceback
    if name == "gbuffers":
        assert result.exit_code == 0, result.output
        assert "profile: canonical" in result.output and "depth" in result.output
        return
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    error = lines[-1]
    assert error.startswith("Error: ") and corpus[name].name in error
    if name in (
        "scanline",
        "tiled",
        "mipmap",
        "multipart",
        "display_window",
    ):
        assert lines[0].startswith("file:") and "profile" in error  # read, then refused as G-buffers
    if name == "deep":
        assert "deep data" in error and "flatten" in error
    if name in ("multiview", "singlepart_views"):
        assert "multi-view (stereo) file with the views left, right; choose one with --view" in error
    if name == "cube":
        assert "cube-face environment map" in error


@pytest.mark.parametrize("name", ["multiview", "singlepart_views"])
def test_stereo_files_read_the_chosen_view(corpus, name):
    from renderflow.core.io.exr import ImageFileError, read_exr

    left, right = (read_exr(corpus[name], view) for view in ("left", "right"))
    assert left.channels == right.channels and left.channels[:3] == ["R", "G", "B"]
    np.testing.assert_array_equal(left.pixels, right.pixels)  # both views were written with one image
    if name == "multiview":  # each eye's part has its own header
        assert left.attributes["view"] == "left" and right.attributes["view"] == "right"
    with pytest.raises(ImageFileError, match=r"no view 'centre'; the file holds the views left, right"):
        read_exr(corpus[name], "centre")
    mono = read_exr(corpus["scanline"], "right")  # a file without views serves every view
    assert mono.channels == ["R", "G", "B", "A"]


def test_stereo_g_buffers_render_the_chosen_eye(tmp_path):
    """G-buffers of two eyes in one multi-part file (as Nuke writes stereo): --view picks the eye."""
    camera = orbit_camera_to_world(angle=0.3)
    albedo, normal, depth, _ = ray_cast(camera[:3, :3], camera[:3, 3], SIZE, 40.0)
    parts, arrays = [], []
    for view, tint in (("left", 1.0), ("right", 0.5)):
        for layer, channels, array in (
            ("rgba", "RGBA", np.concatenate([albedo, np.isfinite(depth)], -1)),
            ("albedo", "RGB", albedo * tint),
            ("N", "XYZ", normal),
            ("depth", "Z", depth),
        ):
            spec = _spec(channels, **{"oiio:subimagename": f"{layer}.{view}", "view": view})
            spec.attribute(
                "worldToCamera", oiio.TypeDesc("matrix"), tuple(to_imath(np.linalg.inv(camera)).ravel())
            )
            parts.append(spec)
            arrays.append(array)
    path = _write(tmp_path / "stereo.exr", parts, arrays)
    refused = CliRunner().invoke(rf_render, ["inspect", str(path), "--profile", "canonical"])
    assert refused.exit_code == 1 and "choose one with --view left" in refused.output
    for view, tint in (("left", 1.0), ("right", 0.5)):
        result = CliRunner().invoke(
            rf_render, ["inspect", str(path), "--profile", "canonical", "--view", view]
        )
        assert result.exit_code == 0, result.output
        line = next(line for line in result.output.splitlines() if line.startswith("  albedo     <-"))
        shown = float(re.search(r"\[[-\d.e]+, ([-\d.e]+)\]", line).group(1))
        assert shown == pytest.approx(float(albedo.max()) * tint, rel=1e-2), (view, line)


def test_layers_of_multi_part_and_display_window_files_are_read_right(corpus):
    from renderflow.core.io.exr import read_exr

    parts = read_exr(corpus["multipart"])
    assert parts.channels == ["R", "G", "B", "A", "diffuse.R", "diffuse.G", "diffuse.B"]
    window = read_exr(corpus["display_window"])
    assert window.pixels.shape == (20, 24, 4)  # the display window; the data window's overscan is cropped
    assert (window.pixels[:3] == 0).all() and window.pixels[3:, :12].any()
    assert "wner" not in "".join(read_exr(corpus["bad_attribute"]).attributes)
