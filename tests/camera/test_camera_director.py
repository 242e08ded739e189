"""DIRECTOR properties: shapes and masks, adaLN-Zero identity, CFG scale 1, condition dropout, checkpoints."""

from __future__ import annotations

import pytest
import torch

from storylab.camera.director import ARCHS, AdaLNBlock, Director, DirectorConfig, null_condition
from storylab.camera.sampling import SamplingConfig, guided_director, sample_trajectories
from storylab.camera.training import drop_conditions, load_director, save_director
from storylab.diffusion import StepContext, edm_denoise
from storylab.errors import StorylabError


def tiny(arch: str, patch: int = 1) -> Director:
    torch.manual_seed(0)
    return Director(DirectorConfig.build(arch, d_model=32, n_layers=2, n_heads=2, cond_layers=1, max_frames=40,
                                         text_dim=16, dropout=0.0, patch=patch)).eval()


def condition(b: int = 2, t: int = 12, valid: int = 8) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, valid:] = False
    return {"char": torch.randn(b, t, 3, generator=g), "text": torch.randn(b, 16, generator=g),
            "text_tokens": torch.randn(b, 5, 16, generator=g), "text_mask": torch.ones(b, 5), "mask": mask}


@pytest.mark.parametrize("patch", [1, 4])
@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_and_padding_does_not_leak(arch, patch):
    # 13 frames: with 4-frame tokens the last token is partial; sample 1 ends inside a token
    net, cond = tiny(arch, patch), condition(t=13, valid=6)
    x = torch.randn(2, 13, 9)
    out = net(x, torch.zeros(2), cond)
    assert out.shape == (2, 13, 9) and torch.isfinite(out).all()
    x2 = x.clone()
    x2[1, 6:] = 100.0  # padded frames of sample 1 must not change its valid frames
    cond2 = {**cond, "char": cond["char"].clone()}
    cond2["char"][1, 6:] = -50.0
    out2 = net(x2, torch.zeros(2), cond2)
    torch.testing.assert_close(out[1, :6], out2[1, :6], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[0], out2[0], atol=1e-5, rtol=1e-5)


def test_patched_tokens_shorten_the_sequence():
    net = tiny("crossattn", patch=4)
    assert net.input.in_features == 36 and net.output.out_features == 36 and net.char_token.in_features == 12
    seen = []
    net.blocks[0].norm_self.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    net(torch.randn(1, 13, 9), torch.zeros(1), {k: v[:1, :13] if v.ndim > 1 and v.shape[1] == 13 else v[:1]
                                                for k, v in condition(t=13).items()})
    assert seen == [4]  # ceil(13 / 4) tokens
    with pytest.raises(StorylabError, match="patch must be at least 1"):
        Director(DirectorConfig.build("crossattn", patch=0))


def test_zero_initialised_adaln_block_is_identity():
    block = AdaLNBlock(DirectorConfig(d_model=32, n_heads=2, dropout=0.0)).eval()
    x, c = torch.randn(3, 7, 32), torch.randn(3, 32)
    torch.testing.assert_close(block(x, c, None), x)


def test_adaln_network_starts_at_zero_output():
    net, cond = tiny("adaln"), condition()
    assert net(torch.randn(2, 12, 9), torch.zeros(2), cond).abs().max() == 0


@pytest.mark.parametrize("arch", ARCHS)
def test_cfg_scale_one_equals_conditional_prediction(arch):
    net, cond = tiny(arch), condition()
    x, sigma = torch.randn(2, 12, 9), torch.full((2,), 0.7)
    guided = guided_director(net, cond, SamplingConfig(guidance_scale=1.0))
    pred = guided(StepContext(x=x, t=sigma, step=0, num_steps=10, a=1.0, s=0.7))
    x0 = edm_denoise(net, x, sigma, cond, 0.5)
    torch.testing.assert_close(pred.eps, (x - x0) / 0.7, atol=1e-5, rtol=1e-5)
    assert guided.nfe == 1  # the unconditional branch is skipped at w = 0


def test_null_condition_zeroes_modalities_and_keeps_mask():
    cond = condition()
    null = null_condition(cond)
    assert all(null[k].abs().sum() == 0 for k in ("char", "text", "text_tokens", "text_mask"))
    assert torch.equal(null["mask"], cond["mask"])


