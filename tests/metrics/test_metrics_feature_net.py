"""The feature network: shapes, checkpoint round trip, adherence, augmentation and the shipped weights."""

import numpy as np
import pytest
import torch

from storylab.errors import StorylabError
from storylab.images.data.digits import load_digits_split
from storylab.images.networks.feature_training import load_digit_feature_net, random_shift
from storylab.metrics import (FeatureNetConfig, SmallImageClassifier, adherence, density_coverage, extract_features,
                              frechet_distance, load_feature_net, precision_recall, save_feature_net)
from storylab.training import save_checkpoint


@pytest.fixture(scope="module")
def shipped():
    return load_digit_feature_net()


def test_features_and_logits_have_configured_shapes():
    net = SmallImageClassifier(FeatureNetConfig(image_size=12, channels=3, num_classes=4, width=8, feature_dim=16))
    x = torch.rand(7, 3, 12, 12) * 2 - 1
    assert extract_features(net, x, batch_size=3).shape == (7, 16)
    assert net(x).shape == (7, 4)
    with pytest.raises(StorylabError, match=r"expects images of shape \(N, 3, 12, 12\), got \(7, 1, 12, 12\)"):
        extract_features(net, torch.zeros(7, 1, 12, 12))


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    torch.manual_seed(0)
    net = SmallImageClassifier(FeatureNetConfig(width=4, feature_dim=8))
    save_feature_net(tmp_path / "f.safetensors", net, extra={"seed": 3})
    loaded = load_feature_net(tmp_path / "f.safetensors")
    x = torch.rand(5, 1, 8, 8) * 2 - 1
    assert torch.equal(extract_features(net, x), extract_features(loaded, x))
    assert loaded.extra["seed"] == 3
    save_checkpoint(tmp_path / "other.safetensors", net.state_dict(), kind="digits-denoiser", config={})
    with pytest.raises(StorylabError, match="'digits-denoiser' checkpoint, expected 'digit-features'"):
        load_feature_net(tmp_path / "other.safetensors")


def test_adherence_rejects_mismatched_labels():
    net = SmallImageClassifier()
    with pytest.raises(StorylabError, match="one label per image"):
        adherence(net, torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(StorylabError, match=r"0\.\.9"):
        adherence(net, torch.zeros(2, 1, 8, 8), [0, 10])


def test_random_shift_moves_a_pixel_by_at_most_the_limit():
    images = torch.full((200, 1, 8, 8), -1.0)
    images[:, 0, 3, 4] = 1.0
    shifted = random_shift(images, max_shift=1, generator=torch.Generator().manual_seed(0))
    assert torch.equal(random_shift(images, 0), images)
    assert ((shifted == 1.0).sum(dim=(1, 2, 3)) == 1).all()
    rows, cols = torch.nonzero(shifted[:, 0] == 1.0)[:, 1], torch.nonzero(shifted[:, 0] == 1.0)[:, 2]
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}


def test_shipped_net_classifies_the_test_split(shipped):
    test = load_digits_split("test")
    assert adherence(shipped, test.images, test.labels) >= 0.95
    assert shipped.config.feature_dim == extract_features(shipped, test.images[:2]).shape[1]


def test_shipped_features_separate_digits_from_noise(shipped):
    train, test = load_digits_split("train"), load_digits_split("test")
    f_train, f_test = extract_features(shipped, train.images), extract_features(shipped, test.images)
    noise = torch.rand(360, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f_noise = extract_features(shipped, noise)
    assert frechet_distance(f_train, f_noise) > 10 * frechet_distance(f_train, f_test)
    assert precision_recall(f_train, f_noise)[0] < 0.5 * precision_recall(f_train, f_test)[0]
    assert density_coverage(f_train, f_noise)[0] < 0.25 * density_coverage(f_train, f_test)[0]
    ones = test.images[test.labels == 1]
    assert adherence(shipped, ones, np.ones(len(ones), dtype=np.int64)) > adherence(
        shipped, ones, np.zeros(len(ones), dtype=np.int64))
