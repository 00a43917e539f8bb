"""Losses on known cases, and LPIPS in plain torch: loading, conversion, distance properties."""

import logging

import pytest
import torch

from renderflow.training import lpips as lpips_module
from renderflow.training.losses import bridge_loss, cosine_loss, gradient_loss, l1_loss, ssi_log_depth_loss
from renderflow.training.lpips import Lpips, convert_official_weights, load_lpips, load_lpips_file


def video(seed: int, channels: int = 3) -> torch.Tensor:
    return torch.randn(2, channels, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_bridge_loss_is_the_mean_squared_error():
    assert float(bridge_loss(torch.zeros(2, 3), torch.full((2, 3), 2.0))) == pytest.approx(4.0)


def test_gradient_loss_ignores_a_constant_offset_but_not_an_edge():
    image = video(0)
    assert float(gradient_loss(image + 0.7, image)) == pytest.approx(0.0, abs=1e-6)
    edged = image.clone()
    edged[..., 4:] += 1.0
    assert float(gradient_loss(edged, image)) > 0.01


def test_l1_with_and_without_mask():
    prediction, target = torch.zeros(1, 3, 1, 2, 2), torch.ones(1, 3, 1, 2, 2)
    target[..., 0, 0] = 5.0
    mask = torch.ones(1, 1, 1, 2, 2)
    mask[..., 0, 0] = 0.0
    assert float(l1_loss(prediction, target)) == pytest.approx((5 + 3) / 4)
    assert float(l1_loss(prediction, target, mask)) == pytest.approx(1.0)


def test_cosine_loss():
    normals = torch.nn.functional.normalize(video(1), dim=1)
    assert float(cosine_loss(normals * 3.0, normals)) == pytest.approx(0.0, abs=1e-6)
    assert float(cosine_loss(-normals, normals)) == pytest.approx(2.0, abs=1e-6)


def test_depth_loss_is_paper_eq_11_on_constructed_depths():
    # two valid pixels with Δ = log d̂ - log d = 0.1 and 0.3, one masked pixel that must not count
    target = torch.tensor([2.0, 5.0, 1.0]).log().view(1, 1, 1, 1, 3)
    prediction = target + torch.tensor([0.1, 0.3, 9.0]).view(1, 1, 1, 1, 3)
    mask = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 1, 3)
    # (1/N)ΣΔ² - (1/(2N²))(ΣΔ)² = (0.01 + 0.09)/2 - 0.4²/8 = 0.05 - 0.02
    assert float(ssi_log_depth_loss(prediction, target, mask)) == pytest.approx(0.03, abs=1e-6)


def test_depth_loss_forgives_half_of_a_global_scale_and_is_zero_only_for_the_truth():
    log_depth = video(2, channels=1)
    mask = torch.ones_like(log_depth)
    assert float(ssi_log_depth_loss(log_depth, log_depth, mask)) == pytest.approx(0.0, abs=1e-8)
    k = torch.tensor(3.0)
    scaled = float(ssi_log_depth_loss(log_depth + k.log(), log_depth, mask))
    assert scaled == pytest.approx(0.5 * float(k.log()) ** 2, rel=1e-5)
    assert float(ssi_log_depth_loss(video(4, channels=1), log_depth, mask)) > 0.5


def _random_lpips(seed: int = 0) -> Lpips:
    model = Lpips()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.rand(param.shape, generator=generator) * 0.1)
    return model


def test_lpips_distance_properties():
    model = _random_lpips()
    a = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5)) * 2 - 1
    b = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(6)) * 2 - 1
    assert torch.equal(model(a, a), torch.zeros(2))
    torch.testing.assert_close(model(a, b), model(b, a))
    assert bool((model(a, b) > 0).all())
    assert float(model(a, a + 0.05 * (b - a)).mean()) < float(model(a, b).mean())
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        model(a[:, :1], b[:, :1])


def test_official_weights_convert_to_safetensors(tmp_path):
    """The official layout (torchvision `features.*`, lpips `lin*.model.1.weight`) loads by name."""
    reference = _random_lpips(seed=2)
    backbone = {f"features.{k}": v for k, v in reference.net.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(4, 4)  # ignored: LPIPS uses the features only
    heads = {
        f"lin{i}.model.1.weight": head.model[1].weight.detach() for i, head in enumerate(reference.heads)
    }
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(heads, tmp_path / "alex.pth")
    out = tmp_path / "lpips.safetensors"
    convert_official_weights(tmp_path / "alexnet.pth", tmp_path / "alex.pth", out)
    loaded = load_lpips_file(out)
    a, b = torch.rand(2, 1, 3, 32, 32, generator=torch.Generator().manual_seed(7)) * 2 - 1
    torch.testing.assert_close(loaded(a, b), reference(a, b))

    torch.save({"lin0.model.1.weight": heads["lin0.model.1.weight"]}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="not LPIPS AlexNet weights"):
        convert_official_weights(
            tmp_path / "alexnet.pth", tmp_path / "partial.pth", tmp_path / "bad.safetensors"
        )
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match=r"junk\.safetensors"):
        load_lpips_file(tmp_path / "junk.safetensors")


def test_without_weights_lpips_is_unavailable_and_says_so(monkeypatch, caplog, tmp_path):
    monkeypatch.delenv(lpips_module.LPIPS_WEIGHTS_ENV, raising=False)
    with caplog.at_level(logging.WARNING):
        assert load_lpips(None) is None
    assert "LPIPS UNAVAILABLE" in caplog.text

    weights = tmp_path / "lpips.safetensors"
    from safetensors.torch import save_file

    save_file(_random_lpips().state_dict(), str(weights))
    monkeypatch.setenv(lpips_module.LPIPS_WEIGHTS_ENV, str(weights))
    distance = load_lpips(None)
    assert distance is not None
    image = torch.zeros(1, 3, 32, 32)
    assert float(distance(image, image)[0]) == 0.0
