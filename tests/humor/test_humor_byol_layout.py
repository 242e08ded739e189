"""BYOL-A checkpoints in the authors' key layout load into the same function (issue 16, defect 1)."""

import torch
import torch.nn.functional as F

from storylab.humor.encoders import ByolAudioEncoder, channel_major_to_mel_major, load_byol_a


def _byol_a_state(n_mels: int, d: int, channels: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict with the keys AudioNTT2020 saves (features.0/1/4/5/8/9, fc.0/3)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    c_in = 1
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        state[f"features.{conv}.weight"] = torch.randn(channels, c_in, 3, 3, generator=g) * 0.3
        state[f"features.{conv}.bias"] = torch.randn(channels, generator=g) * 0.1
        state[f"features.{bn}.weight"] = 1 + 0.1 * torch.randn(channels, generator=g)
        state[f"features.{bn}.bias"] = 0.1 * torch.randn(channels, generator=g)
        state[f"features.{bn}.running_mean"] = 0.1 * torch.randn(channels, generator=g)
        state[f"features.{bn}.running_var"] = 1 + 0.1 * torch.rand(channels, generator=g)
        state[f"features.{bn}.num_batches_tracked"] = torch.tensor(7)
        c_in = channels
    flat = channels * (n_mels // 8)
    state["fc.0.weight"] = torch.randn(d, flat, generator=g) / flat ** 0.5
    state["fc.0.bias"] = torch.randn(d, generator=g) * 0.1
    state["fc.3.weight"] = torch.randn(d, d, generator=g) / d ** 0.5
    state["fc.3.bias"] = torch.randn(d, generator=g) * 0.1
    return state


def _reference_embedding(state: dict[str, torch.Tensor], mel: torch.Tensor) -> torch.Tensor:
    """BYOL-A's forward written out: 3 x (conv, BN, ReLU, maxpool), permute to (B, T, mel, ch), fc, max + mean."""
    x = mel[:, None]  # (B, 1, F, T)
    for conv, bn in ((0, 1), (4, 5), (8, 9)):
        x = F.conv2d(x, state[f"features.{conv}.weight"], state[f"features.{conv}.bias"], padding=1)
        x = F.batch_norm(x, state[f"features.{bn}.running_mean"], state[f"features.{bn}.running_var"],
                         state[f"features.{bn}.weight"], state[f"features.{bn}.bias"], training=False, eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2)
    b, c, f, t = x.shape
    x = x.permute(0, 3, 2, 1).reshape(b, t, f * c)  # (B, T, mel * ch): mel major, channel minor
    x = F.relu(F.linear(x, state["fc.0.weight"], state["fc.0.bias"]))
    x = F.relu(F.linear(x, state["fc.3.weight"], state["fc.3.bias"]))
    return x.max(dim=1).values + x.mean(dim=1)


def test_byol_a_state_dict_in_authors_layout_gives_the_reference_embedding(tmp_path):
    state = _byol_a_state(n_mels=64, d=32)
    path = tmp_path / "AudioNTT2020-BYOLA-64x96d32.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # a DataParallel prefix, as some releases have
    model = load_byol_a(path)
    mel = torch.randn(2, 64, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(mel)
    want = _reference_embedding(state, mel)
    assert got.shape == (2, 32)
    assert torch.allclose(got, want, atol=1e-5), float((got - want).abs().max())
    cosine = F.cosine_similarity(got, want).min()
    assert cosine > 0.99999


def test_old_channel_major_checkpoints_convert_exactly():
    torch.manual_seed(0)
    enc = ByolAudioEncoder(n_mels=16, dim=24, channels=8).eval()
    mel = torch.randn(3, 16, 40)
    w_old = torch.randn(24, 8 * 2)
    with torch.no_grad():
        feats = enc.features(mel[:, None])  # (B, C, F/8, T/8)
        old_flat = feats.permute(0, 3, 1, 2).flatten(2)  # the pre-fix (channel, mel) order
        old = F.linear(old_flat, w_old, enc.fc[0].bias)
        enc.fc[0].weight.copy_(channel_major_to_mel_major(w_old, channels=8))
        new_flat = feats.permute(0, 3, 2, 1).flatten(2)
        new = enc.fc[0](new_flat)
    assert torch.allclose(old, new, atol=1e-6)
