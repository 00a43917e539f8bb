"""The pictures of docs/WORKFLOWS.md, on the bundled model and the bundled held-out clip (its
path-traced beauty stands in for a plate, its G-buffers for a CG plate's):

    .venv/bin/python docs/make_workflow_demos.py            # writes docs/images/workflow_*.png

1. relight: the plate decomposed once, rendered under a studio map and a sunset sky;
2. insert: a sphere's G-buffers merged into the clip's by depth, the frame re-rendered with and
   without it, the ratio layer, and the comp (plate × ratio, the sphere over it);
3. material sweep (the paper's appendix C): the objects' roughness from 1 to 0 over the frames,
   then metallic from 0 to 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.clips import load_clip
from renderflow.core.io.envmap import camera_view_envmaps
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.shot.contact_sheet import display_colour, display_normal, write_contact_sheet
from renderflow.core.shot.demo import BUNDLED_MODEL, DEMO_CLIP
from renderflow.core.shot.workflows import MaterialEdit, edit_materials, insert_object, relight
from renderflow.training.procedural import EnvSpec, make_envmap

IMAGES = Path(__file__).parent / "images"
FRAMES = 5  # rows of each sheet: the clip's first frames
SPHERE_CENTRE_CAM = np.array([0.45, -0.25, -3.2])  # in front of the clip's objects, lower right
SPHERE_RADIUS = 0.35


def sphere_gbuffers(frames: int, size: int, fov_degrees: float) -> tuple[GBuffers, np.ndarray]:
    """A red plastic sphere in camera space, ray-cast exactly: its G-buffers and alpha `[F, H, W, 1]`."""
    half = math.tan(math.radians(fov_degrees) / 2)
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords * half, -coords * half)
    rays = np.stack([x, y, -np.ones_like(x)], axis=-1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    b = rays @ SPHERE_CENTRE_CAM
    disc = b**2 - (SPHERE_CENTRE_CAM @ SPHERE_CENTRE_CAM - SPHERE_RADIUS**2)
    hit = disc > 0
    distance = np.where(hit, b - np.sqrt(np.maximum(disc, 0)), np.inf)
    points = rays * distance[..., None]
    normal = np.where(hit[..., None], (points - SPHERE_CENTRE_CAM) / SPHERE_RADIUS, 0.0)
    depth = np.where(hit, -points[..., 2], np.inf)[..., None]
    albedo = np.where(hit[..., None], [0.7, 0.08, 0.05], 0.0)
    material = np.where(hit[..., None], [0.25, 0.0, 0.5], [0.5, 0.0, 0.5])

    def repeat(array: np.ndarray) -> np.ndarray:
        return np.repeat(array[None].astype(np.float32), frames, axis=0)

    return GBuffers(repeat(albedo), repeat(normal), repeat(depth), repeat(material)), repeat(
        hit[..., None] * 1.0
    )


def main() -> None:
    pipeline = RenderFlowPipeline.from_pretrained(BUNDLED_MODEL)
    clip = load_clip(DEMO_CLIP)
    plate = clip.beauty[:FRAMES]
    gbuffers = GBuffers(
        *(getattr(clip.gbuffers, name)[:FRAMES] for name in ("albedo", "normal", "depth", "material"))
    )
    height = plate.shape[1]
    cameras = clip.camera_to_world[:FRAMES]

    def seen(envmap_world: np.ndarray) -> np.ndarray:
        return camera_view_envmaps(envmap_world, cameras, height, 2 * height)

    studio, sunset = (make_envmap(EnvSpec(kind, seed)) for kind, seed in (("studio", 3), ("sky", 11)))
    decomposed, (under_studio, under_sunset) = relight(pipeline, plate, [seen(studio), seen(sunset)])
    write_contact_sheet(
        IMAGES / "workflow_relight.png",
        {
            "plate": display_colour(plate),
            "albedo": display_colour(decomposed.albedo),
            "normal": display_normal(decomposed.normal),
            "studio": display_colour(under_studio),
            "sunset": display_colour(under_sunset),
        },
    )

    sphere, alpha = sphere_gbuffers(FRAMES, height, clip.vertical_fov_degrees)
    inserted = insert_object(pipeline, plate, gbuffers, sphere, alpha, clip.envmap_cam[:FRAMES])
    write_contact_sheet(
        IMAGES / "workflow_insert.png",
        {
            "plate": display_colour(plate),
            "without": display_colour(inserted.without_object),
            "with": display_colour(inserted.with_object),
            "ratio": np.clip(inserted.ratio / 2.0, 0.0, 1.0),
            "comp": display_colour(inserted.comp),
        },
    )

    everything = np.isfinite(gbuffers.depth).astype(np.float32)
    rough = edit_materials(gbuffers, everything, MaterialEdit(roughness=(1.0, 0.0), metallic=0.0))
    metal = edit_materials(gbuffers, everything, MaterialEdit(roughness=0.2, metallic=(0.0, 1.0)))
    write_contact_sheet(
        IMAGES / "workflow_material_sweep.png",
        {
            "original": display_colour(pipeline.render(gbuffers, clip.envmap_cam[:FRAMES])),
            "rough 1-0": display_colour(pipeline.render(rough, clip.envmap_cam[:FRAMES])),
            "metal 0-1": display_colour(pipeline.render(metal, clip.envmap_cam[:FRAMES])),
        },
    )
    print("wrote", *sorted(str(p) for p in IMAGES.glob("workflow_*.png")))


if __name__ == "__main__":
    main()
