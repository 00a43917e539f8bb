import pytest
import torch

from renderflow.core.model import bridge


def _latents(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    shape = (4, 3, 2, 4, 4)
    return tuple(torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))  # type: ignore[return-value]


def test_one_step_with_the_true_velocity_recovers_z1_exactly_at_every_training_time():
    z0, z1, noise = _latents()
    t = torch.tensor(bridge.BridgeConfig().train_times, dtype=torch.float64)
    z_t = bridge.interpolant(z0, z1, t, sigma=0.005, noise=noise)
    v = bridge.velocity_target(z1, z_t, t)
    z1_hat = z_t + v * (1 - t).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(z1_hat, z1, rtol=0, atol=1e-12)


def test_interpolant_is_the_albedo_at_t0_whatever_the_noise():
    z0, z1, noise = _latents(1)
    t = torch.zeros(4, dtype=torch.float64)
    assert torch.equal(bridge.interpolant(z0, z1, t, sigma=0.005, noise=noise), z0)


def test_sigma_zero_reduces_to_flow_matching():
    z0, z1, noise = _latents(2)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64)
    z_t = bridge.interpolant(z0, z1, t, sigma=0.0, noise=noise)
    t_ = t.view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(z_t, (1 - t_) * z0 + t_ * z1)
    torch.testing.assert_close(bridge.velocity_target(z1, z_t, t), z1 - z0)


def test_noise_scale_follows_the_brownian_bridge():
    z = torch.zeros(1, 1, 1, 1, 1)
    noise = torch.ones_like(z)
    z_t = bridge.interpolant(z, z, torch.tensor([0.5]), sigma=0.2, noise=noise)
    assert z_t.item() == pytest.approx(0.2 * 0.5)


@pytest.mark.parametrize("steps", [1, 4, 30])
def test_sampler_with_the_flow_velocity_lands_on_z1(steps):
    z0, z1, _ = _latents(3)
    calls = []

    def velocity(z_t, t):
        calls.append(t[0].item())
        return z1 - z0  # the exact flow-matching velocity

    torch.testing.assert_close(bridge.sample(z0, velocity, steps), z1)
    assert calls == pytest.approx([i / steps for i in range(steps)])


def test_training_times_are_the_four_discrete_values():
    times = bridge.sample_train_times(1000, bridge.BridgeConfig(), torch.Generator().manual_seed(0))
    assert set(times.tolist()) == {0.0, 0.25, 0.5, 0.75}


def test_wan_timestep_maps_albedo_to_wans_noisiest_timestep():
    t = torch.tensor([0.0, 0.5, 0.75])
    torch.testing.assert_close(bridge.wan_timestep(t), torch.tensor([1000.0, 500.0, 250.0]))


def test_zero_steps_is_an_error():
    with pytest.raises(ValueError, match="steps"):
        bridge.inference_times(0)


@pytest.mark.parametrize("t", [0.25, 0.5, 0.75])
def test_bridge_noise_term_is_sigma_sqrt_t_one_minus_t_epsilon(t):
    # paper eq. 4: z_t = (1 - t)·z0 + t·z1 + σ·sqrt(t(1 - t))·ε
    z0, z1, noise = _latents(4)
    times = torch.full((4,), t, dtype=torch.float64)
    deterministic = bridge.interpolant(z0, z1, times, sigma=0.0, noise=noise)
    with_noise = bridge.interpolant(z0, z1, times, sigma=0.005, noise=noise)
    torch.testing.assert_close(with_noise - deterministic, 0.005 * (t * (1 - t)) ** 0.5 * noise)
