"""The noise-aware classifier at 28x28 (issue 17): sizes by data set, the 8x8 layout kept, the shipped one guides."""

import pytest
import torch
import torch.nn.functional as F

from storylab.errors import StorylabError
from storylab.guidance import make_rule
from storylab.images.assets import CLASSIFIER, shipped
from storylab.images.networks.denoiser import load_digit_model, sample_digits
from storylab.images.networks.feature_training import load_digit_feature_net
from storylab.images.networks.noisy_classifier import (ClassifierConfig, NoisyDigitClassifier, classifier_config_for,
                                                       load_classifier, save_classifier)
from tests.cli_runner import run_cli

FASHION_CLASSIFIER = shipped("fashion-mnist", "classifier")
FASHION_DENOISER = shipped("fashion-mnist", "denoiser")


@pytest.fixture
def no_fashion_data(tmp_path, monkeypatch):
    """Fashion-MNIST's IDX folder moved away: what a fresh install without the Debian package sees."""
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))


def test_28x28_classifier_goes_down_to_4x4_and_gives_one_logit_per_class():
    cfg = classifier_config_for("fashion-mnist", 10, 28, channels=8)
    assert cfg.channel_mult == (1, 2, 2, 2) and cfg.image_size == 28
    clf = NoisyDigitClassifier(ClassifierConfig(**{**cfg.__dict__, "emb_dim": 16, "groups": 4}))
    sides = []
    for i in range(1, 5):
        getattr(clf, f"block{i}").register_forward_hook(lambda m, a, out: sides.append(tuple(out.shape[1:])))
    logits = clf(torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999]))
    assert logits.shape == (3, 10)
    assert sides == [(8, 28, 28), (16, 14, 14), (16, 7, 7), (16, 4, 4)]  # ceil(s / 2) per stride-2 conv (padding 1)


def test_digits_size_is_the_shipped_8x8_layout_and_its_forward_is_unchanged():
    """The shipped digits classifier loads into the generic levels, which compute the old fixed three-block pass."""
    assert classifier_config_for("digits", 10, 8) == ClassifierConfig()
    clf = load_classifier(CLASSIFIER, num_classes=10, data="digits", image_size=8)
    x, t = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 250, 500, 750])
    from storylab.images.networks.unet import timestep_embedding

    with torch.no_grad():  # the pre-28x28 forward, written out: block1, down1, block2, down2, block3, pool, head
        emb = clf.time_mlp(timestep_embedding(t, clf.cfg.channels))
        h = clf.block1(clf.conv_in(x), emb)
        h = clf.block2(clf.down1(h), emb)
        h = clf.block3(clf.down2(h), emb)
        expected = clf.head(F.silu(clf.norm(h)).mean(dim=(2, 3)))
        assert torch.equal(clf(x, t), expected)
    assert not hasattr(clf, "block4")


def test_a_classifier_of_another_data_set_is_one_error_line(no_fashion_data, tmp_path):
    result = run_cli("sample", "fashion-mnist", "--guidance", "classifier", "--classifier", CLASSIFIER,
                     "--steps", "2", "--per-class", "1", "--out", tmp_path / "s.png", "--no-progress")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: {CLASSIFIER} is a classifier of 'digits' images, but the denoiser draws 'fashion-mnist'"]
    assert not (tmp_path / "s.png").exists()


def test_a_classifier_of_another_size_is_one_clear_error(tmp_path):
    path = save_classifier(tmp_path / "c.safetensors", NoisyDigitClassifier(
        ClassifierConfig(channels=8, emb_dim=16, groups=4, data="fashion-mnist", image_size=8)))
    with pytest.raises(StorylabError, match=r"^.*c\.safetensors classifies 8x8 images, but the denoiser draws 28x28$"):
        load_classifier(path, num_classes=10, data="fashion-mnist", image_size=28)


def test_shipped_fashion_classifier_samples_without_the_data_package(no_fashion_data, tmp_path):
    result = run_cli("sample", "fashion-mnist", "--guidance", "classifier", "--classes", "Coat,Bag", "--steps", "2",
                     "--per-class", "1", "--out", tmp_path / "s.png", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").stat().st_size > 0
    clf = load_classifier(FASHION_CLASSIFIER, num_classes=10, data="fashion-mnist", image_size=28)
    assert clf.cfg.channel_mult == (1, 2, 2, 2)


def test_classifier_guidance_raises_the_target_log_probability(no_fashion_data):
    """gamma > 0 pushes samples up the classifier's log p(y | x): higher at t = 0 than unguided (same noise)."""
    torch.manual_seed(0)
    model = load_digit_model(FASHION_DENOISER)
    clf = load_classifier(FASHION_CLASSIFIER, num_classes=10, data="fashion-mnist", image_size=28)
    labels = torch.tensor([0, 2, 4, 6, 0, 2, 4, 6])  # the confusable top / pullover / coat / shirt
    rule = make_rule("classifier", classifier=clf, labels=labels)
    # the unconditional model (null label), so that only the classifier pulls towards the class
    null = torch.full_like(labels, model.null_class)
    features = load_digit_feature_net(data="fashion-mnist")  # an independent judge: the metrics' network
    log_p, judged = {}, {}
    for gamma in (0.0, 5.0):
        images = sample_digits(model, null, rule, gamma, "constant", "ddim", 8, seed=1)
        with torch.no_grad():
            logits = clf(images, torch.zeros(labels.shape[0], dtype=torch.long))
            judged[gamma] = float(features(images).log_softmax(-1).gather(1, labels[:, None]).mean())
        log_p[gamma] = float(logits.log_softmax(-1).gather(1, labels[:, None]).mean())
    assert log_p[5.0] > log_p[0.0] + 0.5, log_p
    assert judged[5.0] > judged[0.0], judged


def test_a_data_set_without_a_shipped_classifier_says_how_to_train_one():
    with pytest.raises(StorylabError) as err:
        load_classifier(shipped("mnist", "classifier"), num_classes=10, data="mnist", image_size=28)
    assert str(err.value) == ("no noise-aware classifier is shipped for this data set (mnist_classifier.safetensors); "
                              "train one with `storylab train classifier --data mnist` and pass "
                              "--classifier runs/mnist_classifier.safetensors")
