"""Model zoo: objectives (ELBO pieces, VQ straight-through and codebook, GAN losses), shapes, checkpoints."""

import math

import pytest
import torch

from storylab.errors import StorylabError
from storylab.images.zoo import load_zoo_model, save_zoo_model
from storylab.images.zoo.autoencoder import AEConfig, AutoEncoder
from storylab.images.zoo.cvae import CVAE, CVAEConfig
from storylab.images.zoo.gan import GAN, GANConfig, discriminator_loss, generator_loss
from storylab.images.zoo.latent_diffusion import AdaLNBlock, LatentDiffusion, LDMConfig
from storylab.images.zoo.vae import VAE, VAEConfig, active_units, bernoulli_nll, gaussian_kl, reparameterize
from storylab.images.zoo.vqvae import CodePrior, VectorQuantizer, VQVAE, VQVAEConfig, codebook_usage
from storylab.training import save_checkpoint

TINY = {
    "ae": lambda: AutoEncoder(AEConfig(latent_dim=4, width=4, hidden=16)),
    "vae": lambda: VAE(VAEConfig(latent_dim=4, width=4, hidden=16)),
    "cvae": lambda: CVAE(CVAEConfig(latent_dim=4, width=4, hidden=16)),
    "vqvae": lambda: VQVAE(VQVAEConfig(codebook_size=8, code_dim=4, width=4, prior_width=8, prior_layers=1, prior_heads=2)),
    "gan": lambda: GAN(GANConfig(latent_dim=4, width=4, num_classes=10)),
    "ldm": lambda: LatentDiffusion(LDMConfig(vae={"latent_dim": 4, "width": 4, "hidden": 16}, width=16, depth=1,
                                             emb_dim=8, num_timesteps=50, sample_steps=3)),
}


def digits(n=6):
    torch.manual_seed(0)
    return torch.rand(n, 1, 8, 8) * 2 - 1, torch.arange(n) % 10


def test_kl_of_the_prior_itself_is_zero_and_matches_torch_distributions():
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert torch.allclose(gaussian_kl(mu, logvar), torch.zeros(3))
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(5), torch.ones(5))
    assert torch.allclose(gaussian_kl(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), atol=1e-5)


def test_reparameterisation_gradient_flows_to_mu_and_sigma():
    mu = torch.tensor([[0.3, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.2, -0.4]], requires_grad=True)
    g = torch.Generator().manual_seed(1)
    z = reparameterize(mu, logvar, g)
    eps = torch.randn((1, 2), generator=torch.Generator().manual_seed(1))
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.ones(1, 2))
    assert torch.allclose(logvar.grad, 0.5 * (0.5 * logvar.detach()).exp() * eps)


def test_bernoulli_nll_is_the_summed_cross_entropy_of_grey_levels():
    images = torch.tensor([[[[-1.0, 1.0], [0.0, 1.0]]]])
    logits = torch.zeros_like(images)
    assert torch.allclose(bernoulli_nll(logits, images), torch.tensor([4 * math.log(2)]))


def test_vae_loss_is_reconstruction_plus_beta_kl():
    x, y = digits()
    for beta in (0.0, 1.0, 4.0):
        model = VAE(VAEConfig(latent_dim=4, width=4, hidden=16, beta=beta))
        torch.manual_seed(3)
        loss, logs = model.loss(x, y)
        assert loss.item() == pytest.approx(logs["rec"] + beta * logs["kl"], rel=1e-5)


@pytest.mark.parametrize("beta", [-1.0, float("nan"), float("inf")])
def test_invalid_beta_is_a_clear_error(beta):
    with pytest.raises(StorylabError, match="beta"):
        VAEConfig(beta=beta)


def test_cvae_decoder_listens_to_the_class_and_interpolates_soft_labels():
    model = TINY["cvae"]().eval()
    z = torch.randn(1, 4)
    a, b = model.decode(z, torch.tensor([1])), model.decode(z, torch.tensor([7]))
    assert not torch.allclose(a, b)
    x, y = digits(2)
    path = model.interpolate(x[:1], x[1:], y[:1], y[1:], 5)
    assert path.shape == (5, 1, 8, 8)
    assert torch.allclose(path[0], model.reconstruct(x[:1], y[:1])[0], atol=1e-6)
    with pytest.raises(StorylabError):
        CVAEConfig(num_classes=1)


def test_active_units_count_only_latents_that_vary_with_the_input():
    model = TINY["vae"]().eval()
    x, _ = digits(32)
    with torch.no_grad():
        for p in model.encoder.head[-1].parameters():
            p.zero_()
    assert active_units(model, x) == 0


def test_vector_quantizer_picks_the_nearest_code_with_zero_codebook_loss_on_codes():
    vq = VectorQuantizer(4, 3, restart_after=0).eval()
    z_e = vq.codebook.weight[[2, 0, 3, 3]].detach().T.reshape(1, 3, 2, 2)
    z_q, codes, codebook_loss, commitment = vq(z_e)
    assert codes.flatten().tolist() == [2, 0, 3, 3]
    assert codebook_loss.item() == pytest.approx(0, abs=1e-12) and commitment.item() == pytest.approx(0, abs=1e-12)
    assert torch.allclose(z_q, z_e)


