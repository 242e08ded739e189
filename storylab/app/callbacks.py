"""The web app's tab callbacks: UI values in, things to show out; each wraps one wing's panel function.

No gradio here (the layout in :mod:`storylab.app.layout` binds these to components), so every
callback can be called and tested as a plain function. A :class:`StorylabError` becomes the CLI's
one line ``error: <what is wrong>`` in the tab's status box; nothing else of the failure is shown.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from storylab.errors import StorylabError

LOG = logging.getLogger("storylab.app")
Progress = Callable[[float, str], None]


def _no_progress(fraction: float, what: str) -> None:
    """Progress sink used when a callback is called outside the app."""


def error_line(exc: BaseException) -> str:
    """The one line the CLI prints for an error (``storylab.cli.main``), for the status box."""
    if isinstance(exc, StorylabError):
        return f"error: {exc}"
    return f"error: internal error ({type(exc).__name__}: {exc}); the server log has the details"


def one_line_errors(n_outputs: int) -> Callable:
    """Decorate a callback that returns (status, *outputs): on failure, status = the error line, outputs empty.

    An uploaded file reaches a callback as gradio's temporary copy (``/tmp/gradio/<hash>/name.csv``);
    the error line names it by the user's file name only.
    """
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> tuple:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the page must never show a stack trace
                if not isinstance(exc, StorylabError):
                    LOG.exception("callback %s failed", fn.__name__)
                return (user_names(error_line(exc), [*args, *kwargs.values()]),) + (None,) * n_outputs
        run.n_outputs = n_outputs  # type: ignore[attr-defined]
        return run
    return wrap


def user_names(line: str, values: list[Any]) -> str:
    """``line`` with the path of every uploaded file among ``values`` replaced by its file name."""
    for value in values:
        path = _path_of(value) if not isinstance(value, (int, float, bool)) else None
        if path is None or not Path(path).is_file():
            continue
        line = line.replace(str(Path(path)), Path(path).name).replace(str(path), Path(path).name)
    return line


def status_markdown(text: str | None) -> str:
    """A status line for a Markdown box, shown as written: ``<shape>`` is not swallowed as an HTML tag and
    ``*``, ``_``, backticks and brackets are not read as emphasis, code or links."""
    if not text:
        return ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]#|~":
        escaped = escaped.replace(ch, "\\" + ch)
    return escaped


SEED_MAX = 2**32 - 1  # numpy's and torch's seeds: the CLI's --seed range


def whole_number(value: Any, name: str, lo: int, hi: int) -> int:
    """``value`` (a number field, maybe a float such as 1e30 or empty) as an int in [lo, hi], or one clear line."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise StorylabError(f"{name} must be a whole number in {lo}..{hi}, got {value!r}") from None
    if not (lo <= number <= hi) or number != int(number):
        raise StorylabError(f"{name} must be a whole number in {lo}..{hi}, got {value:g}")
    return int(number)


def _check_schedules(*specs: str) -> None:
    """Parse every schedule SPEC of a form before anything samples (the second one is not reached late)."""
    from storylab.guidance.schedules import parse_schedule

    for spec in specs:
        parse_schedule((spec or "").strip() or "constant")


