"""Camera tracks from the files a shot comes with: camera.json, Nuke .chan and USD (docs/CAMERAS.md).

Each reader returns a `CameraTrack` (camera-to-world `[F, 4, 4]` in column-vector layout, our
camera axes: -Z forward, +Y up; world +Y up; vertical fov per frame). A horizontal fov or a
focal length with an aperture becomes vertical through the image's aspect (width / height), the
horizontal fit Nuke, Maya and Houdini use.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from renderflow.core.io.cameras import CameraTrack

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
# Z-up worlds (USD stages with upAxis Z) turned into our Y-up world: (x, y, z) -> (x, z, -y).
Y_UP_FROM_Z_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])


class CameraFileError(ValueError):
    """A camera file that cannot be used; the message names the file, the entry and what was expected."""


def read_camera(
    path: Path, frames: Sequence[int] | None = None, aspect: float | None = None, prim: str | None = None
) -> CameraTrack:
    """The track in a camera.json, .chan or USD file; `frames` are the shot's (USD samples them),
    `aspect` the image's width / height (for horizontal fovs), `prim` a USD camera's path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise CameraFileError(f"{path}: no such camera file")
    if suffix == ".json":
        return read_camera_json(path, frames, aspect)
    if suffix == ".chan":
        return read_chan(path)
    if suffix in USD_SUFFIXES:
        if frames is None:
            raise CameraFileError(f"{path}: a USD camera is sampled at the shot's frames; none were given")
        return read_usd_camera(path, frames, aspect, prim)
    raise CameraFileError(
        f"{path}: unknown camera file type; expected .json, .chan or {', '.join(USD_SUFFIXES)}"
    )


# -- camera.json ---------------------------------------------------------------------------------
def read_camera_json(
    path: Path, frames: Sequence[int] | None = None, aspect: float | None = None
) -> CameraTrack:
    """camera.json: `{"frames": [{"frame", a matrix, a fov}, ...]}`, or one static camera `{a matrix, a fov}`.

    A matrix: `camera_to_world` or `world_to_camera` (or both, inverses of each other), 4x4 nested or 16
    flat, column-vector layout (translation in the last column) unless `"layout": "row"` (Imath,
    translation in the last row). A fov (optional, per frame or once at the top):
    `vertical_fov_degrees`, `horizontal_fov_degrees`, `fov_deg` with `fov_axis` ("x" or "y"), or
    `focal_length` with `horizontal_aperture` (same units, e.g. mm). Other keys are ignored.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CameraFileError(f"{path}: not readable JSON ({error})") from error
    return camera_json_track(data, str(path), frames, aspect)


# every key of the fov forms `_json_fov` reads
FOV_KEYS: tuple[str, ...] = ("vertical_fov_degrees", "horizontal_fov_degrees", "fov_deg", "fov_axis")
FOV_KEYS += ("focal_length", "horizontal_aperture")


def camera_json_track(
    data: object, path: str, frames: Sequence[int] | None = None, aspect: float | None = None
) -> CameraTrack:
    """A camera.json object already parsed (a daemon request's `params.camera`); `path` names it in errors."""
    if not isinstance(data, dict):
        raise CameraFileError(f"{path}: expected a JSON object with 'frames' or one camera")
    layout = str(data.get("layout", "column"))
    if "frames" not in data:  # one camera for every frame of the shot
        if frames is None:
            raise CameraFileError(f"{path}: a static camera needs the shot's frames")
        matrix, fov = _json_camera(data, layout, aspect, f"{path}")
        return CameraTrack(list(frames), np.stack([matrix] * len(frames)), [fov] * len(frames))
    entries = data["frames"]
    if not isinstance(entries, list) or not entries:
        raise CameraFileError(f"{path}: 'frames' must be a non-empty list of cameras")
    numbers, matrices, fovs = [], [], []
    for index, entry in enumerate(entries):
        where = f"{path}: frames[{index}]"
        if not isinstance(entry, dict) or "frame" not in entry:
            raise CameraFileError(f"{where}: expected an object with 'frame', a matrix and a fov")
        try:
            numbers.append(int(entry["frame"]))
        except (TypeError, ValueError) as error:
            raise CameraFileError(f"{where}: 'frame' must be an integer, got {entry['frame']!r}") from error
        # a fov given once at the top applies to every frame that has none of its own
        shared = {key: data[key] for key in FOV_KEYS if key in data and not any(k in entry for k in FOV_KEYS)}
        matrix, fov = _json_camera(entry | shared, str(entry.get("layout", layout)), aspect, where)
        matrices.append(matrix)
        fovs.append(fov)
    return CameraTrack(numbers, np.stack(matrices), fovs)


def _json_camera(
    entry: dict[str, Any], layout: str, aspect: float | None, where: str
) -> tuple[np.ndarray, float]:
    if layout not in ("column", "row"):
        raise CameraFileError(f"{where}: layout {layout!r}; expected 'column' or 'row'")
    keys = [key for key in ("camera_to_world", "world_to_camera") if key in entry]
    if not keys:
        raise CameraFileError(f"{where}: expected 'camera_to_world' or 'world_to_camera' (4x4)")
    matrices = [_json_matrix(entry, key, layout, where) for key in keys]
    if len(matrices) == 2:  # both given: they must be inverses of each other
        if not np.allclose(matrices[0] @ matrices[1], np.eye(4), atol=1e-4):
            raise CameraFileError(
                f"{where}: 'camera_to_world' and 'world_to_camera' are not inverses of each other; "
                "give one of them, or both consistent"
            )
    elif keys[0] == "world_to_camera":
        matrices[0] = np.linalg.inv(matrices[0])
    matrix = matrices[0]
    return matrix, _json_fov(entry, aspect, where)


def _json_matrix(entry: dict[str, Any], key: str, layout: str, where: str) -> np.ndarray:
    """`entry[key]` as a 4x4 affine matrix in column-vector layout."""
    try:
        matrix: np.ndarray = np.asarray(entry[key], dtype=np.float64).reshape(4, 4)
    except (TypeError, ValueError) as error:
        raise CameraFileError(f"{where}: '{key}' must be 4x4 or 16 numbers ({error})") from error
    if not np.isfinite(matrix).all():
        raise CameraFileError(f"{where}: '{key}' has NaN or inf")
    if layout == "row":
        matrix = matrix.T
    if not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-6):
        hint = ' (translation in the last row: add "layout": "row")' if layout == "column" else ""
        raise CameraFileError(f"{where}: '{key}' is not an affine 4x4{hint}")
    return matrix


