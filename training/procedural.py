"""Procedural scenes and env maps for synthetic training data, deterministic by seed.

A scene is a ground plane and a few random objects (Mitsuba's sphere and cube, plus a
torus and a displaced sphere generated here as meshes) with principled (Disney) materials: random
base colour (constant or checkered), roughness, metallic and specular. Light comes only from an
HDR env map: a sky with a sun disk, a studio with soft boxes, or coloured areas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from renderflow.core.io.envmap import latlong_directions

SHAPE_KINDS = ("sphere", "cube", "torus", "displaced_sphere")
ENV_KINDS = ("sky", "studio", "coloured")
# Env families with real-world dynamic range (docs/DATA.md): the `diverse` preset trains on the
# first six, the `ood` preset evaluates on the last three, which no training preset draws.
HDR_ENV_KINDS = ("sun_sky", "overcast", "interior", "studio_many", "night", "coloured")
OOD_ENV_KINDS = ("sunset", "studio_rig", "hazy_sun")
HARD_ENV_KINDS = ("low_sun",)  # the `hard` preset's own (training/hard_scenes.py)
GOLDEN_ENV_KINDS = ("golden_hour",)  # the `golden` preset's own: suns at the horizon
GROUND_SIZE = 8.0


@dataclass(frozen=True)
class MaterialSpec:
    """Disney BRDF parameters; `checker_colour` set means a checkered base colour (scale `checker_scale`)."""

    base_colour: tuple[float, float, float]
    roughness: float
    metallic: float
    specular: float
    checker_colour: tuple[float, float, float] | None = None
    checker_scale: float = 4.0
    noise_seed: int | None = None  # set: a value-noise texture between base and checker colour


@dataclass(frozen=True)
class ShapeSpec:
    kind: str  # one of SHAPE_KINDS, "cylinder", or "ground"
    position: tuple[float, float, float]  # the centre of the shape's bounding box
    scale: float
    yaw_degrees: float
    material: MaterialSpec
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-axis factors on `scale` (slabs, pillars)


@dataclass(frozen=True)
class EnvSpec:
    kind: str  # one of ENV_KINDS
    seed: int
    intensity: float = 1.0


@dataclass(frozen=True)
class SceneSpec:
    shapes: list[ShapeSpec]
    env: EnvSpec
    camera_target: tuple[float, float, float] = (0.0, 0.6, 0.0)
    extras: dict[str, float] = field(default_factory=dict)
    family: str = ""  # the preset's scene family, where it has several (training/hard_scenes.py)


def random_material(rng: np.random.Generator) -> MaterialSpec:
    colour = _colour(rng)
    checker = _colour(rng) if rng.random() < 0.3 else None
    metallic = float(rng.choice([0.0, 0.0, 1.0, rng.uniform(0, 1)]))
    return MaterialSpec(
        base_colour=colour,
        roughness=float(rng.uniform(0.05, 1.0)),
        metallic=metallic,
        specular=float(rng.uniform(0.2, 0.8)),
        checker_colour=checker,
        checker_scale=float(rng.uniform(2, 8)),
    )


def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    red, green, blue = (float(c) for c in rng.uniform(0.05, 0.9, 3))
    return red, green, blue


def random_scene(seed: int, max_objects: int = 4) -> SceneSpec:
    """A ground plane and 1..max_objects random objects resting on it, and a random env map."""
    rng = np.random.default_rng(seed)
    shapes = [ShapeSpec("ground", (0.0, 0.0, 0.0), GROUND_SIZE, 0.0, random_material(rng))]
    for _ in range(int(rng.integers(1, max_objects + 1))):
        scale = float(rng.uniform(0.3, 0.7))
        radius, angle = float(rng.uniform(0, 1.6)), float(rng.uniform(0, 2 * math.pi))
        position = (radius * math.cos(angle), scale, radius * math.sin(angle))
        kind = str(rng.choice(SHAPE_KINDS))
        shapes.append(ShapeSpec(kind, position, scale, float(rng.uniform(0, 360)), random_material(rng)))
    env = EnvSpec(str(rng.choice(ENV_KINDS)), int(rng.integers(2**31)), float(rng.uniform(0.6, 1.6)))
    return SceneSpec(shapes, env)


# --- env maps -----------------------------------------------------------------------------------


def make_envmap(spec: EnvSpec, height: int = 128, width: int = 256) -> np.ndarray:
    """A world-space lat-long HDR env map `[height, width, 3]` (values far above 1 where a light is)."""
    rng = np.random.default_rng(spec.seed)
    directions = latlong_directions(height, width)
    up = directions[..., 1:2]
    if spec.kind == "sky":
        zenith = np.array([0.25, 0.45, 1.0]) * rng.uniform(0.6, 1.2)
        horizon = np.array([0.9, 0.9, 1.0]) * rng.uniform(0.6, 1.2)
        sky = np.where(up > 0, horizon + (zenith - horizon) * np.sqrt(np.clip(up, 0, 1)), [0.2, 0.17, 0.14])
        sun = _random_direction(rng, min_elevation=0.15)
        radiance = sky + _lobe(
            directions, sun, cos_radius=math.cos(math.radians(2.5)), power=rng.uniform(200, 800)
        )
    elif spec.kind == "studio":
        radiance = np.broadcast_to(np.array([0.05, 0.05, 0.05]), directions.shape).copy()
        for _ in range(int(rng.integers(2, 5))):
            box = _random_direction(rng, min_elevation=0.0)
            warmth = rng.uniform(0.8, 1.0, 3)
            radiance = (
                radiance
                + _lobe(directions, box, math.cos(math.radians(rng.uniform(8, 20))), rng.uniform(5, 30))
                * warmth
            )
    elif spec.kind == "coloured":
        radiance = np.broadcast_to(np.array([0.1, 0.1, 0.1]), directions.shape).copy()
        for _ in range(int(rng.integers(2, 5))):
            area = _random_direction(rng, min_elevation=-0.2)
            colour = rng.uniform(0, 1, 3)
            colour = colour / colour.max()
            radiance = (
                radiance
                + _lobe(directions, area, math.cos(math.radians(rng.uniform(20, 50))), rng.uniform(2, 8))
                * colour
            )
    elif spec.kind in HDR_ENV_KINDS + OOD_ENV_KINDS + HARD_ENV_KINDS:
        radiance = _hdr_envmap(spec.kind, rng, directions)
    elif spec.kind in GOLDEN_ENV_KINDS:
        radiance = _golden_hour(rng, directions)
    else:
        raise ValueError(
            f"unknown env kind {spec.kind!r}; expected one of "
            f"{ENV_KINDS + HDR_ENV_KINDS + OOD_ENV_KINDS + HARD_ENV_KINDS + GOLDEN_ENV_KINDS}"
        )
    return (radiance * spec.intensity).astype(np.float32)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _hdr_envmap(kind: str, rng: np.random.Generator, directions: np.ndarray) -> np.ndarray:
    """The real-world-range families: a sky of about 1 and lights 10-10⁵ times brighter."""
    up = directions[..., 1:2]
    ground = np.array([0.25, 0.22, 0.18]) * rng.uniform(0.3, 1.0)
    if kind in ("sun_sky", "hazy_sun", "sunset", "low_sun"):
        if kind == "sunset":
            zenith, horizon = np.array([0.25, 0.2, 0.5]), np.array([1.2, 0.55, 0.25])
            sun = _random_direction(rng, min_elevation=0.02, max_elevation=0.14)
            sun_colour, power = np.array([1.0, 0.55, 0.25]), log_uniform(rng, 1e4, 1e5)
        elif kind == "low_sun":  # long shadows, still above the sunsets of the OOD split
            zenith, horizon = np.array([0.2, 0.4, 1.0]), np.array([0.95, 0.85, 0.75])
            sun = _random_direction(rng, min_elevation=0.15, max_elevation=0.3)
            sun_colour, power = np.array([1.0, 0.85, 0.7]), log_uniform(rng, 1e3, 3e4)
        elif kind == "hazy_sun":
            zenith, horizon = np.array([0.55, 0.6, 0.75]), np.array([1.0, 1.0, 0.95])
            sun = _random_direction(rng, min_elevation=0.3, max_elevation=1.3)
            sun_colour, power = np.array([1.0, 0.95, 0.85]), log_uniform(rng, 3e4, 1e5)
        else:
            zenith, horizon = np.array([0.2, 0.4, 1.0]), np.array([0.85, 0.9, 1.0])
            sun = _random_direction(rng, min_elevation=0.1, max_elevation=1.3)
            sun_colour, power = np.array([1.0, 0.93, 0.85]), log_uniform(rng, 1e3, 3e4)
        sky = horizon + (zenith - horizon) * np.sqrt(np.clip(up, 0, 1))
        radiance = np.where(up > 0, sky * rng.uniform(0.5, 1.5), ground)
        radius = math.cos(math.radians(rng.uniform(1.5, 3.0)))
        return radiance + _lobe(directions, sun, radius, power) * sun_colour
    if kind == "overcast":
        brightness = rng.uniform(0.5, 2.0)
        sky = brightness * (0.4 + 0.6 * np.clip(up, 0, 1)) * np.array([0.95, 0.97, 1.0])
        return np.where(up > 0, sky, ground)
    if kind == "interior":
        radiance = np.broadcast_to(
            np.array([0.08, 0.07, 0.06]) * rng.uniform(0.5, 2), directions.shape
        ).copy()
        for _ in range(int(rng.integers(1, 4))):  # windows: wide, bright, near the horizon
            window = _random_direction(rng, min_elevation=0.0, max_elevation=0.5)
            radius = math.cos(math.radians(rng.uniform(10, 25)))
            radiance = radiance + _lobe(directions, window, radius, log_uniform(rng, 10, 200)) * np.array(
                [0.9, 0.95, 1.0]
            )
        lamp = _random_direction(rng, min_elevation=1.2, max_elevation=1.55)
        return radiance + _lobe(directions, lamp, math.cos(math.radians(4)), log_uniform(rng, 20, 500))
    if kind in ("studio_many", "studio_rig"):
        count = int(rng.integers(5, 61)) if kind == "studio_many" else int(rng.integers(40, 201))
        radiance = np.broadcast_to(np.array([0.03, 0.03, 0.03]), directions.shape).copy()
        radiance = np.where(up < 0, ground * rng.uniform(0.2, 1.0), radiance)
        for _ in range(count):
            box = _random_direction(rng, min_elevation=-0.1, max_elevation=1.5)
            size = rng.uniform(3, 10) if kind == "studio_many" else rng.uniform(1.5, 5)
            warmth = rng.uniform(0.75, 1.0, 3)
            radiance = (
                radiance
                + _lobe(
                    directions,
                    box,
                    math.cos(math.radians(size)),
                    log_uniform(rng, 5, 300) / math.sqrt(count),
                )
                * warmth
            )
        return radiance
    if kind == "night":
        radiance = np.where(up > 0, np.array([0.004, 0.006, 0.015]), ground * 0.01)
        for _ in range(int(rng.integers(1, 6))):
            light = _random_direction(rng, min_elevation=-0.05, max_elevation=1.4)
            colour = np.array([1.0, rng.uniform(0.5, 0.9), rng.uniform(0.2, 0.7)])
            radius = math.cos(math.radians(rng.uniform(1.5, 4)))
            radiance = radiance + _lobe(directions, light, radius, log_uniform(rng, 50, 3000)) * colour
        return radiance
    raise ValueError(f"unknown HDR env kind {kind!r}")


def _golden_hour(rng: np.random.Generator, directions: np.ndarray) -> np.ndarray:
    """A clear sky with its sun 0.5-10° above the horizon: the sun reddened by the long path through
    the air (red to amber, 5·10³-10⁵), a band along the horizon that takes its colour and glows
    brighter towards it (forward scattering), deep blue above, a warm dark ground."""
    up = directions[..., 1:2]
    sun = _random_direction(rng, min_elevation=math.radians(0.5), max_elevation=math.radians(10))
    green = rng.uniform(0.35, 0.8)  # 0.35: a red sun at the horizon; 0.8: amber
    sun_colour = np.array([1.0, green, green**2 * rng.uniform(0.6, 1.0)])
    power = log_uniform(rng, 5e3, 1e5)
    zenith = np.array([0.1, 0.18, 0.45]) * rng.uniform(0.5, 1.5)
    towards_sun = np.clip(directions @ sun, -1.0, 1.0)[..., None]
    glow = 0.5 + 3.0 * np.exp((towards_sun - 1.0) / rng.uniform(0.3, 0.8))
    band = (1.0 - np.clip(up, 0, 1)) ** rng.uniform(3, 8)  # 1 at the horizon, fading upwards
    sky = zenith * (1.0 - band) + band * (0.3 + 0.7 * sun_colour) * glow * rng.uniform(0.4, 1.0)
    ground = np.array([0.25, 0.2, 0.15]) * rng.uniform(0.2, 0.8)
    radiance = np.where(up > 0, sky, ground)
    radius = math.cos(math.radians(rng.uniform(1.5, 3.0)))
    return radiance + _lobe(directions, sun, radius, power) * sun_colour


def _random_direction(
    rng: np.random.Generator, min_elevation: float, max_elevation: float = 0.9
) -> np.ndarray:
    """A direction at a random azimuth and an elevation (radians) in [min_elevation, max_elevation)."""
    elevation = rng.uniform(min_elevation, max_elevation)
    azimuth = rng.uniform(0, 2 * math.pi)
    return np.array(
        [
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
            math.cos(elevation) * math.cos(azimuth),
        ]
    )


def _lobe(directions: np.ndarray, centre: np.ndarray, cos_radius: float, power: float) -> np.ndarray:
    """A disk of constant radiance `power` with a soft edge, `[H, W, 1]`."""
    cosine = directions @ centre
    edge = (1.0 - cos_radius) * 0.2
    return (power * np.clip((cosine - cos_radius) / edge + 1.0, 0.0, 1.0))[..., None]


# --- meshes generated in code (written as PLY for Mitsuba) --------------------------------------


def torus_mesh(
    major: float = 0.7, minor: float = 0.3, segments: int = 48, sides: int = 24
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices `[V, 3]` and triangles `[T, 3]` of a torus around +Y, centred at 0, outer radius 1."""
    u = np.linspace(0, 2 * math.pi, segments, endpoint=False)[:, None]
    v = np.linspace(0, 2 * math.pi, sides, endpoint=False)[None, :]
    x = (major + minor * np.cos(v)) * np.cos(u)
    z = (major + minor * np.cos(v)) * np.sin(u)
    y = minor * np.sin(v) * np.ones_like(u)
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    return vertices / (major + minor), _grid_triangles(segments, sides)


