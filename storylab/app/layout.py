"""The web app's page: one gradio tab per wing, bound to the callbacks of :mod:`storylab.app.callbacks`.

Every component that a test or a person refers to has an ``elem_id`` (``<tab>-<what>``); each tab
has a status box (``<tab>-status``) that shows what was done, or the CLI's ``error: ...`` line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from storylab.app import callbacks as cb

INTRO = ("**storylab**: diffusion guidance, ControlNet, text-to-camera trajectories, funny-moment detection and "
         "story-level video QA, all on the checkpoints shipped with storylab (nothing is downloaded). "
         "The same functions run behind `storylab sample`, `storylab camera generate`, `storylab humor detect` "
         "and `storylab videoqa eval`.")
SCHEDULE_HINT = ("constant, linear, invlinear, cosine, sine, v-shape, lambda-shape, pcs:s=0.5, clamp:linear:c=2, "
                 "interval:start=0.2,stop=0.7")
CAPTIONS = ["The camera pushes in toward the character.",
            "The camera trucks right while the character walks right.",
            "The camera pulls out and rises above the character."]


def _shown(result: tuple) -> tuple:
    """A callback's (status, *outputs) with the status escaped for its Markdown box (``<shape>`` stays visible)."""
    return (cb.status_markdown(result[0]), *result[1:])


def _path_image(gr: Any, **kwargs: Any) -> Any:
    """``gr.Image`` whose upload reaches the callback as the file's path, unopened.

    gradio's own Image opens every upload with PIL before any callback runs (even with
    ``type="filepath"``), so a file that is not an image ends as a bare "Error" badge and a
    traceback in the log; storylab reads it instead and answers with the CLI's one line. The
    instance's ``preprocess`` is replaced (a subclass would make gradio write a ``.pyi`` stub here).
    """
    image = gr.Image(type="filepath", **kwargs)

    def preprocess(payload: Any) -> str | None:
        return None if payload is None or payload.path is None else str(payload.path)

    image.preprocess = preprocess
    return image


def _cancelled() -> str:
    return cb.status_markdown("cancelled: nothing was kept from this run; change the settings and run again")


