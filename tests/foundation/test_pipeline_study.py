"""`storylab evaluate pipeline` end to end on a tiny random SD pipeline and a tiny random CLIP saved to tmp."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from storylab.guidance.clip_features import clip_score
from tests.cli_runner import run_cli
from tests.foundation.tiny_pipelines import tiny_clip, tiny_sd


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("study")
    tiny_sd(root / "build").save_pretrained(root / "sd")
    tiny_clip(root / "clip")
    (root / "prompts.txt").write_text("a b\n# a comment\n\nb a c\n")
    ref = root / "reference"
    ref.mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(ref / f"r{i}.png")
    return root


def _study(assets, out, *extra):
    return run_cli("evaluate", "pipeline", "--model", assets / "sd", "--prompts", assets / "prompts.txt",
                   "--schedules", "constant;clamp:constant:c=1;linear", "--scales", "2,3", "--n", "3", "--steps", "3",
                   "--clip", assets / "clip", "--reference", assets / "reference", "--out", out, "--no-progress", *extra)


def test_study_generates_every_cell_from_the_same_seeds_scores_and_resumes(assets, tmp_path):
    out = tmp_path / "run"
    res = _study(assets, out)
    assert res.returncode == 0, res.stderr
    study = json.loads((out / "study.json").read_text())
    assert study["schedule_version"] == 2 and "CLIP image embeddings" in study["features"]
    cells = {(c["schedule"], c["scale"]): c for c in study["cells"]}
    assert len(cells) == 6
    for c in cells.values():
        assert len(list((out / c["folder"]).glob("*.png"))) == 6  # 2 prompts x 3 images
        for key in ("clip_score", "fid", "precision", "recall", "density", "coverage", "vendi"):
            assert np.isfinite(c[key]), key
    # clamp:constant:c=1 at scale 2 is w = max(1, 1) = 1, i.e. constant scale 2: same seeds give the same images
    same_a, same_b = cells[("constant", 2.0)], cells[("clamp:constant:c=1", 2.0)]
    for png in sorted((out / same_a["folder"]).glob("*.png")):
        assert png.read_bytes() == (out / same_b["folder"] / png.name).read_bytes()
    assert cells[("linear", 3.0)]["nfe_per_image"] == 1 + 2 + 2  # linear starts at scale 1: one pass skipped
    assert (out / "fid_vs_clip.png").is_file() and (out / "diversity_vs_clip.png").is_file()
    assert "pipeline study" in res.stdout and "Loading pipeline" not in res.stdout + res.stderr

    # resume: drop one finished image and its cell marker; only that image is regenerated, identically
    victim_cell = out / cells[("linear", 2.0)]["folder"]
    victim = victim_cell / "p001_02.png"
    original = victim.read_bytes()
    victim.unlink()
    (victim_cell / "cell.json").unlink()
    untouched = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/*.png")}
    again = _study(assets, out)
    assert again.returncode == 0, again.stderr
    assert victim.read_bytes() == original
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())
    redone = json.loads((victim_cell / "cell.json").read_text())
    assert redone["images_generated_this_run"] == 3  # prompt 1's batch of 3 (the only incomplete one)


def test_clip_score_is_torchmetrics_convention():
    a, b = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert clip_score(a, b) == pytest.approx((100 * 1.0 + 0.0) / 2)  # cos 1 and cos -0.707 clamped to 0


@pytest.mark.parametrize("args,needle", [
    (("--model", "/nonexistent/sd"), "not a saved diffusers pipeline"),
    (("--scales", "0.5"), "guide only above scale 1"),
    (("--schedules", "wobbly"), "unknown schedule 'wobbly'"),
    (("--scales", "x"), "--scales must be comma-separated numbers"),
])
def test_bad_input_is_one_error_line(assets, tmp_path, args, needle):
    base = {"--model": str(assets / "sd"), "--prompts": str(assets / "prompts.txt"), "--schedules": "constant",
            "--scales": "2", "--out": str(tmp_path / "o")}
    pairs = dict(base)
    pairs.update(dict(zip(args[::2], args[1::2])))
    res = run_cli("evaluate", "pipeline", *[x for kv in pairs.items() for x in kv], "--n", "1", "--steps", "2", "--no-progress")
    lines = res.stderr.strip().splitlines()
    assert res.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert not (tmp_path / "o" / "study.json").exists()


def test_controlnet_pipeline_study_takes_one_condition_image_per_controlnet(tmp_path):
    from PIL import Image

    from tests.foundation.tiny_pipelines import tiny_sd_controlnet

    tiny_sd_controlnet(tmp_path / "build", count=2).save_pretrained(tmp_path / "cn")
    (tmp_path / "p.txt").write_text("a b\n")
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 80 * i, dtype=np.uint8)).save(tmp_path / f"c{i}.png")
    args = ["evaluate", "pipeline", "--model", tmp_path / "cn", "--prompts", tmp_path / "p.txt", "--schedules", "linear",
            "--scales", "3", "--n", "2", "--steps", "3", "--out", tmp_path / "o", "--no-progress"]
    bad = run_cli(*args, "--control-image", tmp_path / "c0.png")
    assert bad.returncode != 0 and bad.stderr.strip() == (
        "error: this pipeline has 2 ControlNet(s): give 2 --control KIND=PATH (or --control-image FILE), "
        "one per ControlNet in the pipeline's order; got 1")
    ok = run_cli(*args, "--control-image", tmp_path / "c0.png", "--control-image", tmp_path / "c1.png")
    assert ok.returncode == 0, ok.stderr
    study = json.loads((tmp_path / "o" / "study.json").read_text())
    assert len(list((tmp_path / "o" / study["cells"][0]["folder"]).glob("*.png"))) == 2


def _photo():
    """A real photograph that ships with matplotlib (a dependency): Grace Hopper, 600 x 512 RGB JPEG."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _pixels(path):
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture(scope="module")
def controlnets(tmp_path_factory):
    """Tiny SD pipelines saved to disk: 2 trained-looking ControlNets, and the same base without ControlNet."""
    from tests.foundation.tiny_pipelines import tiny_sd_controlnet

    root = tmp_path_factory.mktemp("cn")
    tiny_sd_controlnet(root / "build", count=2, trained=True).save_pretrained(root / "cn2")
    tiny_sd(root / "build_sd").save_pretrained(root / "sd")
    (root / "p.txt").write_text("a b\n")
    return root


