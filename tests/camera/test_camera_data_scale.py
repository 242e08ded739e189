"""DIRECTOR's EDM runs on data_scale (0.5) x the standardised features, in training and in sampling.

Both are checked as properties of the real code paths (``director_loss``, which `train director`
optimises, and ``sample_trajectories``, which `camera generate` and `evaluate director` call): the
loss of a network with data_scale s on features x is the loss of the same weights with data_scale 1
on s x, and a sample with data_scale s is the data_scale-1 sample (same noise) divided by s.
"""

import pytest
import torch

from storylab.camera.director import Director, DirectorConfig
from storylab.camera.sampling import SamplingConfig, sample_trajectories
from storylab.camera.training import DirectorTrainConfig, director_loss
from storylab.diffusion import EDMConfig


def net_with(scale: float) -> Director:
    torch.manual_seed(0)
    cfg = DirectorConfig.build("incontext", d_model=32, n_layers=2, n_heads=2, cond_layers=1, max_frames=40,
                               text_dim=16, dropout=0.0)
    net = Director(cfg)
    scaled = Director(DirectorConfig(**{**cfg.to_dict(), "data_scale": scale}))
    scaled.load_state_dict(net.state_dict())
    return scaled.eval()


def batch(features_scale: float = 1.0):
    g = torch.Generator().manual_seed(3)
    b, t = 3, 10
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[2, 7:] = False
    x = torch.randn(b, t, 9, generator=g) * features_scale
    return (x, mask, torch.randn(b, t, 3, generator=g), torch.randn(b, 16, generator=g),
            torch.randn(b, 5, 16, generator=g), torch.ones(b, 5))


def test_the_default_is_the_authors_half():
    assert DirectorConfig.build("incontext").data_scale == 0.5


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_training_sees_data_scale_times_the_features(scale):
    edm = EDMConfig(sigma_data=0.5, p_mean=DirectorTrainConfig().p_mean, p_std=DirectorTrainConfig().p_std)
    torch.manual_seed(7)
    loss_scaled = director_loss(net_with(scale), batch(), edm, 0.1, 0.1)
    x, *rest = batch()
    torch.manual_seed(7)
    loss_by_hand = director_loss(net_with(1.0), (x * scale, *rest), edm, 0.1, 0.1)
    torch.manual_seed(7)
    loss_unscaled = director_loss(net_with(1.0), batch(), edm, 0.1, 0.1)
    assert torch.allclose(loss_scaled, loss_by_hand, rtol=1e-6, atol=0)
    assert not torch.allclose(loss_scaled, loss_unscaled, rtol=1e-3)


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_sampling_returns_the_features_divided_by_data_scale(scale):
    _, mask, char, text, tokens, tmask = batch()
    cond = {"char": char, "text": text, "text_tokens": tokens, "text_mask": tmask, "mask": mask}
    cfg = SamplingConfig(steps=3)
    scaled = sample_trajectories(net_with(scale), cond, 10, cfg, seed=2)
    plain = sample_trajectories(net_with(1.0), cond, 10, cfg, seed=2)
    assert torch.allclose(scaled, plain / scale, rtol=1e-6, atol=1e-6)
