"""The transformer and its adapters: shapes, zero-init invariants, adapter invariants."""

import inspect
import re

import pytest
import torch
from conftest import TINY_TRANSFORMER, randomise

from renderflow.core.model.attention import CrossAttention, rotate_by_position
from renderflow.core.model.autoencoder import TinyAutoencoder
from renderflow.core.model.inverse import INVERSE_LORA, InverseAdapter
from renderflow.core.model.keyframe import KEYFRAME_LORA, KeyframeAdapter, bracketing_keyframes
from renderflow.core.model.lora import has_lora, selected_lora, set_lora_enabled
from renderflow.core.model.pipeline import ADAPTER_LORAS
from renderflow.core.model.transformer import ATTRIBUTE_LATENTS, BlockBranches, RenderFlowTransformer
from renderflow.core.model.velocity import forward_velocity, inverse_velocity

C = TINY_TRANSFORMER["in_channels"]


def _inputs(seed: int = 0, frames: int = 2, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(1, C, frames, size, size, generator=g)
    attributes = torch.randn(1, C * len(ATTRIBUTE_LATENTS) + 1, frames, size, size, generator=g)
    env = torch.randn(1, C, frames, size, size, generator=g)
    return z, torch.zeros(1), attributes, env


@pytest.fixture
def transformer() -> RenderFlowTransformer:
    torch.manual_seed(0)
    return RenderFlowTransformer(**TINY_TRANSFORMER).eval()


def test_forward_returns_a_velocity_shaped_like_the_latent(transformer):
    z, t, attributes, env = _inputs()
    assert transformer(z, t, attributes, env).shape == z.shape


def test_fresh_model_ignores_attributes_and_env_until_trained(transformer):
    z, t, attributes, env = _inputs()
    with torch.no_grad():
        reference = transformer(z, t, attributes, env)
        other = transformer(z, t, torch.randn_like(attributes), torch.randn_like(env))
    torch.testing.assert_close(other, reference, rtol=0, atol=0)


def test_trained_model_uses_attributes_and_env(transformer):
    randomise(transformer.attribute_embedder)
    for block in transformer.blocks:
        randomise(block.env_modulation)
    z, t, attributes, env = _inputs()
    with torch.no_grad():
        reference = transformer(z, t, attributes, env)
        assert not torch.allclose(transformer(z, t, torch.randn_like(attributes), env), reference)
        assert not torch.allclose(transformer(z, t, attributes, torch.randn_like(env)), reference)


def test_env_embedder_starts_as_the_albedo_patch_embedding(transformer):
    assert torch.equal(transformer.env_embedder.weight, transformer.patch_embedding.weight)


def test_text_cross_attention_is_gone(transformer):
    names = [name for name, _ in transformer.named_modules()]
    assert not any(".attn2" in name or ".norm2" in name or "text_embedder" in name for name in names)


def test_mismatched_latents_are_a_clear_error(transformer):
    z, t, attributes, env = _inputs()
    with pytest.raises(ValueError, match="latents disagree"):
        transformer(z, t, attributes[:, :, :1], env)


def test_latent_not_divisible_by_patch_is_a_clear_error(transformer):
    z, t, attributes, env = _inputs(size=7)
    with pytest.raises(ValueError, match="not divisible by the patch"):
        transformer(z, t, attributes, env)


def test_attached_keyframe_adapter_without_keyframes_returns_the_stage1_output(transformer):
    z, t, attributes, env = _inputs()
    with torch.no_grad():
        stage1 = transformer(z, t, attributes, env)
    adapter = KeyframeAdapter.for_transformer(transformer, lora_rank=4)
    adapter.attach(transformer)
    randomise(adapter)
    for name, param in transformer.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.1)
    with torch.no_grad():
        out = forward_velocity(transformer, z, t, attributes, env, adapter, None)
    assert torch.equal(out, stage1)


def test_keyframes_change_the_output_once_the_adapter_is_trained(transformer):
    z, t, attributes, env = _inputs()
    adapter = KeyframeAdapter.for_transformer(transformer, lora_rank=4)
    adapter.attach(transformer)
    randomise(adapter)
    keyframes = adapter.embed(torch.randn(1, C, 2, 8, 8), torch.tensor([0.0, 3.0]))
    assert keyframes.tokens.shape == (1, 2 * 4 * 4, adapter.config.dim)
    with torch.no_grad():
        stage1 = forward_velocity(transformer, z, t, attributes, env, adapter, None)
        with selected_lora(transformer, KEYFRAME_LORA, ADAPTER_LORAS):
            guided = forward_velocity(transformer, z, t, attributes, env, adapter, keyframes)
    assert guided.shape == z.shape
    assert not torch.allclose(guided, stage1)


