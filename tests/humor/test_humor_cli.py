"""The humor commands end to end, and bad input as one clear line."""

import json

import numpy as np
import pandas as pd

from storylab.humor.media import write_video, write_wav

TINY_MODEL = ["--epochs", "2", "--dim", "64", "--audio-channels", "4", "--audio-dim", "32", "--frames", "4",
              "--frame-size", "16", "--text-tokens", "8"]


def test_label_train_evaluate_detect(tiny_sitcom, cli, tmp_path):
    out, _ = tiny_sitcom
    clips = out / "clips.csv"
    r = cli("humor", "label", str(out), "--out", str(clips), "--clusters", "1", "--holdout", "0.5")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(clips, keep_default_na=False)
    assert set(df.label) == {0, 1} and set(df.split) == {"train", "test"} and (out / "laughter.json").exists()
    assert df[df.label == 1].text.str.len().min() > 0
    r = cli("train", "funnynet", "--data", str(out), "--modalities", "a,t", "--out", str(out / "funnynet_at.safetensors"),
            "--modality-dropout", "0", *TINY_MODEL)
    assert r.returncode == 0, r.stderr
    r = cli("train", "funnynet", "--data", str(out), "--out", str(out / "funnynet_avt.safetensors"), "--aux-weight", "0.5",
            *TINY_MODEL)
    assert r.returncode == 0, r.stderr
    from storylab.training import load_checkpoint
    at_ckpt, avt_ckpt = (load_checkpoint(out / f"funnynet_{m}.safetensors") for m in ("at", "avt"))
    assert at_ckpt.config["aux_weight"] == 0.0 and not any(k.startswith("aux_heads") for k in at_ckpt.state_dict)
    assert avt_ckpt.config["aux_weight"] == 0.5
    assert at_ckpt.config["modality_dropout"] == 0.0 and avt_ckpt.config["modality_dropout"] == 0.5  # paper flag; default
    assert {k.split(".")[1] for k in avt_ckpt.state_dict if k.startswith("aux_heads")} == {"a", "v", "t"}
    r = cli("evaluate", "funnynet", "--data", str(out), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout[r.stdout.index("{"):])
    at, avt = report["funnynet"]
    assert (at["modalities"], avt["modalities"]) == ("AT", "AVT") and 0 <= at["f1"] <= 1
    for row in (at, avt):  # a bootstrap interval around each F1; the paired test against AVT
        assert row["f1_ci95"][0] <= row["f1"] <= row["f1_ci95"][1]
    assert 0 < at["mcnemar_p_vs_avt"] <= 1 and avt["mcnemar_p_vs_avt"] is None
    assert "McNemar" in r.stdout
    assert report["laughter_detector"]["events_truth"] > 0
    plot = tmp_path / "timeline.png"
    r = cli("humor", "detect", str(out / "episode_002.mp4"), "--checkpoint", str(out / "funnynet_at.safetensors"),
            "--json", "--plot", str(plot), "--stride", "2")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert found["plot"] == str(plot) and plot.stat().st_size > 10_000
    assert all(0.5 <= m["score"] <= 1 for m in found["moments"])


def test_laughter_json_and_zero_laughter(cli, tmp_path):
    write_wav(tmp_path / "quiet.wav", np.zeros((2, 16_000 * 10), np.float32))
    r = cli("humor", "laughter", str(tmp_path / "quiet.wav"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"files": [{"path": str(tmp_path / "quiet.wav"), "laughter": []}]}
    assert "no laughter found" in r.stderr
    r = cli("humor", "label", str(tmp_path / "quiet.wav"), "--out", str(tmp_path / "clips.csv"))
    assert r.returncode == 0 and "no laughter found" in r.stdout
    assert not (tmp_path / "clips.csv").exists() and not (tmp_path / "laughter.json").exists()


def _one_error_line(r, needle):
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and needle in lines[-1], r.stderr
    assert "Traceback" not in r.stderr


def test_real_entry_point_prints_one_line(cli_subprocess, tmp_path):
    write_video(tmp_path / "noaudio.mp4", [np.zeros((32, 32, 3), np.uint8)] * 10, 5, None)
    _one_error_line(cli_subprocess("humor", "laughter", str(tmp_path / "noaudio.mp4")), "no audio stream")


def test_bad_inputs_are_one_line(cli, tmp_path, tiny_sitcom):
    out, _ = tiny_sitcom
    (tmp_path / "junk.mkv").write_bytes(b"\x1aE\xdf\xa3" + b"garbage" * 50)
    _one_error_line(cli("humor", "laughter", str(tmp_path / "junk.mkv")), "corrupt")
    ep = tmp_path / "ep"
    ep.mkdir()
    (ep / "e.mp4").write_bytes((out / "episode_001.mp4").read_bytes())
    (ep / "e.srt").write_text("1\n00:00:01,000 --> 00:00:99,000\nHi\n")
    _one_error_line(cli("humor", "label", str(ep), "--out", str(ep / "clips.csv")), "broken timestamp")
    (ep / "e.srt").write_text("1\n00:10:01,000 --> 00:10:03,000\nHi\n")
    _one_error_line(cli("humor", "label", str(ep), "--out", str(ep / "clips.csv")), "after the video")
    (ep / "e.srt").unlink()
    _one_error_line(cli("humor", "label", str(ep), "--out", str(ep / "clips.csv"), "--window", "500"), "longer than e.mp4")
    assert not (ep / "clips.csv").exists() and not (ep / "laughter.json").exists()
    _one_error_line(cli("train", "funnynet", "--data", str(ep), "--modalities", "a,q"), "unknown modality")
    _one_error_line(cli("train", "funnynet", "--data", str(ep), "--modality-dropout", "1.5"), "modality dropout must be in [0, 1)")
