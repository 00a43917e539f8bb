"""The RenderFlow gizmo's Nuke side: knob callbacks that read knobs, write EXRs, and call `session`.

Kept thin on purpose: everything that does not need Nuke lives in `session` and is tested against
a real daemon. The UI never waits: a render reads the knobs and checks what it can in the main
thread, then a worker thread drives everything else (each input frame is written by Nuke's
main thread, one `executeInMainThreadWithResult` at a time, so the UI runs between frames; the
daemon's progress shows in a ProgressTask that can cancel). knobChanged never talks to the
daemon. Under `nuke -t` (no GUI) a render runs in the calling thread, so farm scripts can simply
call `render(node)`.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import nuke

from renderflow.daemon import requests
from renderflow.daemon.client import (
    DaemonClient,
    DaemonError,
    DaemonUnavailable,
    default_state_file,
    read_admin_token,
)
from renderflow_nuke import session

HELLO_TIMEOUT_S = 1.0  # hello is answered by the daemon's I/O thread at once, even mid-render
# Knob names shared with RenderFlow.gizmo (tests/test_nuke_plugin.py checks they match).
KNOB_ADDRESS = "daemon_address"
KNOB_STATUS = "daemon_status"
KNOB_MODE = "mode"
KNOB_PROFILE = "profile"
KNOB_COLOUR_SPACE = "colour_space"
KNOB_ENVMAP = "envmap"
KNOB_ENV_ROTATE = "env_rotate"
KNOB_ENV_FLIP = "env_flip"
KNOB_EXPOSURE = "exposure"
KNOB_USE_KEYFRAMES = "use_keyframes"
KNOB_KEYFRAME_GAP = "keyframe_gap"
KNOB_FIRST = "first_frame"
KNOB_LAST = "last_frame"
KNOB_OUTPUT = "output_folder"
KNOB_CAMERA = "camera_file"
KNOB_MESSAGE = "message"
LAYER_KNOB_PREFIX = "layer_"
INPUT_GBUFFERS, INPUT_KEYFRAMES, INPUT_PLATE, INPUT_CAMERA, INPUT_ENVMAP = 0, 1, 2, 3, 4
WRITE_INPUTS = {INPUT_GBUFFERS: "WriteGBuffers", INPUT_KEYFRAMES: "WriteKeyframes", INPUT_PLATE: "WritePlate"}
READ_RESULT = "Result"
TILE_OK, TILE_ERROR = 0x5A8FD6FF, 0xC0392BFF  # the gizmo's blue; red while the last run failed

_cancel_events: dict[str, threading.Event] = {}
_profile_tables: dict[str, dict[str, dict[str, list[list[str]]]]] = {}  # address -> hello's profile_channels


def settings_of(node: nuke.Group) -> session.NodeSettings:
    """The panel as NodeSettings: file knobs evaluated (TCL, [frame]), the frame range from the knobs,
    else the input, else the script; the colour space resolved; cameras from the Camera input."""
    mode = str(node[KNOB_MODE].value())
    first, last = int(node[KNOB_FIRST].value()), int(node[KNOB_LAST].value())
    if first == 0 and last == 0:  # not set: the input's range, or the script's
        source = node.input(INPUT_PLATE if mode == session.MODE_DECOMPOSE else INPUT_GBUFFERS)
        first, last = (source.firstFrame(), source.lastFrame()) if source is not None else _root_range()
    envmap = _file(node, KNOB_ENVMAP)
    envmap_read = node.input(INPUT_ENVMAP)
    if not envmap and envmap_read is not None:
        envmap = _evaluated(envmap_read["file"])
    camera = node.input(INPUT_CAMERA)
    return session.NodeSettings(
        node_name=node.name(),
        address=str(node[KNOB_ADDRESS].value()),
        mode=mode,
        profile=str(node[KNOB_PROFILE].value()),
        layers={buffer: str(node[LAYER_KNOB_PREFIX + buffer].value()) for buffer in session.BUFFER_CHANNELS},
        envmap=envmap,
        env_rotate=float(node[KNOB_ENV_ROTATE].value()),
        env_flip=bool(node[KNOB_ENV_FLIP].value()),
        exposure=float(node[KNOB_EXPOSURE].value()),
        use_keyframes=bool(node[KNOB_USE_KEYFRAMES].value()),
        keyframe_gap=int(node[KNOB_KEYFRAME_GAP].value()),
        first=first,
        last=last,
        output_root=_file(node, KNOB_OUTPUT) or tempfile.gettempdir(),
        camera_file=_file(node, KNOB_CAMERA),
        camera=camera_of(camera, first, last) if camera is not None else None,
        colour_space=session.scene_linear_space(
            str(node[KNOB_COLOUR_SPACE].value()), str(nuke.root()["workingSpaceLUT"].value())
        ),
    )


def camera_of(camera: nuke.Node, first: int, last: int) -> dict[str, Any]:
    """A Camera node's world matrix, focal length and horizontal aperture per frame (a camera.json object)."""
    frames = range(first, last + 1)
    matrices: dict[int, Sequence[float]] = {
        f: [camera["world_matrix"].getValueAt(f, index) for index in range(16)] for f in frames
    }
    focal = {f: camera["focal"].getValueAt(f) for f in frames}
    haperture = {f: camera["haperture"].getValueAt(f) for f in frames}
    return session.camera_from_nuke(matrices, focal, haperture)


