"""AOV profiles: how each renderer names and encodes the buffers RenderFlow needs.

A profile lists, per canonical buffer, the channel names to try in order (aliases) and the
conventions that turn them into ARCHITECTURE §2's buffers: normal space and encoding, depth kind,
scale and background, and where the camera lives in the header. `gbuffer_io` applies them.
A channel name starting with `*.` matches any layer prefix (Blender's view layer: `*.Depth.Z`
matches `ViewLayer.Depth.Z`). docs/AOV_PROFILES.md is the table of what each profile reads.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from renderflow.core.io.buffer_names import BUFFER_CHANNELS
from renderflow.core.io.exr import ExrImage

REQUIRED_BUFFERS = ("albedo", "normal", "depth")
# Disney BRDF defaults used when a renderer wrote no material AOV (logged loudly by gbuffer_io).
DEFAULT_MATERIAL = {"roughness": 0.5, "metallic": 0.0, "specular": 0.5}

NormalSpace = Literal["camera", "world"]
NormalEncoding = Literal["signed", "packed"]
CameraAxes = Literal["opengl", "renderman"]
DepthKind = Literal["planar", "ray", "inverse", "normalised"]
CameraMetadata = Literal["imath", "unreal", "none"]

Aliases = tuple[tuple[str, ...], ...]


class ProfileError(ValueError):
    """A profile name, mapping or file that cannot be used; the message says what was expected."""


@dataclass(frozen=True)
class AovProfile:
    """One renderer's conventions (see the module docstring)."""

    name: str
    description: str
    channels: Mapping[str, Aliases]
    normal_space: NormalSpace = "camera"
    normal_encoding: NormalEncoding = "signed"
    camera_axes: CameraAxes = "opengl"  # the renderer's camera frame (camera-space normals, matrices)
    depth_kind: DepthKind = "planar"
    depth_scale: float = 1.0  # file units -> scene units (Unreal: centimetres -> metres)
    background_depth: float = 1e9  # raw depth at or above this is background (also inf, NaN, <= 0)
    # "normalised" depth: scene depth = depth_black + value · (depth_white - depth_black)
    depth_black: float = 0.0
    depth_white: float = 0.0
    # Layers that renderers write normalised to 0-1 by default (V-Ray's ZDepth): refused as scene
    # depth unless the profile says how to undo it.
    normalised_depth_layers: tuple[str, ...] = ()
    # Alpha marks the background (0) where the file has one; "required" where depth cannot (Arnold
    # writes the camera's far clip as background Z), "ignored" where alpha is not coverage.
    alpha_background: Literal["used", "required", "ignored"] = "used"
    camera_metadata: CameraMetadata = "imath"
    camera_keys: tuple[str, ...] = ("worldToCamera", "cameraToWorld")
    fov_key: str = ""  # header attribute with the horizontal fov in degrees, for ray depth
    attribute_clues: tuple[str, ...] = ()  # header attribute name prefixes that identify the renderer
    software_clues: tuple[str, ...] = ()  # substrings of the `Software` attribute
    hint_channels: tuple[str, ...] = ()  # channel names typical of the renderer

    def resolve(self, image: ExrImage, buffer: str) -> tuple[str, ...] | None:
        """The channels of `buffer` in `image` (first alias that is complete), or None."""
        for alias in self.channels.get(buffer, ()):
            found = match_alias(alias, image.channels)
            if found is not None:
                return found
        return None

    def finds(self, image: ExrImage, buffer: str) -> bool:
        """Whether `buffer` is in `image` (albedo also as a diffuse albedo)."""
        if buffer == "albedo" and self.resolve(image, "diffuse_albedo") is not None:
            return True
        return self.resolve(image, buffer) is not None


def match_alias(alias: Sequence[str], channels: Sequence[str]) -> tuple[str, ...] | None:
    """Channel names for `alias` if all exist; `*.` matches the first layer prefix that completes it."""
    if not any(name.startswith("*.") for name in alias):
        return tuple(alias) if all(name in channels for name in alias) else None
    prefixes: set[str] | None = None
    for name in alias:
        rest = name[2:]
        found = {channel[: -len(rest) - 1] for channel in channels if channel.endswith("." + rest)}
        prefixes = found if prefixes is None else prefixes & found
    if not prefixes:
        return None
    prefix = sorted(prefixes)[0]
    return tuple(f"{prefix}.{name[2:]}" if name.startswith("*.") else name for name in alias)


