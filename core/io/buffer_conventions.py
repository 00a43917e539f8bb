"""Each buffer from a renderer's conventions to the canonical ones of ARCHITECTURE §2: normals into our
camera frame, any depth kind to planar depth, the geometry mask, material channels and the base
colour under a diffuse albedo, and the cameras in a file's header. Every check names the file and
layer and says what was expected (GBufferError).
"""

from __future__ import annotations

import logging

import numpy as np

from renderflow.core.io.aov_profiles import DEFAULT_MATERIAL, AovProfile
from renderflow.core.io.cameras import CAMERA_AXES, from_imath, ray_length_factor, unreal_world_to_camera
from renderflow.core.io.depth_check import depth_kind_errors
from renderflow.core.io.exr import ExrImage

logger = logging.getLogger("renderflow.core.io.gbuffer_io")


UNIT_RANGE_TOLERANCE = 1e-3  # half-float rounding; values beyond this are an error


class GBufferError(ValueError):
    """A G-buffer file that cannot be used as is; the message names the file, layer and expectation."""


DEPTH_KIND_MIN_ERROR = 3.0  # degrees: normals this far from the depth's are worth a second look
DEPTH_KIND_FACTOR = 3.0  # ... and the other reading must fit this many times better


def check_depth_kind(
    image: ExrImage, profile: AovProfile, buffers: dict[str, np.ndarray], source: str, fov: float
) -> None:
    """Refuse a depth layer whose kind (planar / ray distance) the normal layer contradicts."""
    as_read, other = depth_kind_errors(buffers["depth"], buffers["normal"], fov, profile.depth_kind)
    if as_read > DEPTH_KIND_MIN_ERROR and other < as_read / DEPTH_KIND_FACTOR:
        kind = {"planar": "ray distance", "ray": "planar depth"}[profile.depth_kind]
        raise GBufferError(
            f"{image.path}: layer {source} looks like {kind}, not {profile.depth_kind} depth: the normals it "
            f"implies are {as_read:.1f}° off the normal layer, {other:.1f}° read as {kind} (fov {fov:.1f}°). "
            f'Set depth_kind = "{"ray" if profile.depth_kind == "planar" else "planar"}" in an --aov-file '
            "(Blender before 2.80 wrote ray distance), or check --fov"
        )


def geometry_mask(
    image: ExrImage,
    profile: AovProfile,
    raw: dict[str, np.ndarray],
    sources: dict[str, str],
    depth: np.ndarray,
) -> np.ndarray:
    """`[H, W, 1]` 1 on geometry: a mapped mask, else valid depth where alpha (when used) covers."""
    if "mask" in raw:
        return (raw["mask"] > 0.5).astype(np.float32)
    geometry = np.isfinite(depth)
    if profile.alpha_background != "ignored" and "alpha" in raw:
        alpha = raw["alpha"]
        if profile.alpha_background == "required" or alpha.max() > 0:
            geometry &= alpha >= 0.5
        else:
            logger.warning("%s: layer %s (alpha) is 0 everywhere: not the mask", image.path, sources["alpha"])
    elif profile.alpha_background == "required":
        raise GBufferError(
            f"{image.path}: profile {profile.name!r} needs the alpha channel to tell the background: "
            f"its depth ({sources['depth']}) holds the camera's far clip there; the file has layers "
            f"{layer_list(image)}. Write A, or map a coverage channel with --aov mask=CHANNEL."
        )
    return geometry.astype(np.float32)


def material_buffers(
    image: ExrImage,
    profile: AovProfile,
    raw: dict[str, np.ndarray],
    sources: dict[str, str],
    depth: np.ndarray,
) -> dict[str, np.ndarray]:
    """Roughness, metallic, specular `[H, W, 1]`: read, from glossiness, or the Disney defaults."""
    buffers = {}
    for name, default in DEFAULT_MATERIAL.items():
        if name in raw:
            buffers[name] = np.clip(raw[name], 0.0, 1.0)
        elif name == "roughness" and "glossiness" in raw:
            buffers[name] = 1.0 - np.clip(raw["glossiness"], 0.0, 1.0)
            sources[name] = f"1 - {sources['glossiness']}"
        else:
            buffers[name] = np.full_like(depth, default)
            sources[name] = f"default {default} (no layer)"
            logger.debug("%s: no %s layer in profile %r; using %s", image.path, name, profile.name, default)
    return buffers