# -- knob callbacks (the gizmo's knobChanged and buttons call these) --------------------------------
def knob_changed() -> None:
    if nuke.thisKnob().name() in ("inputChange", KNOB_PROFILE, "showPanel"):
        guess_layers(_this_node())


def guess_layers(node: nuke.Group) -> None:
    """Set the layer pickers still at none to the profile's guess, from the daemon's profile table
    when `check daemon` or a render has fetched it (knobChanged never waits on the network). With
    the profile at auto they stay at none: the daemon detects the renderer and finds the layers."""
    source = node.input(INPUT_GBUFFERS)
    table = _profile_tables.get(str(node[KNOB_ADDRESS].value()))
    profile = str(node[KNOB_PROFILE].value())
    if source is None or table is None or profile == requests.AUTO_PROFILE:  # auto: the daemon finds them
        return
    aliases = table.get(profile, {})
    for buffer, guess in session.guess_layers(list(source.channels()), aliases).items():
        knob = node[LAYER_KNOB_PREFIX + buffer]
        if str(knob.value()) == session.LAYER_FROM_PROFILE and guess != session.LAYER_FROM_PROFILE:
            knob.setValue(guess)


def check_daemon(node: nuke.Group | None = None) -> None:
    """The check button: the daemon's state in the status line; its profile table for the pickers."""
    node = node or _this_node()
    address = str(node[KNOB_ADDRESS].value())

    def ask() -> None:
        try:
            with DaemonClient(address, timeout_s=HELLO_TIMEOUT_S, retries=0) as client:
                hello = client.hello()
                memory = client.status()["memory"]
            _profile_tables[address] = hello["capabilities"]["profile_channels"]
            model = hello["model"]
            used = memory.get("allocated", memory.get("peak_rss", 0)) / 2**30
            text = f"{hello['state']}: {Path(model['checkpoint']).name} on {model['device']}, {used:.1f} GiB"
        except (DaemonUnavailable, DaemonError) as error:
            text = session.compositor_message(error, address)
        _in_main_thread(node[KNOB_STATUS].setValue, text)
        _in_main_thread(guess_layers, node)

    _in_background(ask)


def free_gpu(node: nuke.Group | None = None) -> None:
    node = node or _this_node()
    address = str(node[KNOB_ADDRESS].value())
    token = read_admin_token(default_state_file(address))  # only the daemon's owner may free it

    def free() -> None:
        try:
            with DaemonClient(address, timeout_s=HELLO_TIMEOUT_S, retries=0, admin_token=token) as client:
                client.free()
            text = "freed: the next render loads the model again"
        except (DaemonUnavailable, DaemonError) as error:
            text = session.compositor_message(error, address)
        _in_main_thread(node[KNOB_STATUS].setValue, text)

    _in_background(free)


def render(node: nuke.Group | None = None) -> None:
    """The render button: check, write the inputs, send them, point the Read at the answer.

    Only reading knobs and the checks run in the caller's thread; the rest in a worker."""
    node = node or _this_node()
    try:
        settings = settings_of(node)
        session.check_before_writing(settings)
    except session.NodeError as error:
        _fail(node, str(error))
        return
    primary = INPUT_PLATE if settings.mode == session.MODE_DECOMPOSE else INPUT_GBUFFERS
    source = node.input(primary)
    if source is None:
        _fail(node, f"connect the {'plate' if primary == INPUT_PLATE else 'G-buffers'} input first")
        return
    channels = list(source.channels())
    with_keyframes = (
        settings.mode == session.MODE_RENDER
        and settings.use_keyframes
        and node.input(INPUT_KEYFRAMES) is not None
    )
    cancel = _cancel_events.setdefault(node.fullName(), threading.Event())
    cancel.clear()
    _show(node, f"RenderFlow {settings.mode}: writing the inputs…", TILE_OK)

    def job() -> None:
        task = nuke.ProgressTask(f"RenderFlow {settings.mode}") if nuke.GUI else None

        def progress(fraction: float, message: str) -> None:
            if task is not None:
                if task.isCancelled():
                    cancel.set()
                task.setProgress(int(100 * fraction))
                task.setMessage(message)

        try:
            work = Path(tempfile.mkdtemp(prefix="rf-nuke-"))
            frames = list(range(settings.first, settings.last + 1))
            files = _write_input(node, primary, work, frames, progress, cancel)
            keyframes: list[tuple[int, Path]] = []
            if with_keyframes:
                wanted = session.keyframe_frames(settings.first, settings.last, settings.keyframe_gap)
                keyframes = _write_input(node, INPUT_KEYFRAMES, work, wanted, progress, cancel)
            result = session.run_job(settings, files, channels, keyframes, progress, cancel)
            _in_main_thread(_show_result, node, result)
        except session.NodeError as error:
            _in_main_thread(_fail, node, str(error))
        except Exception as error:  # shown on the node: a worker thread has nobody else to tell
            _in_main_thread(_fail, node, f"RenderFlow failed: {type(error).__name__}: {error}")

    _in_background(job)