def _rgb(*layers: str, suffixes: Sequence[str] = "RGB") -> Aliases:
    return tuple(tuple(f"{layer}.{s}" if layer else s for s in suffixes) for layer in layers)


def _xyz(*layers: str) -> Aliases:
    return _rgb(*layers, suffixes="XYZ") + _rgb(*layers, suffixes="RGB")


def _one(*names: str) -> Aliases:
    return tuple((name,) for name in names)


def _mrq(material: str) -> tuple[str, ...]:
    """Unreal Movie Render Queue's layer names for a post-process material's pass."""
    return (f"FinalImageMovieRenderQueue_{material}", f"FinalImage{material}", material)


PROFILES: dict[str, AovProfile] = {
    profile.name: profile
    for profile in [
        AovProfile(
            name="canonical",
            description="RenderFlow's own datasets (ARCHITECTURE §2)",
            channels={
                "beauty": _rgb(""),
                "alpha": _one("A"),
                "albedo": _rgb("albedo"),
                "normal": _rgb("N", suffixes="XYZ"),
                "depth": _one("depth.Z"),
                "roughness": _one("roughness.Y"),
                "metallic": _one("metallic.Y"),
                "specular": _one("specular.Y"),
                "mask": _one("mask.Y"),
            },
            attribute_clues=("renderflow/",),
            hint_channels=("roughness.Y", "metallic.Y", "mask.Y"),
        ),
        AovProfile(
            name="arnold",
            description="Arnold (MtoA, HtoA, KtoA, C4DtoA): world-space N, planar Z (far clip behind: A)",
            channels={
                "beauty": _rgb(""),
                "alpha": _one("A"),
                "albedo": _rgb("base_color", "basecolor"),
                "diffuse_albedo": _rgb("diffuse_albedo", "albedo", "denoise_albedo"),
                "specular_colour": _rgb("specular_albedo"),
                "normal": _xyz("N"),
                "depth": _one("Z", "Z.Z", "depth.Z"),
                "roughness": _one("specular_roughness", "specular_roughness.Y", "roughness", "roughness.Y"),
                "metallic": _one("metalness", "metalness.Y", "metallic", "metallic.Y"),
                "specular": _one("specular_weight", "specular_weight.Y", "specular", "specular.Y"),
            },
            normal_space="world",
            alpha_background="required",
            attribute_clues=("arnold/",),
            software_clues=("Arnold",),
            hint_channels=("diffuse_albedo.R", "specular_roughness"),
        ),
        AovProfile(
            name="renderman",
            description="RenderMan: camera-space Nn (left-handed, +Z forward), planar z",
            channels={
                "beauty": _rgb("", "Ci") + _rgb("Ci", suffixes="rgb"),
                "alpha": _one("A", "a", "Ci.a", "Ci.A"),
                "albedo": _rgb("albedo") + _rgb("albedo", suffixes="rgb"),
                "normal": _xyz("Nn") + _rgb("Nn", suffixes="xyz"),
                "depth": _one("z", "z.Z", "Z"),
                "roughness": _one("specularRoughness", "roughness", "roughness.Y"),
                "metallic": _one("metallic", "metallic.Y"),
                "specular": _one("specular", "specular.Y"),
            },
            camera_axes="renderman",
            software_clues=("RenderMan", "PRMan", "prman"),
            hint_channels=("Nn.X", "Nn.R", "Nn.x", "Ci.R", "Ci.r"),
        ),
        AovProfile(
            name="vray",
            description="V-Ray elements: camera-space VRayNormals, raw planar Z, diffuse filter, glossiness",
            channels={
                "beauty": _rgb("", suffixes="RGB"),
                "alpha": _one("A"),
                "diffuse_albedo": _rgb("VRayDiffuseFilter", "diffuse_filter", "diffuse")
                + _rgb("VRayDiffuseFilter", "diffuse_filter", "diffuse", suffixes=("red", "green", "blue")),
                "specular_colour": _rgb("VRayReflectionFilter", "reflection_filter")
                + _rgb("VRayReflectionFilter", "reflection_filter", suffixes=("red", "green", "blue")),
                "normal": _xyz("VRayNormals", "normals"),
                "depth": _one("Z", "VRayZDepth.Z", "VRayZDepth.R", "zdepth.Z"),
                "glossiness": _one(
                    "VRayMtlReflectGlossiness.R", "VRayReflectionGlossiness.R", "reflection_glossiness.red"
                ),
                "roughness": _one("VRayMtlReflectRoughness.R", "roughness.Y"),
                # A metalness texture rendered through an ExtraTex element (named by the user; these
                # are the names V-Ray's documentation and tools suggest).
                "metallic": _one(
                    "VRayMtlMetalness.R",
                    "VRayMetalness.R",
                    "metalness.red",
                    "VRayExtraTex_metalness.R",
                    "ExtraTex_metalness.R",
                    "metalness.R",
                ),
                "specular": _one("VRayMtlReflectAmount.R", "specular.Y"),
            },
            normalised_depth_layers=("VRayZDepth", "zdepth"),
            attribute_clues=("vrayInfo/", "vray/"),
            software_clues=("V-Ray", "VRay"),
            hint_channels=("VRayNormals.X", "VRayDiffuseFilter.R"),
        ),
        AovProfile(
            name="cycles",
            description="Blender Cycles: world-space Normal, planar Depth (1e10 background), DiffCol",
            channels={
                "beauty": _rgb("*.Combined"),
                "alpha": _one("*.Combined.A"),
                # Blender before 5.0 abbreviates (DiffCol); 5.0 spells pass names out (Diffuse Color).
                "diffuse_albedo": _rgb("*.DiffCol", "*.Diffuse Color"),
                "specular_colour": _rgb("*.GlossCol", "*.Glossy Color"),
                "normal": _rgb("*.Normal", suffixes="XYZ"),
                "depth": _one("*.Depth.Z", "*.Z.Z"),
                "roughness": _one("*.Roughness.X", "*.roughness.X", "*.Roughness.Z", "*.roughness.Z"),
                "metallic": _one("*.Metallic.X", "*.metallic.X", "*.Metallic.Z", "*.metallic.Z"),
                "specular": _one("*.Specular.X", "*.specular.X", "*.Specular.Z", "*.specular.Z"),
            },
            normal_space="world",
            software_clues=("Blender",),
            hint_channels=("ViewLayer.Combined.R", "RenderLayer.Combined.R"),
        ),
        AovProfile(
            name="karma",
            description="Houdini Karma (Solaris): world-space N, planar depth, beauty in C",
            channels={
                "beauty": _rgb("C", ""),
                "alpha": _one("C.A", "A"),
                "albedo": _rgb("basecolor", "albedo"),
                "normal": _xyz("N"),
                "depth": _one("depth.Z", "Pz.Z", "Pz", "depth", "Pz.R", "depth.R"),
                "roughness": _one("roughness", "roughness.Y", "roughness.X"),
                "metallic": _one("metallic", "metallic.Y", "metallic.X"),
                "specular": _one("reflect", "specular", "specular.Y", "specular.X"),
            },
            normal_space="world",
            attribute_clues=("karma:", "houdini:"),
            software_clues=("Karma", "Houdini"),
            hint_channels=("C.R",),
        ),
        AovProfile(
            name="unreal",
            description="Unreal Movie Render Queue: packed world normals (Z-up), SceneDepth in cm",
            channels={
                # MRQ names layers pass + post-process material: FinalImage + MovieRenderQueue_WorldDepth.
                "beauty": _rgb("", "FinalImage", "FinalImageMovieRenderQueue_Beauty"),
                "alpha": _one("A", "FinalImage.A", "FinalImageMovieRenderQueue_Beauty.A"),
                "albedo": _rgb(*_mrq("BaseColor")),
                "normal": _rgb(*_mrq("WorldNormal")),
                "depth": _one(*(f"{layer}.R" for layer in _mrq("WorldDepth") + _mrq("SceneDepth"))),
                "roughness": _one(*(f"{layer}.R" for layer in _mrq("Roughness"))),
                "metallic": _one(*(f"{layer}.R" for layer in _mrq("Metallic"))),
                "specular": _one(*(f"{layer}.R" for layer in _mrq("Specular"))),
            },
            normal_space="world",
            normal_encoding="packed",
            depth_scale=0.01,
            # 16-bit MRQ output saturates the sky at half's maximum (65504 cm).
            background_depth=65000.0,
            alpha_background="ignored",  # MRQ writes alpha 0 everywhere unless told to accumulate it
            camera_metadata="unreal",
            camera_keys=(),
            fov_key="unreal/camera/FinalImage/fov",
            attribute_clues=("unreal/",),
            hint_channels=("FinalImageBaseColor.R", "FinalImageMovieRenderQueue_WorldDepth.R"),
        ),
        AovProfile(
            name="nuke",
            description="Nuke ScanlineRender/DepthGenerator: depth.Z is 1/Z (0 = background), world-space N",
            channels={
                "beauty": _rgb(""),
                "alpha": _one("A"),
                "albedo": _rgb("albedo"),
                "normal": _xyz("N", "normals"),
                "depth": _one("depth.Z"),
                "roughness": _one("roughness.Y", "roughness.R"),
                "metallic": _one("metallic.Y", "metallic.R"),
                "specular": _one("specular.Y", "specular.R"),
                "mask": _one("mask.Y", "mask.A"),
            },
            normal_space="world",
            depth_kind="inverse",
            attribute_clues=("nuke/",),
            software_clues=("Nuke",),
        ),
    ]
}