DIELECTRIC_F0 = 0.08  # F0 = 0.08 · specular for dielectrics (Disney, Unreal, the Principled BSDF)
METAL_DIVISION_LIMIT = 0.95  # (1 - metallic) below 0.05 leaves no base colour in a diffuse albedo


def base_colour(
    image: ExrImage,
    raw: dict[str, np.ndarray],
    sources: dict[str, str],
    materials: dict[str, np.ndarray],
    mask: np.ndarray,
) -> np.ndarray:
    """The base colour `[H, W, 3]`: read as is, or undone from a diffuse albedo = (1 - metallic) · base.

    On metals a diffuse albedo is black; the renderer's specular colour (Arnold specular_albedo,
    Cycles GlossCol, V-Ray ReflectionFilter), the metallic workflow's F0 = lerp(0.08 · specular, base,
    metallic), gives it back: base = diffuse + F0 - (1 - metallic) · 0.08 · specular wherever metallic > 0
    (exact for that workflow; dielectric pixels keep the diffuse albedo whatever the AOV holds).
    Without one, a metal's base colour is unknown and the file is refused.
    """
    if "albedo" in raw:
        return raw["albedo"]
    diffuse = raw["diffuse_albedo"]
    sources["albedo"] = f"{sources['diffuse_albedo']} (diffuse albedo)"
    if "metallic" not in raw:
        recover_metallic(image, raw, sources, materials, mask)
    metallic, specular = materials["metallic"], materials["specular"]
    if "specular_colour" in raw:
        sources["albedo"] += f" + metal F0 from {sources['specular_colour']}"
        from_f0 = diffuse + raw["specular_colour"] - (1.0 - metallic) * DIELECTRIC_F0 * specular
        return np.where(metallic > 0, from_f0, diffuse).astype(np.float32)
    metal = (metallic > METAL_DIVISION_LIMIT) & (mask > 0)
    if metal.any():
        raise GBufferError(
            f"{image.path}: layer {sources['diffuse_albedo']} is a diffuse albedo, black on the "
            f"{int(metal.sum())} metal pixels (metallic > {METAL_DIVISION_LIMIT}) whose base colour it "
            "cannot give; write the renderer's specular colour AOV (specular_albedo, GlossCol, "
            "VRayReflectionFilter), map it with --aov specular_colour=CHANNELS, or a base-colour AOV with "
            "--aov albedo=CHANNELS"
        )
    return np.asarray(diffuse / np.maximum(1.0 - metallic, 1.0 - METAL_DIVISION_LIMIT), np.float32)


METAL_SNAP = 0.1  # recovered metallic below this is a dielectric whose specular AOV is not exactly F0
BLACK_DIFFUSE = 0.005  # a diffuse albedo this dark (every channel) is a metal or nearly black paint


def recover_metallic(
    image: ExrImage,
    raw: dict[str, np.ndarray],
    sources: dict[str, str],
    materials: dict[str, np.ndarray],
    mask: np.ndarray,
) -> None:
    """Metallic `[H, W, 1]` from a diffuse albedo and a specular colour, when no metallic layer exists.

    Stock multilayer renders (Cycles DiffCol + GlossCol, V-Ray DiffuseFilter + ReflectionFilter,
    Arnold diffuse_albedo + specular_albedo) carry no metalness, but the metallic workflow ties the
    two colours: d = (1 - m) · base and g = (1 - m) · f + m · base with f = 0.08 · specular. Per pixel
    (channel means) m solves f·m² + (g + d - 2f)·m - (g - f) = 0; values below METAL_SNAP are taken as
    dielectrics. Without a specular colour a black diffuse albedo on geometry (a metal, or paint
    too dark to tell from one) is refused by name rather than rendered as a black metal.
    """
    diffuse = raw["diffuse_albedo"]
    if "specular_colour" not in raw:
        black = (diffuse.max(axis=-1, keepdims=True) < BLACK_DIFFUSE) & (mask > 0)
        if black.any():
            raise GBufferError(
                f"{image.path}: layer {sources['diffuse_albedo']} is a diffuse albedo, black on "
                f"{int(black.sum())} geometry pixels, and the file has no metallic layer: those pixels "
                "may be metals whose colour the layer cannot give. Write the renderer's specular colour "
                "AOV (Arnold specular_albedo, Cycles GlossCol, V-Ray ReflectionFilter) or a metallic AOV, "
                "or map one with --aov specular_colour=CHANNELS / --aov metallic=CHANNEL / --aov "
                f"albedo=CHANNELS (docs/AOV_PROFILES.md, metals); the file has layers {layer_list(image)}"
            )
        return
    d = diffuse.mean(axis=-1, keepdims=True)
    g = raw["specular_colour"].mean(axis=-1, keepdims=True)
    f = np.maximum(DIELECTRIC_F0 * materials["specular"], 1e-4)
    b = g + d - 2.0 * f
    metallic = (-b + np.sqrt(np.maximum(b * b + 4.0 * f * (g - f), 0.0))) / (2.0 * f)
    metallic = np.where((metallic < METAL_SNAP) | (mask == 0), 0.0, np.clip(metallic, 0.0, 1.0))
    materials["metallic"] = metallic.astype(np.float32)
    sources["metallic"] = (
        f"from {sources['diffuse_albedo']} + {sources['specular_colour']} (no metallic layer)"
    )
    logger.info("%s: metallic recovered from the diffuse and specular colours", image.path)


