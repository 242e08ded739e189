"""``storylab train features``: a few steps write a loadable checkpoint; bad settings give one clear error."""

from typer.testing import CliRunner

import storylab.images.commands.features_cli  # noqa: F401  (registers the command)
from storylab.cli_groups import app
from storylab.errors import StorylabError
from storylab.metrics import load_feature_net
from storylab.training import state_path_for


def test_train_features_writes_a_digit_features_checkpoint(tmp_path):
    out = tmp_path / "f.safetensors"
    result = CliRunner().invoke(app, ["train", "features", "--out", str(out), "--steps", "6", "--batch-size", "32",
                                      "--seed", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output
    net = load_feature_net(out)
    assert net.extra["seed"] == 1 and net.extra["step"] == 6
    assert 0.0 <= net.extra["test_accuracy"] <= 1.0
    assert state_path_for(out).exists()  # resume state kept by default


def test_train_features_rejects_bad_settings(tmp_path):
    out = tmp_path / "f.safetensors"
    result = CliRunner().invoke(app, ["train", "features", "--out", str(out), "--max-shift", "-1"])
    assert isinstance(result.exception, StorylabError)
    assert "max shift" in str(result.exception)
    assert not out.exists()