def get_profile(name: str) -> AovProfile:
    if name not in PROFILES:
        raise ProfileError(f"unknown AOV profile {name!r}; known: {', '.join(PROFILES)} (or 'auto')")
    return PROFILES[name]


@dataclass(frozen=True)
class Detection:
    profile: AovProfile
    reason: str


def detect_profile(image: ExrImage) -> Detection:
    """Pick the profile whose header clues and channel names fit `image` best.

    A header clue (an attribute the renderer writes, its `Software` string) outweighs channel
    names; a tie between the best two is an error rather than a guess (Nuke's 1/Z `depth.Z`
    looks exactly like our planar one).
    """
    software = str(image.attributes.get("Software", image.attributes.get("software", "")))
    scored = []
    for profile in PROFILES.values():
        reasons = []
        score = 0
        for prefix in profile.attribute_clues:
            if any(name.startswith(prefix) for name in image.attributes):
                score += 10
                reasons.append(f"header attributes {prefix}*")
        for clue in profile.software_clues:
            if clue in software:
                score += 10
                reasons.append(f"Software {software!r}")
                break
        hints = [name for name in profile.hint_channels if name in image.channels]
        if hints:
            score += 3
            reasons.append(f"channels {hints}")
        found = [buffer for buffer in BUFFER_CHANNELS if profile.resolve(image, buffer) is not None]
        score += len(found)
        reasons.append(f"finds {', '.join(found) or 'nothing'}")
        scored.append((score, profile, "; ".join(reasons)))
    scored.sort(key=lambda entry: -entry[0])
    best_score, best, reason = scored[0]
    found = [buffer for buffer in REQUIRED_BUFFERS if best.finds(image, buffer)]
    if not found:
        raise ProfileError(
            f"{image.path}: no AOV profile recognises these channels {image.channels}; "
            "pass --profile and map the layers with --aov (see docs/AOV_PROFILES.md)"
        )
    tied = [profile.name for score, profile, _ in scored if score == best_score]
    if len(tied) > 1:
        missing = [buffer for buffer in REQUIRED_BUFFERS if buffer not in found]
        lacking = f"; none of them finds {', '.join(missing)}" if missing else ""
        raise ProfileError(
            f"{image.path}: the channels fit the profiles {', '.join(map(repr, tied))} equally "
            f"(each finds {', '.join(found)}{lacking}); pass --profile to choose"
        )
    return Detection(best, reason)


