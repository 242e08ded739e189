"""Model zoo training: tiny runs of every loop, resume, the NaN stop, and the two-stage VQ-VAE / LDM runs."""

import math

import pytest
import torch

from storylab.errors import StorylabError
from storylab.images.zoo import load_zoo_model, save_zoo_model
from storylab.images.zoo import gan as gan_module
from storylab.images.zoo.autoencoder import AEConfig, train_autoencoder
from storylab.images.zoo.common import fit
from storylab.images.zoo.gan import GANConfig, train_gan
from storylab.images.zoo.latent_diffusion import LDMConfig, train_latent_diffusion
from storylab.images.zoo.vae import VAE, VAEConfig
from storylab.images.zoo.vqvae import VQVAEConfig, train_vqvae
from storylab.training import TrainConfig


def tc(steps, **kw):
    base = dict(steps=steps, lr=3e-3, warmup_steps=0, ema_decay=None, checkpoint_every=max(1, steps // 2), log_every=1,
                progress=False)
    return TrainConfig(**{**base, **kw})


def test_autoencoder_training_lowers_the_loss_and_fits_its_code_prior(tmp_path):
    out = tmp_path / "ae.safetensors"
    info = train_autoencoder(out, AEConfig(latent_dim=4, width=4, hidden=16), tc(25), batch_size=64, extra={"seed": 0})
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    model = load_zoo_model(out, "ae")
    assert model.extra["step"] == 25 and not torch.allclose(model.code_std, torch.ones(4))


def test_vqvae_two_stages_save_usage_and_a_trained_prior(tmp_path):
    out = tmp_path / "vq.safetensors"
    config = VQVAEConfig(codebook_size=8, code_dim=4, width=4, prior_width=8, prior_layers=1, prior_heads=2,
                         restart_after=5)
    info = train_vqvae(out, config, tc(12), batch_size=64, prior_config=tc(6))
    assert 0 < info["usage"] <= 1 and 1 <= info["perplexity"] <= 8 and math.isfinite(info["prior_nll"])
    model = load_zoo_model(out, "vqvae")
    assert model.extra["usage"] == info["usage"]
    assert torch.equal(model.prior.head.weight, info["model"].prior.head.weight)
    assert (tmp_path / "vq.state.safetensors").exists() and (tmp_path / "vq.prior.state.safetensors").exists()
    again = train_vqvae(out, config, tc(12), batch_size=64, prior_config=tc(6))  # both stages resume at their end
    assert again["history"] == [] and again["usage"] == info["usage"]
    assert torch.equal(load_zoo_model(out, "vqvae").prior.head.weight, model.prior.head.weight)


def test_gan_trains_checkpoints_and_resumes(tmp_path):
    out = tmp_path / "gan.safetensors"
    config = GANConfig(latent_dim=4, width=4)
    info = train_gan(out, config, tc(4, lr=2e-4, ema_decay=0.9), batch_size=32)
    assert [h["step"] for h in info["history"]] == [1, 2, 3, 4]
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(info["history"][0])
    again = train_gan(out, config, tc(6, lr=2e-4, ema_decay=0.9, checkpoint_every=2), batch_size=32)
    assert [h["step"] for h in again["history"]] == [5, 6]  # resumed from step 4
    assert load_zoo_model(out, "gan").extra["step"] == 6


def test_gan_stops_on_a_nan_loss_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "gan.safetensors"
    calls = {"n": 0}
    real_loss = gan_module.generator_loss

    def flaky(logits, saturating=False):
        calls["n"] += 1
        return real_loss(logits, saturating) * (float("nan") if calls["n"] > 3 else 1.0)

    monkeypatch.setattr(gan_module, "generator_loss", flaky)
    with pytest.raises(StorylabError, match=r"generator loss became nan at step 4.*step 2\) is kept"):
        train_gan(out, GANConfig(latent_dim=4, width=4), tc(6, lr=2e-4, checkpoint_every=2), batch_size=32)
    assert load_zoo_model(out, "gan").extra["step"] == 2


def test_shared_loop_nan_stop_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "vae.safetensors"
    model = VAE(VAEConfig(latent_dim=4, width=4, hidden=16))
    calls = {"n": 0}

    def loss_fn(m, batch):
        calls["n"] += 1
        loss, logs = m.loss(batch[0], batch[1])
        return (loss * float("nan") if calls["n"] == 4 else loss), logs

    with pytest.raises(StorylabError, match="loss became nan"):
        fit(model, out, tc(6, checkpoint_every=2), batch_size=32, loss_fn=loss_fn)
    assert load_zoo_model(out, "vae").extra["step"] == 2


def test_latent_diffusion_trains_on_unit_variance_vae_latents(tmp_path):
    vae_path = tmp_path / "vae.safetensors"
    save_zoo_model(vae_path, VAE(VAEConfig(latent_dim=4, width=4, hidden=16)))
    out = tmp_path / "ldm.safetensors"
    config = LDMConfig(width=16, depth=1, emb_dim=8, num_timesteps=50, sample_steps=3)
    info = train_latent_diffusion(out, vae_path, config, tc(10), batch_size=64)
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    model = load_zoo_model(out, "ldm")
    from storylab.images.data.digits import load_digits_split

    latents = model.encode(load_digits_split("train").images)
    assert latents.std().item() == pytest.approx(1.0, rel=1e-3)
    assert torch.equal(model.vae.decoder.body[-1].weight, load_zoo_model(vae_path, "vae").decoder.body[-1].weight)
    samples = model.sample(torch.tensor([1, 2]), torch.Generator().manual_seed(0), scale=2.0)
    assert samples.shape == (2, 1, 8, 8) and torch.isfinite(samples).all()


def test_latent_diffusion_refuses_a_non_vae_checkpoint(tmp_path):
    from storylab.images.zoo.autoencoder import AutoEncoder

    path = tmp_path / "ae.safetensors"
    save_zoo_model(path, AutoEncoder(AEConfig(latent_dim=4, width=4, hidden=16)))
    with pytest.raises(StorylabError, match="'ae' checkpoint, expected 'vae'"):
        train_latent_diffusion(tmp_path / "ldm.safetensors", path, LDMConfig(), tc(2))


def test_the_seed_reproduces_a_training_run(tmp_path):
    weights = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.safetensors"
        train_autoencoder(out, AEConfig(latent_dim=4, width=4, hidden=16), tc(5, seed=3), batch_size=32)
        weights.append(load_zoo_model(out, "ae").decoder.body[-1].weight)
    assert torch.equal(*weights)
