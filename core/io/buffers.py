"""The plain data of a render, numpy only: reading EXRs or building G-buffers never imports torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# A camera's vertical field of view when nothing says it (logged wherever it is assumed).
DEFAULT_VERTICAL_FOV_DEGREES = 40.0


@dataclass
class GBuffers:
    """The canonical buffers of ARCHITECTURE.md §2, each `[F, H, W, C]` float32."""

    albedo: np.ndarray  # linear diffuse colour, [0, 1], C = 3
    normal: np.ndarray  # camera-space unit normals, C = 3
    depth: np.ndarray  # planar depth > 0, background inf, C = 1
    material: np.ndarray  # roughness, metallic, specular in [0, 1], C = 3

    def validate(self) -> tuple[int, int, int]:
        """Check every buffer; return (frames, height, width) or raise a ValueError naming the buffer."""
        expected_channels = {"albedo": 3, "normal": 3, "depth": 1, "material": 3}
        frame_shape: tuple[int, int, int] | None = None
        for name, channels in expected_channels.items():
            buffer = getattr(self, name)
            if buffer is None:
                raise ValueError(f"missing G-buffer {name!r}")
            if buffer.ndim != 4 or buffer.shape[-1] != channels:
                raise ValueError(f"G-buffer {name!r}: expected [F, H, W, {channels}], got {buffer.shape}")
            if frame_shape is None:
                frame_shape = buffer.shape[:3]
            elif buffer.shape[:3] != frame_shape:
                raise ValueError(
                    f"G-buffer {name!r} has [F, H, W] = {list(buffer.shape[:3])}, "
                    f"albedo has {list(frame_shape)}"
                )
            check = buffer if name != "depth" else np.where(np.isposinf(buffer), 1.0, buffer)
            if not np.isfinite(check).all():
                raise ValueError(f"G-buffer {name!r} contains NaN or infinite values")
        assert frame_shape is not None
        if frame_shape[0] < 1:
            raise ValueError("G-buffers hold no frame")
        return frame_shape
