"""EXR files: layers, parts, pixel types, compression, metadata, atomic writes, broken files."""

import numpy as np
import OpenImageIO as oiio
import pytest

from renderflow.core.io.cameras import from_imath, to_imath
from renderflow.core.io.exr import ImageFileError, Layer, read_exr, write_exr, write_layers


def _layers(height=4, width=6):
    rng = np.random.default_rng(0)
    return [
        Layer("", rng.random((height, width, 3), dtype=np.float32) * 8, "RGB"),
        Layer("albedo", rng.random((height, width, 3), dtype=np.float32), "RGB"),
        Layer("N", rng.standard_normal((height, width, 3)).astype(np.float32), "XYZ", half=False),
        Layer("depth", rng.random((height, width, 1), dtype=np.float32) * 100, "Z", half=False),
    ]


def _channel_formats(path):
    image_input = oiio.ImageInput.open(str(path))
    spec = image_input.spec()
    formats = dict(zip(spec.channelnames, [str(f) for f in spec.channelformats], strict=True))
    compression = spec.getattribute("compression")
    image_input.close()
    return formats, compression


def test_multilayer_file_keeps_names_values_and_pixel_types(tmp_path):
    path = tmp_path / "layers.exr"
    layers = _layers()
    write_layers(path, layers, compression="piz")
    image = read_exr(path)
    for layer in layers:
        values = image.select(layer.channel_names())
        if layer.half:
            np.testing.assert_allclose(values, layer.pixels, rtol=1e-3)
        else:
            np.testing.assert_array_equal(values, layer.pixels)
    formats, compression = _channel_formats(path)
    assert formats["R"] == "half" and formats["albedo.G"] == "half"
    assert formats["N.X"] == "float" and formats["depth.Z"] == "float"
    assert compression == "piz"
    layers_read = {layer: sorted(suffixes) for layer, suffixes in image.layers().items()}
    assert layers_read == {
        "": ["B", "G", "R"],
        "N": ["X", "Y", "Z"],
        "albedo": ["B", "G", "R"],
        "depth": ["Z"],
    }


def test_multipart_file_reads_as_one_set_of_named_channels(tmp_path):
    path = tmp_path / "parts.exr"
    layers = _layers()
    write_layers(path, layers, attributes={"renderflow/seed": 7}, multipart=True)
    image_input = oiio.ImageInput.open(str(path))
    assert image_input.seek_subimage(3, 0) and not image_input.seek_subimage(4, 0)
    image_input.close()
    image = read_exr(path)
    assert sorted(image.channels) == sorted(name for layer in layers for name in layer.channel_names())
    np.testing.assert_array_equal(image.select(["depth.Z"]), layers[3].pixels)
    assert image.attributes["renderflow/seed"] == 7


def test_bare_channels_in_a_later_part_take_the_part_name(tmp_path):
    path = tmp_path / "bare.exr"
    specs = []
    for name, channels in (("rgba", ("R", "G", "B")), ("diffuse", ("R", "G", "B"))):
        spec = oiio.ImageSpec(4, 2, 3, "float")
        spec.channelnames = channels
        spec.attribute("oiio:subimagename", name)
        specs.append(spec)
    output = oiio.ImageOutput.create(str(path))
    output.open(str(path), specs)
    output.write_image(np.zeros((2, 4, 3), np.float32))
    output.open(str(path), specs[1], "AppendSubimage")
    output.write_image(np.ones((2, 4, 3), np.float32))
    output.close()
    image = read_exr(path)
    assert sorted(image.channels) == ["B", "G", "R", "diffuse.B", "diffuse.G", "diffuse.R"]
    assert image.select(["diffuse.G"]).min() == 1.0 and image.select(["G"]).max() == 0.0


def test_camera_matrix_and_our_metadata_round_trip(tmp_path):
    camera_to_world = np.eye(4)
    camera_to_world[:3, 3] = [1.0, 2.0, 3.0]
    world_to_camera = np.linalg.inv(camera_to_world)
    attributes = {
        "worldToCamera": to_imath(world_to_camera),
        "renderflow/model": "bundled-v1",
        "renderflow/checkpointHash": "ab12",
        "renderflow/steps": 1,
        "renderflow/exposure": 0.5,
    }
    write_exr(tmp_path / "m.exr", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"], attributes=attributes)
    image = read_exr(tmp_path / "m.exr")
    stored = image.matrix("worldToCamera")
    assert stored is not None
    assert stored[3, :3].tolist() == [-1.0, -2.0, -3.0]  # Imath layout: translation in elements 12-14
    np.testing.assert_allclose(from_imath(stored), world_to_camera)
    assert image.attributes["renderflow/model"] == "bundled-v1"
    assert image.attributes["renderflow/steps"] == 1 and image.attributes["renderflow/exposure"] == 0.5
    assert image.matrix("cameraToWorld") is None


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "keep.exr"
    write_exr(path, np.full((2, 2, 3), 3.0, np.float32), ["R", "G", "B"])
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"keep\.exr"):
        write_layers(path, [Layer("", np.zeros((2, 2, 3)), "RGB"), Layer("N", np.zeros((3, 2, 3)), "XYZ")])
    with pytest.raises(ValueError, match="compression"):
        write_exr(path, np.zeros((2, 2, 3), np.float32), ["R", "G", "B"], compression="lzma")
    with pytest.raises(ImageFileError, match="missing"):
        write_exr(tmp_path / "missing" / "x.exr", np.zeros((2, 2, 3), np.float32), ["R", "G", "B"])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.exr"]


@pytest.mark.parametrize("keep_bytes", [20, 200, None])
def test_broken_files_are_errors_that_name_the_file(tmp_path, keep_bytes):
    path = tmp_path / "broken.exr"
    write_exr(path, np.random.default_rng(0).random((64, 64, 3), dtype=np.float32), ["R", "G", "B"])
    data = path.read_bytes()
    path.write_bytes(data[: keep_bytes or len(data) // 2])
    with pytest.raises(ImageFileError, match=r"broken\.exr"):
        read_exr(path)


def test_a_file_that_is_not_an_image_is_an_error(tmp_path):
    path = tmp_path / "notes.exr"
    path.write_text("not an image")
    with pytest.raises(ImageFileError, match=r"notes\.exr: not a readable image"):
        read_exr(path)
