"""Model zoo on 28x28 data sets: networks sized by the image, the data set in every checkpoint, shipped Fashion-MNIST zoo."""

import json

import pytest
import torch

from storylab.errors import StorylabError
from storylab.images.data.datasets import FASHION_CLASSES
from storylab.images.zoo import FAMILIES, load_zoo_model, save_zoo_model
from storylab.images.zoo.autoencoder import AEConfig, AutoEncoder
from storylab.images.zoo.common import shipped_path
from storylab.images.zoo.cvae import CVAE, CVAEConfig
from storylab.images.zoo.gan import GAN, GANConfig
from storylab.images.zoo.latent_diffusion import LatentDiffusion, LDMConfig
from storylab.images.zoo.nets import ConvDecoder, ConvEncoder, down_stages, grid_size
from storylab.images.zoo.vae import VAE, VAEConfig
from storylab.images.zoo.vqvae import VQVAE, VQVAEConfig
from tests.cli_runner import run_cli
from tests.images.data.test_idx_datasets import write_idx_folder

FASHION = {"data": "fashion-mnist", "image_size": 28}
TINY28 = {
    "ae": lambda: AutoEncoder(AEConfig(latent_dim=4, width=4, hidden=16, **FASHION)),
    "vae": lambda: VAE(VAEConfig(latent_dim=4, width=4, hidden=16, **FASHION)),
    "cvae": lambda: CVAE(CVAEConfig(latent_dim=4, width=4, hidden=16, **FASHION)),
    "vqvae": lambda: VQVAE(VQVAEConfig(codebook_size=8, code_dim=4, width=4, prior_width=8, prior_layers=1,
                                       prior_heads=2, **FASHION)),
    "gan": lambda: GAN(GANConfig(latent_dim=4, width=4, num_classes=10, **FASHION)),
    "ldm": lambda: LatentDiffusion(LDMConfig(vae={"latent_dim": 4, "width": 4, "hidden": 16, **FASHION}, width=16,
                                             depth=1, emb_dim=8, num_timesteps=50, sample_steps=3)),
}


@pytest.mark.parametrize("size, stages, grid", [(8, 1, 4), (28, 2, 7), (32, 3, 4), (14, 1, 7), (56, 3, 7)])
def test_stages_halve_the_image_down_to_a_grid_of_at_most_seven(size, stages, grid):
    # hand-worked: 8 -> 4; 28 -> 14 -> 7; 32 -> 16 -> 8 -> 4; 14 -> 7; 56 -> 28 -> 14 -> 7
    assert down_stages(size) == stages and grid_size(size) == grid
    assert grid * 2 ** stages == size


@pytest.mark.parametrize("size", [7, 27, 2, 8.5])
def test_sizes_the_nets_cannot_halve_are_a_clear_error(size):
    with pytest.raises(StorylabError, match=f"image size must be an even integer >= 4, got {size}"):
        down_stages(size)


@pytest.mark.parametrize("size", [8, 28])
def test_encoder_decoder_round_trip_dims(size):
    x = torch.randn(3, 1, size, size)
    g = size // 2 ** down_stages(size)
    grid = ConvEncoder(1, 4, 5, grid=True, image_size=size)(x)
    assert grid.shape == (3, 5, g, g)
    assert ConvDecoder(5, 4, grid=True, image_size=size)(grid).shape == x.shape
    vec = ConvEncoder(1, 4, 6, hidden=8, image_size=size)(x)
    assert vec.shape == (3, 6)
    assert ConvDecoder(6, 4, hidden=8, image_size=size)(vec).shape == x.shape


def test_the_8x8_nets_keep_the_layers_of_the_shipped_digits_checkpoints():
    # the digits nets must be exactly the original ones: conv 3x3, stride-2 conv, conv 3x3 (+ MLP head)
    enc = ConvEncoder(1, 16, 8, hidden=128, image_size=8)
    assert [type(m).__name__ for m in enc.body] == ["Conv2d", "SiLU", "Conv2d", "SiLU", "Conv2d", "SiLU"]
    assert enc.head[1].in_features == 2 * 16 * 4 * 4
    for family in FAMILIES:  # strict load of every shipped digits checkpoint, unchanged sampling shape
        model = load_zoo_model(shipped_path(family), family, data="digits")
        assert model.data == "digits" and model.image_size == 8
        assert model.sample(torch.arange(2), torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)


@pytest.mark.parametrize("family", list(TINY28))
def test_every_family_works_at_28x28(family, tmp_path):
    torch.manual_seed(0)
    model = TINY28[family]().eval()
    x, y = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0, 4, 9])
    s = model.sample(y, torch.Generator().manual_seed(1))
    assert s.shape == (3, 1, 28, 28) and s.min() >= -1 and s.max() <= 1
    if family != "gan":
        assert model.reconstruct(x, y).shape == x.shape
        assert model.interpolate(x[:1], x[1:2], y[:1], y[1:2], 4).shape == (4, 1, 28, 28)
        loss, _ = model.loss(x, y)
        assert torch.isfinite(loss)
    else:
        assert model.critic(x, y).shape == (3,)
    if family == "vqvae":
        assert model.codes(x).shape == (3, 7, 7) and model.prior.length == 49
    out = tmp_path / f"{family}.safetensors"
    save_zoo_model(out, model)
    again = load_zoo_model(out, family, data="fashion-mnist")
    assert again.data == "fashion-mnist" and again.image_size == 28
    assert torch.allclose(again.sample(y, torch.Generator().manual_seed(1)), s, atol=1e-6)


