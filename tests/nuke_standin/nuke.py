"""A minimal stand-in for the few `nuke` calls renderflow_nuke.node makes (Nuke cannot run here).

Nodes hold knobs; a Write "renders" its source node's per-frame channels to an EXR the way
Nuke's Write names them (rgba.red -> R, layer.red -> layer.R), 32-bit float, metadata kept.
With GUI = True, executeInMainThread(WithResult) hands calls to the test's main thread, which runs
them in `pump`; `calls` records which thread made each Nuke call that must happen in Nuke's
main thread (execute, setValue), so tests can prove the UI thread never waits on work.
"""

import os
import queue
import re
import threading
from pathlib import Path

import numpy as np

from renderflow.core.io.exr import write_exr
from renderflow_nuke.session import exr_channel

GUI = False
_this = {"node": None, "knob": None}
calls: list[tuple[str, str]] = []  # (call, thread name)
_main_queue: queue.Queue = queue.Queue()


def _record(call):
    calls.append((call, threading.current_thread().name))


class Knob:
    def __init__(self, name, value=None, animation=None):
        self._name, self._value = name, value
        self.animation = animation or {}  # frame -> value (or list of values for matrices)

    def name(self):
        return self._name

    def value(self):
        return self._value

    def setValue(self, value):  # Nuke's API
        _record(f"setValue {self._name}")
        self._value = value

    def getValueAt(self, frame, index=None):
        value = self.animation.get(frame, self._value)
        return value[index] if index is not None else value


class EvalString_Knob(Knob):  # Nuke's API: File_Knob's base
    def evaluate(self):
        """Nuke evaluates TCL in file knobs; here `[getenv NAME]` is enough to tell value from evaluate."""
        return re.sub(r"\[getenv (\w+)\]", lambda match: os.environ.get(match.group(1), ""), str(self._value))


class File_Knob(EvalString_Knob):
    pass


class Enumeration_Knob(Knob):  # Nuke's API
    def __init__(self, name, value=None, values=()):
        super().__init__(name, value)
        self.values = list(values)

    def setValues(self, values):
        self.values = list(values)

    def setValue(self, value):
        if value not in self.values:
            raise ValueError(f"{self._name}: {value!r} is not one of {self.values}")
        super().setValue(value)


class Script_Knob(Knob):
    def __init__(self, name, action=lambda: None):
        super().__init__(name)
        self.action = action

    def execute(self):
        self.action()


class Node:
    def __init__(self, name, knobs=(), inputs=()):
        self._name = name
        self.knobs = {knob.name(): knob for knob in knobs}
        self.inputs = list(inputs)

    def __getitem__(self, name):
        return self.knobs[name]

    def name(self):
        return self._name

    def fullName(self):
        return f"root.{self._name}"

    def input(self, index):
        return self.inputs[index] if index < len(self.inputs) else None


class Source(Node):
    """What feeds an input: per frame, {nuke channel: [H, W] array}, plus metadata for the Write."""

    def __init__(self, name, frames, metadata=None):
        super().__init__(name)
        self.frames, self.metadata = frames, metadata or {}

    def channels(self):
        return list(next(iter(self.frames.values())))

    def firstFrame(self):
        return min(self.frames)

    def lastFrame(self):
        return max(self.frames)


class Group(Node):
    def __init__(self, name, knobs=(), inputs=(), inner=()):
        super().__init__(name, [*knobs, Knob("label", ""), Knob("tile_color", 0)], inputs)
        self.inner = {node.name(): node for node in inner}

    def node(self, name):
        return self.inner.get(name)


_root = Node("root", [Knob("workingSpaceLUT", "linear"), Knob("first_frame", 1), Knob("last_frame", 100)])


def root():
    return _root


def thisNode():
    return _this["node"]


def thisKnob():
    return _this["knob"]


def execute(write, first, last, incr=1):
    _record("execute")
    source = write.source
    for frame in range(first, last + 1, incr):
        channels = source.frames[frame]
        names = [exr_channel(name) for name in channels]
        pixels = np.stack(list(channels.values()), axis=-1).astype(np.float32)
        metadata = source.metadata.get(frame, {})
        path = Path(str(write["file"].value()).replace("####", f"{frame:04d}"))
        write_exr(path, pixels, names, half=False, attributes={"nuke/node_hash": "0", **metadata})
        write.written.append(path)


def executeInMainThread(call, args=(), kwargs=None):
    if not GUI:
        call(*args, **(kwargs or {}))
        return
    _main_queue.put((call, args, kwargs or {}, None))


def executeInMainThreadWithResult(call, args=(), kwargs=None):
    if not GUI:
        return call(*args, **(kwargs or {}))
    done = {"event": threading.Event()}
    _main_queue.put((call, args, kwargs or {}, done))
    done["event"].wait()
    if "error" in done:
        raise done["error"]
    return done.get("result")


def pump(until, timeout=60.0):
    """The test's stand-in for Nuke's event loop: run queued main-thread calls until `until()`."""
    import time

    end = time.monotonic() + timeout
    while not until() and time.monotonic() < end:
        try:
            call, args, kwargs, done = _main_queue.get(timeout=0.02)
        except queue.Empty:
            continue
        try:
            result = call(*args, **kwargs)
            if done is not None:
                done["result"] = result
        except Exception as error:
            if done is None:
                raise
            done["error"] = error
        finally:
            if done is not None:
                done["event"].set()
    assert until(), "timed out pumping the main thread"


class ProgressTask:
    def __init__(self, name):
        self.progress = 0
        self.messages = []

    def isCancelled(self):
        return False

    def setProgress(self, value):
        self.progress = value

    def setMessage(self, message):
        self.messages.append(message)