def _control_study(root, out, *extra, model="cn2"):
    return run_cli("evaluate", "pipeline", "--model", root / model, "--prompts", root / "p.txt", "--schedules", "linear",
                   "--scales", "3", "--n", "2", "--steps", "3", "--out", out, "--no-progress", *extra)


def test_control_kind_is_extracted_in_the_same_command_exactly_as_control_extract_writes_it(controlnets, tmp_path):
    photo, root = _photo(), controlnets
    # the pipeline's resolution from its configs, independently: UNet sample_size 8 x 2 ** (2 VAE blocks - 1)
    unet = json.loads((root / "cn2" / "unet" / "config.json").read_text())
    vae = json.loads((root / "cn2" / "vae" / "config.json").read_text())
    side = unet["sample_size"] * 2 ** (len(vae["block_out_channels"]) - 1)
    for i, kind in enumerate(("canny", "scribble")):
        made = run_cli("control", "extract", kind, photo, "--size", side, "--out", tmp_path / f"c{i}.png")
        assert made.returncode == 0, made.stderr
    one = _control_study(root, tmp_path / "one", "--control", f"canny={photo}", "--control", f"scribble={photo}:0.7:0:0.9")
    assert one.returncode == 0, one.stderr
    assert f"ControlNet 1: scribble of {photo} ({side} px), scale 0.7, window 0-0.9 of sampling" in one.stdout.replace("\n", " ")
    study = json.loads((tmp_path / "one" / "study.json").read_text())
    for i in range(2):  # the pipeline got exactly what `control extract` writes
        assert np.array_equal(_pixels(tmp_path / "one" / "conditions" / f"control{i}.png"), _pixels(tmp_path / f"c{i}.png"))
    canny, scribble = study["controls"]
    assert (canny["extractor"], canny["size"], canny["low"], canny["high"], canny["l2_gradient"]) == ("canny", side, 100, 200, False)
    assert (canny["scale"], canny["start"], canny["end"], canny["input"]) == (1.0, 0.0, 1.0, str(photo))
    assert (scribble["extractor"], scribble["seed"], scribble["thickness"]) == ("scribble", 0, 3)
    assert (scribble["scale"], scribble["start"], scribble["end"]) == (0.7, 0.0, 0.9)
    cell = tmp_path / "one" / study["cells"][0]["folder"]
    images = sorted(cell.glob("*.png"))
    assert len(images) == 2 and _pixels(images[0]).shape == (side, side, 3)

    # two commands (extract, then --control-image) give the same images when the windows match
    two = _control_study(root, tmp_path / "two", "--control-image", tmp_path / "c0.png", "--control-image", tmp_path / "c1.png")
    same = _control_study(root, tmp_path / "same", "--control", f"canny={photo}", "--control", f"scribble={photo}")
    assert two.returncode == 0 and same.returncode == 0, two.stderr + same.stderr
    for png in images:
        twin = tmp_path / "two" / png.relative_to(tmp_path / "one")
        assert (tmp_path / "same" / png.relative_to(tmp_path / "one")).read_bytes() == twin.read_bytes()
        assert not np.array_equal(_pixels(png), _pixels(twin))  # scale 0.7 / end 0.9 reached the pipeline

    # control scale 0 on both nets is the base pipeline without ControlNet (same seeds, same UNet)
    off = _control_study(root, tmp_path / "off", "--control", f"canny={photo}:0", "--control", f"mask={photo}:0")
    base = _control_study(root, tmp_path / "base", model="sd")
    assert off.returncode == 0 and base.returncode == 0, off.stderr + base.stderr
    for png in images:
        rel = png.relative_to(tmp_path / "one")
        assert np.array_equal(_pixels(tmp_path / "off" / rel), _pixels(tmp_path / "base" / rel))
        assert not np.array_equal(_pixels(tmp_path / "off" / rel), _pixels(tmp_path / "same" / rel))

    # a finished study refuses other conditions in the same --out
    other = _control_study(root, tmp_path / "one", "--control", f"mask={photo}", "--control", f"scribble={photo}:0.7:0:0.9")
    assert other.returncode != 0 and "other settings (controls)" in other.stderr


