"""The bundled demo clip: a sphere on a checkered ground under a sky with a sun, ray-cast exactly.

G-buffers follow ARCHITECTURE.md §2 (camera-space normals, planar depth, inf background), and
the env map is given in the camera's view: the analytic sky evaluated along the camera-view
lat-long directions, so no re-projection of an image is needed.
"""

from __future__ import annotations

import math

import numpy as np

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.cameras import look_at
from renderflow.core.io.envmap import camera_view_directions

SPHERE_CENTRE = np.array([0.0, 1.0, 0.0])
SPHERE_RADIUS = 1.0
GROUND_RADIUS = 6.0
SUN_DIRECTION = np.array([0.5, 0.6, 0.62]) / np.linalg.norm([0.5, 0.6, 0.62])


def orbit_camera_to_world(angle: float, radius: float = 5.0, height: float = 2.0) -> np.ndarray:
    """Camera-to-world rotation and position `[4, 4]` (column vectors) looking at the sphere."""
    position = np.array([radius * math.sin(angle), height, radius * math.cos(angle)])
    return look_at(position, SPHERE_CENTRE)


def sky_radiance(direction_world: np.ndarray) -> np.ndarray:
    """HDR radiance `[..., 3]`: a blue gradient, a bright sun lobe, a dim brown ground."""
    up = direction_world[..., 1:2]
    sky = np.where(up > 0, np.array([0.3, 0.5, 1.0]) * (0.4 + 0.6 * up), np.array([0.15, 0.12, 0.1]))
    sun = 50.0 * np.clip(direction_world @ SUN_DIRECTION, 0.0, 1.0)[..., None] ** 400
    return (sky + sun).astype(np.float32)


def demo_clip(frames: int = 5, size: int = 64, fov_degrees: float = 40.0) -> tuple[GBuffers, np.ndarray]:
    """G-buffers `[F, size, size, C]` and the camera-view env map `[F, size/2, size, 3]` of the demo."""
    albedo, normal, depth, material, envmaps = [], [], [], [], []
    for frame in range(frames):
        camera_to_world = orbit_camera_to_world(angle=0.15 * frame)
        rotation, position = camera_to_world[:3, :3], camera_to_world[:3, 3]
        gbuffer = ray_cast(rotation, position, size, fov_degrees)
        albedo.append(gbuffer[0])
        normal.append(gbuffer[1])
        depth.append(gbuffer[2])
        material.append(gbuffer[3])
        envmaps.append(sky_radiance(camera_view_directions(size // 2, size) @ rotation.T))
    return GBuffers(np.stack(albedo), np.stack(normal), np.stack(depth), np.stack(material)), np.stack(
        envmaps
    )


def ray_cast(
    rotation: np.ndarray, position: np.ndarray, size: int, fov_degrees: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One frame's albedo, camera-space normal, planar depth and material."""
    half = math.tan(math.radians(fov_degrees) / 2)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x_cam, y_cam = np.meshgrid(coords * half, -coords * half)  # top row first: +Y up
    rays_cam = np.stack([x_cam, y_cam, -np.ones_like(x_cam)], axis=-1)  # planar: z = -1
    rays_world = rays_cam @ rotation.T

    # Sphere: |o + s·r - c|² = R²
    oc = position - SPHERE_CENTRE
    a = (rays_world**2).sum(-1)
    b = 2 * rays_world @ oc
    disc = b**2 - 4 * a * (oc @ oc - SPHERE_RADIUS**2)
    s_sphere = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
    s_sphere = np.where(s_sphere > 0, s_sphere, np.inf)
    # Ground: y = 0, within GROUND_RADIUS
    with np.errstate(divide="ignore", invalid="ignore"):
        s_ground = np.where(rays_world[..., 1] < 0, -position[1] / rays_world[..., 1], np.inf)
    ground_point = position + np.nan_to_num(s_ground, posinf=0.0)[..., None] * rays_world
    s_ground = np.where(np.linalg.norm(ground_point[..., [0, 2]], axis=-1) < GROUND_RADIUS, s_ground, np.inf)

    hit_sphere = s_sphere < s_ground
    s = np.minimum(s_sphere, s_ground)  # rays have z_cam = -1, so s is the planar depth
    hit = np.isfinite(s)
    point = position + np.nan_to_num(s, posinf=0.0)[..., None] * rays_world
    normal_world = np.where(hit_sphere[..., None], (point - SPHERE_CENTRE) / SPHERE_RADIUS, [0.0, 1.0, 0.0])
    normal_cam = np.where(hit[..., None], normal_world @ rotation, 0.0)  # R^T n, row-vector form

    checker = (np.floor(point[..., 0]) + np.floor(point[..., 2])) % 2
    ground_albedo = np.where(checker[..., None] > 0, [0.6, 0.6, 0.6], [0.25, 0.25, 0.25])
    albedo = np.where(hit_sphere[..., None], [0.8, 0.15, 0.1], ground_albedo)
    material = np.where(hit_sphere[..., None], [0.25, 0.0, 0.5], [0.8, 0.0, 0.5])
    albedo = np.where(hit[..., None], albedo, 0.0)
    material = np.where(hit[..., None], material, 0.0)
    return (
        albedo.astype(np.float32),
        normal_cam.astype(np.float32),
        s[..., None].astype(np.float32),
        material.astype(np.float32),
    )


def ray_cast_buffers(camera_to_world: np.ndarray, size: int, fov_degrees: float) -> dict[str, np.ndarray]:
    """One frame of the demo scene from a camera `[4, 4]`, as the named buffers a canonical EXR holds."""
    albedo, normal, depth, material = ray_cast(
        camera_to_world[:3, :3], camera_to_world[:3, 3], size, fov_degrees
    )
    return {
        "albedo": albedo,
        "normal": normal,
        "depth": depth,
        "roughness": material[..., :1],
        "metallic": material[..., 1:2],
        "specular": material[..., 2:],
    }