def cancel(node: nuke.Group | None = None) -> None:
    node = node or _this_node()
    _cancel_events.setdefault(node.fullName(), threading.Event()).set()


def reload(node: nuke.Group | None = None) -> None:
    node = node or _this_node()
    _execute(_inner(node, READ_RESULT)["reload"])


# -- helpers ------------------------------------------------------------------------------------------
def _inner(node: nuke.Group, name: str) -> nuke.Node:
    """A node inside the gizmo (its Writes and the Result Read)."""
    inner = node.node(name)
    if inner is None:
        raise RuntimeError(f"{node.name()}: the gizmo has no inner node {name!r}; reinstall RenderFlow.gizmo")
    return inner


def _execute(knob: nuke.Knob) -> None:
    """Press a button knob (Read's reload)."""
    assert isinstance(knob, nuke.Script_Knob), f"{knob.name()} is not a button"
    knob.execute()


def _this_node() -> nuke.Group:
    node = nuke.thisNode()
    if not isinstance(node, nuke.Group):
        raise TypeError(f"{node.name()} is not a RenderFlow node (a gizmo)")
    return node


def _file(node: nuke.Group, name: str) -> str:
    """A file knob's path as Nuke evaluates it (TCL expressions, [frame], environment variables)."""
    return _evaluated(node[name]) if str(node[name].value()) else ""


def _evaluated(knob: nuke.Knob) -> str:
    assert isinstance(knob, nuke.EvalString_Knob), f"{knob.name()} is not a file knob"
    return str(knob.evaluate())


def _root_range() -> tuple[int, int]:
    root = nuke.root()
    return int(root["first_frame"].value()), int(root["last_frame"].value())


def _write_input(
    node: nuke.Group,
    index: int,
    folder: Path,
    frames: list[int],
    progress: Callable[[float, str], None],
    cancel: threading.Event,
) -> list[tuple[int, Path]]:
    """Render input `index` over `frames` to 32-bit float EXRs with every channel (the gizmo's Write):
    one frame per main-thread call, so the UI runs between frames and cancel stops the writing."""
    write = _inner(node, WRITE_INPUTS[index])
    pattern = folder / f"{WRITE_INPUTS[index]}.####.exr"
    _in_main_thread_result(write["file"].setValue, str(pattern).replace("\\", "/"))
    for count, frame in enumerate(frames):
        if cancel.is_set():
            raise session.NodeError("Cancelled.")
        progress(count / len(frames), f"writing {WRITE_INPUTS[index]} frame {frame}")
        _in_main_thread_result(nuke.execute, write, frame, frame)
    return [(frame, folder / f"{WRITE_INPUTS[index]}.{frame:04d}.exr") for frame in frames]


def _show_result(node: nuke.Group, result: session.JobResult) -> None:
    read = _inner(node, READ_RESULT)
    read["file"].setValue(result.pattern)
    read["first"].setValue(result.first)
    read["last"].setValue(result.last)
    _execute(read["reload"])
    _show(node, f"rendered {result.first}-{result.last} into {result.folder}", TILE_OK)


def _fail(node: nuke.Group, text: str) -> None:
    """An error on the node itself (red, the message in its label) and in the panel."""
    _show(node, text, TILE_ERROR)
    node["label"].setValue(f"error: {text[:80]}")


def _show(node: nuke.Group, text: str, tile: int) -> None:
    node[KNOB_MESSAGE].setValue(text)
    node["tile_color"].setValue(tile)
    if tile == TILE_OK:
        node["label"].setValue("")


def _in_background(work: Callable[[], None]) -> None:
    """A worker thread in the GUI; inline under `nuke -t` (farm scripts wait for the result)."""
    if nuke.GUI:
        threading.Thread(target=work, name="renderflow", daemon=True).start()
    else:
        work()


def _in_main_thread(function: Callable[..., object], *args: object) -> None:
    if nuke.GUI:
        nuke.executeInMainThread(function, args)
    else:
        function(*args)


def _in_main_thread_result(function: Callable[..., object], *args: object) -> object:
    if nuke.GUI:
        return nuke.executeInMainThreadWithResult(function, args)
    return function(*args)