@pytest.mark.parametrize("extra,message", [
    (("--control", "canny={photo}", "--control-image", "{photo}"),
     "--control and --control-image together: give every ControlNet's condition with one of them "
     "(--control KIND=PATH extracts it, --control-image FILE takes a ready one)"),
    (("--control", "canny={photo}"),
     "this pipeline has 2 ControlNet(s): give 2 --control KIND=PATH (or --control-image FILE), one per ControlNet "
     "in the pipeline's order; got 1"),
    (("--control", "canny={photo}", "--control", "canny={photo}", "--control", "canny={photo}"),
     "this pipeline has 2 ControlNet(s): give 2 --control KIND=PATH (or --control-image FILE), one per ControlNet "
     "in the pipeline's order; got 3"),
    (("--control", "wobble={photo}", "--control", "canny={photo}"),
     "unknown condition kind 'wobble' (choose from canny, sobel, scribble, mask, distance; 'edges' = canny)"),
    (("--control", "canny={photo}:1:0.5:0.5", "--control", "canny={photo}"),
     "a ControlNet pipeline's control window needs 0 <= start < end <= 1, got 0.5:0.5"),
    (("--control", "canny=/nonexistent/photo.png", "--control", "canny={photo}"), "image not found: /nonexistent/photo.png"),
    (("--control", "cn.safetensors={photo}", "--control", "canny={photo}"),
     "--control cn.safetensors={photo}: a diffusers pipeline brings its own ControlNets; give a condition kind "
     "(canny (= edges), sobel, scribble, mask, distance (= depth)) before '='"),
    (("--control", "canny", "--control", "canny={photo}"), "--control must look like KIND=PATH[:scale[:start:end]], got 'canny'"),
])
def test_bad_control_input_is_one_error_line(controlnets, tmp_path, extra, message):
    res = _control_study(controlnets, tmp_path / "o", *[x.format(photo=_photo()) for x in extra])
    assert res.returncode != 0 and res.stderr.strip() == f"error: {message.format(photo=_photo())}", res.stderr
    assert not (tmp_path / "o" / "study.json").exists()


def test_control_on_a_pipeline_without_controlnet_is_an_error(controlnets, tmp_path):
    res = _control_study(controlnets, tmp_path / "o", "--control", f"canny={_photo()}", model="sd")
    assert res.returncode != 0
    assert res.stderr.strip() == "error: --control / --control-image given, but StableDiffusionPipeline has no ControlNet"


