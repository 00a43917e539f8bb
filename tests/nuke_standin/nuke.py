"""A minimal stand-in for the few `nuke` calls renderflow_nuke.node makes (Nuke cannot run here).

Nodes hold knobs; a Write "renders" its source node's per-frame channels to an EXR the way
Nuke's Write names them (rgba.red -> R, layer.red -> layer.R), 32-bit float, metadata kept.
"""

from pathlib import Path

import numpy as np

from renderflow.core.exr import write_exr
from renderflow_nuke.session import exr_channel

GUI = False
_this = {"node": None, "knob": None}


class Knob:
    def __init__(self, name, value=None):
        self._name, self._value = name, value

    def name(self):
        return self._name

    def value(self):
        return self._value

    def setValue(self, value):  # Nuke's API
        self._value = value


class Enumeration_Knob(Knob):  # Nuke's API
    def __init__(self, name, value=None, values=()):
        super().__init__(name, value)
        self.values = list(values)

    def setValues(self, values):
        self.values = list(values)

    def setValue(self, value):
        if value not in self.values:
            raise ValueError(f"{self._name}: {value!r} is not one of {self.values}")
        self._value = value


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


class Group(Node):
    def __init__(self, name, knobs=(), inputs=(), inner=()):
        super().__init__(name, knobs, inputs)
        self.inner = {node.name(): node for node in inner}

    def node(self, name):
        return self.inner.get(name)


def thisNode():
    return _this["node"]


def thisKnob():
    return _this["knob"]


def execute(write, first, last, incr=1):
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
    call(*args, **(kwargs or {}))


class ProgressTask:
    def __init__(self, name):
        self.progress = 0

    def isCancelled(self):
        return False

    def setProgress(self, value):
        self.progress = value

    def setMessage(self, message):
        pass
