"""The web app in a real browser: each tab does one real thing on the shipped checkpoints and shows it.

Expected values come from outside the page: NFE from the schedule's own per-step scales, the camera
tags from re-tagging the downloaded KITTI file, the error lines from running the CLI on the same file.
"""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.app.page import AppPage
from tests.cli_runner import run_cli

# one app server and one browser for the whole module: under `pytest -n 2` the module stays on one worker
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def page(browser, app_url, screenshots):
    p = AppPage(browser, app_url, screenshots)
    p.open()
    return p


def test_guidance_tab_generates_two_grids_with_their_cost(page):
    from storylab.guidance.schedules import parse_schedule

    page.tab("Guidance")
    WebDriverWait(page.driver, 60).until(  # the plot renders after the page's scripts load
        lambda d: d.find_elements(By.CSS_SELECTOR, "#guidance-weights svg, #guidance-weights canvas"),
        "the live w(t) plot is missing")
    status, _ = page.run("guidance-run", "guidance-status")
    assert not status.startswith("error"), status
    # the tab's defaults: sampler auto draws the shipped v-prediction model with EDM Heun
    assert status.startswith("10 classes x 1, cfg on fashion-mnist, edm-heun 20 steps, seed 0")
    for elem in ("guidance-grid-a", "guidance-grid-b"):
        w, h = page.image_size(elem)
        assert w > 10 * 28 and h > 28, (elem, w, h)  # ten 28x28 Fashion-MNIST images side by side
    rows = page.table("guidance-table")
    header, body = rows[0], rows[1:]
    assert header == ["schedule", "samples", "NFE per sample", "mean scale", "time (s)"]
    assert [r[0] for r in body] == ["constant", "linear"]
    for row in body:
        scales = parse_schedule(row[0]).scales(20, 3.0)
        # CFG: one conditional pass per evaluation, plus the unconditional pass wherever w_i = s_i - 1 > 0;
        # EDM Heun evaluates twice a step, once at the last
        evaluations = [2] * 19 + [1]
        assert int(row[2]) == sum(e * (1 + int(w > 1.0 + 1e-12)) for e, w in zip(evaluations, scales))
        assert float(row[3]) == pytest.approx(float(scales.mean()), abs=1e-3)
        assert int(row[1]) == 10 and float(row[4]) > 0
    page.screenshot("guidance")


def test_controlnet_tab_follows_an_uploaded_scribble(page, tmp_path):
    from PIL import Image, ImageDraw

    sketch = Image.new("RGB", (200, 200), "white")
    ImageDraw.Draw(sketch).line([(100, 30), (100, 170)], fill="black", width=18)  # a "1"
    sketch.save(tmp_path / "one.png")
    page.tab("ControlNet")
    page.upload("control-upload", tmp_path / "one.png")
    status, _ = page.run("control-run", "control-status")
    assert status.startswith("scribble condition, control scale 1 on [0, 1], class none"), status
    for elem in ("control-condition", "control-controlled", "control-base"):
        w, h = page.image_size(elem)
        assert w > 0 and h > 0, elem
    rows = page.table("control-table")
    assert rows[0] == ["samples", "fidelity (F1)"]
    f1 = {r[0]: float(r[1]) for r in rows[1:]}
    assert set(f1) == {"ControlNet", "base model, same noise"}
    assert all(0.0 <= v <= 1.0 for v in f1.values())
    assert f1["ControlNet"] > f1["base model, same noise"]  # the scribble is followed, the base ignores it
    page.screenshot("controlnet")


