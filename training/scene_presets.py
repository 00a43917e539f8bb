"""Scene presets of `rf-train synth`: what a dataset's scenes, lights, materials and cameras are drawn from.

- `classic`: the first generator (`procedural.random_scene`, suns of a few hundred, 40° orbit
  and dolly cameras); kept so that the recipes of earlier models still rebuild their data.
- `diverse`: the training generator of the bundled model v2: env maps of real-world range
  (`procedural.HDR_ENV_KINDS`), 1-6 objects with slabs, pillars and stacks, textured and metallic
  materials, cameras of 30-60° on orbits, dollies and cranes.
- `ood`: the out-of-distribution test generator, never used for training: other env families
  (`procedural.OOD_ENV_KINDS`: sunsets and hazy suns of 10⁴-10⁵, rigs of 40-200 soft boxes),
  intensities over 10⁻¹-10¹, cylinders and larger crowded objects, saturated glossy materials,
  wide and long lenses on trucking and low orbiting cameras.
- `hard`: what the evaluations found the model failing on (`training/hard_scenes.py`): rooms lit
  through a window or a skylight, fences under low suns, mirrors among fine textures, night.
- `closeup`: `diverse`'s env maps, materials and camera moves, framed so that the objects fill the
  frame (3-7 larger objects, cameras nearer and lower): in `diverse` the ground covers most pixels,
  and the inverse adapter learnt to answer "ground" everywhere.
- `golden`: `diverse` under golden-hour skies (`procedural.GOLDEN_ENV_KINDS`): a red to amber sun
  0.5-10° high, a horizon glowing towards it. `diverse`'s suns stand 6-74° high and `hard`'s 9-17°,
  and the bundled model did harm under the OOD split's sunsets (docs/DECISIONS.md).
Everything is a pure function of the clip seed.
"""

from __future__ import annotations

import colorsys
import copy
import math
from dataclasses import dataclass

import numpy as np

from renderflow.core.io.cameras import look_at
from renderflow.training.hard_scenes import hard_scene
from renderflow.training.procedural import (
    GOLDEN_ENV_KINDS,
    GROUND_SIZE,
    HDR_ENV_KINDS,
    OOD_ENV_KINDS,
    SHAPE_KINDS,
    EnvSpec,
    MaterialSpec,
    SceneSpec,
    ShapeSpec,
    log_uniform,
    random_material,
    random_scene,
)

PRESETS = ("classic", "diverse", "ood", "hard", "closeup", "golden")


@dataclass(frozen=True)
class Framing:
    """How many objects, how large and how spread, and how far and high the cameras are (their
    distance in units of the framing that keeps the objects in view)."""

    objects: tuple[int, int]  # [low, high) of the object count
    scale: tuple[float, float]
    spread: float  # objects stand within this radius of the centre
    camera_radius: tuple[float, float]
    camera_height: tuple[float, float]


DIVERSE_FRAMING = Framing((1, 7), (0.25, 0.7), 1.8, (3.0, 5.5), (0.6, 3.0))
FRAMINGS = {
    "diverse": DIVERSE_FRAMING,
    "closeup": Framing((3, 8), (0.4, 0.85), 1.3, (2.4, 4.0), (0.4, 2.0)),
    "ood": Framing((4, 9), (0.5, 1.0), 2.2, (3.0, 5.5), (0.6, 3.0)),
    "golden": DIVERSE_FRAMING,
}


@dataclass(frozen=True)
class ClipSetup:
    """What one clip renders: the scene, its cameras `[F, 4, 4]` and the vertical fov."""

    scene: SceneSpec
    cameras: np.ndarray
    vertical_fov_degrees: float