def test_a_task_selects_one_lora_and_leaves_every_adapter_off_afterwards(transformer):
    ffn, query = _both_adapters_lora_layers(transformer)
    with selected_lora(transformer, INVERSE_LORA, ADAPTER_LORAS):
        assert query.disable_adapters is False and ffn.disable_adapters is True
    assert query.disable_adapters is True and ffn.disable_adapters is True
    with pytest.raises(RuntimeError), selected_lora(transformer, KEYFRAME_LORA, ADAPTER_LORAS):
        assert ffn.disable_adapters is False
        raise RuntimeError("a failed render")
    assert ffn.disable_adapters is True


def _both_adapters_lora_layers(transformer):
    """Attach a keyframe and an inverse adapter; block 0's FFN (keyframe LoRA) and query (inverse LoRA)."""
    KeyframeAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    InverseAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    layers = {name: module for name, module in transformer.named_modules() if hasattr(module, "lora_A")}
    return layers["blocks.0.ffn.net.2"], layers["blocks.0.attn1.to_q"]


def test_each_lora_acts_when_switched_on_with_both_adapters_attached(transformer):
    """Both adapters on one model: switching one on runs that adapter's LoRA, and only it."""
    ffn, query = _both_adapters_lora_layers(transformer)
    x_ffn, x_query = torch.randn(3, ffn.in_features), torch.randn(3, query.in_features)
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
        base_ffn, base_query = ffn.base_layer(x_ffn), query.base_layer(x_query)
        set_lora_enabled(transformer, KEYFRAME_LORA, True)
        set_lora_enabled(transformer, INVERSE_LORA, False)
        assert not torch.allclose(ffn(x_ffn), base_ffn)
        assert torch.equal(query(x_query), base_query)
        set_lora_enabled(transformer, KEYFRAME_LORA, False)
        set_lora_enabled(transformer, INVERSE_LORA, True)
        assert torch.equal(ffn(x_ffn), base_ffn)
        assert not torch.allclose(query(x_query), base_query)


def test_switching_lora_keeps_the_trainable_flags(transformer):
    KeyframeAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    for name, param in transformer.named_parameters():
        param.requires_grad_(f".{KEYFRAME_LORA}." in name)
    trainable = {name for name, param in transformer.named_parameters() if param.requires_grad}
    set_lora_enabled(transformer, KEYFRAME_LORA, True)
    set_lora_enabled(transformer, KEYFRAME_LORA, False)
    assert (
        trainable
        and {name for name, param in transformer.named_parameters() if param.requires_grad} == trainable
    )


def test_keyframe_lora_targets_the_feed_forward_only(transformer):
    KeyframeAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    adapted = {
        name.rsplit(".lora_A", 1)[0] for name, _ in transformer.named_modules() if name.endswith("lora_A")
    }
    assert adapted and all(re.fullmatch(r"blocks\.\d+\.ffn\.net\.(0\.proj|2)", name) for name in adapted)
    assert len(adapted) == 2 * TINY_TRANSFORMER["num_layers"]


def test_inverse_lora_targets_self_attention_qkv_only(transformer):
    KeyframeAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    InverseAdapter.for_transformer(transformer, lora_rank=4).attach(transformer)
    adapted = {
        name.rsplit(".lora_A", 1)[0]
        for name, module in transformer.named_modules()
        if name.endswith("lora_A") and INVERSE_LORA in module
    }
    assert adapted == {
        f"blocks.{i}.attn1.to_{p}" for i in range(TINY_TRANSFORMER["num_layers"]) for p in "qkv"
    }
    assert has_lora(transformer, KEYFRAME_LORA) and has_lora(transformer, INVERSE_LORA)


def test_inverse_adapter_leaves_forward_weights_and_outputs_unchanged(transformer):
    z, t, attributes, env = _inputs()
    weights_before = {k: v.clone() for k, v in transformer.state_dict().items()}
    with torch.no_grad():
        forward_before = transformer(z, t, attributes, env)
    adapter = InverseAdapter.for_transformer(transformer, lora_rank=4)
    adapter.attach(transformer)
    for name, param in transformer.named_parameters():
        if "lora_" in name:
            torch.nn.init.normal_(param, std=0.1)
    with torch.no_grad():
        decomposed = inverse_velocity(transformer, adapter, z, t, "normal")
        forward_after = forward_velocity(transformer, z, t, attributes, env)
    assert decomposed.shape == z.shape
    assert torch.equal(forward_after, forward_before)
    for key, value in transformer.state_dict().items():
        if "lora_" not in key:
            assert torch.equal(value, weights_before[key.replace(".base_layer.", ".")])