def displaced_sphere_mesh(
    seed: int, segments: int = 48, rings: int = 24, amount: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """A unit sphere with smooth random bumps (a sum of a few spherical waves)."""
    rng = np.random.default_rng(seed)
    u = np.linspace(0, 2 * math.pi, segments, endpoint=False)[:, None]
    theta = np.linspace(0.02, math.pi - 0.02, rings)[None, :]
    directions = np.stack(
        np.broadcast_arrays(np.sin(theta) * np.cos(u), np.cos(theta), np.sin(theta) * np.sin(u)), -1
    )
    radius = np.ones(directions.shape[:2])
    for _ in range(4):
        axis = rng.standard_normal(3)
        axis /= np.linalg.norm(axis)
        radius += amount / 4 * np.sin(rng.uniform(2, 6) * (directions @ axis) + rng.uniform(0, 6.3))
    vertices = (directions * radius[..., None]).reshape(-1, 3)
    # this (u, θ) grid turns the other way round from the torus's: reversed, the faces point outward
    # (inward, Mitsuba's one-sided BSDFs render the sphere black and its normals face away)
    triangles = _grid_triangles(segments, rings, wrap_sides=False)[:, ::-1]
    return vertices / radius.max(), np.ascontiguousarray(triangles)


def noise_texture(
    seed: int, colour_a: tuple[float, ...], colour_b: tuple[float, ...], size: int = 64
) -> np.ndarray:
    """A tileable value-noise texture `[size, size, 3]` between two colours (octaves 4, 8, 16)."""
    rng = np.random.default_rng(seed)
    total = np.zeros((size, size))
    for cells, weight in ((4, 0.5), (8, 0.3), (16, 0.2)):
        grid = rng.uniform(0, 1, (cells, cells))
        coords = np.arange(size) * cells / size
        low = np.floor(coords).astype(int)
        frac = coords - low
        frac = frac * frac * (3 - 2 * frac)  # smoothstep
        rows = grid[low % cells] * (1 - frac)[:, None] + grid[(low + 1) % cells] * frac[:, None]
        total += weight * (rows[:, low % cells] * (1 - frac) + rows[:, (low + 1) % cells] * frac)
    t = np.clip((total - 0.2) / 0.6, 0, 1)[..., None]
    return (np.asarray(colour_a) * (1 - t) + np.asarray(colour_b) * t).astype(np.float32)


def _grid_triangles(segments: int, sides: int, wrap_sides: bool = True) -> np.ndarray:
    triangles = []
    for i in range(segments):
        for j in range(sides if wrap_sides else sides - 1):
            a, b = i * sides + j, ((i + 1) % segments) * sides + j
            c, d = i * sides + (j + 1) % sides, ((i + 1) % segments) * sides + (j + 1) % sides
            triangles += [(a, c, b), (b, c, d)]
    return np.array(triangles, dtype=np.int32)


def write_ply(path: Path, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """A binary little-endian PLY with positions and triangles."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(triangles)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    faces = np.zeros(len(triangles), dtype=[("count", "u1"), ("indices", "<i4", (3,))])
    faces["count"], faces["indices"] = 3, triangles
    Path(path).write_bytes(header.encode() + vertices.astype("<f4").tobytes() + faces.tobytes())
