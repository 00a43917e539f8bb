"""Importing Wan2.1 from a local diffusers folder, with a tiny random Wan written by the test."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_envmap, make_gbuffers
from diffusers import AutoencoderKLWan, WanTransformer3DModel

from renderflow.core.model.autoencoder import WanAutoencoder
from renderflow.core.model.bridge import wan_timestep
from renderflow.core.model.pipeline import RenderFlowPipeline
from renderflow.core.model.wan_import import import_wan
from renderflow.daemon.rf_render.cli import main as rf_render

Z_DIM = 4


@pytest.fixture(scope="module")
def wan_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("wan")
    WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=Z_DIM,
        out_channels=Z_DIM,
        text_dim=16,
        freq_dim=16,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        rope_max_seq_len=32,
    ).save_pretrained(folder / "transformer")
    AutoencoderKLWan(
        base_dim=3,
        z_dim=Z_DIM,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.1, -0.2, 0.0, 0.3],
        latents_std=[1.5, 2.0, 1.0, 0.5],
    ).save_pretrained(folder / "vae")
    return folder


def test_wan_weights_land_in_renderflow_and_text_parts_are_dropped(wan_folder):
    wan = WanTransformer3DModel.from_pretrained(wan_folder / "transformer").state_dict()
    pipeline = import_wan(wan_folder, lora_rank=4)
    assert pipeline.config.transformer_window == 832  # Wan's own frames render whole, never in windows
    ours = pipeline.transformer.state_dict()
    for key in (
        "blocks.1.attn1.to_q.weight",
        "blocks.0.attn1.norm_q.weight",
        "condition_embedder.time_proj.weight",
        "patch_embedding.weight",
        "scale_shift_table",
        "blocks.1.scale_shift_table",
    ):
        ours_key = key if key in ours else key.replace(".weight", ".base_layer.weight")
        assert key in wan and torch.equal(ours[ours_key], wan[key]), key
    assert torch.equal(ours["blocks.0.ffn.net.2.base_layer.weight"], wan["blocks.0.ffn.net.2.weight"])
    assert not any("attn2" in k or "text_embedder" in k for k in ours)
    # the head is negated: Wan predicts noise - data, our bridge velocity is data - source
    assert torch.equal(ours["proj_out.weight"], -wan["proj_out.weight"])
    assert torch.equal(ours["proj_out.bias"], -wan["proj_out.bias"])


def test_imported_velocity_is_the_negative_of_wans_prediction(wan_folder, tmp_path):
    # A Wan whose text cross-attention adds nothing (zero output projection) computes exactly what
    # our transformer computes at initialisation (attribute embedder and env AdaLN at zero): so the
    # imported velocity must be -(Wan's noise - data) = data - noise, our bridge's direction.
    wan = WanTransformer3DModel.from_pretrained(wan_folder / "transformer")
    for block in wan.blocks:
        torch.nn.init.zeros_(block.attn2.to_out[0].weight)
        torch.nn.init.zeros_(block.attn2.to_out[0].bias)
    folder = tmp_path / "wan"
    wan.save_pretrained(folder / "transformer")
    AutoencoderKLWan.from_pretrained(wan_folder / "vae").save_pretrained(folder / "vae")
    ours = import_wan(folder, lora_rank=4).transformer

    torch.manual_seed(1)
    latent = torch.randn(1, Z_DIM, 2, 8, 8)
    t = torch.tensor([0.25])
    with torch.no_grad():
        wan_prediction = wan(latent, wan_timestep(t), torch.randn(1, 3, 16), return_dict=False)[0]
        velocity = ours(latent, t, torch.zeros(1, 4 * Z_DIM + 1, 2, 8, 8), torch.zeros_like(latent))
    torch.testing.assert_close(velocity, -wan_prediction, rtol=1e-4, atol=1e-5)


def test_new_parts_are_initialised_as_the_paper_says(wan_folder):
    transformer = import_wan(wan_folder, lora_rank=4).transformer
    assert torch.equal(transformer.env_embedder.weight, transformer.patch_embedding.weight)
    assert not transformer.attribute_embedder.weight.any()
    assert all(not block.env_modulation.weight.any() for block in transformer.blocks)


def test_imported_model_renders_with_wans_vae_and_its_frame_rule(wan_folder):
    pipeline = import_wan(wan_folder, lora_rank=4)
    assert isinstance(pipeline.autoencoder, WanAutoencoder)
    # 7 frames in chunks of 5: (0-5) and (4-7), the second padded to 5 frames (1 + 4k) and cropped.
    beauty = pipeline.render(make_gbuffers(frames=7, size=32), make_envmap())
    assert beauty.shape == (7, 32, 32, 3) and np.isfinite(beauty).all()


def test_wan_latents_are_normalised_with_the_vaes_statistics(wan_folder):
    autoencoder = import_wan(wan_folder, lora_rank=4).autoencoder
    video = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    raw = autoencoder.vae.encode(video).latent_dist.mode()
    mean = torch.tensor([0.1, -0.2, 0.0, 0.3]).view(1, -1, 1, 1, 1)
    std = torch.tensor([1.5, 2.0, 1.0, 0.5]).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(autoencoder.encode(video), (raw - mean) / std)
    with pytest.raises(ValueError, match=r"cannot encode 4 frames"):
        autoencoder.encode(video[:, :, :4])


def test_imported_model_round_trips_through_a_renderflow_checkpoint(wan_folder, tmp_path):
    pipeline = import_wan(wan_folder, lora_rank=4)
    gbuffers, env = make_gbuffers(frames=5, size=32), make_envmap()
    pipeline.save_pretrained(tmp_path)
    loaded = RenderFlowPipeline.from_pretrained(tmp_path)
    np.testing.assert_array_equal(loaded.render(gbuffers, env), pipeline.render(gbuffers, env))


def test_missing_wan_parts_are_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected a diffusers Wan2.1 transformer folder"):
        import_wan(tmp_path)


def test_rf_render_import_wan_v2_takes_the_bundled_models_choices(wan_folder, tmp_path):
    result = CliRunner().invoke(rf_render, ["import-wan", str(wan_folder), str(tmp_path / "ckpt"), "--v2"])
    assert result.exit_code == 0, result.output
    pipeline = RenderFlowPipeline.from_pretrained(tmp_path / "ckpt")
    assert pipeline.lighting.normalise and pipeline.lighting.env_brackets == (0.0, -8.0)
    assert pipeline.bridge.source == "shaded" and pipeline.transformer.config["env_latents"] == 2
    assert pipeline.keyframe_adapter is not None and pipeline.keyframe_adapter.config["reprojection"]
    # the env embedder's first bracket is Wan's patch embedding, the darker one starts at zero
    weight = pipeline.transformer.env_embedder.weight
    assert torch.equal(weight[:, :Z_DIM], pipeline.transformer.patch_embedding.weight)
    assert not weight[:, Z_DIM:].any()
    beauty = pipeline.render(make_gbuffers(frames=5, size=32), make_envmap(), vertical_fov_degrees=40.0)
    assert beauty.shape == (5, 32, 32, 3) and np.isfinite(beauty).all()