def test_study_runs_sdxl_and_its_constant_cell_is_the_plain_pipeline_at_that_scale(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    from tests.foundation.tiny_pipelines import tiny_sdxl

    tiny_sdxl(tmp_path / "build").save_pretrained(tmp_path / "xl")
    (tmp_path / "p.txt").write_text("a b\n")
    res = run_cli("evaluate", "pipeline", "--model", tmp_path / "xl", "--prompts", tmp_path / "p.txt", "--schedules",
                  "constant;linear", "--scales", "3", "--n", "2", "--steps", "3", "--out", tmp_path / "o", "--no-progress")
    assert res.returncode == 0, res.stderr
    study = json.loads((tmp_path / "o" / "study.json").read_text())
    constant = tmp_path / "o" / study["cells"][0]["folder"]
    pipe = StableDiffusionXLPipeline.from_pretrained(tmp_path / "xl")
    pipe.set_progress_bar_config(disable=True)
    plain = pipe("a b", negative_prompt="", guidance_scale=3.0, num_inference_steps=3, num_images_per_prompt=2,
                 generator=[torch.Generator().manual_seed(j) for j in range(2)]).images  # seed 0 + 1000 * 0 + j
    for j, image in enumerate(plain):
        assert np.array_equal(_pixels(constant / f"p000_{j:02d}.png"), np.asarray(image.convert("RGB")))
    assert study["cells"][1]["nfe_per_image"] == 1 + 2 + 2


def test_plain_condition_arrays_become_the_images_the_pipeline_gets():
    from types import SimpleNamespace

    from PIL import Image

    from storylab.guidance.pipeline_study import PipelineControl, _control_images, _control_kwargs

    unit = np.array([[0.0, 0.5], [1.0, 0.25]])  # a map in [0, 1] -> 8 bits as save_condition rounds it
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (10, 20, 30)
    controls = [PipelineControl(unit), PipelineControl(Image.fromarray(rgb), scale=0.5, start=0.1, end=0.6)]
    pipe = SimpleNamespace(controlnet=SimpleNamespace(nets=[object(), object()]))
    images = _control_images(pipe, controls)
    assert np.array_equal(np.asarray(images[0]), [[0, 128], [255, 64]])
    kwargs = _control_kwargs(controls, images)
    assert [np.asarray(i).shape for i in kwargs["image"]] == [(2, 2, 3), (2, 2, 3)]
    assert np.array_equal(np.asarray(kwargs["image"][1]), rgb)
    assert (kwargs["controlnet_conditioning_scale"], kwargs["control_guidance_start"], kwargs["control_guidance_end"]) == \
        ([1.0, 0.5], [0.0, 0.1], [1.0, 0.6])


def test_study_runs_every_rule_on_sdxl_and_modular_cfg_equals_the_classic_pipeline(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    from tests.foundation.tiny_pipelines import tiny_sdxl

    tiny_sdxl(tmp_path / "build").save_pretrained(tmp_path / "xl")
    (tmp_path / "p.txt").write_text("a b\n")
    rules = "cfg,cfg-zero*,tcfg,fdg,apg-mix,pag,seg,slg,autoguidance"
    res = run_cli("evaluate", "pipeline", "--model", tmp_path / "xl", "--prompts", tmp_path / "p.txt", "--schedules",
                  "constant;linear", "--scales", "3", "--n", "2", "--steps", "3", "--out", tmp_path / "o",
                  "--no-progress", "--rules", rules)
    assert res.returncode == 0, res.stderr
    study = json.loads((tmp_path / "o" / "study.json").read_text())
    cells = {(c["rule"], c["schedule"]): c for c in study["cells"]}
    assert set(cells) == {(r, s) for r in rules.split(",") for s in ("constant", "linear")}
    for (rule, spec), cell in cells.items():
        images = [_pixels(tmp_path / "o" / cell["folder"] / f"p000_{j:02d}.png") for j in range(2)]
        assert all(i.shape == (16, 16, 3) for i in images), rule
    # the modular TCFG/CFG-Zero* cells differ from CFG's; every rule's NFE is counted from the UNet's batches
    cfg = _pixels(tmp_path / "o" / cells[("cfg", "constant")]["folder"] / "p000_00.png")
    assert not np.array_equal(cfg, _pixels(tmp_path / "o" / cells[("tcfg", "constant")]["folder"] / "p000_00.png"))
    assert cells[("tcfg", "constant")]["nfe_per_image"] == 3 * 2  # cond + uncond at each of 3 steps
    assert cells[("tcfg", "linear")]["nfe_per_image"] == 1 + 2 * 2  # linear: the first step is conditional
    assert cells[("pag", "constant")]["nfe_per_image"] == 2 + 3 * 2  # diffusers' window excludes step 0 (start < step)
    res = run_cli("evaluate", "pipeline", "--model", tmp_path / "xl", "--prompts", tmp_path / "p.txt", "--schedules",
                  "constant", "--scales", "3", "--n", "1", "--steps", "2", "--out", tmp_path / "o2", "--rules", "cfg++")
    assert res.returncode == 2 and "guidance 'cfg++' does not run on a diffusers pipeline" in res.stderr


def test_rules_other_than_cfg_on_sd15_are_one_clear_line(assets, tmp_path):
    res = run_cli("evaluate", "pipeline", "--model", assets / "sd", "--prompts", assets / "prompts.txt", "--schedules",
                  "constant", "--scales", "2", "--n", "1", "--steps", "2", "--out", tmp_path / "o", "--rules", "cfg,pag")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and "not for StableDiffusionPipeline" in lines[0], res.stderr
