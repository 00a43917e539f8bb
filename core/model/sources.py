"""The bridge source z0 a model starts from, chosen once from its BridgeConfig.

A source is the image (model space) whose latent starts the bridge, or None for the paper's
albedo source (its latent is already among the G-buffer latents). Training (training/datasets.py)
and the pipeline use the same table, so a model is trained from what it renders from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from renderflow.core.io.buffers import DEFAULT_VERTICAL_FOV_DEGREES, GBuffers
from renderflow.core.model import encodings as enc
from renderflow.core.shading.deferred import shaded_source_model
from renderflow.core.shading.pixel_filter import PIXEL_FILTER_SIGMA, filter_pixels
from renderflow.core.shading.visibility import shade_with_visibility, shaded_visibility_source_model

logger = logging.getLogger(__name__)

# (G-buffers [F, H, W, C], normalised camera-view env maps [F, He, We, 3], vertical fov,
#  visibility blur in pixels) -> [F, H, W, 3]
SourceShader = Callable[[GBuffers, np.ndarray, float, float], np.ndarray]


def filtered_visibility_source_model(
    gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float, visibility_blur: float = 0.0
) -> np.ndarray:
    """The shading with visibility as a path tracer's pixels are: filtered by PIXEL_FILTER_SIGMA."""
    shading = shade_with_visibility(gbuffers, envmap_cam, vertical_fov_degrees, visibility_blur)
    return enc.beauty_to_model(filter_pixels(shading, PIXEL_FILTER_SIGMA))


def deferred_source_model(
    gbuffers: GBuffers, envmap_cam: np.ndarray, vertical_fov_degrees: float, visibility_blur: float = 0.0
) -> np.ndarray:
    """The Deferred shading: no visibility, so `visibility_blur` has nothing to smooth."""
    return shaded_source_model(gbuffers, envmap_cam, vertical_fov_degrees)


SOURCE_SHADERS: dict[str, SourceShader | None] = {
    "albedo": None,  # the paper: z0 is the albedo latent
    "shaded": deferred_source_model,  # Deferred shading (SH diffuse + split-sum GGX), no visibility
    "shaded_visibility": shaded_visibility_source_model,  # with shadows, occlusion and one bounce
    # ... under the renderer's pixel filter (core/shading/pixel_filter.py)
    "shaded_visibility_filtered": filtered_visibility_source_model,
}


# The pixel filter (σ, pixels) a source carries in itself; rf-eval gives its no-network rows the same.
SOURCE_PIXEL_FILTERS: dict[str, float] = {"shaded_visibility_filtered": PIXEL_FILTER_SIGMA}


class BridgeSource:
    """The source images of one model's bridge."""

    def __init__(self, name: str) -> None:
        if name not in SOURCE_SHADERS:
            raise ValueError(f"bridge source {name!r}: expected one of {tuple(SOURCE_SHADERS)}")
        self.name = name
        self.shader = SOURCE_SHADERS[name]

    @property
    def is_image(self) -> bool:
        """True when the source is an image of the G-buffers under the env map (not the albedo)."""
        return self.shader is not None

    def frames(
        self,
        gbuffers: GBuffers,
        envmap_cam: np.ndarray,
        vertical_fov_degrees: float | None,
        visibility_blur: float = 0.0,
    ) -> np.ndarray | None:
        """The source in model space `[F, H, W, 3]`, or None for the albedo source; `visibility_blur`
        as in `shade_with_visibility`."""
        if self.shader is None:
            return None
        if vertical_fov_degrees is None:
            logger.warning(
                "no field of view given for the shading the model starts from; assuming %.0f degrees "
                "(rf-render --fov or camera.json)",
                DEFAULT_VERTICAL_FOV_DEGREES,
            )
            vertical_fov_degrees = DEFAULT_VERTICAL_FOV_DEGREES
        return self.shader(gbuffers, envmap_cam, vertical_fov_degrees, visibility_blur)
