"""The `hard` preset of `rf-train synth`: the scenes the model v2/v3 evaluations found it failing on.

Five families, one per clip (`HARD_FAMILIES`):
- `window_room`: a closed room lit only through one window in the wall that faces the sun (or an
  overcast sky): a sun patch on the floor, colour bled from the walls, no sky anywhere else;
- `skylight_room`: the same room with an opening in the ceiling instead;
- `fence`: a fence of thin posts and rails before a few objects under a low sun (elevation 9-17°,
  above the OOD split's sunsets): long striped shadows across textured ground;
- `mirrors`: mirror and brushed metals among checkered, high-frequency surroundings;
- `night`: a dark sky with one to five small bright lamps.
Floors and walls carry fine checkers (tiles) or value noise; cameras run slow or fast. Walls, posts
and rails are boxes (`ShapeSpec` kind `cube`, `stretch` = half extents). A pure function of the rng.
"""

from __future__ import annotations

import math

import numpy as np

from renderflow.core.io.cameras import look_at
from renderflow.core.io.envmap import latlong_directions
from renderflow.training.procedural import (
    GROUND_SIZE,
    SHAPE_KINDS,
    EnvSpec,
    MaterialSpec,
    SceneSpec,
    ShapeSpec,
    log_uniform,
    make_envmap,
)

HARD_FAMILIES = ("window_room", "skylight_room", "fence", "mirrors", "night")
WALL = 0.08  # half the thickness of walls, ceiling and the room's slabs
SLOW_SWEEP, FAST_SWEEP = (0.05, 0.2), (0.6, 1.2)  # radians of orbit over a clip


def hard_scene(rng: np.random.Generator, frames: int) -> tuple[SceneSpec, np.ndarray, float]:
    """A scene of one of HARD_FAMILIES, its cameras `[F, 4, 4]` and vertical fov."""
    family = str(rng.choice(HARD_FAMILIES))
    if family in ("window_room", "skylight_room"):
        return _room(rng, frames, skylight=family == "skylight_room")
    if family == "fence":
        return _fence(rng, frames)
    return _open_scene(rng, frames, night=family == "night")


def _sweep(rng: np.random.Generator) -> float:
    low, high = SLOW_SWEEP if rng.random() < 0.5 else FAST_SWEEP
    return float(rng.uniform(low, high) * rng.choice([-1, 1]))


def _env(rng: np.random.Generator, kind: str) -> EnvSpec:
    return EnvSpec(kind, int(rng.integers(2**31)), log_uniform(rng, 0.5, 2.0))


Vector = tuple[float, float, float]


def _box(centre: Vector, half: Vector, material: MaterialSpec) -> ShapeSpec:
    """A box (Mitsuba's cube) at `centre` with half extents `half`."""
    return ShapeSpec("cube", centre, 1.0, 0.0, material, half)


def _fine_texture(rng: np.random.Generator, light: bool = False) -> MaterialSpec:
    """Tiles (a fine checker) or value noise between two colours; lighter colours for walls."""
    low = 0.35 if light else 0.05
    colour_a = tuple(float(c) for c in rng.uniform(low, 0.9, 3))
    colour_b = tuple(float(c) for c in rng.uniform(low * 0.5, 0.8, 3))
    roughness = float(rng.uniform(0.3, 1.0))
    if rng.random() < 0.6:
        return MaterialSpec(colour_a, roughness, 0.0, 0.5, colour_b, checker_scale=float(rng.uniform(16, 48)))
    return MaterialSpec(colour_a, roughness, 0.0, 0.5, colour_b, noise_seed=int(rng.integers(2**31)))


def _object_material(rng: np.random.Generator, mirror_share: float) -> MaterialSpec:
    colour = tuple(float(c) for c in rng.uniform(0.05, 0.95, 3))
    if rng.random() < mirror_share:  # a mirror or brushed metal
        return MaterialSpec(colour, float(rng.uniform(0.02, 0.25)), 1.0, 0.5)
    checker = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3)) if rng.random() < 0.3 else None
    roughness, specular = float(rng.uniform(0.05, 1.0)), float(rng.uniform(0.2, 0.8))
    return MaterialSpec(colour, roughness, 0.0, specular, checker, float(rng.uniform(4, 16)))


