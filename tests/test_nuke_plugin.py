"""The RenderFlow node for Nuke: its logic against a real daemon, its gizmo parsed as Tcl, its Nuke side
on a minimal stand-in for the few nuke calls it makes (Nuke itself cannot run here)."""

import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from renderflow.core.demo import BUNDLED_MODEL, DEMO_CLIP
from renderflow.core.exr import read_exr
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


def make_node(gizmo_knobs, gbuffers=None, plate=None, **values):
    """A stand-in RenderFlow node with exactly the gizmo's knobs and defaults."""
    knobs, defaults, nodes = gizmo_knobs
    made = []
    for name, (kind, first_item) in knobs.items():
        default = values.get(name, defaults.get(name))
        if kind == 4:
            made.append(nuke.Enumeration_Knob(name, default or first_item, [first_item]))
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
            nuke.Knob("file", ""),
            nuke.Knob("first", 1),
            nuke.Knob("last", 1),
            nuke.Script_Knob("reload"),
        ]
        inner_node = nuke.Node(name, knobs_of)
        inner_node.written = []
        inner_node.source = {"WriteGBuffers": gbuffers, "WritePlate": plate}.get(name)
        inner.append(inner_node)
    return nuke.Group("RenderFlow1", made, [gbuffers, None, plate], inner)


# -- the gizmo -------------------------------------------------------------------------------------
def test_gizmo_parses_as_tcl_and_has_every_knob_the_python_side_uses(gizmo_knobs):
    knobs, _, nodes = gizmo_knobs
    used = {value for name, value in vars(rf_node).items() if name.startswith("KNOB_")}
    used |= {rf_node.LAYER_KNOB_PREFIX + buffer for buffer in session.BUFFER_CHANNELS}
    assert used <= set(knobs), used - set(knobs)
    assert {name for _, name in nodes} >= {*rf_node.WRITE_INPUTS.values(), rf_node.READ_RESULT}
    assert knobs[rf_node.KNOB_MODE][1] == session.MODE_RENDER
    assert knobs[rf_node.LAYER_KNOB_PREFIX + "albedo"][1] == session.LAYER_FROM_PROFILE


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
        first_frame=1001,
        last_frame=1003,
        output_folder=str(tmp_path / "cache"),
    )
    rf_node.refresh_layers(node)  # fills the pickers from the input and the daemon's profile table
    assert node["layer_albedo"].value() == "albedo" and "N" in node["layer_normal"].values
    rf_node.render(node)  # no GUI: runs in this thread, like `nuke -t`
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
    node["layer_normal"].setValues(["(profile)", "roughness"])
    node["layer_normal"].setValue("roughness")
    rf_node.render(node)  # caught before anything is sent
    assert node["message"].value() == "normal needs 3 channels; layer 'roughness' has 1"
    assert not (tmp_path / "cache").exists()


def test_the_plugin_imports_only_the_daemons_protocol_and_client():
    for path in (PLUGIN / "renderflow_nuke").glob("*.py"):
        imports = re.findall(r"^\s*(?:from|import) (renderflow\S*)", path.read_text(), re.MULTILINE)
        assert set(imports) <= {"renderflow.daemon", "renderflow.daemon.client", "renderflow_nuke"}, (
            path,
            imports,
        )