def labelled_grid(samples: np.ndarray, names: list[str], per_class: int, upscale: int = 5) -> np.ndarray:
    """Samples ``(N, H, W)`` uint8 (class-major) as one picture: a column per class, its name above (RGB array)."""
    from PIL import Image, ImageDraw, ImageFont

    n, h, w = samples.shape
    pad, top = 3, 22
    cw, ch = w * upscale + pad, h * upscale + pad
    canvas = Image.new("RGB", (len(names) * cw + pad, top + per_class * ch + pad), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    for c, name in enumerate(names):
        x = pad + c * cw
        label = name if draw.textlength(name, font=font) <= cw - 2 else name[:max(1, cw // 8)]
        draw.text((x + (cw - pad - draw.textlength(label, font=font)) / 2, 3), label, fill=(20, 20, 20), font=font)
        for r in range(per_class):
            tile = Image.fromarray(samples[c * per_class + r]).resize((w * upscale, h * upscale), Image.NEAREST)
            canvas.paste(tile.convert("RGB"), (x, top + r * ch))
    return np.asarray(canvas)


def _scale_image(gray: np.ndarray, factor: int = 6) -> np.ndarray:
    """A [0, 1] condition map enlarged (nearest) to a uint8 picture."""
    arr = (np.clip(gray, 0, 1) * 255).round().astype(np.uint8)
    return np.kron(arr, np.ones((factor, factor), dtype=np.uint8))


def warm_up(log: Callable[[str], None] = LOG.info) -> dict[str, float]:
    """Load every tab's shipped models once (in the order of the tabs); returns seconds per model.

    The app runs this in a background thread after it starts serving, so the page is up at once and
    a first click usually finds its model loaded. A model that fails to load is logged and skipped:
    its tab then reports the error line when used.
    """
    from storylab.camera.panel import _generator
    from storylab.humor.panel import SHIPPED, _model
    from storylab.images.assets import DENOISER
    from storylab.images.commands.panel import CONTROL_KINDS, _controlnet, _denoiser
    from storylab.text_encoder import default_encoder

    steps = [("digit denoiser", lambda: _denoiser(str(DENOISER)))]
    steps += [(f"{k} ControlNet", functools.partial(_controlnet, k, str(DENOISER))) for k in CONTROL_KINDS]
    steps += [("DIRECTOR + text encoder", lambda: _generator("twostage")), ("FunnyNet-W", lambda: _model(str(SHIPPED))),
              ("MiniLM (video QA retrieval)", default_encoder)]
    seconds = {}
    for name, load in steps:
        t0 = time.perf_counter()
        try:
            load()
        except Exception as exc:  # noqa: BLE001 - logged; the tab reports it when used
            log(f"could not load {name}: {error_line(exc)}")
            continue
        seconds[name] = time.perf_counter() - t0
    log("models loaded: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return seconds


# --- Guidance ---------------------------------------------------------------------------------------------------

def weights_frame(schedule_a: str, schedule_b: str, scale: float, steps: int) -> Any:
    """Long-format table (progress, guidance scale, schedule) of both schedules' w(t), for the live plot."""
    import pandas as pd

    from storylab.images.commands.panel import weight_curves

    rows = []
    specs = [s for s in dict.fromkeys([schedule_a.strip(), schedule_b.strip()]) if s]
    try:
        curves = weight_curves(specs, float(scale), int(steps))
    except StorylabError:
        curves = {}
        for spec in specs:  # plot what parses; the generate button reports the bad one
            try:
                curves.update(weight_curves([spec], float(scale), int(steps)))
            except StorylabError:
                pass
    for spec, values in curves.items():
        n = len(values)
        rows += [{"progress": i / max(1, n - 1), "guidance scale": v, "schedule": spec} for i, v in enumerate(values)]
    return pd.DataFrame(rows, columns=["progress", "guidance scale", "schedule"])


@one_line_errors(3)
def guidance_generate(dataset: str, rule: str, scale: float, schedule_a: str, schedule_b: str, sampler: str,
                      steps: int, seed: int, per_class: int, negative_class: int | None = None,
                      progress: Progress = _no_progress) -> tuple:
    """Two grids on the same seeds (schedule A, schedule B), a table of NFE and time, a status line.

    ``negative_class`` is the class the rules negative and negative3 steer away from."""
    import pandas as pd

    from storylab.images.commands.panel import guidance_grid

    seed = whole_number(seed, "seed", 0, SEED_MAX)
    steps = whole_number(steps, "steps", 1, 10_000)
    per_class = whole_number(per_class, "samples per class", 1, 64)
    _check_schedules(schedule_a, schedule_b)  # both, before schedule A samples
    results = []
    for k, spec in enumerate((schedule_a, schedule_b)):
        progress(k / 2, f"sampling with schedule {spec}")
        results.append(guidance_grid(dataset, rule, float(scale), spec.strip(), sampler, int(steps), int(seed),
                                     int(per_class), None if negative_class is None else int(negative_class)))
    progress(1.0, "done")
    images = [labelled_grid(r.samples, r.class_names, r.per_class) for r in results]
    table = pd.DataFrame([{"schedule": r.schedule, "samples": r.per_class * len(r.class_names),
                           "NFE per sample": r.nfe, "mean scale": round(float(np.mean(r.weights)), 3),
                           "time (s)": round(r.seconds, 3)} for r in results])
    status = (f"{len(results[0].class_names)} classes x {int(per_class)}, {rule} on {dataset}, {results[0].sampler or sampler} "
              f"{int(steps)} steps, seed {int(seed)}: {results[0].seconds:.2f} s + {results[1].seconds:.2f} s")
    return status, images[0], images[1], table


# --- ControlNet -------------------------------------------------------------------------------------------------

def _picture(sketch: Any, upload: Any) -> Any:
    """The uploaded image if any (a file, read here so that a bad one is the CLI's line), else the sketch pad's
    composite."""
    path = _path_of(upload) if isinstance(upload, (str, Path, dict)) or hasattr(upload, "path") else None
    if path is not None:
        return _read_upload(path)
    if upload is not None:
        return upload
    if isinstance(sketch, dict):
        return sketch.get("composite")
    return sketch


def _read_upload(path: str) -> np.ndarray:
    """An uploaded picture as (H, W, 3|4) uint8, checked as ``storylab control extract`` checks its input."""
    from PIL import Image

    from storylab.images.control.conditions import load_gray_image

    try:
        load_gray_image(path)  # the CLI's checks and messages: not an image, empty, truncated
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB"))
    except Image.DecompressionBombError as exc:
        raise StorylabError(f"image refused: {exc}") from None


@one_line_errors(4)
def control_generate(sketch: Any, upload: Any, kind: str, control_scale: float, start: float, end: float,
                     label: str, steps: int, seed: int, progress: Progress = _no_progress) -> tuple:
    """Condition map, controlled samples, base samples on the same noise, and a fidelity table."""
    import pandas as pd

    from storylab.images.commands.panel import control_samples

    seed = whole_number(seed, "seed", 0, SEED_MAX)
    steps = whole_number(steps, "steps", 1, 1000)
    progress(0.1, "extracting the condition and sampling")
    lab = None if label in (None, "", "none") else int(label)
    r = control_samples(_picture(sketch, upload), kind, float(control_scale), float(start), float(end), lab,
                        steps=int(steps), seed=int(seed))
    progress(1.0, "done")
    table = pd.DataFrame([{"samples": "ControlNet", f"fidelity ({r.metric})": round(r.fidelity_controlled, 3)},
                          {"samples": "base model, same noise", f"fidelity ({r.metric})": round(r.fidelity_base, 3)}])
    status = (f"{kind} condition, control scale {float(control_scale):g} on [{float(start):g}, {float(end):g}], "
              f"class {label or 'none'}: {r.seconds:.2f} s")
    return status, _scale_image(r.condition), r.controlled, r.base, table


# --- Camera -----------------------------------------------------------------------------------------------------

@one_line_errors(3)
def camera_generate(caption: str, char_motion: str, char_file: Any, guidance_scale: float, schedule: str,
                    frames: int, steps: int, seed: int, out_dir: str, progress: Progress = _no_progress) -> tuple:
    """A 3D trajectory figure (plotly), the re-tagged segments, the KITTI file and the seconds it took."""
    import pandas as pd

    from storylab.camera.panel import caption_trajectory, read_char_track, write_kitti

    seed = whole_number(seed, "seed", 0, SEED_MAX)
    frames = whole_number(frames, "frames", 2, 300)
    steps = whole_number(steps, "steps", 1, 1000)
    _check_schedules(schedule)
    progress(0.1, "loading DIRECTOR and encoding the caption")
    char = read_char_track(_path_of(char_file)) if char_file else None
    r = caption_trajectory(caption, char_motion, float(guidance_scale), schedule.strip() or "constant", int(frames),
                           int(steps), int(seed), char_positions=char)
    progress(0.9, "drawing")
    kitti = write_kitti(Path(out_dir) / f"trajectory_{time.strftime('%H%M%S')}_{int(seed)}.txt", r)
    rows = [{"who": "camera", **s} for s in r.segments] + [{"who": "character", **s} for s in r.char_segments]
    table = pd.DataFrame(rows, columns=["who", "start_s", "end_s", "frames", "tag"]).rename(
        columns={"start_s": "start (s)", "end_s": "end (s)"})
    status = (f"{len(r.kitti_poses)} frames; sampled in {r.seconds:.2f} s (model load {r.load_seconds:.1f} s, once); "
              f"camera: {', '.join(s['tag'] for s in r.segments)}")
    return status, _trajectory_view(r, kitti.with_suffix(".png")), table, str(kitti)


def _trajectory_view(result: Any, png: Path) -> Any:
    """The interactive plotly 3D figure, or without plotly the matplotlib render (frustums, character) as a figure."""
    try:
        from storylab.camera.panel import trajectory_plotly

        return trajectory_plotly(result)
    except ImportError:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from storylab.camera.panel import render_trajectory

        render_trajectory(png, result)
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.imshow(plt.imread(png))
        ax.axis("off")
        fig.tight_layout()
        return fig


# --- Humor ------------------------------------------------------------------------------------------------------

def _path_of(value: Any) -> str | None:
    """A gradio file value (path string, or an object with ``.name``/``path``) as a path."""
    if value is None or value == "":
        return None
    if isinstance(value, (str, Path)):
        return str(value)
    if isinstance(value, dict):
        return value.get("path") or value.get("name")
    return getattr(value, "path", None) or getattr(value, "name", None)


@one_line_errors(6)
def humor_detect(video: Any, subtitles: Any, episode_seed: str, threshold: float, out_dir: str,
                 progress: Progress = _no_progress) -> tuple:
    """Timeline PNG, top-moments table and up to three playable clips (the best first) for a video or episode."""
    import pandas as pd

    from storylab.humor.panel import cut_clips, detect, synthetic_episode, timeline

    out = Path(out_dir)
    video_path, sub_path = _path_of(video), _path_of(subtitles)
    if video_path is None:
        if not episode_seed or episode_seed == "none":
            raise StorylabError("upload a video or pick a synthetic episode")
        progress(0.02, "synthesising the episode (espeak-ng speech)")
        seed = int(str(episode_seed).split()[-1])
        ep_dir = out / f"episode_seed{seed}"
        video_path, sub_path = (ep_dir / "episode_001.mp4", ep_dir / "episode_001.srt") if \
            (ep_dir / "episode_001.mp4").exists() else synthetic_episode(ep_dir, duration=24.0, seed=seed)
    r = detect(video_path, sub_path, threshold=float(threshold), progress=progress)
    stem = f"{Path(video_path).stem}_{time.strftime('%H%M%S')}"
    plot = timeline(out / f"{stem}.funny.png", r)
    clips = cut_clips(r, out / f"{stem}_clips", k=3)
    table = pd.DataFrame([{"rank": k, "time (s)": round(m.time, 1), "P(funny)": round(m.score, 3),
                           "window (s)": f"{m.start:.1f}-{m.end:.1f}", "subtitle lines": m.text[-160:]}
                          for k, m in enumerate(r.top(5), start=1)],
                         columns=["rank", "time (s)", "P(funny)", "window (s)", "subtitle lines"])
    status = (f"{len(r.moments)} funny moment(s) in {Path(video_path).name} ({r.times[-1] if len(r.times) else 0:.0f} s "
              f"scored, {len(r.laughter)} laughter event(s) silenced first); {r.seconds:.1f} s")
    padded = [str(c) for c in clips] + [None] * (3 - len(clips))
    return (status, str(plot), table, str(video_path), *padded)


# --- Video QA ---------------------------------------------------------------------------------------------------

@one_line_errors(1)
def videoqa_answer(source: str, questions: Any, subtitles: Any, backend: str, custom_backend: str, mode: str,
                   limit: float | None, out_dir: str, progress: Progress = _no_progress) -> tuple:
    """Answers, parsed letters, correctness and running accuracy for the shipped film or uploaded files."""
    import pandas as pd

    from storylab.videoqa.panel import answer_film

    spec = (custom_backend or "").strip() if backend == "other" else backend
    q_path, s_path = _path_of(questions), _path_of(subtitles)
    if source == "upload" and q_path is None:
        raise StorylabError("upload a questions CSV (question_id, video_id, question, answer, option_0..option_4, "
                            "correct_answer) or pick the shipped film")
    if source != "upload":
        q_path, s_path = None, None
    n = whole_number(limit, "limit", 1, 10**9) if limit not in (None, "") else None
    run = Path(tempfile.mkdtemp(prefix="videoqa_", dir=out_dir))
    r = answer_film(run, q_path, s_path, None, spec, mode, n, progress=progress)
    table = pd.DataFrame([{"question": row["question"], "reply": row["response"][:80], "parsed": row["parsed"],
                           "correct letter": row["answer"], "correct": "yes" if row["correct"] else "no",
                           "running accuracy (%)": round(100 * row["running_accuracy"], 1)} for row in r.rows])
    status = (f"{r.method}, mode {mode}: accuracy {100 * r.accuracy:.1f}% on {r.n} questions "
              f"({r.unparsed} unparsed, chance 20%); {r.seconds:.1f} s")
    return status, table