# --- user mappings: `--aov normal=myN.X,myN.Y,myN.Z` and TOML files --------------------------------

_OVERRIDABLE = {
    "normal_space": ("camera", "world"),
    "normal_encoding": ("signed", "packed"),
    "camera_axes": ("opengl", "renderman"),
    "depth_kind": ("planar", "ray", "inverse", "normalised"),
    "alpha_background": ("used", "required", "ignored"),
}
_NUMBERS = ("depth_scale", "background_depth", "depth_black", "depth_white")


@dataclass(frozen=True)
class PassFile:
    """A buffer in its own files (one pass per file, as Blender writes them): `--aov normal=N.####.exr`.

    `channels` picks the file's channels (`N.####.exr:X,Y,Z`); by default its R, G, B / X, Y, Z
    (or Z / Y / R / its only channel for one-channel buffers).
    """

    pattern: str
    channels: tuple[str, ...] = ()


def parse_aov_option(text: str) -> tuple[str, tuple[str, ...] | PassFile]:
    """`normal=myN.X,myN.Y,myN.Z` -> ('normal', ('myN.X', 'myN.Y', 'myN.Z')), checked for count;
    `normal=passes/Normal.####.exr[:X,Y,Z]` -> ('normal', PassFile(...))."""
    buffer, sep, value = text.partition("=")
    buffer, value = buffer.strip(), value.strip()
    file_part, colon, file_channels = value.rpartition(":")
    pattern = file_part if colon and file_part.lower().endswith(".exr") else value
    if pattern.lower().endswith(".exr"):
        if buffer not in BUFFER_CHANNELS:
            known = ", ".join(BUFFER_CHANNELS)
            raise ProfileError(f"--aov {text!r}: unknown buffer {buffer!r}; known: {known}")
        names = tuple(name.strip() for name in file_channels.split(",") if name.strip()) if colon else ()
        if names:
            _check_mapping(buffer, names, f"--aov {text!r}")
        return buffer, PassFile(pattern, names)
    channels = tuple(name.strip() for name in value.split(",") if name.strip())
    if not sep or not channels:
        raise ProfileError(
            f"--aov {text!r}: expected BUFFER=CHANNEL[,CHANNEL...] (normal=myN.X,myN.Y,myN.Z) or "
            "BUFFER=FILE.####.exr[:CHANNELS] for a pass in its own files"
        )
    return buffer, _check_mapping(buffer, channels, f"--aov {text!r}")