def clip_setup(preset: str, seed: int, frames: int, classic_fov_degrees: float = 40.0) -> ClipSetup:
    """The scene and cameras of the clip with `seed` under `preset`."""
    if preset == "classic":
        scene = random_scene(seed)
        cameras = classic_camera_path(np.random.default_rng(seed), frames, np.array(scene.camera_target))
        return ClipSetup(scene, cameras, classic_fov_degrees)
    if preset not in PRESETS:
        raise ValueError(f"unknown scene preset {preset!r}; expected one of {PRESETS}")
    rng = np.random.default_rng([seed, PRESETS.index(preset)])
    if preset == "hard":
        return ClipSetup(*hard_scene(rng, frames))
    ood = preset == "ood"
    framing = FRAMINGS[preset]
    scene = _scene(rng, ood, framing, GOLDEN_ENV_KINDS if preset == "golden" else None)
    fov = float(rng.choice([rng.uniform(20, 28), rng.uniform(60, 75)]) if ood else rng.uniform(30, 60))
    target = np.array(scene.camera_target)
    distance = 1.0
    cameras = _camera_path(copy.deepcopy(rng), frames, target, fov, ood, framing, distance)
    while _camera_inside_a_shape(cameras, scene):  # the same path, further out (no new draws)
        distance *= CAMERA_BACK_OFF
        cameras = _camera_path(copy.deepcopy(rng), frames, target, fov, ood, framing, distance)
    return ClipSetup(scene, cameras, fov)


CAMERA_CLEARANCE = 1.1  # a camera stays this far from a shape's centre, in units of its reach
BOXES = ("cube", "cylinder")  # reach their bounding box's corners (or rims); the rest its faces
CAMERA_BACK_OFF = 1.15  # ... else the whole path moves this much further from its target, until it does


def _camera_inside_a_shape(cameras: np.ndarray, scene: SceneSpec) -> bool:
    """Whether a camera `[F, 4, 4]` comes within CAMERA_CLEARANCE of an object (not the ground): the
    path tracer renders such frames black, seen from inside."""
    eyes = cameras[:, :3, 3]
    for shape in scene.shapes:
        if shape.kind == "ground":
            continue
        extent = np.array(shape.stretch) * shape.scale  # half-extents of its bounding box
        reach = CAMERA_CLEARANCE * float(np.linalg.norm(extent) if shape.kind in BOXES else extent.max())
        if (np.linalg.norm(eyes - np.array(shape.position), axis=1) < reach).any():
            return True
    return False


def classic_camera_path(rng: np.random.Generator, frames: int, target: np.ndarray) -> np.ndarray:
    """Camera-to-world `[F, 4, 4]` on an orbit or a dolly towards `target` (looking at it)."""
    kind = rng.choice(["orbit", "dolly"])
    radius, height = rng.uniform(3.5, 5.5), rng.uniform(1.0, 2.8)
    start, sweep = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
    matrices = []
    for frame in range(frames):
        t = frame / max(frames - 1, 1)
        angle = start + (sweep * t if kind == "orbit" else 0.0)
        distance = radius * (1.0 - 0.3 * t if kind == "dolly" else 1.0)
        position = target + np.array([distance * math.sin(angle), height, distance * math.cos(angle)])
        matrices.append(look_at(position, target))
    return np.stack(matrices)


def _scene(
    rng: np.random.Generator, ood: bool, framing: Framing, env_kinds: tuple[str, ...] | None
) -> SceneSpec:
    """`env_kinds` None: the OOD split's env families if `ood`, else `diverse`'s."""
    shapes = [ShapeSpec("ground", (0.0, 0.0, 0.0), GROUND_SIZE, 0.0, _material(rng, ood, textured=True))]
    count = int(rng.integers(*framing.objects))
    kinds = (*SHAPE_KINDS, "cylinder") if ood else SHAPE_KINDS
    for _ in range(count):
        scale = float(rng.uniform(*framing.scale))
        stretch = (1.0, 1.0, 1.0)
        kind = str(rng.choice(kinds))
        form = rng.random()
        if not ood and kind == "cube" and form < 0.25:  # a thin slab
            stretch = (float(rng.uniform(1, 2.5)), float(rng.uniform(0.05, 0.15)), float(rng.uniform(1, 2)))
        elif not ood and kind == "cube" and form < 0.5:  # a pillar that casts a long shadow
            stretch = (
                float(rng.uniform(0.1, 0.25)),
                float(rng.uniform(1.5, 3.5)),
                float(rng.uniform(0.1, 0.25)),
            )
        elif kind == "cylinder":
            radius_factor = float(rng.uniform(0.3, 0.8))
            stretch = (radius_factor, float(rng.uniform(0.5, 2.0)), radius_factor)
        radius, angle = float(rng.uniform(0, framing.spread)), float(rng.uniform(0, 2 * math.pi))
        base = 0.0
        if len(shapes) > 1 and rng.random() < (0.15 if ood else 0.3):  # stacked on an earlier object
            below = shapes[int(rng.integers(1, len(shapes)))]
            radius, angle = 0.0, 0.0
            base = below.position[1] + below.scale * below.stretch[1]
            position_xz = (below.position[0], below.position[2])
        else:
            position_xz = (radius * math.cos(angle), radius * math.sin(angle))
        half_height = scale * stretch[1]
        position = (position_xz[0], base + half_height, position_xz[1])
        yaw = float(rng.uniform(0, 360))
        shapes.append(ShapeSpec(kind, position, scale, yaw, _material(rng, ood, kind != "torus"), stretch))
    if ood:
        kind = str(rng.choice(OOD_ENV_KINDS))
        intensity = log_uniform(rng, 0.1, 10.0)
    else:
        kind = str(rng.choice(env_kinds or HDR_ENV_KINDS))
        intensity = log_uniform(rng, 0.5, 2.0)
    env = EnvSpec(kind, int(rng.integers(2**31)), intensity)
    target_height = float(rng.uniform(0.3, 1.0))
    return SceneSpec(shapes, env, camera_target=(0.0, target_height, 0.0))


