"""The humor commands end to end, and bad input as one clear line."""

import json

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storylab.errors import StorylabError

from storylab.humor.media import write_video, write_wav

TINY_MODEL = ["--epochs", "2", "--dim", "64", "--audio-channels", "4", "--audio-dim", "32", "--frames", "4",
              "--frame-size", "16", "--text-tokens", "8"]


def test_label_train_evaluate_detect(tiny_sitcom, cli, tmp_path, monkeypatch):
    out, _ = tiny_sitcom
    clips = out / "clips.csv"
    r = cli("humor", "label", str(out), "--out", str(clips), "--clusters", "1", "--holdout", "0.5")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(clips, keep_default_na=False)
    assert set(df.label) == {0, 1} and set(df.split) == {"train", "test"} and (out / "laughter.json").exists()
    assert df[df.label == 1].text.str.len().min() > 0
    assert set(df.file) == {"episode_001.mp4", "episode_002.mp4"}  # names, read relative to the table's folder
    elsewhere = tmp_path / "elsewhere"  # train and detect from another directory
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    r = cli("train", "funnynet", "--data", str(out), "--modalities", "a,t", "--modality-dropout", "0", *TINY_MODEL)
    assert r.returncode == 0, r.stderr
    at_path = elsewhere / "runs" / "funnynet" / "funnynet_at.safetensors"  # the default output, not the data folder
    assert at_path.exists() and not list(out.glob("funnynet_at*"))
    avt_path = tmp_path / "funnynet_avt.safetensors"
    r = cli("train", "funnynet", "--data", str(out), "--out", str(avt_path), "--aux-weight", "0.5", *TINY_MODEL)
    assert r.returncode == 0, r.stderr
    paper_path = tmp_path / "funnynet_at_paper.safetensors"
    r = cli("train", "funnynet", "--data", str(out), "--modalities", "a,t", "--architecture", "paper", "--out",
            str(paper_path), *TINY_MODEL)
    assert r.returncode == 0, r.stderr
    from storylab.training import load_checkpoint
    at_ckpt, avt_ckpt, paper_ckpt = load_checkpoint(at_path), load_checkpoint(avt_path), load_checkpoint(paper_path)
    assert paper_ckpt.config["architecture"] == "paper" and paper_ckpt.config["modality_dropout"] == 0.0
    assert paper_ckpt.extra["train"]["recipe"] == "paper" and paper_ckpt.extra["train"]["lr"] == 1e-4
    assert at_ckpt.config["aux_weight"] == 0.0 and not any(k.startswith("aux_heads") for k in at_ckpt.state_dict)
    assert avt_ckpt.config["aux_weight"] == 0.5
    assert at_ckpt.config["modality_dropout"] == 0.0 and avt_ckpt.config["modality_dropout"] == 0.5  # paper flag; default
    assert {k.split(".")[1] for k in avt_ckpt.state_dict if k.startswith("aux_heads")} == {"a", "v", "t"}
    r = cli("evaluate", "funnynet", "--data", str(out), "--checkpoint", str(at_path), "--checkpoint", str(avt_path),
            "--checkpoint", str(paper_path), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout[r.stdout.index("{"):])
    at, paper, avt = report["funnynet"]
    assert paper["modalities"] == "AT" and paper["clips"] == at["clips"]
    assert (at["modalities"], avt["modalities"]) == ("AT", "AVT") and 0 <= at["f1"] <= 1
    n_test = int((df.split == "test").sum())
    assert at["clips"] == avt["clips"] == n_test  # scored on the held-out clips only
    for row in (at, avt):  # a bootstrap interval around each F1; the paired test against AVT
        assert row["f1_ci95"][0] <= row["f1"] <= row["f1_ci95"][1]
    assert 0 < at["mcnemar_p_vs_avt"] <= 1 and avt["mcnemar_p_vs_avt"] is None
    assert "McNemar" in r.stdout
    assert report["laughter_detector"]["events_truth"] > 0
    r = cli("humor", "detect", str(out / "episode_002.mp4"), "--checkpoint", str(at_path), "--json", "--stride", "2",
            "--min-run", "0", "--min-gap", "0", "--anchor", "peak")  # the threshold alone: runs' peaks
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert (elsewhere / found["plot"]).stat().st_size > 10_000 and Path(found["plot"]).parts[:2] == ("runs", "humor")
    assert not list(out.glob("*.png"))  # nothing written beside the video
    times = [s["time"] for s in found["scores"]]
    probs = [s["score"] for s in found["scores"]]
    assert times[0] == 2.0 and np.allclose(np.diff(times), 2.0)  # the first window is scored, before 8 s of context exist
    runs, current = [], []  # funny moments: the best window of each run at or above the threshold, by brute force
    for t, p in zip(times, probs):
        if p >= found["threshold"]:
            current.append((p, t))
        elif current:
            runs.append(current)
            current = []
    runs += [current] if current else []
    assert [m["time"] for m in found["moments"]] == [max(run, key=lambda x: x[0])[1] for run in runs]
    for m in found["moments"]:
        assert m["end"] == m["time"] and m["start"] == max(0.0, m["time"] - found["window"])


def test_clip_tables_cannot_name_files_outside_their_folder(tmp_path, cli):
    from storylab.humor.labels import read_clip_table

    for bad in ("../secret.mp4", "/etc/passwd", "sub/ep.mp4", "..\\ep.mp4"):
        pd.DataFrame([{"file": bad, "start": 0, "end": 8, "label": 1, "text": "", "split": "train"}]).to_csv(
            tmp_path / "clips.csv", index=False)
        with pytest.raises(StorylabError, match="refusing clip file"):
            read_clip_table(tmp_path / "clips.csv")
    (tmp_path / "laughter.json").write_text(json.dumps({"files": [{"path": "../x.mp4", "laughter": []}]}))
    from storylab.humor.data import read_laughter_json
    with pytest.raises(StorylabError, match="refusing file in laughter.json"):
        read_laughter_json(tmp_path / "laughter.json")


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
    _one_error_line(cli("humor", "label", str(ep), "--out", str(tmp_path / "clips.csv")), "must be written in the episodes' folder")
    _one_error_line(cli("humor", "label", str(ep), "--out", str(ep / "clips.csv"), "--window", "500"), "longer than e.mp4")
    assert not (ep / "clips.csv").exists() and not (ep / "laughter.json").exists()
    _one_error_line(cli("train", "funnynet", "--data", str(ep), "--modalities", "a,q"), "unknown modality")
    _one_error_line(cli("train", "funnynet", "--data", str(ep), "--modality-dropout", "1.5"), "modality dropout must be in [0, 1)")
