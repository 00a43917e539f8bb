"""The shading's energy tables against Mitsuba's principled BSDF, and the Deferred shading against
the path tracer in a white furnace."""

import numpy as np
import pytest
import torch

from renderflow.core.io.buffers import GBuffers
from renderflow.core.io.cameras import look_at
from renderflow.core.io.exr import write_exr
from renderflow.core.shading.deferred import render_baseline
from renderflow.core.shading.principled_albedo import SPECULAR_LEVELS, surface_albedo, table_axis
from renderflow.training.mitsuba_render import mitsuba_module, render_frame, write_meshes
from renderflow.training.principled_albedo import directional_albedo
from renderflow.training.procedural import EnvSpec, MaterialSpec, SceneSpec, ShapeSpec

AXIS = table_axis()


@pytest.mark.parametrize(("rough", "view", "level"), [(3, 31, 2), (12, 6, 0), (20, 1, 4), (31, 16, 3)])
def test_the_tables_hold_mitsubas_albedo_at_their_samples(rough, view, level):
    """At a table sample the lookup returns what Mitsuba measures there: the axes are the right way
    round and each sits where the generator put it."""
    mi = mitsuba_module("scalar_rgb")
    roughness, n_dot_v, specular = AXIS[rough], AXIS[view], SPECULAR_LEVELS[level]
    looked_up = surface_albedo(*(torch.tensor([value]) for value in (roughness, n_dot_v, specular)))
    black = directional_albedo(mi, 0.0, roughness, 0.0, specular, n_dot_v)
    white = directional_albedo(mi, 1.0, roughness, 0.0, specular, n_dot_v)
    assert float(looked_up.dielectric_bias) == pytest.approx(black, abs=1e-4)
    assert float(looked_up.dielectric_scale) == pytest.approx(white - black, abs=1e-4)
    black = directional_albedo(mi, 0.0, roughness, 1.0, 0.5, n_dot_v)
    white = directional_albedo(mi, 1.0, roughness, 1.0, 0.5, n_dot_v)
    assert float(looked_up.metal_bias) == pytest.approx(black, abs=1e-4)
    assert float(looked_up.metal_scale) == pytest.approx(white - black, abs=1e-4)


@pytest.mark.parametrize(("roughness", "metallic"), [(0.6, 0.0), (1.0, 0.0), (0.6, 1.0), (0.3, 0.5)])
def test_deferred_matches_the_path_tracer_in_a_white_furnace(tmp_path, roughness, metallic):
    """A sphere under a uniform env map has no shadows and no inter-reflection: the Deferred
    shading must send back what the path tracer does, silhouettes (retro-reflection) included. The
    energy-conserving split sum with (1 - F) on the diffuse was 6-14 % too dark over such spheres."""
    radiance = 2.5
    envmap = np.full((32, 64, 3), radiance, np.float32)
    write_exr(tmp_path / "env.exr", envmap, ["R", "G", "B"], half=False)
    material = MaterialSpec((0.6, 0.4, 0.2), roughness, metallic, 0.5)
    scene = SceneSpec([ShapeSpec("sphere", (0.0, 1.0, 0.0), 1.0, 0.0, material)], EnvSpec("sky", 0))
    camera = look_at(np.array([0.0, 1.0, 4.0]), np.array([0.0, 1.0, 0.0]))
    frame = render_frame(scene, tmp_path / "env.exr", write_meshes(scene, tmp_path), camera, 40.0, 48, 256, 1)
    material_buffer = np.concatenate([frame["roughness"], frame["metallic"], frame["specular"]], -1)
    buffers = (frame["albedo"], frame["normal"], frame["depth"], material_buffer)
    gbuffers = GBuffers(*(buffer[None] for buffer in buffers))
    shaded = render_baseline("deferred", gbuffers, envmap, 40.0)[0]
    # pixels 2 or more from the outline: the path tracer's pixel filter mixes the background into it
    mask = np.pad(frame["mask"][..., 0] > 0.5, 2)
    inside = np.ones((48, 48), bool)
    for dy in range(5):
        for dx in range(5):
            inside &= mask[dy : dy + 48, dx : dx + 48]
    traced = frame["beauty"][inside].mean(0)
    np.testing.assert_allclose(shaded[inside].mean(0), traced, rtol=0.03)