def _objects(
    rng: np.random.Generator, count: int, extent: float, mirror_share: float, centre_z: float = 0.0
) -> list[ShapeSpec]:
    """`count` objects resting on the ground within `extent` of (0, `centre_z`)."""
    shapes = []
    for _ in range(count):
        scale = float(rng.uniform(0.2, 0.5))
        x, z = (float(v) for v in rng.uniform(-extent, extent, 2))
        z += centre_z
        kind = str(rng.choice(SHAPE_KINDS))
        material = _object_material(rng, mirror_share)
        shapes.append(ShapeSpec(kind, (x, scale, z), scale, float(rng.uniform(0, 360)), material))
    return shapes


def _sun_direction(env: EnvSpec) -> np.ndarray:
    """The direction of the env map's brightest texel (its sun), world space."""
    radiance = make_envmap(env, 64, 128).sum(-1)
    row, column = np.unravel_index(int(np.argmax(radiance)), radiance.shape)
    return latlong_directions(64, 128)[row, column]


def _room(rng: np.random.Generator, frames: int, skylight: bool) -> tuple[SceneSpec, np.ndarray, float]:
    half, height = float(rng.uniform(1.8, 2.8)), float(rng.uniform(2.4, 3.2))
    kind = "sun_sky" if rng.random() < 0.75 else "overcast"
    env = _env(rng, kind)
    wall = _fine_texture(rng, light=True)
    shapes = [ShapeSpec("ground", (0.0, 0.0, 0.0), GROUND_SIZE, 0.0, _fine_texture(rng))]
    outer = half + WALL
    sun = _sun_direction(env)
    window_axis = 0 if abs(sun[0]) > abs(sun[2]) else 2  # the wall that faces the sun's azimuth
    window_side = float(np.sign(sun[window_axis]) or 1.0)
    for axis in (0, 2):
        for side in (-1.0, 1.0):
            if not skylight and axis == window_axis and side == window_side:
                shapes += _wall_with_window(rng, axis, side * half, half, height, wall)
                continue
            centre = [0.0, height / 2, 0.0]
            centre[axis] = side * half
            extents = [outer, height / 2, outer]
            extents[axis] = WALL
            shapes.append(_box((centre[0], centre[1], centre[2]), (extents[0], extents[1], extents[2]), wall))
    shapes += _ceiling(rng, half, height, wall, opening=skylight)
    shapes += _objects(rng, int(rng.integers(2, 5)), half - 0.6, mirror_share=0.3)
    fov = float(rng.uniform(55, 75))
    radius, eye_height = float(rng.uniform(0.3, 0.6)) * half, float(rng.uniform(1.1, 1.7))
    start, sweep = float(rng.uniform(0, 2 * math.pi)), _sweep(rng) * 0.5
    cameras = []
    for frame in range(frames):
        angle = start + sweep * frame / max(frames - 1, 1)
        position = np.array([radius * math.sin(angle), eye_height, radius * math.cos(angle)])
        target = np.array([-0.8 * half * math.sin(angle), 0.7, -0.8 * half * math.cos(angle)])
        cameras.append(look_at(position, target))
    family = "skylight_room" if skylight else "window_room"
    return SceneSpec(shapes, env, camera_target=(0.0, 0.7, 0.0), family=family), np.stack(cameras), fov


def _wall_with_window(
    rng: np.random.Generator, axis: int, position: float, half: float, height: float, wall: MaterialSpec
) -> list[ShapeSpec]:
    """The wall at `position` on `axis` (0: x, 2: z) as four slabs around a window opening."""
    sill, top = float(rng.uniform(0.5, 1.0)), float(rng.uniform(1.7, height - 0.3))
    width = float(rng.uniform(0.25, 0.5)) * half  # half the window's width: it stays inside the wall
    offset = float(rng.uniform(-0.3, 0.3)) * half
    outer = half + WALL
    along = 2 - axis  # the wall runs along the other horizontal axis
    pieces = [  # (centre along the wall, half length along it, centre height, half height)
        (0.0, outer, sill / 2, sill / 2),
        (0.0, outer, (top + height) / 2, (height - top) / 2),
        ((-outer + offset - width) / 2, (offset - width + outer) / 2, (sill + top) / 2, (top - sill) / 2),
        ((offset + width + outer) / 2, (outer - offset - width) / 2, (sill + top) / 2, (top - sill) / 2),
    ]
    slabs = []
    for centre_along, half_along, centre_height, half_height in pieces:
        centre, extents = [0.0, centre_height, 0.0], [0.0, half_height, 0.0]
        centre[axis], extents[axis] = position, WALL
        centre[along], extents[along] = centre_along, half_along
        slabs.append(_box((centre[0], centre[1], centre[2]), (extents[0], extents[1], extents[2]), wall))
    return slabs