def header_world_to_camera(image: ExrImage, profile: AovProfile) -> np.ndarray | None:
    """World -> our camera rotation `[3, 3]` from the header, as the profile says it is stored."""
    if profile.camera_metadata == "unreal":
        keys = [f"unreal/camera/curRot/{axis}" for axis in ("pitch", "yaw", "roll")]
        if not all(key in image.attributes for key in keys):
            return None
        try:
            pitch, yaw, roll = (float(str(image.attributes[key])) for key in keys)
        except ValueError as error:
            raise GBufferError(f"{image.path}: unreadable Unreal camera rotation ({error})") from error
        return unreal_world_to_camera(pitch, yaw, roll)
    if profile.camera_metadata == "imath":
        axes = CAMERA_AXES[profile.camera_axes]
        for key in profile.camera_keys:
            stored = image.matrix(key)
            if stored is not None:
                matrix = from_imath(stored)
                rotation = matrix[:3, :3] if key == "worldToCamera" else np.linalg.inv(matrix)[:3, :3]
                return np.asarray(axes @ _orthonormal(rotation), dtype=np.float64)
    return None


def header_camera_position(image: ExrImage, profile: AovProfile) -> np.ndarray | None:
    """The camera's world position `[3]` from an Imath header matrix (scaled to scene units), or None."""
    if profile.camera_metadata != "imath":
        return None
    for key in profile.camera_keys:
        stored = image.matrix(key)
        if stored is not None:
            matrix = from_imath(stored)
            camera_to_world = np.linalg.inv(matrix) if key == "worldToCamera" else matrix
            return np.asarray(camera_to_world[:3, 3] * profile.depth_scale, dtype=np.float64)
    return None


def _orthonormal(rotation: np.ndarray) -> np.ndarray:
    """Drop scale from a camera matrix (some hosts bake it in) without changing handedness."""
    u, _, vt = np.linalg.svd(rotation)
    return np.asarray(u @ vt)


NORMAL_LENGTH_TOLERANCE = 0.1  # median |length - 1| of signed normals; packed 0-1 normals are far off


def camera_normals(
    image: ExrImage,
    profile: AovProfile,
    normal: np.ndarray,
    world_to_camera: np.ndarray | None,
    source: str = "normal",
) -> np.ndarray:
    """Unit normals in our camera frame (zero where the file has none); a wrong encoding is an error."""
    check_normal_encoding(image, profile, normal, source)
    vectors = normal * 2.0 - 1.0 if profile.normal_encoding == "packed" else normal.astype(np.float64)
    if profile.normal_space == "world":
        if world_to_camera is None:
            raise GBufferError(
                f"{image.path}: profile {profile.name!r} stores world-space normals but the header has no "
                f"camera ({', '.join(profile.camera_keys) or 'unreal/camera/curRot/*'}); give the camera "
                "with --camera (camera.json, .chan or USD)"
            )
        vectors = vectors @ np.asarray(world_to_camera).T
    else:
        vectors = vectors @ CAMERA_AXES[profile.camera_axes].T
    length = np.linalg.norm(vectors, axis=-1, keepdims=True)
    valid = length > 0.5  # background and packed zero vectors (0.5 grey) have no direction
    return np.where(valid, vectors / np.maximum(length, 1e-12), 0.0).astype(np.float32)


