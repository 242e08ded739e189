"""FunnyNet-W model: encoders, projections, cross-attention fusion, NT-Xent, checkpoints, pretrained encoders."""

import numpy as np
import pytest
import torch

from storylab.errors import StorylabError
from storylab.humor.data import ClipInputs
from storylab.humor.encoders import ByolAudioEncoder, FrameCNN, TransformersVideoEncoder, load_byol_a
from storylab.humor.config import FunnyNetConfig, parse_modalities
from storylab.humor.model import CrossAttentionFusion, FunnyNet, drop_modalities, funnynet_loss, nt_xent
from storylab.humor.train import FunnyNetTrainConfig, load_funnynet, predict, train_funnynet

TINY = dict(dim=64, tokens=16, heads=2, audio_channels=4, audio_dim=32, frames=4, frame_size=16,
            frame_channels=(4, 8), text_dim=12, text_tokens=6, lstm_hidden=16)


def tiny_batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ClipInputs(label=torch.arange(n) % 2, audio=torch.randn(n, 64, 40, generator=g).half(),
                      frames=torch.randint(0, 256, (n, 4, 3, 16, 16), generator=g, dtype=torch.uint8),
                      text=torch.randn(n, 6, 12, generator=g).half(), text_mask=torch.ones(n, 6, dtype=torch.bool))


def test_parse_modalities():
    assert parse_modalities("a,v,t") == "avt" and parse_modalities("text,audio") == "at" and parse_modalities("VA") == "av"
    with pytest.raises(StorylabError, match="unknown modality 'x'"):
        parse_modalities("a,x")


def test_default_sizes_follow_the_paper():
    cfg = FunnyNetConfig()
    assert cfg.dim == 512 and cfg.tokens == 16 and cfg.dim // cfg.tokens == 32 and cfg.frames == 16
    assert cfg.nt_xent_weight == 0.03 and cfg.temperature == 0.5 and cfg.text_tokens == 64
    assert cfg.modality_dropout == 0.5  # the one default deviation (docs/humor.md); 0 is the paper's model


@pytest.mark.parametrize("mods", ["a", "v", "t", "av", "at", "vt", "avt"])
def test_every_subset_gives_two_logits(mods):
    model = FunnyNet(FunnyNetConfig(modalities=mods, **TINY))
    logits, z = model(tiny_batch().batch(slice(None)))
    assert logits.shape == (6, 2) and set(z) == set(mods) and all(v.shape == (6, 64) for v in z.values())


def test_auxiliary_loss_adds_the_mean_unimodal_cross_entropy():
    import torch.nn.functional as F

    batch = tiny_batch().batch(slice(None))
    torch.manual_seed(0)
    paper = FunnyNet(FunnyNetConfig(modalities="avt", **TINY)).eval()
    assert len(paper.aux_heads) == 0
    torch.manual_seed(0)
    aux = FunnyNet(FunnyNetConfig(modalities="avt", aux_weight=0.5, **TINY)).eval()
    assert set(aux.aux_heads) == {"a", "v", "t"}
    base = funnynet_loss(paper, batch)[0]
    _, z = aux(batch)
    ce = [F.cross_entropy(aux.aux_heads[m](z[m]), batch["label"]) for m in "avt"]
    assert torch.allclose(funnynet_loss(aux, batch)[0], base + 0.5 * sum(ce) / 3, atol=1e-6)
    # the auxiliary heads train each encoder on its own: a gradient reaches the text encoder through them
    aux.zero_grad()
    (sum(ce) / 3).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aux.aux_heads["t"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in aux.encoders["t"].parameters())
    # one modality: nothing to blend, no heads, the plain loss
    assert len(FunnyNet(FunnyNetConfig(modalities="a", aux_weight=0.5, **TINY)).aux_heads) == 0


def test_modality_dropout_zeroes_whole_modalities_and_keeps_one():
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2000, 8, generator=g) + 5 for _ in range(3)]  # no feature is zero by chance
    out = drop_modalities(feats, 0.6, generator=g)
    kept = torch.stack([(o != 0).all(1) for o in out], 1)  # (B, M)
    assert all(((o == 0).all(1) | (o == f).all(1)).all() for o, f in zip(out, feats))  # a modality is kept or zeroed whole
    assert kept.any(1).all()  # never all of them
    assert abs(1 - kept.float().mean().item() - 0.6) < 0.1  # about p of them dropped (a little less: one is kept)
    assert drop_modalities(feats, 0.0) is feats and drop_modalities(feats[:1], 0.6) == feats[:1]


def test_modality_dropout_acts_only_in_training():
    batch = tiny_batch().batch(slice(None))
    torch.manual_seed(0)
    paper = FunnyNet(FunnyNetConfig(modalities="avt", dropout=0.0, modality_dropout=0.0, **TINY))
    moddrop = FunnyNet(FunnyNetConfig(modalities="avt", dropout=0.0, modality_dropout=0.6, **TINY))
    moddrop.load_state_dict(paper.state_dict())
    paper.train(), moddrop.train()
    torch.manual_seed(1)
    assert not torch.allclose(moddrop(batch)[0], paper(batch)[0])  # training: some clips lose a modality
    paper.eval(), moddrop.eval()
    assert torch.equal(moddrop(batch)[0], paper(batch)[0])  # test time: every modality present
    with pytest.raises(StorylabError, match="modality dropout"):
        FunnyNetConfig(modality_dropout=1.0)