def _check_mapping(buffer: str, channels: tuple[str, ...], where: str) -> tuple[str, ...]:
    if buffer not in BUFFER_CHANNELS:
        raise ProfileError(f"{where}: unknown buffer {buffer!r}; known: {', '.join(BUFFER_CHANNELS)}")
    if len(channels) != BUFFER_CHANNELS[buffer]:
        raise ProfileError(
            f"{where}: {buffer} needs {BUFFER_CHANNELS[buffer]} channel(s), "
            f"got {len(channels)}: {list(channels)}"
        )
    return channels


def with_mapping(profile: AovProfile, mapping: Mapping[str, tuple[str, ...]]) -> AovProfile:
    """`profile` with the user's channels tried first for each mapped buffer."""
    channels = dict(profile.channels)
    for buffer, names in mapping.items():
        channels[buffer] = (_check_mapping(buffer, tuple(names), "mapping"), *channels.get(buffer, ()))
    return dataclasses.replace(profile, name=f"{profile.name}+mapping", channels=channels)


def load_profile_file(path: Path) -> AovProfile:
    """A studio profile from TOML: `base = "arnold"`, a `[channels]` table and convention keys.

    Example:
        base = "arnold"
        normal_encoding = "packed"
        depth_scale = 0.01
        [channels]
        normal = ["myN.X", "myN.Y", "myN.Z"]
    """
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ProfileError(f"{path}: cannot read the AOV profile file ({error})") from error
    return profile_from_toml(text, str(path), Path(path).stem)


def profile_from_toml(text: str, path: str, stem: str) -> AovProfile:
    """A studio profile from TOML text (a daemon request's `aov_profile_toml`); `path` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{path}: cannot read the AOV profile ({error})") from error
    profile = get_profile(str(data.pop("base", "canonical")))
    mapping = data.pop("channels", {})
    if not isinstance(mapping, dict):
        raise ProfileError(f"{path}: [channels] must be a table of buffer = [channel names]")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in _OVERRIDABLE:
            if value not in _OVERRIDABLE[key]:
                raise ProfileError(f"{path}: {key} = {value!r}; expected one of {_OVERRIDABLE[key]}")
            changes[key] = value
        elif key in _NUMBERS:
            positive = key in ("depth_scale", "background_depth")
            if not isinstance(value, int | float) or (positive and value <= 0):
                raise ProfileError(f"{path}: {key} must be a positive number, got {value!r}")
            changes[key] = float(value)
        else:
            raise ProfileError(
                f"{path}: unknown key {key!r}; expected base, channels, "
                f"{', '.join(_NUMBERS)} or {', '.join(_OVERRIDABLE)}"
            )
    checked = {
        buffer: _check_mapping(buffer, tuple(str(name) for name in names), f"{path} [channels]")
        for buffer, names in mapping.items()
    }
    named = dataclasses.replace(with_mapping(profile, checked), name=f"{profile.name}+{stem}")
    return dataclasses.replace(named, **changes)  # keys and values checked above
