"""The RenderFlow node for Nuke: its logic against a real daemon, its gizmo parsed as Tcl, its Nuke side
on a minimal stand-in for the few nuke calls it makes (Nuke itself cannot run here)."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from renderflow.core.io.exr import read_exr
from renderflow.core.shot.demo import BUNDLED_MODEL, DEMO_CLIP
from renderflow.daemon.server import Server, ServerConfig

ROOT = Path(__file__).parents[1]
PLUGIN = ROOT / "nuke_plugin"
sys.path[:0] = [str(PLUGIN), str(Path(__file__).parent / "nuke_standin")]

import nuke  # noqa: E402  # the stand-in

from renderflow_nuke import node as rf_node  # noqa: E402
from renderflow_nuke import session  # noqa: E402

EXR_TO_NUKE_SUFFIX = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
NUKE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TCL_KNOBS = r"""
proc addUserKnob {spec} {
    set menu [lsearch -exact $spec M]
    set first [expr {$menu >= 0 ? [lindex [lindex $spec [expr {$menu + 1}]] 0] : ""}]
    puts "knob\t[lindex $spec 1]\t[lindex $spec 0]\t$first"
}
proc unknown {args} { if {[llength $args] == 2} { puts "value\t[lindex $args 0]\t[lindex $args 1]" } }
proc version {args} {}
proc Gizmo {body} { eval $body }
proc inner_node {kind body} { puts "node\t$kind\t[dict get [string map {\n { }} $body] name]" }
foreach kind {Input Write Read Output} { proc $kind {body} "inner_node $kind \$body" }
proc end_group {} { puts end }
source [lindex $argv 0]
"""


def nuke_frames(clip, frames):
    """The clip's canonical EXRs as a Nuke Read would hand them on: Nuke channel names + camera metadata."""
    result, metadata = {}, {}
    for frame in frames:
        image = read_exr(clip / f"frame.{frame}.exr")
        channels = {}
        for name in image.channels:
            layer, _, suffix = name.rpartition(".")
            colour = layer in ("", "albedo")  # Nuke names colour channels red, green, blue, alpha
            nuke_name = f"{layer or 'rgba'}.{EXR_TO_NUKE_SUFFIX.get(suffix, suffix) if colour else suffix}"
            channels[nuke_name] = image.select([name])[..., 0]
        result[frame] = channels
        metadata[frame] = {
            key: np.asarray(image.attributes[key], np.float64).reshape(4, 4) for key in ("worldToCamera",)
        }
    return result, metadata


@pytest.fixture(scope="module")
def daemon():
    server = Server(ServerConfig(weights=BUNDLED_MODEL, bind="tcp://127.0.0.1:*"))
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    assert server.bound.wait(30) and server.model_settled.wait(60)
    yield server
    server.request_stop()
    thread.join(30)