def test_each_intrinsic_has_its_own_head_and_prompt(transformer):
    adapter = InverseAdapter.for_transformer(transformer, lora_rank=4)
    adapter.attach(transformer)
    randomise(adapter)
    z, t, _, _ = _inputs()
    with torch.no_grad():
        albedo = inverse_velocity(transformer, adapter, z, t, "albedo")
        depth = inverse_velocity(transformer, adapter, z, t, "depth")
    assert not torch.allclose(albedo, depth)
    with pytest.raises(ValueError, match="unknown intrinsic 'specularity'"):
        inverse_velocity(transformer, adapter, z, t, "specularity")


def test_rope_depends_only_on_the_offset_in_time_and_space():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 32, generator=g)
    k = torch.randn(1, 1, 1, 32, generator=g)

    def score(query_at: tuple[float, ...], key_at: tuple[float, ...]) -> float:
        rq = rotate_by_position(q, torch.tensor([query_at]), 10000.0)
        rk = rotate_by_position(k, torch.tensor([key_at]), 10000.0)
        return float((rq * rk).sum())

    assert score((3.0, 2.0, 5.0), (1.0, 0.0, 4.0)) == pytest.approx(
        score((12.0, 7.0, 9.0), (10.0, 5.0, 8.0)), abs=1e-4
    )
    # each axis counts: moving the key in time, in rows or in columns changes the score
    for moved in ((2.0, 0.0, 4.0), (1.0, 1.0, 4.0), (1.0, 0.0, 5.0)):
        assert score((3.0, 2.0, 5.0), (1.0, 0.0, 4.0)) != pytest.approx(
            score((3.0, 2.0, 5.0), moved), abs=1e-4
        )
    # one axis (positions [L]) is the 1D rotary embedding over the whole head
    assert torch.equal(
        rotate_by_position(q, torch.tensor([3.0]), 10000.0),
        rotate_by_position(q, torch.tensor([[3.0]]), 10000.0),
    )