def _material(rng: np.random.Generator, ood: bool, textured: bool) -> MaterialSpec:
    if not ood:
        material = random_material(rng)
        if textured and material.checker_colour is None and rng.random() < 0.35:
            colour_b = tuple(float(c) for c in rng.uniform(0.05, 0.9, 3))
            return MaterialSpec(
                material.base_colour,
                material.roughness,
                material.metallic,
                material.specular,
                colour_b,
                noise_seed=int(rng.integers(2**31)),
            )
        return material
    hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.5, 1.0), rng.uniform(0.3, 0.95)
    colour = tuple(float(c) for c in colorsys.hsv_to_rgb(hue, saturation, value))
    checker = None
    if textured and rng.random() < 0.25:
        checker = tuple(float(c) for c in colorsys.hsv_to_rgb((hue + 0.5) % 1, saturation, value * 0.5))
    return MaterialSpec(
        colour,
        roughness=float(rng.uniform(0.02, 0.5)),
        metallic=float(rng.choice([0.0, 1.0])),
        specular=float(rng.uniform(0.5, 1.0)),
        checker_colour=checker,
        checker_scale=float(rng.uniform(8, 16)),
    )


def _camera_path(
    rng: np.random.Generator,
    frames: int,
    target: np.ndarray,
    fov: float,
    ood: bool,
    framing: Framing,
    distance_scale: float,
) -> np.ndarray:
    """Orbits, dollies and cranes (diverse, closeup); trucks and low orbits (ood); distance scaled
    to the fov and by `distance_scale`."""
    kind = str(rng.choice(["truck", "low_orbit"] if ood else ["orbit", "dolly", "crane"]))
    in_frame = math.tan(math.radians(20)) / math.tan(math.radians(fov) / 2)  # keep the objects in frame
    radius = rng.uniform(*framing.camera_radius) * in_frame * distance_scale
    height = rng.uniform(0.3, 0.8) if kind == "low_orbit" else rng.uniform(*framing.camera_height)
    start, sweep = rng.uniform(0, 2 * math.pi), rng.uniform(0.2, 0.6) * rng.choice([-1, 1])
    side = np.array([math.cos(start), 0.0, -math.sin(start)])
    matrices = []
    for frame in range(frames):
        t = frame / max(frames - 1, 1)
        angle = start + (sweep * t if kind in ("orbit", "low_orbit") else 0.0)
        distance = radius * (1.0 - 0.3 * t if kind == "dolly" else 1.0)
        lift = height + (1.5 * t if kind == "crane" else 0.0)
        position = target + np.array([distance * math.sin(angle), lift, distance * math.cos(angle)])
        look = target
        if kind == "truck":  # move sideways, looking along a fixed direction
            offset = (t - 0.5) * 1.5 * side
            position, look = position + offset, target + offset
        matrices.append(look_at(position, look))
    return np.stack(matrices)
