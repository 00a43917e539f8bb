"""Path-traced beauty and exact canonical G-buffers of a procedural scene, with Mitsuba 3.

Three renders per frame share one camera: the beauty with the path tracer and the principled
BSDFs; a geometry pass (Mitsuba's AOV integrator at pixel centres, one unjittered sample) with
every BSDF replaced by a diffuse one whose reflectance is the base colour, giving albedo, world
normals and ray depth; and a material pass whose diffuse reflectance is (roughness, metallic,
specular), which the albedo AOV returns exactly. Normals become camera space and depth planar
(ARCHITECTURE §2) here.
"""

from __future__ import annotations

import glob
import logging
import os
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from renderflow.core.io.cameras import ray_length_factor
from renderflow.core.io.exr import write_exr
from renderflow.training.procedural import (
    GROUND_SIZE,
    MaterialSpec,
    SceneSpec,
    ShapeSpec,
    displaced_sphere_mesh,
    noise_texture,
    torus_mesh,
    write_ply,
)

logger = logging.getLogger(__name__)

MIN_LLVM_MAJOR = 16  # Dr.Jit aborts with libLLVM 15 (seen on Debian 12)
MAX_DEPTH = 8
# Mitsuba's rays start on the near plane, so its depth AOV is measured from there: add it back.
NEAR_CLIP = 0.01
# Mitsuba's camera frame has +X to the left and looks down +Z; ours has +X right and looks down -Z.
OURS_TO_MITSUBA_CAMERA = np.diag([-1.0, 1.0, -1.0, 1.0])


def find_libllvm() -> str | None:
    """A libLLVM >= 16 for Dr.Jit's LLVM backend: $DRJIT_LIBLLVM_PATH, else the system's newest."""
    explicit = os.environ.get("DRJIT_LIBLLVM_PATH")
    if explicit:
        return explicit
    candidates = glob.glob("/usr/lib/llvm-*/lib/libLLVM*.so*") + glob.glob(
        "/usr/lib/*-linux-gnu/libLLVM*.so*"
    )
    best: tuple[int, str] | None = None
    for path in candidates:
        digits = "".join(ch if ch.isdigit() else " " for ch in Path(path).name.split(".so")[0]).split()
        if digits and int(digits[0]) >= MIN_LLVM_MAJOR and (best is None or int(digits[0]) > best[0]):
            best = (int(digits[0]), path)
    return best[1] if best else None


@cache
def _default_variant() -> str:
    """llvm_ad_rgb where a libLLVM >= 16 exists (Dr.Jit is told where), else scalar_rgb."""
    libllvm = find_libllvm()
    if libllvm is None:
        return "scalar_rgb"
    os.environ["DRJIT_LIBLLVM_PATH"] = libllvm
    return "llvm_ad_rgb"


def mitsuba_module(variant: str | None = None) -> Any:
    """Mitsuba set to `variant` (default: `_default_variant`), on every call: the variant is global to
    the process. Raises RuntimeError naming the variant where this machine cannot run it (no GPU for
    cuda_ad_rgb)."""
    default = _default_variant()  # also points Dr.Jit at the libLLVM for an explicit llvm variant
    variant = variant or default
    import mitsuba

    if mitsuba.variant() != variant:
        try:
            mitsuba.set_variant(variant)
        except Exception as error:  # each backend fails its own way (ImportError, Dr.Jit's errors)
            raise RuntimeError(f"Mitsuba variant {variant} does not run here: {error}") from error
        logger.info("mitsuba %s, variant %s", mitsuba.__version__, variant)
    return mitsuba