def _ceiling(
    rng: np.random.Generator, half: float, height: float, wall: MaterialSpec, opening: bool
) -> list[ShapeSpec]:
    """The ceiling: one slab, or four around a square opening (a skylight)."""
    outer, y = half + WALL, height + WALL
    if not opening:
        return [_box((0.0, y, 0.0), (outer, WALL, outer), wall)]
    size = float(rng.uniform(0.25, 0.5)) * half
    x, z = (float(v) for v in rng.uniform(-0.3, 0.3, 2) * half)
    return [
        _box((0.0, y, (-outer + z - size) / 2), (outer, WALL, (z - size + outer) / 2), wall),
        _box((0.0, y, (z + size + outer) / 2), (outer, WALL, (outer - z - size) / 2), wall),
        _box(((-outer + x - size) / 2, y, z), ((x - size + outer) / 2, WALL, size), wall),
        _box(((x + size + outer) / 2, y, z), ((outer - x - size) / 2, WALL, size), wall),
    ]


def _fence(rng: np.random.Generator, frames: int) -> tuple[SceneSpec, np.ndarray, float]:
    env = _env(rng, "low_sun")
    shapes = [ShapeSpec("ground", (0.0, 0.0, 0.0), GROUND_SIZE, 0.0, _fine_texture(rng))]
    length, fence_height = float(rng.uniform(1.5, 2.5)), float(rng.uniform(0.6, 1.2))
    spacing, post = float(rng.uniform(0.15, 0.35)), float(rng.uniform(0.02, 0.05))
    z, material = float(rng.uniform(0.6, 1.2)), _object_material(rng, mirror_share=0.0)
    for x in np.arange(-length, length + 1e-6, spacing):
        shapes.append(_box((float(x), fence_height / 2, z), (post, fence_height / 2, post), material))
    for rail_height in rng.uniform(0.2, 0.9, int(rng.integers(1, 3))) * fence_height:
        shapes.append(_box((0.0, float(rail_height), z), (length, 0.02, 0.02), material))
    shapes += _objects(rng, int(rng.integers(2, 5)), 1.0, mirror_share=0.2, centre_z=-1.0)  # behind it
    fov = float(rng.uniform(35, 60))
    scene = SceneSpec(shapes, env, camera_target=(0.0, 0.5, 0.0), family="fence")
    return scene, _orbit(rng, frames, fov), fov


def _open_scene(rng: np.random.Generator, frames: int, night: bool) -> tuple[SceneSpec, np.ndarray, float]:
    """Mirrors among structured surroundings, or a night scene."""
    kind = "night" if night else str(rng.choice(["sun_sky", "studio_many", "interior"]))
    env = _env(rng, kind)
    shapes = [ShapeSpec("ground", (0.0, 0.0, 0.0), GROUND_SIZE, 0.0, _fine_texture(rng))]
    shapes += _objects(rng, int(rng.integers(3, 7)), 1.6, mirror_share=0.25 if night else 0.6)
    fov = float(rng.uniform(35, 60))
    scene = SceneSpec(shapes, env, camera_target=(0.0, 0.5, 0.0), family="night" if night else "mirrors")
    return scene, _orbit(rng, frames, fov), fov


def _orbit(rng: np.random.Generator, frames: int, fov: float) -> np.ndarray:
    """An orbit around the origin, slow or fast, its distance scaled to the fov."""
    framing = math.tan(math.radians(20)) / math.tan(math.radians(fov) / 2)
    radius, height = float(rng.uniform(3.0, 4.5)) * framing, float(rng.uniform(0.5, 2.5))
    start, sweep = float(rng.uniform(0, 2 * math.pi)), _sweep(rng)
    target = np.array([0.0, 0.5, 0.0])
    cameras = []
    for frame in range(frames):
        angle = start + sweep * frame / max(frames - 1, 1)
        position = target + np.array([radius * math.sin(angle), height, radius * math.cos(angle)])
        cameras.append(look_at(position, target))
    return np.stack(cameras)