def check_normal_encoding(image: ExrImage, profile: AovProfile, normal: np.ndarray, source: str) -> None:
    """Signed normals read as packed (negative values) or packed as signed (not unit length) are errors."""
    if profile.normal_encoding == "packed":
        if normal.min() < -UNIT_RANGE_TOLERANCE:
            raise GBufferError(
                f"{image.path}: layer {source} (normal) has negative values ({normal.min():.3g}) but profile "
                f"{profile.name!r} expects packed 0-1 normals; these are signed: set normal_encoding = "
                '"signed" in an --aov-file profile'
            )
        return
    length = np.linalg.norm(normal, axis=-1)
    lengths = length[length > 0.05]  # the background has no normal
    if lengths.size and np.median(np.abs(lengths - 1.0)) > NORMAL_LENGTH_TOLERANCE:
        packed = " (values in 0-1: packed?" + ' set normal_encoding = "packed")' if normal.min() >= 0 else ""
        raise GBufferError(
            f"{image.path}: layer {source} (normal) is not unit length (median length "
            f"{np.median(lengths):.3g}){packed}; normals must be unit vectors"
        )


def planar_depth(
    image: ExrImage,
    profile: AovProfile,
    depth: np.ndarray,
    source: str,
    vertical_fov_degrees: float | None,
) -> np.ndarray:
    """`[H, W, 1]` planar depth in scene units with inf for background."""
    values = depth.astype(np.float64)
    check_not_normalised(image, profile, values, source)
    with np.errstate(divide="ignore", invalid="ignore"):
        if profile.depth_kind == "inverse":
            background = ~np.isfinite(values) | (values <= 0)
            values = 1.0 / values
        elif profile.depth_kind == "normalised":
            background = ~np.isfinite(values)
            values = profile.depth_black + values * (profile.depth_white - profile.depth_black)
            background |= values <= 0
        else:
            background = ~np.isfinite(values) | (values <= 0) | (values >= profile.background_depth)
    if profile.depth_kind == "ray":
        fov = vertical_fov_degrees if vertical_fov_degrees is not None else _header_fov(image, profile)
        if fov is None:
            raise GBufferError(
                f"{image.path}: layer {source} holds ray distance; converting it to planar depth needs the "
                "camera's field of view (none in the header): give --fov or --camera"
            )
        values = values / ray_length_factor(*values.shape[:2], fov)
    values = values * profile.depth_scale
    return np.where(background, np.inf, values).astype(np.float32)


def check_not_normalised(image: ExrImage, profile: AovProfile, depth: np.ndarray, source: str) -> None:
    """A depth layer that renderers normalise by default, holding only 0-1 values, is not scene depth."""
    if profile.depth_kind == "normalised":
        if profile.depth_white == profile.depth_black:
            raise GBufferError(
                f"{image.path}: normalised depth needs depth_black and depth_white (the scene depths "
                "written as 0 and 1) in the --aov-file profile"
            )
        return
    layer = source.rpartition(".")[0] or source
    finite = depth[np.isfinite(depth)]
    if layer in profile.normalised_depth_layers and finite.size and finite.min() >= 0 and finite.max() <= 1:
        raise GBufferError(
            f"{image.path}: layer {source} holds depth normalised to 0-1 (the renderer's default), not scene "
            'depth: render it unclamped (raw) or say how it was normalised: depth_kind = "normalised", '
            "depth_black = DEPTH AT 0, depth_white = DEPTH AT 1 in an --aov-file profile"
        )


def _header_fov(image: ExrImage, profile: AovProfile) -> float | None:
    """Vertical fov from a header's horizontal fov attribute, if the profile names one."""
    if not profile.fov_key or profile.fov_key not in image.attributes:
        return None
    height, width = image.pixels.shape[:2]
    horizontal = np.radians(float(str(image.attributes[profile.fov_key])))
    return float(np.degrees(2 * np.arctan(np.tan(horizontal / 2) * height / width)))


def layer_list(image: ExrImage) -> str:
    return ", ".join(
        f"{layer or '(no prefix)'} [{' '.join(suffixes)}]"
        for layer, suffixes in sorted(image.layers().items())
    )