def test_straight_through_estimator_copies_the_gradient_to_the_encoder():
    vq = VectorQuantizer(4, 3, restart_after=0).eval()
    z_e = torch.randn(2, 3, 2, 2, requires_grad=True)
    z_q, _, _, _ = vq(z_e)
    weights = torch.randn_like(z_q)
    (z_q * weights).sum().backward()
    assert torch.allclose(z_e.grad, weights)  # d z_q / d z_e = identity
    assert torch.allclose(z_q, vq.lookup(vq.nearest(z_e.detach().permute(0, 2, 3, 1).reshape(-1, 3)).reshape(2, 2, 2)))


def test_codebook_usage_and_perplexity_count_codes():
    usage, ppl = codebook_usage(torch.tensor([0, 0, 1, 3]), 4)
    assert usage == 0.75
    assert ppl == pytest.approx(math.exp(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))))
    assert codebook_usage(torch.arange(8), 8) == (1.0, pytest.approx(8.0))


def test_dead_codes_are_restarted_on_encoder_outputs():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 2, restart_after=2).train()
    with torch.no_grad():
        vq.codebook.weight.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [60.0, 60.0], [70.0, 70.0]]))
    z_e = torch.randn(1, 2, 2, 2) * 0.1
    vq(z_e)
    assert vq.restarts.item() == 0 and vq.unused_steps.tolist() == [0, 1, 1, 1]
    vq(z_e)
    assert vq.restarts.item() == 3
    batch = z_e.permute(0, 2, 3, 1).reshape(-1, 2)
    for row in vq.codebook.weight[1:]:
        assert (batch - row).abs().sum(1).min() < 1e-6  # each restarted code sits on a batch vector


@pytest.mark.parametrize("size", [0, 1, 2.5])
def test_invalid_codebook_size_is_a_clear_error(size):
    with pytest.raises(StorylabError, match="codebook size"):
        VQVAEConfig(codebook_size=size)


def test_code_prior_is_causal_and_samples_valid_codes():
    torch.manual_seed(0)
    prior = CodePrior(8, 16, width=8, layers=1, heads=2).eval()
    codes = torch.randint(0, 8, (2, 16))
    changed = codes.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 8
    a, b = prior.logits(codes), prior.logits(changed)
    assert torch.allclose(a[:, :11], b[:, :11], atol=1e-5)  # position i sees only codes < i
    draws = prior.generate(3, torch.Generator().manual_seed(0))
    assert draws.shape == (3, 16) and draws.min() >= 0 and draws.max() < 8


def test_gan_losses_at_d_one_half():
    zeros = torch.zeros(5)  # logit 0 = D(x) = 1/2
    assert discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert generator_loss(zeros).item() == pytest.approx(math.log(2))
    assert generator_loss(zeros, saturating=True).item() == pytest.approx(-math.log(2))
    # a confident D (D(G(z)) -> 0): the min-max generator loss saturates, the non-saturating one does not
    logits = torch.full((1,), -8.0, requires_grad=True)
    g_sat, = torch.autograd.grad(generator_loss(logits, saturating=True), logits)
    g_ns, = torch.autograd.grad(generator_loss(logits), logits)
    assert abs(g_sat.item()) < 1e-3 < abs(g_ns.item())


def test_conditional_gan_shapes():
    gan = TINY["gan"]().eval()
    x, y = digits(4)
    assert gan.sample(y).shape == (4, 1, 8, 8)
    assert gan.critic(x, y).shape == (4,)
    assert gan.reconstruct(x, y) is None
    with pytest.raises(StorylabError):
        gan.loss(x, y)


def test_adaln_blocks_start_as_the_identity():
    block = AdaLNBlock(8)
    h, emb = torch.randn(3, 8), torch.randn(3, 8)
    assert torch.equal(block(h, emb), h)


@pytest.mark.parametrize("family", list(TINY))
def test_every_family_samples_reconstructs_interpolates_and_round_trips(family, tmp_path):
    torch.manual_seed(0)
    model = TINY[family]().eval()
    x, y = digits(3)
    s1 = model.sample(y, torch.Generator().manual_seed(5))
    assert s1.shape == (3, 1, 8, 8) and s1.min() >= -1 and s1.max() <= 1
    rec = model.reconstruct(x, y)
    assert rec is None if family == "gan" else rec.shape == x.shape
    path = model.interpolate(x[:2], x[1:], y[:2], y[1:], 4) if family != "gan" else None
    if path is not None:
        assert path.shape == (8, 1, 8, 8)
    out = tmp_path / f"{family}.safetensors"
    save_zoo_model(out, model, {"seed": 0})
    again = load_zoo_model(out, family)
    assert type(again) is type(model) and again.extra["seed"] == 0
    assert torch.allclose(again.sample(y, torch.Generator().manual_seed(5)), s1, atol=1e-6)


def test_wrong_family_and_foreign_checkpoints_are_clear_errors(tmp_path):
    out = tmp_path / "vae.safetensors"
    save_zoo_model(out, TINY["vae"]())
    with pytest.raises(StorylabError, match="'vae' checkpoint, expected 'gan'"):
        load_zoo_model(out, "gan")
    with pytest.raises(StorylabError, match="unknown model family"):
        load_zoo_model(out, "flow")
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, {"w": torch.zeros(1)}, "digits-denoiser", {})
    with pytest.raises(StorylabError, match="not a model-zoo checkpoint"):
        load_zoo_model(other)