def test_camera_tab_turns_a_caption_into_a_trajectory(page, tmp_path):
    from storylab.camera.et_format import read_kitti_poses
    from storylab.camera.tagging import tag_camera, tag_name

    page.tab("Camera")
    page.type_into("#camera-caption textarea", "The camera pushes in toward the character.")
    status, _ = page.run("camera-run", "camera-status")
    assert status.startswith("150 frames; sampled in"), status
    WebDriverWait(page.driver, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#camera-plot .js-plotly-plot"))
    links = page.driver.find_elements(By.CSS_SELECTOR, "#camera-kitti a")
    assert links, "no KITTI download link"
    kitti = tmp_path / "trajectory.txt"
    with urllib.request.urlopen(links[0].get_attribute("href"), timeout=10) as reply:
        kitti.write_bytes(reply.read())
    poses = read_kitti_poses(kitti)
    assert poses.shape == (150, 4, 4)
    shown = [r for r in page.table("camera-table")[1:] if r[0] == "camera"]
    expected = tag_camera(poses).segments
    assert [r[4] for r in shown] == [tag_name(s.label, "camera") for s in expected]
    assert [float(r[1]) for r in shown] == pytest.approx([s.start / 25 for s in expected], abs=0.01)
    page.screenshot("camera")


def test_humor_tab_finds_moments_in_a_synthetic_episode_and_rejects_a_non_video(page, tmp_path):
    import shutil

    if shutil.which("espeak-ng") is None:
        pytest.skip("the synthetic episode needs espeak-ng (apt-get install espeak-ng)")
    page.tab("Humor")
    status, _ = page.run("humor-run", "humor-status", timeout=120)
    assert re.match(r"\d+ funny moment\(s\) in episode_001\.mp4 \(\d+ s scored", status), status
    w, h = page.image_size("humor-timeline")
    assert w > 500 and h > 200
    rows = page.table("humor-table")
    assert rows[0] == ["rank", "time (s)", "P(funny)", "window (s)", "subtitle lines"]
    n = int(status.split()[0])
    assert len(rows) - 1 == min(5, n)
    scores = [float(r[2]) for r in rows[1:]]
    assert scores == sorted(scores, reverse=True) and all(0.5 <= s <= 1 for s in scores)
    if n:
        clip = page.driver.find_elements(By.CSS_SELECTOR, "#humor-clip-1 video")
        assert clip and clip[0].get_attribute("src"), "the best moment's clip is not playable"
    page.screenshot("humor")

    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n")
    cli = run_cli("humor", "detect", str(notes))
    assert cli.returncode != 0
    page.upload("humor-video", notes)
    status, _ = page.run("humor-run", "humor-status", timeout=60)
    assert status == cli.stderr.strip().splitlines()[-1]
    assert "Traceback" not in page.driver.page_source
    page.screenshot("humor_bad_upload")


def test_videoqa_tab_answers_the_sample_and_reports_a_bad_csv(page, tmp_path):
    page.tab("Video QA")
    page.type_into("#videoqa-limit input", "4")
    status, _ = page.run("videoqa-run", "videoqa-status", timeout=120)
    assert status.startswith("Retrieval (MiniLM), mode L: accuracy"), status
    rows = page.table("videoqa-table")
    assert rows[0] == ["question", "reply", "parsed", "correct letter", "correct", "running accuracy (%)"]
    body = rows[1:]
    assert len(body) == 4
    right = np.cumsum([r[4] == "yes" for r in body])
    assert [float(r[5]) for r in body] == pytest.approx(list(100 * right / np.arange(1, 5)), abs=0.05)
    assert all(r[2] in "ABCDE" and r[3] in "ABCDE" for r in body)
    assert all((r[2] == r[3]) == (r[4] == "yes") for r in body)
    accuracy = float(re.search(r"accuracy ([\d.]+)%", status).group(1))
    assert accuracy == pytest.approx(float(body[-1][5]), abs=0.05)
    page.screenshot("videoqa")

    bad = tmp_path / "questions.csv"
    bad.write_text("question_id,video_id,question\nq1,film,Why?\n")
    cli = run_cli("videoqa", "eval", "--questions", str(bad), "--out", str(tmp_path / "run"))
    line = cli.stderr.strip().splitlines()[-1]
    assert cli.returncode != 0 and line.startswith("error: ")
    before, after = line.split(str(bad))  # the page names the uploaded copy; the rest is the same line
    page.driver.find_element(By.CSS_SELECTOR, "#videoqa-source input[value=upload]").click()
    page.upload("videoqa-questions", bad)
    status, _ = page.run("videoqa-run", "videoqa-status", timeout=60)
    assert status.startswith(before) and status.endswith(after) and "questions.csv" in status, (status, line)
    assert "/questions.csv" not in status  # the user's file name, not gradio's temporary copy
    page.screenshot("videoqa_bad_upload")


def test_the_page_asks_nothing_of_any_other_address(page):
    import json

    urls = []
    for entry in page.driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    assert any(u.startswith(page.url) for u in urls)
    network = [u for u in urls if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]  # not chrome://, data:, blob:
    outside = [u for u in network if not u.startswith(page.url)]
    assert outside == [], outside


def test_guidance_tab_refuses_a_bad_schedule_b_before_sampling_and_shows_it_whole(page):
    """The whole CLI line, ``<shape>`` and ``<floor>`` included, and no grid: schedule A never sampled."""
    cli = run_cli("guidance", "weights", "--schedule", "clamp:linear")
    line = cli.stderr.strip()
    assert "<shape>" in line and "<floor>" in line
    page.driver.refresh()
    page.open()
    page.tab("Guidance")
    page.type_into("#guidance-schedule-b textarea, #guidance-schedule-b input", "clamp:linear")
    status, seconds = page.run("guidance-run", "guidance-status", timeout=30)
    assert status == line
    assert page.image_size("guidance-grid-a") == (0, 0)
    page.screenshot("guidance_bad_schedule_b")
    page.type_into("#guidance-schedule-b textarea, #guidance-schedule-b input", "linear")
    page.type_into("#guidance-seed input", "1e30")
    status, _ = page.run("guidance-run", "guidance-status", timeout=30)
    assert status == "error: seed must be a whole number in 0..4294967295, got 1e+30"
    assert "Traceback" not in page.driver.page_source


def test_controlnet_tab_answers_a_non_image_upload_with_the_cli_line(page, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not an image\n")
    cli = run_cli("control", "extract", "canny", str(notes), "--out", str(tmp_path / "e.png"))
    line = cli.stderr.strip().replace(str(notes), notes.name)
    page.driver.refresh()
    page.open()
    page.tab("ControlNet")
    page.upload("control-upload", notes)
    status, _ = page.run("control-run", "control-status", timeout=60)
    assert status == line, (status, line)
    badges = [e.text for e in page.driver.find_elements(By.CSS_SELECTOR, ".toast-body, .error")]
    assert not any(b.strip() == "Error" for b in badges), badges
    page.screenshot("controlnet_bad_upload")


def test_every_tab_has_a_cancel_button_that_stops_a_run(page):
    page.driver.refresh()
    page.open()
    page.tab("Guidance")
    page.type_into("#guidance-seed input", "0")
    for name, elem in (("Guidance", "guidance"), ("ControlNet", "control"), ("Camera", "camera"),
                       ("Humor", "humor"), ("Video QA", "videoqa")):
        page.tab(name)
        assert page.driver.find_elements(By.ID, f"{elem}-cancel"), f"no Cancel button on the {name} tab"
    page.tab("Guidance")
    page.driver.find_element(By.CSS_SELECTOR, "#guidance-per-class input[type=number]").clear()
    page.driver.find_element(By.CSS_SELECTOR, "#guidance-per-class input[type=number]").send_keys("8")
    page.driver.find_element(By.ID, "guidance-run").click()
    page.driver.find_element(By.ID, "guidance-cancel").click()
    WebDriverWait(page.driver, 30, poll_frequency=0.05).until(
        lambda d: page.text("guidance-status").startswith("cancelled:"))
    assert page.image_size("guidance-grid-a") == (0, 0)
    page.screenshot("guidance_cancelled")