def _json_fov(entry: dict[str, Any], aspect: float | None, where: str) -> float:
    """The vertical fov in degrees from any of the fov forms; NaN when the entry has none."""
    try:
        if "vertical_fov_degrees" in entry:
            return _checked_fov(float(entry["vertical_fov_degrees"]), where)
        if "horizontal_fov_degrees" in entry:
            return vertical_from_horizontal(
                _checked_fov(float(entry["horizontal_fov_degrees"]), where), aspect, where
            )
        if "fov_deg" in entry:  # other tools' form: an angle and the axis it spans ("x" or "y")
            axis = str(entry.get("fov_axis", "y")).lower()
            if axis not in ("x", "y"):
                raise CameraFileError(f"{where}: fov_axis {axis!r}; expected 'x' (horizontal) or 'y'")
            degrees = _checked_fov(float(entry["fov_deg"]), where)
            return degrees if axis == "y" else vertical_from_horizontal(degrees, aspect, where)
        if "focal_length" in entry:
            focal, aperture = float(entry["focal_length"]), float(entry["horizontal_aperture"])
            if focal <= 0 or aperture <= 0:
                raise CameraFileError(f"{where}: focal_length and horizontal_aperture must be positive")
            return vertical_from_horizontal(
                math.degrees(2 * math.atan(aperture / (2 * focal))), aspect, where
            )
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, CameraFileError):
            raise
        raise CameraFileError(
            f"{where}: unreadable fov ({error}); give vertical_fov_degrees, horizontal_fov_degrees, "
            "fov_deg with fov_axis, or focal_length with horizontal_aperture"
        ) from error
    return math.nan


def _checked_fov(degrees: float, where: str) -> float:
    if not 0 < degrees < 180:
        raise CameraFileError(f"{where}: a field of view must be between 0 and 180 degrees, got {degrees}")
    return degrees


def vertical_from_horizontal(horizontal_degrees: float, aspect: float | None, where: str) -> float:
    if aspect is None:
        raise CameraFileError(f"{where}: a horizontal fov needs the image's aspect to become vertical")
    half = math.tan(math.radians(horizontal_degrees) / 2) / aspect
    return math.degrees(2 * math.atan(half))


