"""``storylab demo``: the tour runs on tiny settings and delivers every section, figure and table it promises."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from storylab import demo
from tests.cli_runner import run_cli


class _Report(HTMLParser):
    """The report's section headings, figure sources and tables (rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.headings, self.images, self.tables = [], [], []
        self._tag, self._row = None, None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self._row = []
            self.tables[-1].append(self._row)

    def handle_data(self, data):
        if self._tag == "h2" and data.strip():
            self.headings.append(data.strip())
        elif self._tag in ("td", "th", "a") and self._row is not None and data.strip():
            self._row.append(data.strip())

    def handle_endtag(self, tag):
        self._tag = None
        if tag == "tr":
            self._row = None


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "tour"
    result = run_cli("demo", "--tiny", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def test_tiny_demo_report_has_every_section_with_its_figures_and_tables(tiny_demo):
    out, result = tiny_demo
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["sections"]) == [s.name for s in demo.SECTIONS]
    titles = [metrics["sections"][s.name]["title"] for s in demo.SECTIONS]
    report = _Report()
    report.feed((out / "report.html").read_text(encoding="utf-8"))
    assert report.headings == titles
    summary = report.tables[0]
    assert summary[0] == ["section", "result", "time (s)"] and [r[0] for r in summary[1:]] == titles
    for image in report.images:  # every figure the page shows exists and is a real PNG
        data = (out / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, image
    expected = {"class_grid.png", "samples.png", "weights.png", "fid_vs_adherence.png", "diversity_vs_adherence.png",
                "controlnet.png", "zoo_samples.png", "camera_1.png", "camera_2.png", "camera_3.png"}
    assert expected <= set(report.images)
    for title in titles:  # the printed summary tables name every section
        assert title in result.stdout


def test_tiny_demo_sections_hold_what_they_claim(tiny_demo):
    from storylab.camera.et_format import read_kitti_poses
    from storylab.camera.tagging import tag_camera, tag_name
    from storylab.guidance.schedules import parse_schedule

    out, _ = tiny_demo
    cfg = demo.DemoConfig.tiny()
    sections = json.loads((out / "metrics.json").read_text())["sections"]
    guidance = sections["guidance"]["settings"]
    assert [g["schedule"] for g in guidance] == list(cfg.schedules)
    for g in guidance:  # CFG: the conditional pass every evaluation, the unconditional one where w_i > 0
        scales = parse_schedule(g["schedule"]).scales(cfg.steps, demo.DEMO_SCALE)
        # the shipped v-prediction model samples with EDM Heun: two evaluations per step, one at the last
        evaluations = [2] * (cfg.steps - 1) + [1]
        assert g["nfe_per_sample"] == sum(e * (1 + int(w > 1 + 1e-12)) for e, w in zip(evaluations, scales))
        assert 0 <= g["adherence"] <= 1 and g["fid"] > 0
    assert set(sections["zoo"]) - {"title", "section_seconds"} == {"ae", "vae", "cvae", "vqvae", "gan", "ldm"}
    for k, item in enumerate(sections["camera"]["trajectories"], start=1):  # tags re-read from the written file
        poses = read_kitti_poses(out / f"camera_{k}.txt")
        assert poses.shape == (cfg.camera_frames, 4, 4)
        assert [s["tag"] for s in item["segments"]] == [tag_name(s.label, "camera") for s in tag_camera(poses).segments]
    qa = sections["videoqa"]
    records = [json.loads(line) for line in (out / "videoqa_run" / "predictions.jsonl").read_text().splitlines()]
    assert qa["n"] == len(records) == cfg.videoqa_limit
    assert qa["accuracy"] == pytest.approx(sum(r["correct"] for r in records) / len(records))
    humor = sections["humor"]
    if "skipped" not in humor:
        assert (out / "humor_timeline.png").stat().st_size > 2000
        assert all(0.5 <= m["score"] <= 1 for m in humor["moments"])


FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"]


def test_tiny_demo_draws_fashion_mnist_with_class_names_and_the_shipped_study(tiny_demo):
    import numpy as np
    from PIL import Image

    out, _ = tiny_demo
    cfg = demo.DemoConfig.tiny()
    sections = json.loads((out / "metrics.json").read_text())["sections"]
    assert sections["guidance"]["dataset"] == "fashion-mnist" and sections["guidance"]["class_names"] == FASHION_NAMES
    page = (out / "report.html").read_text(encoding="utf-8")
    assert all(name in page for name in ("T-shirt/top", "Ankle boot", "Pullover", "Sneaker"))
    # the live part says what settings it used: the shipped v-prediction model draws with EDM Heun (sampler auto)
    assert f"{cfg.steps} EDM-HEUN steps" in page
    # the class grid: 10 rows of 28x28 tiles zoomed 2x with 2-pixel gaps, per_class columns, names in a left margin
    grid = np.asarray(Image.open(out / "class_grid.png").convert("L"))
    tile = 28 * 2 + 2
    assert grid.shape[0] == 10 * tile + 2
    margin = grid.shape[1] - (cfg.per_class * tile + 2)
    assert margin > 40  # wide enough for "Ankle boot"
    assert (grid[:, :margin] < 100).sum() > 200  # the names are written there (dark text on white)
    report = _Report()
    report.feed(page)
    study = next(t for t in report.tables if t and t[0][:3] == ["schedule", "scale", "mean scale"])
    shipped = json.loads(demo_study_path().read_text())
    assert len(study) == 2 + len(shipped["cells"])  # header, the real-vs-real floor, one row per cell
    assert shipped["n_fake"] >= 320 and shipped["fid_warning"] is None  # the shipped study is at a meaningful n
    assert {c["schedule"] for c in shipped["cells"]} >= {"constant", "linear", "cosine", "invlinear"}


def demo_study_path() -> Path:
    from storylab.images.study.study import SHIPPED_STUDY

    return SHIPPED_STUDY


def test_demo_without_espeak_says_how_to_enable_the_humor_part(tmp_path, monkeypatch):
    import storylab.humor.panel as humor_panel

    monkeypatch.setattr(humor_panel, "espeak_available", lambda: False)
    [section] = demo.run_demo(tmp_path / "out", 0, demo.DemoConfig(sections=("humor",)))
    assert section["rows"] == [] and "apt-get install espeak-ng" in section["note"]
    assert "apt-get install espeak-ng" in (tmp_path / "out" / "report.html").read_text()


def test_demo_bad_input_is_one_line(tmp_path):
    r = run_cli("demo", "--sections", "guidance,nope", "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert r.stderr.strip() == ("error: unknown demo section(s) nope (choose from guidance, study, controlnet, zoo, "
                                "camera, humor, videoqa)")
    (tmp_path / "file").write_text("")
    r = run_cli("demo", "--out", str(tmp_path / "file"))
    assert r.returncode == 2 and r.stderr.strip() == (f"error: cannot write --out {tmp_path / 'file'}: it is an existing "
                                                      "file, a folder is expected")
    assert not Path(tmp_path / "x").exists()
