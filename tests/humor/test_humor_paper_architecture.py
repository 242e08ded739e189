"""``architecture="paper"``: the official FunnyNet-W fusion and heads, and the paper's training recipe."""

import numpy as np
import torch
import torch.nn.functional as F

from storylab.humor.config import FunnyNetConfig
from storylab.humor.model import FunnyNet, GatedLinear, PaperFusion
from storylab.humor.train import FunnyNetTrainConfig, load_funnynet, predict, train_funnynet
from storylab.training.loop import TrainConfig, lr_lambda
from test_humor_model import tiny_batch  # the same tiny clips as the default architecture's tests

TINY = dict(architecture="paper", dim=64, tokens=16, audio_channels=4, audio_dim=32, frames=4, frame_size=16,
            frame_channels=(4, 8), text_dim=12, text_tokens=6)


def test_paper_fusion_is_the_official_formula():
    """z = [a/|a|, v/|v|, t/|t|] as 48 x 32 queries; out_m = softmax(Q(z) K(m)^T) V(m) unscaled; SA + residual; sum of thirds."""
    torch.manual_seed(0)
    fusion = PaperFusion(3, dim=512, tokens=16)
    feats = [torch.randn(2, 512) * s for s in (1.0, 3.0, 0.5)]
    got = fusion(feats)

    def attend(lin, q_in, kv_in):  # written out: no 1/sqrt(d), one head, no norm
        q = q_in @ lin.q.weight.T + lin.q.bias
        k = kv_in @ lin.k.weight.T + lin.k.bias
        v = kv_in @ lin.v.weight.T + lin.v.bias
        return torch.softmax(torch.einsum("bqd,bkd->bqk", q, k), dim=-1) @ v

    z = torch.cat([f / f.norm(dim=1, keepdim=True) for f in feats], dim=1).reshape(2, 48, 32)
    fused = sum(attend(fusion.cross[i], z, feats[i].reshape(2, 16, 32)) for i in range(3))
    fused = attend(fusion.self_attn, fused, fused) + fused
    want = fused[:, :16].reshape(2, -1) + fused[:, 16:32].reshape(2, -1) + fused[:, 32:].reshape(2, -1)
    assert got.shape == (2, 512) and torch.allclose(got, want, atol=1e-5)


def test_paper_heads_and_text_branch_have_the_official_shapes():
    model = FunnyNet(FunnyNetConfig(modalities="avt", **TINY))
    assert isinstance(model.classifier, GatedLinear) and model.classifier.value.out_features == 2
    a = model.projections["a"]
    assert [type(m).__name__ for m in a] == ["GatedLinear", "GatedLinear", "LayerNorm"]
    assert (a[0].value.in_features, a[0].value.out_features, a[1].value.out_features) == (32 * 2, 128, 64)  # tail doubles
    t = model.projections["t"]
    assert type(t[0]).__name__ == "Dropout" and t[0].p == 0.5
    assert model.encoders["t"].dim == 6 * 256 and t[1].value.in_features == 6 * 256  # LSTM(256), every output flattened
    x = torch.randn(3, 6, 12)
    mask = torch.zeros(3, 6, dtype=torch.bool)
    mask[:, :2] = True
    out = model.encoders["t"](x, mask)
    ref, _ = model.encoders["t"].lstm(x)
    assert torch.allclose(out, ref.reshape(3, -1))  # padding included, as the official code


def test_paper_step_decay_halves_at_the_milestones():
    f = lr_lambda(TrainConfig(steps=10, lr_schedule="multistep", lr_milestones=(2, 4, 8), lr_gamma=0.5))
    assert [f(s) for s in range(10)] == [1, 1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.125, 0.125]


def test_paper_architecture_trains_and_round_trips(tmp_path):
    inputs = tiny_batch(8)
    cfg = FunnyNetConfig(modalities="avt", modality_dropout=0.0, **TINY)
    model, losses = train_funnynet(inputs, cfg, FunnyNetTrainConfig(epochs=30, batch_size=8, lr=3e-3, recipe="paper",
                                                                    milestones=(20,), progress=False),
                                   tmp_path / "paper.safetensors")
    assert (predict(model, inputs) >= 0.5).astype(int).tolist() == inputs.label.tolist()  # fits 8 clips
    loaded = load_funnynet(tmp_path / "paper.safetensors")
    assert loaded.config.architecture == "paper"
    assert np.allclose(predict(loaded, inputs), predict(model, inputs), atol=1e-5)
    logits, _ = loaded(inputs.batch(slice(0, 2)))
    assert torch.isfinite(F.softmax(logits, -1)).all()