def track_to_json(track: CameraTrack) -> dict[str, object]:
    """Our camera.json object for `track` (column layout; the vertical fov where the track has one)."""
    rows = zip(track.frames, track.camera_to_world, track.vertical_fov_degrees, strict=True)
    return {
        "frames": [
            {"frame": frame, "camera_to_world": matrix.tolist()}
            | ({"vertical_fov_degrees": fov} if math.isfinite(fov) else {})
            for frame, matrix, fov in rows
        ]
    }


def write_camera_json(path: Path, track: CameraTrack) -> None:
    """Our camera.json, written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(track_to_json(track), indent=1))
    os.replace(tmp, path)


# -- Nuke .chan ----------------------------------------------------------------------------------
def euler_rotation(degrees: Sequence[float], order: str = "ZXY") -> np.ndarray:
    """`[3, 3]` rotation from Euler angles (x, y, z) in degrees applied in `order` (Nuke's ZXY: Z first)."""
    x, y, z = (math.radians(value) for value in degrees)
    axes = {
        "X": np.array([[1, 0, 0], [0, math.cos(x), -math.sin(x)], [0, math.sin(x), math.cos(x)]]),
        "Y": np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]]),
        "Z": np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]]),
    }
    rotation = np.eye(3)
    for axis in order:  # the first axis applies first: it sits rightmost
        rotation = axes[axis] @ rotation
    return rotation


def read_chan(path: Path, rotation_order: str = "ZXY") -> CameraTrack:
    """A Nuke .chan file: per line `frame tx ty tz rx ry rz [vertical_fov]`, degrees, Nuke's ZXY order."""
    numbers, matrices, fovs = [], [], []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise CameraFileError(f"{path}: cannot read ({error})") from error
    for line_number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            values = [float(field) for field in fields]
        except ValueError as error:
            raise CameraFileError(f"{path}:{line_number}: not numbers ({line.strip()!r})") from error
        if len(values) not in (7, 8) or not all(math.isfinite(v) for v in values):
            raise CameraFileError(
                f"{path}:{line_number}: expected 7 or 8 finite columns (frame tx ty tz rx ry rz [vfov]), "
                f"got {len(values)}"
            )
        matrix = np.eye(4)
        matrix[:3, :3] = euler_rotation(values[4:7], rotation_order)
        matrix[:3, 3] = values[1:4]
        numbers.append(round(values[0]))
        matrices.append(matrix)
        fovs.append(_checked_fov(values[7], f"{path}:{line_number}") if len(values) == 8 else math.nan)
    if not numbers:
        raise CameraFileError(f"{path}: no camera lines")
    return CameraTrack(numbers, np.stack(matrices), fovs)


# -- USD (usd-core) ------------------------------------------------------------------------------
def read_usd_camera(
    path: Path, frames: Sequence[int], aspect: float | None = None, prim: str | None = None
) -> CameraTrack:
    """A UsdGeom.Camera sampled at `frames` (time codes): world transform and horizontal aperture fov."""
    from pxr import Usd, UsdGeom

    stage = Usd.Stage.Open(str(path))
    if stage is None:
        raise CameraFileError(f"{path}: USD cannot open the file")
    cameras = [found for found in stage.Traverse() if found.IsA(UsdGeom.Camera)]
    if prim is not None:
        cameras = [found for found in cameras if str(found.GetPath()) == prim]
        if not cameras:
            raise CameraFileError(f"{path}: no camera at {prim}")
    if len(cameras) != 1:
        names = ", ".join(str(found.GetPath()) for found in cameras) or "none"
        raise CameraFileError(f"{path}: expected one camera, found {names}: name one (--camera-prim)")
    camera = UsdGeom.Camera(cameras[0])
    up_fix = Y_UP_FROM_Z_UP if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z else np.eye(4)
    matrices, fovs = [], []
    for frame in frames:
        time = Usd.TimeCode(frame)
        world = np.array(camera.ComputeLocalToWorldTransform(time), dtype=np.float64).T  # USD: row vectors
        matrices.append(up_fix @ world)
        focal = float(camera.GetFocalLengthAttr().Get(time))
        aperture = float(camera.GetHorizontalApertureAttr().Get(time))
        horizontal = math.degrees(2 * math.atan(aperture / (2 * focal)))
        fovs.append(vertical_from_horizontal(horizontal, aspect, f"{path}: {cameras[0].GetPath()}"))
    return CameraTrack(list(frames), np.stack(matrices), fovs)