def test_a_checkpoint_for_another_data_set_is_one_exact_error(tmp_path):
    out = tmp_path / "ae.safetensors"
    save_zoo_model(out, TINY28["ae"]())
    with pytest.raises(StorylabError) as err:
        load_zoo_model(out, "ae", data="digits")
    assert str(err.value) == (f"{out} was trained on 'fashion-mnist', not 'digits' (pass a checkpoint trained on "
                              "'digits', or choose the data set 'fashion-mnist')")
    digits = tmp_path / "digits_ae.safetensors"
    save_zoo_model(digits, AutoEncoder(AEConfig(latent_dim=4, width=4, hidden=16)))
    result = run_cli("sample", "ae", "--checkpoint", digits, "--data", "fashion-mnist", "--out", tmp_path / "s")
    assert result.returncode == 2 and result.stderr.strip() == (
        f"error: {digits} was trained on 'digits', not 'fashion-mnist' (pass a checkpoint trained on 'fashion-mnist', "
        "or choose the data set 'digits')")
    assert not (tmp_path / "s").exists()
    result = run_cli("evaluate", "zoo", "--data", "fashion-mnist", "--families", "ae", "--checkpoints", f"ae={digits}",
                     "--per-class", "1", "--out", tmp_path / "e")
    assert result.returncode == 2 and "was trained on 'digits', not 'fashion-mnist'" in result.stderr
    assert not (tmp_path / "e" / "zoo.json").exists()


def test_zoo_commands_train_on_an_idx_folder_sized_by_its_images(tmp_path):
    folder = write_idx_folder(tmp_path / "idx", n_train=24, n_test=12, size=28, classes=4)
    vae = tmp_path / "vae.safetensors"
    result = run_cli("train", "cvae", folder, "--out", vae, "--steps", "2", "--batch-size", "8", "--width", "4",
                     "--latent-dim", "3", "--no-progress")
    assert result.returncode == 0, result.stderr
    model = load_zoo_model(vae, "cvae")
    assert model.image_size == 28 and model.num_classes == 4 and model.data == f"idx:{folder.resolve()}"
    assert model.config.hidden == 64  # the 28x28 default of --hidden
    plain = tmp_path / "plain_vae.safetensors"
    assert run_cli("train", "vae", folder, "--out", plain, "--steps", "2", "--batch-size", "8", "--width", "4",
                   "--no-progress").returncode == 0
    ldm = tmp_path / "ldm.safetensors"
    result = run_cli("train", "ldm", folder, "--vae", plain, "--out", ldm, "--steps", "2", "--batch-size", "8",
                     "--width", "8", "--depth", "1", "--no-progress")
    assert result.returncode == 0, result.stderr
    drawn = load_zoo_model(ldm, "ldm").sample(torch.arange(4), torch.Generator().manual_seed(0), steps=2)
    assert drawn.shape == (4, 1, 28, 28)
    result = run_cli("train", "ldm", "digits", "--vae", plain, "--out", tmp_path / "x.safetensors", "--steps", "1",
                     "--no-progress")
    assert result.returncode == 2 and f"was trained on 'idx:{folder.resolve()}', not 'digits'" in result.stderr


def test_sample_grids_name_the_classes_and_work_without_the_data_package(tmp_path, monkeypatch):
    from storylab.images.zoo.figures import interpolation_rows, write_sample_figures

    # a stand-in for the Debian package: ten classes of 28x28 IDX files at the path the data set reads
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(write_idx_folder(tmp_path / "fm", 40, 40, 28, classes=10)))
    model = TINY28["cvae"]().eval()
    _, names = interpolation_rows(model, pairs=2, steps=3)
    assert names == [f"{FASHION_CLASSES[0]} -> {FASHION_CLASSES[5]}", f"{FASHION_CLASSES[1]} -> {FASHION_CLASSES[6]}"]
    written = write_sample_figures(model, tmp_path / "with", per_class=2, pairs=2, steps=3)
    assert sorted(written) == ["interpolation", "reconstructions", "samples"]
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))
    written = write_sample_figures(model, tmp_path / "without", per_class=2, pairs=2, steps=3)
    assert sorted(written) == ["samples"]


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_fashion_mnist_zoo_loads_and_samples_without_the_data_package(family, tmp_path, monkeypatch):
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))
    path = shipped_path(family, "fashion-mnist")
    assert path.name == f"fashion_mnist_zoo_{family}.safetensors" and path.stat().st_size < 3_000_000
    model = load_zoo_model(path, family, data="fashion-mnist")
    labels = torch.arange(10)
    kwargs = {"steps": 5} if family == "ldm" else {}
    images = model.sample(labels, torch.Generator().manual_seed(0), **kwargs)
    assert images.shape == (10, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    extra = model.extra
    assert extra["seed"] == 0 and extra["command"].startswith(f"storylab train {family} fashion-mnist")


def test_evaluate_zoo_reports_n_density_coverage_and_diversity(tmp_path):
    vae = tmp_path / "vae.safetensors"
    save_zoo_model(vae, VAE(VAEConfig(latent_dim=4, width=4, hidden=16)))
    result = run_cli("evaluate", "zoo", "--families", "vae", "--checkpoints", f"vae={vae}", "--per-class", "3",
                     "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "zoo.json").read_text())
    row, floor = report["rows"][0], report["real_vs_real"]
    assert report["data"] == "digits" and report["class_names"] == [str(i) for i in range(10)]
    assert row["n_fake"] == 30 and 0 <= row["density"] and 0 <= row["coverage"] <= 1 and row["vendi"] >= 1
    assert 0 <= floor["coverage"] <= 1 and floor["fid_std"] >= 0
    text = (tmp_path / "zoo.md").read_text()
    assert "n = 30" in text and "| density | coverage | diversity |" in text
