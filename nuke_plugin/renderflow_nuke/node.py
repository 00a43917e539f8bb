"""The RenderFlow gizmo's Nuke side: knob callbacks that read knobs, write EXRs, and call `session`.

Kept thin on purpose: everything that does not need Nuke lives in `session` and is tested against
a real daemon. Long work runs on a worker thread with a nuke.ProgressTask; every change to the
node goes back through nuke.executeInMainThread. Under `nuke -t` (no GUI) a render runs in the
calling thread, so farm scripts can simply call `render(node)`.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import nuke

from renderflow.daemon.client import DaemonClient, DaemonUnavailable, default_state_file, read_admin_token
from renderflow_nuke import session

HELLO_TIMEOUT_S = 1.0  # hello is answered by the daemon's I/O thread at once, even mid-render
# Knob names shared with RenderFlow.gizmo (tests/test_nuke_plugin.py checks they match).
KNOB_ADDRESS = "daemon_address"
KNOB_STATUS = "daemon_status"
KNOB_MODE = "mode"
KNOB_PROFILE = "profile"
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
INPUT_GBUFFERS, INPUT_KEYFRAMES, INPUT_PLATE = 0, 1, 2
WRITE_INPUTS = {INPUT_GBUFFERS: "WriteGBuffers", INPUT_KEYFRAMES: "WriteKeyframes", INPUT_PLATE: "WritePlate"}
READ_RESULT = "Result"

_cancel_events: dict[str, threading.Event] = {}
_profile_tables: dict[str, dict[str, dict[str, list[list[str]]]]] = {}  # address -> hello's profile_channels


def settings_of(node: nuke.Group) -> session.NodeSettings:
    layers = {buffer: str(node[LAYER_KNOB_PREFIX + buffer].value()) for buffer in session.BUFFER_CHANNELS}
    return session.NodeSettings(
        node_name=node.name(),
        address=str(node[KNOB_ADDRESS].value()),
        mode=str(node[KNOB_MODE].value()),
        profile=str(node[KNOB_PROFILE].value()),
        layers=layers,
        envmap=str(node[KNOB_ENVMAP].value()),
        env_rotate=float(node[KNOB_ENV_ROTATE].value()),
        env_flip=bool(node[KNOB_ENV_FLIP].value()),
        exposure=float(node[KNOB_EXPOSURE].value()),
        use_keyframes=bool(node[KNOB_USE_KEYFRAMES].value()),
        keyframe_gap=int(node[KNOB_KEYFRAME_GAP].value()),
        first=int(node[KNOB_FIRST].value()),
        last=int(node[KNOB_LAST].value()),
        output_root=str(node[KNOB_OUTPUT].value()) or tempfile.gettempdir(),
        camera_json=str(node[KNOB_CAMERA].value()),
    )


# -- knob callbacks (the gizmo's knobChanged and buttons call these) --------------------------------
def knob_changed() -> None:
    if nuke.thisKnob().name() in ("inputChange", KNOB_PROFILE, "showPanel"):
        refresh_layers(_this_node())


def refresh_layers(node: nuke.Group) -> None:
    """Fill each buffer's layer picker from the G-buffer input, with the profile's guess selected."""
    source = node.input(INPUT_GBUFFERS)
    channels = list(source.channels()) if source is not None else []
    guesses = session.guess_layers(channels, _profile_channels(node))
    for buffer, guess in guesses.items():
        knob = node[LAYER_KNOB_PREFIX + buffer]
        assert isinstance(knob, nuke.Enumeration_Knob), f"{knob.name()} is not a pulldown"
        knob.setValues([session.LAYER_FROM_PROFILE, *sorted(session.layers_of(channels))])
        knob.setValue(guess)


def check_daemon(node: nuke.Group | None = None) -> None:
    node = node or _this_node()
    try:
        with DaemonClient(str(node[KNOB_ADDRESS].value()), timeout_s=HELLO_TIMEOUT_S, retries=0) as client:
            hello = client.hello()
            memory = client.status()["memory"]
        model = hello["model"]
        used = memory.get("allocated", memory.get("peak_rss", 0)) / 2**30
        text = f"{hello['state']}: {Path(model['checkpoint']).name} on {model['device']}, {used:.1f} GiB"
    except DaemonUnavailable as error:
        text = session.compositor_message(error, str(node[KNOB_ADDRESS].value()))
    node[KNOB_STATUS].setValue(text)


def free_gpu(node: nuke.Group | None = None) -> None:
    node = node or _this_node()
    address = str(node[KNOB_ADDRESS].value())
    token = read_admin_token(default_state_file(address))  # only the daemon's owner may free it
    with DaemonClient(address, timeout_s=HELLO_TIMEOUT_S, retries=0, admin_token=token) as client:
        client.free()
    check_daemon(node)


def render(node: nuke.Group | None = None) -> None:
    """The render button: write the inputs as EXRs, send them, point the Read at the answer."""
    node = node or _this_node()
    settings = settings_of(node)
    work = Path(tempfile.mkdtemp(prefix="rf-nuke-"))
    primary = INPUT_PLATE if settings.mode == session.MODE_DECOMPOSE else INPUT_GBUFFERS
    source = node.input(primary)
    if source is None:
        _show(node, f"connect the {'plate' if primary == INPUT_PLATE else 'G-buffers'} input first")
        return
    frames = list(range(settings.first, settings.last + 1))
    files = _write_input(node, primary, work, frames)
    keyframes: list[tuple[int, Path]] = []
    if (
        settings.mode == session.MODE_RENDER
        and settings.use_keyframes
        and node.input(INPUT_KEYFRAMES) is not None
    ):
        wanted = session.keyframe_frames(settings.first, settings.last, settings.keyframe_gap)
        keyframes = _write_input(node, INPUT_KEYFRAMES, work, wanted)
    cancel = _cancel_events.setdefault(node.fullName(), threading.Event())
    cancel.clear()
    channels = list(source.channels())

    def job() -> None:
        task = nuke.ProgressTask(f"RenderFlow {settings.mode}") if nuke.GUI else None

        def progress(fraction: float, message: str) -> None:
            if task is not None:
                if task.isCancelled():
                    cancel.set()
                task.setProgress(int(100 * fraction))
                task.setMessage(message)

        try:
            result = session.run_job(settings, files, channels, keyframes, progress, cancel)
            _in_main_thread(_show_result, node, result)
        except session.NodeError as error:
            _in_main_thread(_show, node, str(error))
        except Exception as error:  # shown on the node: a worker thread has nobody else to tell
            _in_main_thread(_show, node, f"RenderFlow failed: {type(error).__name__}: {error}")

    if nuke.GUI:
        threading.Thread(target=job, name="renderflow", daemon=True).start()
    else:
        job()


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


def _profile_channels(node: nuke.Group) -> dict[str, list[list[str]]]:
    """The profile's channel aliases from the daemon (asked once per address), or {} without one."""
    address = str(node[KNOB_ADDRESS].value())
    if address not in _profile_tables:
        try:
            with DaemonClient(address, timeout_s=HELLO_TIMEOUT_S, retries=0) as client:
                _profile_tables[address] = client.hello()["capabilities"]["profile_channels"]
        except DaemonUnavailable:
            return {}
    profiles = _profile_tables[address]
    profile = str(node[KNOB_PROFILE].value())
    return dict(profiles.get("canonical" if profile == "auto" else profile, {}))


def _write_input(node: nuke.Group, index: int, folder: Path, frames: list[int]) -> list[tuple[int, Path]]:
    """Render input `index` over `frames` to 32-bit float EXRs with every channel (the gizmo's Write)."""
    write = _inner(node, WRITE_INPUTS[index])
    pattern = folder / f"{WRITE_INPUTS[index]}.####.exr"
    write["file"].setValue(str(pattern).replace("\\", "/"))
    for frame in frames:
        nuke.execute(write, frame, frame)
    return [(frame, folder / f"{WRITE_INPUTS[index]}.{frame:04d}.exr") for frame in frames]


def _show_result(node: nuke.Group, result: session.JobResult) -> None:
    read = _inner(node, READ_RESULT)
    read["file"].setValue(result.pattern)
    read["first"].setValue(result.first)
    read["last"].setValue(result.last)
    _execute(read["reload"])
    _show(node, f"rendered {result.first}-{result.last} into {result.folder}")


def _show(node: nuke.Group, text: str) -> None:
    node[KNOB_MESSAGE].setValue(text)


def _in_main_thread(function: Callable[..., None], *args: object) -> None:
    if nuke.GUI:
        nuke.executeInMainThread(function, args)
    else:
        function(*args)