def build_app(work_dir: str | Path | None = None) -> Any:
    """The gradio Blocks of ``storylab app``; outputs (KITTI files, timelines, clips) go under ``work_dir``."""
    import gradio as gr

    from storylab.camera.generate import CHAR_MOTIONS
    from storylab.guidance.names import RULES
    from storylab.images.commands.panel import CONTROL_KINDS, DATASETS
    from storylab.images.defaults import DEFAULT_SAMPLER, IMAGE_SAMPLERS

    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="storylab-app-"))
    work.mkdir(parents=True, exist_ok=True)
    work_s = str(work)
    rules = [r for r in RULES if r != "classifier"]

    with gr.Blocks(title="storylab", analytics_enabled=False) as demo:
        gr.Markdown(INTRO)
        with gr.Tab("Guidance", id="guidance", elem_id="tab-guidance"):
            with gr.Row():
                with gr.Column(scale=1):
                    dataset = gr.Dropdown(list(DATASETS), value="fashion-mnist", label="data set", elem_id="guidance-dataset")
                    rule = gr.Dropdown(rules, value="cfg", label="guidance rule", elem_id="guidance-rule")
                    scale = gr.Slider(1.0, 9.0, value=3.0, step=0.25, label="guidance scale (1 = conditional)",
                                      elem_id="guidance-scale")
                    sched_a = gr.Textbox("constant", label="schedule A", info=SCHEDULE_HINT, elem_id="guidance-schedule-a")
                    sched_b = gr.Textbox("linear", label="schedule B (same seeds)", elem_id="guidance-schedule-b")
                    sampler = gr.Radio(list(IMAGE_SAMPLERS), value=DEFAULT_SAMPLER, label="sampler",
                                       elem_id="guidance-sampler")
                    steps = gr.Slider(2, 100, value=20, step=1, label="steps", elem_id="guidance-steps")
                    seed = gr.Number(0, precision=0, label="seed", elem_id="guidance-seed")
                    per_class = gr.Slider(1, 8, value=1, step=1, label="samples per class", elem_id="guidance-per-class")
                    negative_class = gr.Number(0, precision=0, label="negative class (negative, negative3 steer away from it)",
                                               elem_id="guidance-negative-class")
                    go = gr.Button("Generate", variant="primary", elem_id="guidance-run")
                    go_stop = gr.Button("Cancel", variant="stop", elem_id="guidance-cancel")
                with gr.Column(scale=2):
                    curve = gr.LinePlot(cb.weights_frame("constant", "linear", 3.0, 20), x="progress",
                                        y="guidance scale", color="schedule", height=220,
                                        title="w(t): per-step guidance scale (0 = pure noise, 1 = data)",
                                        elem_id="guidance-weights")
                    status_g = gr.Markdown(elem_id="guidance-status")
                    grid_a = gr.Image(label="schedule A (columns: classes)", elem_id="guidance-grid-a", type="numpy")
                    grid_b = gr.Image(label="schedule B, same seeds", elem_id="guidance-grid-b", type="numpy")
                    table_g = gr.Dataframe(label="cost", elem_id="guidance-table",
                                           headers=["schedule", "samples", "NFE per sample", "mean scale", "time (s)"])
            for comp in (sched_a, sched_b, scale, steps):
                comp.change(cb.weights_frame, [sched_a, sched_b, scale, steps], curve, show_progress="hidden")

            def guidance(dataset_, rule_, scale_, a_, b_, sampler_, steps_, seed_, per_class_, negative_, progress=gr.Progress()):
                return _shown(cb.guidance_generate(dataset_, rule_, scale_, a_, b_, sampler_, steps_, seed_, per_class_,
                                                   negative_, progress=progress))

            go_event = go.click(guidance, [dataset, rule, scale, sched_a, sched_b, sampler, steps, seed, per_class,
                                           negative_class],
                     [status_g, grid_a, grid_b, table_g], show_progress_on=[grid_a, grid_b])
            go_stop.click(_cancelled, None, status_g, cancels=[go_event], queue=False)

        with gr.Tab("ControlNet", id="controlnet", elem_id="tab-controlnet"):
            with gr.Row():
                with gr.Column(scale=1):
                    sketch = gr.Sketchpad(label="sketch a digit (dark strokes)", type="numpy", canvas_size=(280, 280),
                                          elem_id="control-sketch")
                    upload = _path_image(gr, label="... or upload an image", sources=["upload"],
                                         elem_id="control-upload", height=160)
                    kind = gr.Radio(list(CONTROL_KINDS), value="scribble", label="condition", elem_id="control-kind")
                    c_scale = gr.Slider(0.0, 2.0, value=1.0, step=0.1, label="control scale", elem_id="control-scale")
                    start = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="start (sampling progress)",
                                      elem_id="control-start")
                    end = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="end", elem_id="control-end")
                    label = gr.Dropdown(["none"] + [str(i) for i in range(10)], value="none",
                                        label="class (none = no label, no CFG)", elem_id="control-class")
                    c_steps = gr.Slider(2, 50, value=20, step=1, label="sampling steps", elem_id="control-steps")
                    c_seed = gr.Number(0, precision=0, label="seed", elem_id="control-seed")
                    c_go = gr.Button("Sample", variant="primary", elem_id="control-run")
                    c_go_stop = gr.Button("Cancel", variant="stop", elem_id="control-cancel")
                with gr.Column(scale=2):
                    status_c = gr.Markdown(elem_id="control-status")
                    cond = gr.Image(label="extracted condition", elem_id="control-condition", height=200)
                    controlled = gr.Image(label="ControlNet samples", elem_id="control-controlled", height=150)
                    base = gr.Image(label="base model, same noise", elem_id="control-base", height=150)
                    table_c = gr.Dataframe(label="condition fidelity", elem_id="control-table", headers=["samples", "fidelity"])

            def control(sketch_, upload_, kind_, scale_, start_, end_, label_, steps_, seed_, progress=gr.Progress()):
                return _shown(cb.control_generate(sketch_, upload_, kind_, scale_, start_, end_, label_, steps_, seed_,
                                                  progress=progress))

            c_go_event = c_go.click(control, [sketch, upload, kind, c_scale, start, end, label, c_steps, c_seed],
                       [status_c, cond, controlled, base, table_c], show_progress_on=[controlled])
            c_go_stop.click(_cancelled, None, status_c, cancels=[c_go_event], queue=False)

        with gr.Tab("Camera", id="camera", elem_id="tab-camera"):
            with gr.Row():
                with gr.Column(scale=1):
                    caption = gr.Textbox(CAPTIONS[0], label="caption", lines=2, elem_id="camera-caption")
                    gr.Examples([[c] for c in CAPTIONS], [caption])
                    motion = gr.Dropdown(list(CHAR_MOTIONS), value="static", label="character motion",
                                         elem_id="camera-motion")
                    char_file = gr.File(label="... or a character track (.npy, N x 3)", elem_id="camera-char")
                    g_scale = gr.Slider(1.0, 4.0, value=1.4, step=0.1, label="guidance scale", elem_id="camera-scale")
                    schedule = gr.Textbox("constant", label="guidance schedule", info=SCHEDULE_HINT,
                                          elem_id="camera-schedule")
                    frames = gr.Slider(25, 300, value=150, step=1, label="frames (25 fps)", elem_id="camera-frames")
                    cam_steps = gr.Slider(2, 40, value=10, step=1, label="EDM Heun steps", elem_id="camera-steps")
                    cam_seed = gr.Number(0, precision=0, label="seed", elem_id="camera-seed")
                    cam_go = gr.Button("Generate trajectory", variant="primary", elem_id="camera-run")
                    cam_go_stop = gr.Button("Cancel", variant="stop", elem_id="camera-cancel")
                with gr.Column(scale=2):
                    status_cam = gr.Markdown(elem_id="camera-status")
                    plot = gr.Plot(label="camera (blue, frustums) and character (red)", elem_id="camera-plot")
                    table_cam = gr.Dataframe(label="re-tagged motion segments (E.T. tags)", elem_id="camera-table",
                                             headers=["who", "start (s)", "end (s)", "frames", "tag"])
                    kitti = gr.File(label="KITTI trajectory (12 numbers per frame)", elem_id="camera-kitti")

            def camera(caption_, motion_, char_, scale_, schedule_, frames_, steps_, seed_, progress=gr.Progress()):
                return _shown(cb.camera_generate(caption_, motion_, char_, scale_, schedule_, frames_, steps_, seed_,
                                                 work_s, progress=progress))

            cam_go_event = cam_go.click(camera, [caption, motion, char_file, g_scale, schedule, frames, cam_steps, cam_seed],
                         [status_cam, plot, table_cam, kitti], show_progress_on=[plot])
            cam_go_stop.click(_cancelled, None, status_cam, cancels=[cam_go_event], queue=False)

        with gr.Tab("Humor", id="humor", elem_id="tab-humor"):
            with gr.Row():
                with gr.Column(scale=1):
                    video = gr.File(label="video (mp4, mkv, webm, ...)", elem_id="humor-video")
                    subs = gr.File(label="subtitles (.srt, .vtt, SFD .csv; optional)", elem_id="humor-subtitles")
                    episode = gr.Dropdown(["none", "synthetic episode, seed 3", "synthetic episode, seed 2"],
                                          value="synthetic episode, seed 3",
                                          label="... or a synthetic sitcom episode (24 s, used when no video)",
                                          elem_id="humor-episode")
                    threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="P(funny) threshold",
                                          elem_id="humor-threshold")
                    h_go = gr.Button("Find funny moments", variant="primary", elem_id="humor-run")
                    h_go_stop = gr.Button("Cancel", variant="stop", elem_id="humor-cancel")
                with gr.Column(scale=2):
                    status_h = gr.Markdown(elem_id="humor-status")
                    timeline = gr.Image(label="timeline (orange: laughter, red: funny moments)", type="filepath",
                                        elem_id="humor-timeline")
                    table_h = gr.Dataframe(label="top moments", elem_id="humor-table", wrap=True,
                                           headers=["rank", "time (s)", "P(funny)", "window (s)", "subtitle lines"],
                                           column_widths=["8%", "10%", "12%", "14%", "56%"])
                    player = gr.Video(label="the video", elem_id="humor-player", height=300)
                    with gr.Row():
                        clip_views = [gr.Video(label=f"moment {k}", elem_id=f"humor-clip-{k}") for k in (1, 2, 3)]

            def humor(video_, subs_, episode_, threshold_, progress=gr.Progress()):
                return _shown(cb.humor_detect(video_, subs_, episode_, threshold_, work_s, progress=progress))

            h_go_event = h_go.click(humor, [video, subs, episode, threshold], [status_h, timeline, table_h, player, *clip_views],
                       show_progress_on=[timeline])
            h_go_stop.click(_cancelled, None, status_h, cancels=[h_go_event], queue=False)

        with gr.Tab("Video QA", id="videoqa", elem_id="tab-videoqa"):
            with gr.Row():
                with gr.Column(scale=1):
                    source = gr.Radio(["shipped film", "upload"], value="shipped film",
                                      label="film ('The Tower Clock' ships with storylab)", elem_id="videoqa-source")
                    questions = gr.File(label="questions CSV (SFD columns)", elem_id="videoqa-questions")
                    qa_subs = gr.File(label="subtitles (SFD CSV, .srt or .vtt)", elem_id="videoqa-subtitles")
                    backend = gr.Dropdown(["retrieval", "random", "other"], value="retrieval",
                                          label="backend (retrieval: offline MiniLM baseline)", elem_id="videoqa-backend")
                    custom = gr.Textbox("", label="other backend: hf:PATH or openai://HOST:PORT/MODEL",
                                        elem_id="videoqa-custom")
                    mode = gr.Radio(["L", "V", "VL"], value="L", label="inputs (L: subtitles, V: frames)",
                                    elem_id="videoqa-mode")
                    limit = gr.Number(None, precision=0, label="only the first N questions (empty: all)",
                                      elem_id="videoqa-limit")
                    q_go = gr.Button("Answer", variant="primary", elem_id="videoqa-run")
                    q_go_stop = gr.Button("Cancel", variant="stop", elem_id="videoqa-cancel")
                with gr.Column(scale=2):
                    status_q = gr.Markdown(elem_id="videoqa-status")
                    table_q = gr.Dataframe(label="answers", elem_id="videoqa-table", wrap=True,
                                           headers=["question", "reply", "parsed", "correct letter", "correct",
                                                    "running accuracy (%)"],
                                           column_widths=["44%", "9%", "9%", "13%", "10%", "15%"])

            def videoqa(source_, questions_, subs_, backend_, custom_, mode_, limit_, progress=gr.Progress()):
                return _shown(cb.videoqa_answer("upload" if source_ == "upload" else "shipped", questions_, subs_,
                                                backend_, custom_, mode_, limit_, work_s, progress=progress))

            q_go_event = q_go.click(videoqa, [source, questions, qa_subs, backend, custom, mode, limit], [status_q, table_q], show_progress_on=[table_q])
            q_go_stop.click(_cancelled, None, status_q, cancels=[q_go_event], queue=False)
    demo.queue(default_concurrency_limit=1)
    demo.storylab_work_dir = work  # type: ignore[attr-defined]
    return demo


def serve(host: str = "127.0.0.1", port: int = 7860, work_dir: str | Path | None = None, block: bool = True,
          warm: bool = True) -> Any:
    """Build the app and serve it on ``host:port`` (loopback by default); returns the Blocks when ``block`` is False.

    With ``warm`` the shipped models load in a background thread while the page is already served.
    """
    import threading

    demo = build_app(work_dir)
    if warm:
        threading.Thread(target=cb.warm_up, kwargs={"log": lambda m: print(f"storylab app: {m}", flush=True)},
                         daemon=True, name="storylab-warm-up").start()
    import gradio as gr

    # system fonts only: the default theme would ask Google Fonts, and the app makes no outside request
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=host, server_port=port, prevent_thread_lock=not block, quiet=True, share=False,
                show_error=False, theme=theme, allowed_paths=[str(demo.storylab_work_dir)], footer_links=[], ssr_mode=False)
    return demo