@pytest.fixture(scope="module")
def gizmo_knobs():
    """(knob name -> (type, first menu item), knob name -> default value, inner node names) from tclsh."""
    script = Path(__file__).parent / "nuke_standin" / "knobs.tcl"
    script.write_text(TCL_KNOBS)
    try:
        out = subprocess.run(
            ["tclsh", str(script), str(PLUGIN / "RenderFlow.gizmo")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        script.unlink()
    knobs, values, nodes = {}, {}, []
    for line in out.splitlines():
        kind, *fields = line.split("\t")
        if kind == "knob":
            knobs[fields[0]] = (int(fields[1]), fields[2])
        elif kind == "value":
            values[fields[0]] = fields[1]
        elif kind == "node":
            nodes.append((fields[0], fields[1]))
    assert out.splitlines()[-1] == "end"
    return knobs, values, nodes


def make_node(gizmo_knobs, gbuffers=None, plate=None, camera=None, envmap_read=None, **values):
    """A stand-in RenderFlow node with exactly the gizmo's knobs and defaults."""
    knobs, defaults, nodes = gizmo_knobs
    made = []
    for name, (kind, first_item) in knobs.items():
        default = values.get(name, defaults.get(name))
        if kind == 4:
            made.append(nuke.Enumeration_Knob(name, default or first_item, [first_item]))
        elif kind == 10:  # a layer picker: its value is a layer name, saved with the script
            made.append(nuke.Knob(name, default))
        elif kind == 2:
            made.append(nuke.File_Knob(name, default or ""))
        elif kind in (20, 22, 26):
            made.append(nuke.Script_Knob(name))
        else:
            cast = {3: int, 6: lambda v: v in (True, "true", "1"), 7: float}.get(kind, str)
            made.append(
                nuke.Knob(name, cast(default) if default is not None else cast(0 if kind in (3, 7) else ""))
            )
    inner = []
    for _kind, name in nodes:
        knobs_of = [
            nuke.File_Knob("file", ""),
            nuke.Knob("first", 1),
            nuke.Knob("last", 1),
            nuke.Script_Knob("reload"),
        ]
        inner_node = nuke.Node(name, knobs_of)
        inner_node.written = []
        inner_node.source = {"WriteGBuffers": gbuffers, "WritePlate": plate}.get(name)
        inner.append(inner_node)
    return nuke.Group("RenderFlow1", made, [gbuffers, None, plate, camera, envmap_read], inner)


# -- the gizmo -------------------------------------------------------------------------------------
def test_gizmo_parses_as_tcl_and_has_every_knob_the_python_side_uses(gizmo_knobs):
    knobs, _, nodes = gizmo_knobs
    used = {value for name, value in vars(rf_node).items() if name.startswith("KNOB_")}
    used |= {rf_node.LAYER_KNOB_PREFIX + buffer for buffer in session.BUFFER_CHANNELS}
    assert used <= set(knobs), used - set(knobs)
    assert {name for _, name in nodes} >= {*rf_node.WRITE_INPUTS.values(), rf_node.READ_RESULT}
    assert knobs[rf_node.KNOB_MODE][1] == session.MODE_RENDER
    _, defaults, _ = gizmo_knobs
    assert defaults[rf_node.LAYER_KNOB_PREFIX + "albedo"] == session.LAYER_FROM_PROFILE


def test_gizmo_buttons_call_functions_that_exist():
    text = (PLUGIN / "RenderFlow.gizmo").read_text()
    for function in re.findall(r"renderflow_nuke\.node\.(\w+)\(\)", text):
        assert callable(getattr(rf_node, function)), function


# -- plain-Python logic -------------------------------------------------------------------------
def test_nuke_channels_map_to_the_names_nukes_write_gives_them():
    assert session.exr_channel("rgba.red") == "R" and session.exr_channel("rgba.alpha") == "A"
    assert session.exr_channel("diffuse.green") == "diffuse.G" and session.exr_channel("N.X") == "N.X"
    assert session.exr_channel("depth.Z") == "depth.Z"


def test_layer_guesses_follow_the_profile_and_hand_picks_become_a_mapping(daemon):
    from renderflow.daemon.client import DaemonClient

    with DaemonClient(daemon.endpoint, timeout_s=5) as client:
        arnold = client.hello()["capabilities"]["profile_channels"]["arnold"]
    channels = [
        "rgba.red",
        "rgba.green",
        "rgba.blue",
        "diffuse_albedo.red",
        "diffuse_albedo.green",
        "diffuse_albedo.blue",
        "N.X",
        "N.Y",
        "N.Z",
        "Z.Z",
        "myrough.red",
    ]
    guesses = session.guess_layers(channels, arnold)
    # Arnold's albedo AOV is a diffuse albedo (the daemon undoes (1 - metallic) from it)
    assert guesses["diffuse_albedo"] == "diffuse_albedo" and guesses["albedo"] == session.LAYER_FROM_PROFILE
    assert guesses["normal"] == "N" and guesses["depth"] == "Z"
    assert guesses["roughness"] == session.LAYER_FROM_PROFILE
    mapping = session.layer_mapping({**guesses, "roughness": "myrough"}, channels)
    assert mapping["diffuse_albedo"] == ["diffuse_albedo.R", "diffuse_albedo.G", "diffuse_albedo.B"]
    assert mapping["roughness"] == ["myrough.R"] and "metallic" not in mapping
    with pytest.raises(session.NodeError, match="normal needs 3 channels; layer 'myrough' has 1"):
        session.layer_mapping({"normal": "myrough"}, channels)


def test_hand_picked_layers_under_profile_auto_are_refused_by_the_one_request_rule():
    settings = session.NodeSettings("RenderFlow1", layers={"normal": "myN"})
    with pytest.raises(session.NodeError, match="layers picked by hand need an AOV profile other than auto"):
        session.render_params(settings, ["myN.X", "myN.Y", "myN.Z"])
    params = session.render_params(
        session.NodeSettings("RenderFlow1", profile="arnold", layers={"normal": "myN"}),
        ["myN.X", "myN.Y", "myN.Z"],
    )
    assert params["profile"] == "arnold" and params["aov"] == {"normal": ["myN.X", "myN.Y", "myN.Z"]}


def test_versions_count_up_and_never_overwrite(tmp_path):
    assert session.next_version_folder(tmp_path, "RenderFlow1") == tmp_path / "RenderFlow1" / "v001"
    (tmp_path / "RenderFlow1" / "v001").mkdir(parents=True)
    (tmp_path / "RenderFlow1" / "v007").mkdir()
    assert session.next_version_folder(tmp_path, "RenderFlow1").name == "v008"


def test_no_daemon_is_said_in_a_compositors_words(tmp_path):
    settings = session.NodeSettings(
        "RenderFlow1",
        address="tcp://127.0.0.1:9",
        envmap=str(DEMO_CLIP / "envmap.exr"),
        output_root=str(tmp_path),
        timeout_s=0.3,
    )
    with pytest.raises(
        session.NodeError, match=r"No RenderFlow daemon answers at tcp://127\.0\.0\.1:9\. Start one"
    ):
        session.run_job(settings, [(1001, DEMO_CLIP / "frame.1001.exr")], [])
    assert not list(tmp_path.iterdir())


# -- end to end: Nuke-written EXRs -> the bundled model in a real daemon -> what the Read loads ------------
def test_render_round_trip_through_the_daemon_gives_the_read_linear_exrs_nuke_accepts(
    daemon, gizmo_knobs, tmp_path
):
    frames, metadata = nuke_frames(DEMO_CLIP, range(1001, 1004))
    source = nuke.Source("Read1", frames, metadata)
    node = make_node(
        gizmo_knobs,
        gbuffers=source,
        daemon_address=daemon.endpoint,
        envmap=str(DEMO_CLIP / "envmap.exr"),
        camera_file=str(DEMO_CLIP / "camera.json"),
        output_folder=str(tmp_path / "cache"),
    )  # frame range 0 0: the input's, 1001-1003
    rf_node.check_daemon(node)  # fetches the profile table; with profile auto the pickers stay at none
    assert node["layer_albedo"].value() == session.LAYER_FROM_PROFILE
    rf_node.render(node)  # no GUI: runs in this thread, like `nuke -t`; the daemon detects the layers
    read = node.node(rf_node.READ_RESULT)
    assert node["message"].value().startswith("rendered 1001-1003"), node["message"].value()
    assert read["file"].value() == str(tmp_path / "cache" / "RenderFlow1" / "v001" / "beauty.####.exr")
    assert (read["first"].value(), read["last"].value()) == (1001, 1003)
    for frame in range(1001, 1004):
        image = read_exr(Path(read["file"].value().replace("####", str(frame))))
        assert {"R", "G", "B", "A"} <= set(image.channels)
        assert all(NUKE_NAME.match(part) for name in image.channels for part in name.split("."))
        beauty = image.select(["R", "G", "B"])
        assert np.isfinite(beauty).all() and beauty.max() > 0.05  # scene-linear, lit
    rf_node.render(node)
    assert read["file"].value().endswith("v002/beauty.####.exr")  # a new version, the first one kept


def test_decompose_round_trip_returns_intrinsic_layers_for_the_read(daemon, gizmo_knobs, tmp_path):
    frames, _ = nuke_frames(DEMO_CLIP, [1001, 1002])
    plate = nuke.Source(
        "Plate", {f: {k: v for k, v in c.items() if k.startswith("rgba")} for f, c in frames.items()}
    )
    node = make_node(
        gizmo_knobs,
        plate=plate,
        daemon_address=daemon.endpoint,
        mode="decompose",
        first_frame=1001,
        last_frame=1002,
        output_folder=str(tmp_path),
    )
    node["mode"].setValues(["render", "decompose"])
    node["mode"].setValue("decompose")
    rf_node.render(node)
    read = node.node(rf_node.READ_RESULT)
    image = read_exr(Path(read["file"].value().replace("####", "1002")))
    layers = {name.partition(".")[0] for name in image.channels}
    assert layers == {"albedo", "N", "depth", "roughness", "metallic"}


def test_wrong_layers_show_on_the_node_and_write_nothing(daemon, gizmo_knobs, tmp_path):
    frames, metadata = nuke_frames(DEMO_CLIP, [1001])
    without_depth = {1001: {k: v for k, v in frames[1001].items() if not k.startswith("depth")}}
    node = make_node(
        gizmo_knobs,
        gbuffers=nuke.Source("Read1", without_depth, metadata),
        daemon_address=daemon.endpoint,
        envmap=str(DEMO_CLIP / "envmap.exr"),
        first_frame=1001,
        last_frame=1001,
        output_folder=str(tmp_path / "cache"),
    )
    node["profile"].setValues(["auto", "canonical"])
    node["profile"].setValue("canonical")
    rf_node.render(node)  # the daemon finds no depth layer
    assert (
        node["message"]
        .value()
        .startswith("The daemon cannot use these images: the G-buffer EXR of frame 1001")
    )
    assert "no layer for depth" in node["message"].value()
    node["layer_normal"].setValue("roughness")
    rf_node.render(node)  # caught before anything is sent
    assert node["message"].value() == "normal needs 3 channels; layer 'roughness' has 1"
    assert not (tmp_path / "cache").exists()


def test_the_plugin_imports_only_the_daemons_protocol_and_client_and_the_camera_files():
    allowed = {
        "renderflow.daemon",
        "renderflow.daemon.client",
        "renderflow.daemon.requests",
        "renderflow.core.io.buffer_names",
        "renderflow.core.io.camera_files",
        "renderflow_nuke",
    }
    for path in (PLUGIN / "renderflow_nuke").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (renderflow\S*)", path.read_text(), re.MULTILINE)
        assert set(imports) <= allowed, (path, imports)
    # the camera files need numpy alone (USD only when a USD camera is read): Nuke's Python has it
    heavy = "('torch', 'OpenImageIO', 'pxr')"
    code = (
        f"import sys, renderflow.core.io.camera_files; print(sorted(m for m in {heavy} if m in sys.modules))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )


# -- issue #20: a node that never blocks the UI, persists its knobs, reads Nuke's cameras and colour --------
def test_render_never_waits_in_the_main_thread(daemon, gizmo_knobs, tmp_path, monkeypatch):
    frames, metadata = nuke_frames(DEMO_CLIP, range(1001, 1004))
    node = make_node(
        gizmo_knobs,
        gbuffers=nuke.Source("Read1", frames, metadata),
        daemon_address=daemon.endpoint,
        envmap=str(DEMO_CLIP / "envmap.exr"),
        camera_file=str(DEMO_CLIP / "camera.json"),
        output_folder=str(tmp_path),
    )
    monkeypatch.setattr(nuke, "GUI", True)
    nuke.calls.clear()
    started = time.monotonic()
    rf_node.render(node)  # the button: returns before any frame is written or sent
    returned = time.monotonic() - started
    assert returned < 0.5 and not any(call == "execute" for call, _ in nuke.calls)
    nuke.pump(lambda: node["message"].value().startswith(("rendered", "RenderFlow failed", "The daemon")))
    assert node["message"].value().startswith("rendered 1001-1003"), node["message"].value()
    executes = [thread for call, thread in nuke.calls if call == "execute"]
    assert len(executes) == 3 and set(executes) == {"MainThread"}  # Nuke's API only in its main thread
    assert {thread for call, thread in nuke.calls if call.startswith("setValue")} == {"MainThread"}


def test_knob_changed_never_calls_the_daemon(gizmo_knobs, monkeypatch):
    frames, metadata = nuke_frames(DEMO_CLIP, [1001])
    node = make_node(
        gizmo_knobs, gbuffers=nuke.Source("Read1", frames, metadata), daemon_address="tcp://10.0.0.1:1"
    )

    def no_network(*args, **kwargs):
        raise AssertionError("knobChanged talked to the daemon")

    monkeypatch.setattr(rf_node, "DaemonClient", no_network)
    monkeypatch.setitem(nuke._this, "node", node)
    monkeypatch.setitem(nuke._this, "knob", nuke.Knob("inputChange"))
    rf_node.knob_changed()
    assert node["layer_albedo"].value() == session.LAYER_FROM_PROFILE  # no table fetched yet: left as is


def test_layer_picks_survive_saving_and_reloading_the_script(gizmo_knobs, tmp_path):
    """Layer pickers are layer knobs (type 10), whose saved value is any layer name; a pulldown's
    value outside its saved menu would be dropped on reload."""
    knobs, _, _ = gizmo_knobs
    saved = (
        (PLUGIN / "RenderFlow.gizmo")
        .read_text()
        .replace(" layer_normal none\n", " layer_normal myN\n")
        .replace(" layer_albedo none\n", " layer_albedo diffuse\n")
    )
    (tmp_path / "RenderFlow.gizmo").write_text(saved)
    script = tmp_path / "knobs.tcl"
    script.write_text(TCL_KNOBS)
    out = subprocess.run(
        ["tclsh", str(script), str(tmp_path / "RenderFlow.gizmo")], capture_output=True, text=True, check=True
    ).stdout
    values = dict(line.split("\t")[1:] for line in out.splitlines() if line.startswith("value\t"))
    assert values["layer_normal"] == "myN" and values["layer_albedo"] == "diffuse"
    assert all(knobs[rf_node.LAYER_KNOB_PREFIX + buffer][0] == 10 for buffer in session.BUFFER_CHANNELS)
    assert "on_error error" in saved  # a missing result frame errors in the Read, never shows black


def test_camera_input_gives_the_cameras_the_daemon_reads(gizmo_knobs):
    from renderflow.core.io.camera_files import camera_json_track

    turned = np.eye(4)
    turned[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # 90° about +Y
    turned[:3, 3] = [4.0, 1.0, -2.0]
    world_matrix = nuke.Knob("world_matrix", list(np.eye(4).ravel()), {1002: list(turned.ravel())})
    camera = nuke.Node("Camera1", [world_matrix, nuke.Knob("focal", 35.0), nuke.Knob("haperture", 36.0)])
    frames, metadata = nuke_frames(DEMO_CLIP, [1001, 1002])
    node = make_node(gizmo_knobs, gbuffers=nuke.Source("Read1", frames, metadata), camera=camera)
    settings = rf_node.settings_of(node)
    track = camera_json_track(settings.camera, "camera input", [1001, 1002], aspect=16 / 9)
    np.testing.assert_allclose(track.camera_to_world[1], turned)
    horizontal = 2 * np.degrees(np.arctan(18 / 35))
    expected = 2 * np.degrees(np.arctan(np.tan(np.radians(horizontal) / 2) * 9 / 16))
    assert track.vertical_fov_degrees[0] == pytest.approx(expected)


def test_a_nuke_chan_file_becomes_the_request_cameras(tmp_path):
    (tmp_path / "cam.chan").write_text("1001 0 1 5 0 90 0 40\n")
    params = session.render_params(
        session.NodeSettings("RenderFlow1", camera_file=str(tmp_path / "cam.chan")), []
    )
    (entry,) = params["camera"]["frames"]
    assert entry["frame"] == 1001 and entry["vertical_fov_degrees"] == 40.0
    np.testing.assert_allclose(np.array(entry["camera_to_world"])[:3, 3], [0, 1, 5])


def test_colour_space_is_the_scripts_working_space_and_converted_at_the_daemons_edges(
    daemon, gizmo_knobs, tmp_path
):
    from renderflow.core.io import colour
    from renderflow.core.io.exr import write_exr

    assert session.scene_linear_space("working space", "linear") == "lin_rec709"  # Nuke's own config
    assert session.scene_linear_space("working space", "ACES - ACEScg") == "ACES - ACEScg"
    assert session.scene_linear_space("ACEScg", "linear") == "ACEScg"
    frames, _ = nuke_frames(DEMO_CLIP, [1001])
    node = make_node(gizmo_knobs, gbuffers=nuke.Source("Read1", frames), colour_space="working space")
    nuke.root()["workingSpaceLUT"].setValue("ACES - ACEScg")
    try:
        assert rf_node.settings_of(node).colour_space == "ACES - ACEScg"
    finally:
        nuke.root()["workingSpaceLUT"].setValue("linear")
    # the same plate, as Rec.709 and as ACEScg: the albedo comes back in the plate's own space
    plate = read_exr(DEMO_CLIP / "frame.1001.exr").select(["R", "G", "B"])
    albedos = {}
    for space, pixels in (("lin_rec709", plate), ("ACEScg", colour.convert(plate, "lin_rec709", "ACEScg"))):
        write_exr(tmp_path / f"{space}.1001.exr", pixels, "RGB", half=False)
        settings = session.NodeSettings(
            "Decompose",
            address=daemon.endpoint,
            mode="decompose",
            colour_space=space,
            output_root=str(tmp_path / space),
        )
        result = session.run_job(settings, [(1001, tmp_path / f"{space}.1001.exr")], [])
        albedos[space] = read_exr(result.folder / "intrinsics.1001.exr").select(
            ["albedo.R", "albedo.G", "albedo.B"]
        )
    np.testing.assert_allclose(
        albedos["ACEScg"], colour.convert(albedos["lin_rec709"], "lin_rec709", "ACEScg"), atol=2e-3
    )


def test_errors_turn_the_node_red_and_a_good_render_clears_it(daemon, gizmo_knobs, tmp_path):
    frames, metadata = nuke_frames(DEMO_CLIP, [1001])
    node = make_node(
        gizmo_knobs,
        gbuffers=nuke.Source("Read1", frames, metadata),
        daemon_address=daemon.endpoint,
        envmap=str(tmp_path / "missing.exr"),
        camera_file=str(DEMO_CLIP / "camera.json"),
        output_folder=str(tmp_path),
    )
    nuke.calls.clear()
    rf_node.render(node)
    assert node["tile_color"].value() == rf_node.TILE_ERROR and node["label"].value().startswith(
        "error: env map"
    )
    assert not any(call == "execute" for call, _ in nuke.calls)  # checked before writing anything
    node["envmap"].setValue("[getenv RF_TEST_ENV]")  # a file knob is evaluated (TCL), not read raw
    os.environ["RF_TEST_ENV"] = str(DEMO_CLIP / "envmap.exr")
    try:
        rf_node.render(node)
    finally:
        del os.environ["RF_TEST_ENV"]
    assert node["message"].value().startswith("rendered"), node["message"].value()
    assert node["tile_color"].value() == rf_node.TILE_OK and node["label"].value() == ""


def test_free_gpu_with_no_daemon_says_so_on_the_panel(gizmo_knobs):
    node = make_node(gizmo_knobs, daemon_address="tcp://127.0.0.1:9")
    rf_node.free_gpu(node)  # no traceback dialog
    assert node["daemon_status"].value().startswith("No RenderFlow daemon answers")