def test_condition_dropout_rates():
    cond = {k: v.expand(4000, *v.shape[1:]) if k != "mask" else v for k, v in
            {"char": torch.ones(1, 3, 3), "text": torch.ones(1, 4), "text_tokens": torch.ones(1, 2, 4),
             "text_mask": torch.ones(1, 2), "mask": torch.ones(1, 3, dtype=torch.bool)}.items()}
    out = drop_conditions(cond, 0.1, 0.1, torch.Generator().manual_seed(0))
    char_kept = out["char"][:, 0, 0].mean().item()
    both_dropped = ((out["char"][:, 0, 0] == 0) & (out["text"][:, 0] == 0)).float().mean().item()
    assert 0.78 < char_kept < 0.84  # 0.9 * 0.9
    assert 0.09 < both_dropped < 0.13  # 0.1 + 0.9 * 0.01


def test_sampling_is_deterministic_and_shaped():
    net, cond = tiny("crossattn"), condition()
    a = sample_trajectories(net, cond, 12, SamplingConfig(steps=3), seed=5)
    b = sample_trajectories(net, cond, 12, SamplingConfig(steps=3), seed=5)
    assert a.shape == (2, 12, 9) and torch.equal(a, b)


def test_paper_size_is_one_flag_away():
    cfg = DirectorConfig.build("crossattn", "paper", text_dim=512)
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.dropout, cfg.attn_dropout, cfg.patch) == (512, 8, 16, 0.1, 0.1, 1)
    tiny_cfg = DirectorConfig.build("crossattn")
    assert tiny_cfg.attn_dropout == 0.0 and tiny_cfg.dropout == 0.1 and tiny_cfg.patch == 2
    from storylab.camera.training import DirectorTrainConfig
    assert (DirectorTrainConfig.paper().p_mean, DirectorTrainConfig.paper().p_std) == (-1.2, 1.2)
    assert DirectorTrainConfig().p_mean == -0.1 and tiny_cfg.data_scale == 0.5
    net = Director(DirectorConfig.build("incontext", d_model=32, n_heads=2, attn_dropout=0.25))
    assert net.blocks[0].self_attn.dropout == 0.25 and net.blocks[0].dropout1.p == 0.1
    with pytest.raises(StorylabError, match="unknown DIRECTOR config"):
        DirectorConfig.build("film")


def test_checkpoint_round_trip_and_kind(tmp_path):
    net = tiny("incontext")
    save_director(tmp_path / "d.safetensors", net, {"seed": 0})
    back, extra = load_director(tmp_path / "d.safetensors")
    assert extra["seed"] == 0 and back.cfg == net.cfg
    cond = condition()
    x = torch.randn(2, 12, 9)
    torch.testing.assert_close(back(x, torch.zeros(2), cond), net(x, torch.zeros(2), cond))
    from storylab.training import save_checkpoint
    save_checkpoint(tmp_path / "o.safetensors", {"w": torch.zeros(1)}, "digits-denoiser", {})
    with pytest.raises(StorylabError, match="expected 'director'"):
        load_director(tmp_path / "o.safetensors")


def test_length_buckets_cover_every_sample_once_and_group_lengths():
    from storylab.camera.data import LengthBucketBatchSampler

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(50, 301, (203,), generator=g)
    sampler = LengthBucketBatchSampler(lengths, batch_size=8, seed=3, pool=5)
    first = list(sampler)
    flat = sorted(i for b in first for i in b)
    assert flat == list(range(203)) and len(first) == len(sampler) == 26
    # padding waste: a bucketed batch pays for its longest sample, far less than random batches do
    def padded(batches):
        return sum(len(b) * int(lengths[b].max()) for b in batches) / int(lengths.sum())
    random_batches = torch.randperm(203, generator=g).split(8)
    assert padded(first) < 1.2 < 1.4 < padded([b.tolist() for b in random_batches])
    second = list(sampler)
    assert second != first and sorted(i for b in second for i in b) == list(range(203))
    sampler.set_epoch(0)
    assert list(sampler) == first  # deterministic per seed and epoch
    dropped = LengthBucketBatchSampler(lengths, batch_size=8, seed=3, drop_last=True)
    assert all(len(b) == 8 for b in dropped) and len(list(dropped)) == len(dropped) == 25