def test_fusion_mixes_modalities():
    torch.manual_seed(0)
    caf = CrossAttentionFusion(3, dim=64, tokens=16, heads=2).eval()
    feats = [torch.randn(2, 64) for _ in range(3)]
    base = caf(feats)
    changed = caf([feats[0], feats[1], torch.randn(2, 64)])
    assert base.shape == (2, 64) and not torch.allclose(base, changed)


def test_nt_xent_rewards_aligned_views():
    torch.manual_seed(0)
    a = torch.randn(8, 32)
    assert nt_xent(a, a + 0.01 * torch.randn(8, 32)) < nt_xent(a, torch.randn(8, 32))


def test_frames_are_divided_by_255_once():
    batch = tiny_batch().batch(slice(None))
    assert batch["frames"].max() <= 1.0 and batch["frames"].max() > 0.9


def test_training_lowers_loss_and_checkpoint_round_trips(tmp_path):
    inputs = tiny_batch(8)
    cfg = FunnyNetConfig(modalities="avt", **TINY)
    torch.manual_seed(0)
    before = funnynet_loss(FunnyNet(cfg).eval(), inputs.batch(slice(None)))[0].item()
    model, losses = train_funnynet(inputs, cfg, FunnyNetTrainConfig(epochs=25, batch_size=8, lr=3e-3, progress=False),
                                   tmp_path / "fn.safetensors")
    assert losses["loss"] < before
    assert (predict(model, inputs) >= 0.5).astype(int).tolist() == inputs.label.tolist()  # fits 8 clips
    loaded = load_funnynet(tmp_path / "fn.safetensors")
    assert np.allclose(predict(loaded, inputs), predict(model, inputs), atol=1e-5)
    assert not (tmp_path / "fn.state.safetensors").exists()
    assert loaded.config.modality_dropout == 0.5  # the default, recorded in the checkpoint


def test_checkpoint_from_before_modality_dropout_loads_as_trained_without_it(tmp_path):
    from dataclasses import asdict

    from storylab.training import save_checkpoint

    cfg = asdict(FunnyNetConfig(modalities="at", **TINY))
    del cfg["modality_dropout"]
    save_checkpoint(tmp_path / "old.safetensors", FunnyNet(FunnyNetConfig(modalities="at", **TINY)).state_dict(),
                    "funnynet-w", cfg, {})
    assert load_funnynet(tmp_path / "old.safetensors").config.modality_dropout == 0.0


def test_byol_a_checkpoint_loads_from_a_local_path(tmp_path):
    enc = ByolAudioEncoder(n_mels=64, dim=48, channels=8)
    torch.save(enc.state_dict(), tmp_path / "byola.pth")
    loaded = load_byol_a(tmp_path / "byola.pth")
    assert loaded.dim == 48 and not any(p.requires_grad for p in loaded.parameters())
    emb = loaded.embed_segments([np.random.default_rng(0).standard_normal(16_000).astype(np.float32)] * 2)
    assert emb.shape == (2, 48) and np.allclose(emb[0], emb[1])
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(StorylabError, match="not a BYOL-A encoder"):
        load_byol_a(tmp_path / "other.pth")


def test_videomae_from_a_local_folder(tmp_path):
    from transformers import VideoMAEConfig, VideoMAEModel

    cfg = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2, hidden_size=24,
                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    VideoMAEModel(cfg).save_pretrained(tmp_path / "videomae")
    enc = TransformersVideoEncoder(tmp_path / "videomae")
    out = enc(torch.rand(2, 4, 3, 32, 32))
    assert out.shape == (2, 48) and enc.num_frames == 4 and enc.image_size == 32
    model = FunnyNet(FunnyNetConfig(modalities="v", video_encoder=str(tmp_path / "videomae"), **TINY))
    logits, _ = model({"frames": torch.rand(2, 4, 3, 32, 32), "label": torch.zeros(2, dtype=torch.long)})
    assert logits.shape == (2, 2)
    assert not any(p.requires_grad for p in model.encoders["v"].parameters())


def test_tail_pooling_sees_where_in_the_clip():
    torch.manual_seed(0)
    x = torch.rand(1, 4, 3, 16, 16)
    flipped = x.flip(1)
    cnn = FrameCNN((4, 8), dim=8, tail=0.25).eval()
    assert cnn(x).shape == (1, 16) and not torch.allclose(cnn(x), cnn(flipped))
    plain = FrameCNN((4, 8), dim=8, tail=0.0).eval()  # mean + max only: order-blind
    assert plain(x).shape == (1, 8) and torch.allclose(plain(x), plain(flipped), atol=1e-6)
    mel = torch.randn(1, 64, 64)
    audio = ByolAudioEncoder(64, 16, 4, tail=0.25).eval()
    assert audio(mel).shape == (1, 32) and not torch.allclose(audio(mel), audio(mel.flip(-1)))