def write_meshes(scene: SceneSpec, folder: Path) -> dict[str, Path]:
    """PLY files for the generated meshes and EXR files for the noise textures of `scene`, named
    `shape{index}` and `texture{index}` by shape index."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for index, shape in enumerate(scene.shapes):
        material = shape.material
        if material.noise_seed is not None:
            colour_b = material.checker_colour or material.base_colour
            texture = noise_texture(material.noise_seed, material.base_colour, colour_b)
            paths[f"texture{index}"] = folder / f"texture{index}.exr"
            write_exr(paths[f"texture{index}"], texture, ["R", "G", "B"], half=False)
        if shape.kind == "torus":
            vertices, triangles = torus_mesh()
        elif shape.kind == "displaced_sphere":
            vertices, triangles = displaced_sphere_mesh(seed=index + 1000 * len(scene.shapes))
        else:
            continue
        paths[f"shape{index}"] = folder / f"shape{index}.ply"
        write_ply(paths[f"shape{index}"], vertices, triangles)
    return paths


def render_frame(
    scene: SceneSpec,
    envmap_path: Path,
    meshes: dict[str, Path],
    camera_to_world: np.ndarray,
    vertical_fov_degrees: float,
    size: int,
    spp: int,
    seed: int,
    variant: str | None = None,
) -> dict[str, np.ndarray]:
    """One frame: beauty `[H, W, 3]` linear HDR and canonical albedo, normal, depth, material, mask,
    rendered with Mitsuba's `variant` (None: `mitsuba_module`'s default)."""
    mi = mitsuba_module(variant)

    def render_pass(mode: str, samples: int) -> np.ndarray:
        scene_dict = _scene_dict(
            mi, scene, envmap_path, meshes, camera_to_world, vertical_fov_degrees, size, samples, mode
        )
        return np.array(mi.render(mi.load_dict(scene_dict), seed=seed))

    beauty = render_pass("beauty", spp)[..., :3]
    geometry = render_pass("albedo", 1)  # albedo [0:3], world normal [3:6], ray depth [6]
    material = render_pass("material", 1)  # roughness, metallic, specular
    ray_depth = geometry[..., 6:7]
    mask = (ray_depth > 0).astype(np.float32)
    rotation = camera_to_world[:3, :3]
    normal_cam = geometry[..., 3:6] @ rotation  # R^T n for row vectors
    length = np.linalg.norm(normal_cam, axis=-1, keepdims=True)
    normal_cam = np.where(mask > 0, normal_cam / np.maximum(length, 1e-12), 0.0)
    planar = ray_depth / ray_length_factor(size, size, vertical_fov_degrees) + NEAR_CLIP
    depth = np.where(mask > 0, planar, np.inf)
    return {
        "beauty": beauty.astype(np.float32),
        "albedo": (geometry[..., 0:3] * mask).astype(np.float32),
        "normal": normal_cam.astype(np.float32),
        "depth": depth.astype(np.float32),
        "roughness": (material[..., 0:1] * mask).astype(np.float32),
        "metallic": (material[..., 1:2] * mask).astype(np.float32),
        "specular": (material[..., 2:3] * mask).astype(np.float32),
        "mask": mask,
    }


def _scene_dict(
    mi: Any,
    scene: SceneSpec,
    envmap_path: Path,
    meshes: dict[str, Path],
    camera_to_world: np.ndarray,
    vertical_fov_degrees: float,
    size: int,
    spp: int,
    mode: str,
) -> dict[str, Any]:
    """The Mitsuba scene for one pass: `beauty` (principled, path), `albedo` or `material` (AOVs)."""
    if mode == "beauty":
        integrator = {"type": "path", "max_depth": MAX_DEPTH}
        sampler = {"type": "independent", "sample_count": spp}
        rfilter = {"type": "gaussian"}
    else:
        aovs = "albedo:albedo,nn:sh_normal,dd:depth" if mode == "albedo" else "albedo:albedo"
        integrator = {"type": "aov", "aovs": aovs}
        sampler = {"type": "stratified", "sample_count": 1, "jitter": False}  # pixel centres, exact
        rfilter = {"type": "box"}
    to_world = mi.ScalarTransform4f(np.asarray(camera_to_world, np.float64) @ OURS_TO_MITSUBA_CAMERA)
    result: dict[str, Any] = {
        "type": "scene",
        "integrator": integrator,
        "sensor": {
            "type": "perspective",
            "fov": vertical_fov_degrees,
            "fov_axis": "y",
            "near_clip": NEAR_CLIP,
            "to_world": to_world,
            "film": {"type": "hdrfilm", "width": size, "height": size, "rfilter": rfilter},
            "sampler": sampler,
        },
        "env": {"type": "envmap", "filename": str(envmap_path)},
    }
    for index, shape in enumerate(scene.shapes):
        bsdf = _bsdf(mi, shape.material, mode, shape.kind, meshes.get(f"texture{index}"))
        result[f"shape{index:02d}"] = _shape_dict(mi, shape, meshes.get(f"shape{index}"), bsdf)
    return result


def _shape_dict(mi: Any, shape: ShapeSpec, mesh: Path | None, bsdf: dict[str, Any]) -> dict[str, Any]:
    T = mi.ScalarTransform4f
    position = list(shape.position)
    if shape.kind == "ground":
        to_world = T().rotate([1, 0, 0], -90).scale([GROUND_SIZE, GROUND_SIZE, 1])  # XY plane -> facing +Y
        return {"type": "rectangle", "to_world": to_world, "bsdf": bsdf}
    scale = [shape.scale * factor for factor in shape.stretch]
    to_world = T().translate(position).rotate([0, 1, 0], shape.yaw_degrees).scale(scale)
    if shape.kind == "cylinder":  # Mitsuba's runs from z = 0 to 1: centre it and stand it up
        upright = to_world.rotate([1, 0, 0], -90).translate([0, 0, -1]).scale([1, 1, 2])
        return {"type": "cylinder", "to_world": upright, "bsdf": bsdf}
    if shape.kind == "sphere":
        return {"type": "sphere", "to_world": to_world, "bsdf": bsdf}
    if shape.kind == "cube":
        return {"type": "cube", "to_world": to_world, "bsdf": bsdf}
    if mesh is None:
        raise ValueError(f"shape {shape.kind!r} needs a generated mesh")
    return {"type": "ply", "filename": str(mesh), "to_world": to_world, "bsdf": bsdf, "face_normals": False}


def _bsdf(mi: Any, material: MaterialSpec, mode: str, kind: str, texture: Path | None) -> dict[str, Any]:
    has_uvs = kind in ("ground", "sphere", "cube", "cylinder")  # generated meshes have none
    checker = material.checker_colour is not None and has_uvs
    if texture is not None and has_uvs:
        scale = material.checker_scale / 4
        base: dict[str, Any] = {
            "type": "bitmap",
            "filename": str(texture),
            "raw": True,  # linear values, as written
            "to_uv": mi.ScalarTransform4f().scale([scale, scale, 1]),
        }
    elif checker:
        base = {
            "type": "checkerboard",
            "color0": {"type": "rgb", "value": list(material.base_colour)},
            "color1": {"type": "rgb", "value": list(material.checker_colour or material.base_colour)},
            "to_uv": mi.ScalarTransform4f().scale([material.checker_scale, material.checker_scale, 1]),
        }
    else:
        base = {"type": "rgb", "value": list(material.base_colour)}
    if mode == "beauty":
        return {
            "type": "principled",
            "base_color": base,
            "roughness": material.roughness,
            "metallic": material.metallic,
            "specular": material.specular,
        }
    if mode == "albedo":
        return {"type": "diffuse", "reflectance": base}
    values = [material.roughness, material.metallic, material.specular]
    return {"type": "diffuse", "reflectance": {"type": "rgb", "value": values}}