def test_aligned_path_gives_each_frame_the_keyframes_before_and_after_it(transformer):
    adapter = KeyframeAdapter.for_transformer(transformer, lora_rank=4)
    latents = torch.arange(3.0).view(1, 1, 3, 1, 1).expand(1, C, 3, 4, 4)  # keyframe k is all k
    keyframes = adapter.embed(latents, torch.tensor([8.0, 0.0, 16.0]))  # given out of order
    aligned = bracketing_keyframes(keyframes, torch.tensor([0.0, 4.0, 16.0, 20.0]))
    assert aligned.shape == (1, 2 * (C + 2), 4, 4, 4)
    before, before_present, before_distance = aligned[0, :C], aligned[0, C], aligned[0, C + 1]
    after, after_present, after_distance = (
        aligned[0, C + 2 : 2 * C + 2],
        aligned[0, 2 * C + 2],
        aligned[0, -1],
    )
    # frame 0 is keyframe 0 itself; frame 4 lies between keyframes 0 (frame 0) and 1 (frame 8)
    # by time the keyframes hold 1 (frame 0), 0 (frame 8), 2 (frame 16)
    assert before[0, :, 0, 0].tolist() == [1.0, 1.0, 2.0, 2.0]
    assert after[0, :, 0, 0].tolist() == [1.0, 0.0, 2.0, 0.0]
    assert before_present[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert after_present[:, 0, 0].tolist() == [1.0, 1.0, 1.0, 0.0]  # nothing after frame 20
    assert before_distance[:, 0, 0].tolist() == [0.0, 4 / 16, 0.0, 4 / 16]
    assert after_distance[:, 0, 0].tolist() == [0.0, -4 / 16, 0.0, 0.0]


def test_keyframe_tokens_sit_at_their_time_row_and_column(transformer):
    adapter = KeyframeAdapter.for_transformer(transformer, lora_rank=4)
    keyframes = adapter.embed(torch.randn(1, C, 2, 8, 8), torch.tensor([0.0, 3.0]))
    # 2 keyframes of 4 × 4 tokens (8 × 8 latent, patch 2), frame by frame, row by row
    assert keyframes.positions.shape == (32, 3)
    assert keyframes.positions[0].tolist() == [0.0, 0.0, 0.0]
    assert keyframes.positions[5].tolist() == [0.0, 1.0, 1.0]
    assert keyframes.positions[16 + 15].tolist() == [3.0, 3.0, 3.0]
    z, _, _, _ = _inputs()
    queries = transformer.token_positions(z, first_frame=10.0, frame_step=4.0)
    assert queries.shape == (z.shape[2] * 16, 3)
    assert queries[16 + 6].tolist() == [14.0, 1.0, 2.0]


@pytest.mark.parametrize("cls", [RenderFlowTransformer, KeyframeAdapter, InverseAdapter, TinyAutoencoder])
def test_args_docstring_lists_exactly_the_signature(cls):
    parameters = [name for name in inspect.signature(cls.__init__).parameters if name != "self"]
    documented = re.findall(r"^\s{8}(\w+):", cls.__doc__.split("Args:")[1], flags=re.MULTILINE)
    assert documented == parameters


def test_env_adaln_is_one_plus_gamma_times_f_plus_beta(transformer):
    # paper §4.2: every block modulates the render features f <- (1 + γ)·f + β, (γ, β) from env tokens
    block = transformer.blocks[0]
    randomise(block.env_modulation)
    g = torch.Generator().manual_seed(5)
    tokens, env_tokens = torch.randn(1, 16, 24, generator=g), torch.randn(1, 16, 24, generator=g)
    temb = torch.randn(1, 6, 24, generator=g)
    rotary = transformer.rope(torch.zeros(1, C, 1, 8, 8))
    with torch.no_grad():
        gamma, beta = block.env_modulation(env_tokens).chunk(2, dim=-1)
        modulated = block(tokens, temb, rotary, env_tokens, BlockBranches())
        by_hand = block(tokens * (1 + gamma) + beta, temb, rotary, None, BlockBranches())
    torch.testing.assert_close(modulated, by_hand, rtol=0, atol=0)


def test_keyframe_branch_runs_beside_self_attention_on_its_input(transformer):
    # paper Fig. 3: the keyframe cross-attention is parallel to self-attention: it reads the same
    # normalised tokens self-attention reads, and its output is added to the residual stream
    block = transformer.blocks[0]
    seen: dict[str, torch.Tensor] = {}
    block.attn1.register_forward_hook(lambda module, args, output: seen.setdefault("attn1", args[0]))

    def branch(tokens: torch.Tensor) -> torch.Tensor:
        seen["branch"] = tokens
        return torch.full_like(tokens, 0.5)

    g = torch.Generator().manual_seed(6)
    tokens, temb = torch.randn(1, 16, 24, generator=g), torch.randn(1, 6, 24, generator=g)
    rotary = transformer.rope(torch.zeros(1, C, 1, 8, 8))
    with torch.no_grad():
        with_branch = block(tokens, temb, rotary, None, BlockBranches(beside_self_attention=branch))
        without = block(tokens, temb, rotary, None, BlockBranches(beside_self_attention=torch.zeros_like))
    assert torch.equal(seen["branch"], seen["attn1"])
    assert not torch.allclose(with_branch, without)


def test_rope_is_applied_inside_the_keyframe_cross_attention():
    attention = CrossAttention(dim=24, num_heads=2)
    randomise(attention)
    g = torch.Generator().manual_seed(7)
    queries, context = torch.randn(1, 3, 24, generator=g), torch.randn(1, 4, 24, generator=g)
    query_at = torch.tensor([[4.0, 0.0, 1.0], [4.0, 1.0, 0.0], [5.0, 2.0, 2.0]])
    key_at = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [8.0, 0.0, 0.0], [8.0, 1.0, 1.0]])
    with torch.no_grad():
        at_rest = attention(queries, context, query_at, key_at)
        shifted = attention(
            queries,
            context,
            query_at + torch.tensor([7.0, 3.0, -2.0]),
            key_at + torch.tensor([7.0, 3.0, -2.0]),
        )
        moved_keys = attention(queries, context, query_at, key_at + torch.tensor([3.0, 0.0, 0.0]))
        without = attention(queries, context)
    torch.testing.assert_close(shifted, at_rest, rtol=1e-4, atol=1e-5)  # only the offset counts
    assert not torch.allclose(moved_keys, at_rest, atol=1e-4)  # the temporal distance counts
    assert not torch.allclose(without, at_rest, atol=1e-4)  # positions are used at all


def test_the_keyframe_adapter_rotates_queries_and_keys_by_their_positions(transformer, monkeypatch):
    """The wiring, not only the attention: a render with keyframes rotates the frame's queries by the
    transformer's token positions and the keys by the keyframes' (removing either fails here)."""
    import renderflow.core.model.attention as attention_module

    calls = []

    def recording(values, positions, theta):
        calls.append(positions.clone())
        return rotate_by_position(values, positions, theta)

    monkeypatch.setattr(attention_module, "rotate_by_position", recording)
    z, t, attributes, env = _inputs()
    adapter = KeyframeAdapter.for_transformer(transformer, lora_rank=4)
    adapter.attach(transformer)
    keyframes = adapter.embed(torch.randn(1, C, 2, 8, 8), torch.tensor([0.0, 3.0]))
    with torch.no_grad():
        forward_velocity(
            transformer, z, t, attributes, env, adapter, keyframes, first_frame=1.0, frame_step=1.0
        )
    queries = transformer.token_positions(z, 1.0, 1.0)
    assert len(calls) == 2 * len(adapter.attentions)  # queries and keys, in every block
    for query_call, key_call in zip(calls[::2], calls[1::2], strict=True):
        torch.testing.assert_close(query_call, queries)
        torch.testing.assert_close(key_call, keyframes.positions)
