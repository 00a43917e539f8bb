"""The one codec between a job's settings and a request's `params` (docs/PROTOCOL.md).

rf-render and the Nuke session build their requests here and the daemon's jobs read them back
here, so each field, its default and its rules are written once. Standard library only: the Nuke
side runs it under Python 3.10 without OpenImageIO or torch; the daemon turns the settings into
core's ReadOptions and RenderSettings (daemon/jobs.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from renderflow.daemon import protocol as wire

DEFAULT_COLOUR_SPACE = "lin_rec709"  # = core.io.colour.MODEL_COLOUR_SPACE (tests/test_requests.py)
AUTO_PROFILE = "auto"


class RequestError(ValueError):
    """Settings that cannot make a request; the message says what to change."""


def check_mapping_profile(profile: str, has_mapping: bool, mapping_name: str, profile_name: str) -> None:
    """A channel mapping extends a profile's conventions (normal space, depth encoding, ...): with
    `auto` nothing says which, so it is refused, in the caller's words (an option, a field, a knob)."""
    if has_mapping and profile == AUTO_PROFILE:
        raise RequestError(
            f"{mapping_name} needs an explicit {profile_name} (the base the mapping extends): the renderer "
            "that wrote the EXRs, or canonical for RenderFlow's own conventions"
        )


@dataclass(frozen=True)
class ShotParams:
    """How the daemon reads a shot's G-buffer EXRs."""

    profile: str = AUTO_PROFILE  # a built-in profile name, or auto
    aov: Mapping[str, Sequence[str]] = field(default_factory=dict)  # buffer -> channel names
    aov_profile_toml: str | None = None  # a studio profile (its text), instead of `profile`
    colour_space: str = DEFAULT_COLOUR_SPACE
    camera: Mapping[str, Any] | None = None  # a camera.json object (docs/CAMERAS.md)
    fov: float | None = None  # vertical, degrees; overrides the camera's
    view: str | None = None  # of multi-view (stereo) EXRs

    def __post_init__(self) -> None:
        base = self.profile if self.aov_profile_toml is None else "studio"
        check_mapping_profile(base, bool(self.aov), "params.aov", "params.profile")


@dataclass(frozen=True)
class RenderParams:
    """What a render is asked for beside its inputs."""

    steps: int = 1
    aovs: Sequence[str] = ()  # layers beside the beauty
    env_rotate: float = 0.0  # degrees of yaw
    env_flip: bool = False
    exposure: float = 0.0  # stops


@dataclass(frozen=True)
class DecomposeParams:
    """What a decomposition is asked for beside the plate."""

    steps: int = 1
    targets: Sequence[str] = wire.INTRINSIC_NAMES
    colour_space: str = DEFAULT_COLOUR_SPACE
    layer: str = ""  # the plate's layer; "" = the unprefixed R, G, B
    view: str | None = None  # of a multi-view (stereo) plate


def render_params(shot: ShotParams, render: RenderParams) -> dict[str, Any]:
    """The `params` of a render request."""
    params: dict[str, Any] = {
        "profile": shot.profile,
        "colour_space": shot.colour_space,
        "env_rotate": render.env_rotate,
        "env_flip": render.env_flip,
        "exposure": render.exposure,
        "steps": render.steps,
        "aovs": list(render.aovs),
    }
    if shot.aov:
        params["aov"] = {buffer: list(names) for buffer, names in shot.aov.items()}
    if shot.aov_profile_toml is not None:
        params["aov_profile_toml"] = shot.aov_profile_toml
    if shot.camera is not None:
        params["camera"] = dict(shot.camera)
    if shot.fov is not None:
        params["fov"] = shot.fov
    if shot.view is not None:
        params["view"] = shot.view
    return params


def decompose_params(decompose: DecomposeParams) -> dict[str, Any]:
    """The `params` of a decompose request."""
    params: dict[str, Any] = {
        "colour_space": decompose.colour_space,
        "layer": decompose.layer,
        "steps": decompose.steps,
        "targets": list(decompose.targets),
    }
    if decompose.view is not None:
        params["view"] = decompose.view
    return params


def shot_params_of(params: Mapping[str, Any]) -> ShotParams:
    """A render request's reading settings (fields already type-checked by protocol.check_request)."""
    mapping = params.get("aov", {})
    try:
        aov = {str(buffer): tuple(str(name) for name in names) for buffer, names in mapping.items()}
    except (TypeError, AttributeError) as error:
        raise RequestError(f"params.aov: expected {{buffer: [channel names]}}, got {mapping!r}") from error
    toml = params.get("aov_profile_toml")
    return ShotParams(
        str(params.get("profile", AUTO_PROFILE)),
        aov,
        None if toml is None else str(toml),
        str(params.get("colour_space", DEFAULT_COLOUR_SPACE)),
        params.get("camera"),
        float(params["fov"]) if "fov" in params else None,
        str(params["view"]) if "view" in params else None,
    )


def render_params_of(params: Mapping[str, Any]) -> RenderParams:
    """A render request's render settings."""
    return RenderParams(
        int(params.get("steps", 1)),
        tuple(str(name) for name in params.get("aovs", [])),
        float(params.get("env_rotate", 0.0)),
        bool(params.get("env_flip", False)),
        float(params.get("exposure", 0.0)),
    )


def decompose_params_of(params: Mapping[str, Any]) -> DecomposeParams:
    """A decompose request's settings."""
    return DecomposeParams(
        int(params.get("steps", 1)),
        tuple(str(name) for name in params.get("targets", wire.INTRINSIC_NAMES)),
        str(params.get("colour_space", DEFAULT_COLOUR_SPACE)),
        str(params.get("layer", "")),
        str(params["view"]) if "view" in params else None,
    )
