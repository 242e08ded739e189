"""Humor wing commands: ``storylab humor synth|laughter|label|detect``, ``train funnynet``, ``evaluate funnynet``.

Heavy imports stay inside the command functions so that ``storylab --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer

from storylab.cli_groups import evaluate_app, humor_app, train_app
from storylab.errors import StorylabError
from storylab.humor.config import ABLATION_SUBSETS, FunnyNetConfig, parse_modalities
from storylab.humor.detect import MomentRule

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "humor"
DEFAULT_CHECKPOINT = ASSETS / "funnynet_avt.safetensors"


def _media_files(inputs: List[Path]) -> list[Path]:
    from storylab.humor.media import MEDIA_SUFFIXES

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in MEDIA_SUFFIXES and not f.name.startswith("."))
            if not found:
                raise StorylabError(f"no media files ({', '.join(MEDIA_SUFFIXES)}) in folder {p}")
            files += found
        elif not p.exists():
            raise StorylabError(f"media file not found: {p}")
        else:
            files.append(p)
    return files


def _warn_line(message, category, filename, lineno, file=None, line=None):  # one line, no source echo
    print(f"warning: {message}", file=sys.stderr)


MUSIC_RULE_HELP = ("Which KMeans cluster is music: tonal (lowest spectral flatness, if tonal at all; holds on short "
                   "episodes) or smallest (the paper's rule).")
EMBED_SOURCE_HELP = ("What each event's embedding sees: detection (the laughter channel over the event) or raw "
                     "(channel 0 over the padded span, as the official code).")


def _laughter_config(channel: str, threshold_db: Optional[float], encoder: Optional[Path], clusters: int, seed: int,
                     music_rule: str = "tonal", embed_source: str = "detection"):
    from storylab.humor.laughter import LaughterConfig

    if encoder is not None and not encoder.is_file():
        raise StorylabError(f"audio encoder checkpoint not found: {encoder}")
    if music_rule not in ("tonal", "smallest"):
        raise StorylabError(f"--music-rule must be tonal or smallest, got '{music_rule}'")
    if embed_source not in ("detection", "raw"):
        raise StorylabError(f"--embed-source must be detection or raw, got '{embed_source}'")
    return LaughterConfig(channel=channel, threshold_db=threshold_db, encoder=str(encoder) if encoder else None,
                          clusters=clusters, seed=seed, music_rule=music_rule, embed_source=embed_source)


THRESHOLD_HELP = "Smoothed P(funny) a window needs to be part of a funny moment (default chosen on validation episodes)."
SMOOTH_HELP = "Seconds of centred moving average over the score curve before thresholding (0 = none)."
MIN_RUN_HELP = "Seconds a run above the threshold must last to become a moment (0 = any)."
MIN_GAP_HELP = "Seconds that must separate two moments; the lower-scoring one is dropped (temporal NMS; 0 = none)."
ANCHOR_HELP = ("Where a moment sits in its run above the threshold: end (its last window, nearest the laugh: windows ending "
               "during the punchline already score high) or peak (its first maximum).")

ASR_HELP = ("Text source for files without subtitles (FunnyNet-W transcribes speech): pocketsphinx (bundled en-US "
            "models), whisper:PATH (a local Whisper folder, via transformers) or none (empty text).")


def _summary(title: str, columns: list[str], rows: list[list], stream=sys.stderr) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for c in columns:
        table.add_column(c, justify="right" if c not in ("file", "model", "moment text") else "left")
    for r in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in r])
    # a log file or a pipe gets 160 columns, so numbers are not cut to rich's default of 80
    Console(file=stream, width=None if stream.isatty() else 160).print(table)


@humor_app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Folder for the episodes (mp4 + srt) and truth/ (ground truth)."),
    episodes: int = typer.Option(4, help="Number of episodes."),
    duration: float = typer.Option(120.0, help="Seconds of dialogue per episode."),
    scenes: int = typer.Option(2, help="Scenes per episode, each opened by a music stinger."),
    fps: int = typer.Option(10, help="Video frame rate."),
    width: int = typer.Option(160, help="Frame width in pixels."),
    height: int = typer.Option(120, help="Frame height in pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed, same show)."),
) -> None:
    """Make a synthetic sitcom: espeak-ng dialogue, canned laughter after punchlines, music stingers, SRT subtitles."""
    from storylab.humor.synth import SynthConfig, synth_sitcom

    eps = synth_sitcom(out, SynthConfig(episodes=episodes, duration=duration, scenes=scenes, fps=fps, width=width,
                                        height=height, seed=seed))
    _summary("synthetic sitcom", ["file", "seconds", "lines", "laughs", "stingers"],
             [[f"{e.name}.mp4", round(e.duration, 1), len(e.lines), len(e.laughter), len(e.music)] for e in eps])
    print(f"wrote {len(eps)} episode(s) to {out} (ground truth in {Path(out) / 'truth'})")


@humor_app.command("laughter")
def laughter_command(
    media: List[Path] = typer.Argument(..., help="Media files (mp4, mkv, webm, wav, ...) or folders of them."),
    as_json: bool = typer.Option(False, "--json", help="Print {\"files\": [{\"path\", \"laughter\": [{\"start\", \"end\"}]}]} on stdout."),
    channel: str = typer.Option("auto", help="auto (L - R for stereo, channel 0 for 5.1 as the official code, full mix for mono), diff, mix, or a channel index."),
    threshold_db: Optional[float] = typer.Option(None, help="Fixed energy threshold in dBFS; default adaptive (Otsu)."),
    encoder: Optional[Path] = typer.Option(None, help="BYOL-A checkpoint (.pth/.safetensors) for event embeddings; default log-mel statistics."),
    clusters: int = typer.Option(3, help="KMeans clusters over all events; one is dropped as music (1 = keep all)."),
    music_rule: str = typer.Option("tonal", help=MUSIC_RULE_HELP),
    embed_source: str = typer.Option("detection", help=EMBED_SOURCE_HELP),
    seed: int = typer.Option(0, help="KMeans seed."),
    out: Optional[Path] = typer.Option(None, help="Also write the JSON to this file."),
) -> None:
    """Detect canned laughter with FunnyNet-W's unsupervised recipe (channel trick, energy events, KMeans)."""
    from storylab.humor.data import write_laughter_json
    from storylab.humor.laughter import laughter_events

    files = _media_files(media)
    config = _laughter_config(channel, threshold_db, encoder, clusters, seed, music_rule, embed_source)
    with warnings.catch_warnings():
        warnings.showwarning = _warn_line
        results = laughter_events(files, config, progress=len(files) > 1)
    if out is not None:
        write_laughter_json(out, results)
    if as_json:
        print(json.dumps({"files": [r.to_json() for r in results]}, indent=2))
    _summary("laughter", ["file", "seconds", "channel", "threshold dB", "candidates", "laughter"],
             [[Path(r.path).name, round(r.duration, 1), r.channel, round(r.threshold_db, 1), len(r.candidates),
               len(r.laughter)] for r in results])
    total = sum(len(r.laughter) for r in results)
    if total == 0:
        print(f"no laughter found in {len(results)} file(s)", file=sys.stderr)


@humor_app.command("label")
def label_command(
    media: List[Path] = typer.Argument(..., help="Episodes (media files or folders); subtitles are read from the .srt/.vtt of the same name."),
    out: Path = typer.Option(..., "--out", help="Clips table to write (.csv or .parquet); laughter.json is written next to it."),
    window: float = typer.Option(8.0, help="Seconds of context before each laughter onset (the paper's N)."),
    negative_ratio: float = typer.Option(1.0, help="Negative clips per positive clip."),
    margin: float = typer.Option(2.0, help="No negative window may end within this many seconds of a laughter onset."),
    holdout: float = typer.Option(0.25, help="Share of episodes (the last ones) marked split=test."),
    subtitles_csv: Optional[Path] = typer.Option(None, help="SFD-style subtitles CSV (text,start,end,speaker,video_id; video_id = file stem) instead of .srt files."),
    channel: str = typer.Option("auto", help="Laughter channel (see `storylab humor laughter --help`)."),
    threshold_db: Optional[float] = typer.Option(None, help="Fixed laughter energy threshold in dBFS; default adaptive."),
    encoder: Optional[Path] = typer.Option(None, help="BYOL-A checkpoint for laughter event embeddings."),
    clusters: int = typer.Option(3, help="KMeans clusters for the laughter/music split."),
    music_rule: str = typer.Option("tonal", help=MUSIC_RULE_HELP),
    embed_source: str = typer.Option("detection", help=EMBED_SOURCE_HELP),
    asr: str = typer.Option("pocketsphinx", help=ASR_HELP),
    seed: int = typer.Option(0, help="Seed for negative sampling and KMeans."),
) -> None:
    """Label clips: positives are the seconds before each laughter onset, negatives are windows not followed by laughter."""
    from storylab.humor.asr import transcribe_file, transcriber
    from storylab.humor.data import write_laughter_json
    from storylab.humor.labels import LabelConfig, check_window, clip_table, write_clip_table
    from storylab.humor.laughter import laughter_events
    from storylab.humor.subtitles import check_against_duration, find_subtitles
    from storylab.subtitles import read_sfd_csv, read_subtitle_file

    files = _media_files(media)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise StorylabError(f"--out must end in .csv or .parquet, got '{out.name}'")
    folder = out.parent.resolve()
    for f in files:  # the table names its clips by file name, read relative to the table's folder
        if f.resolve().parent != folder:
            raise StorylabError(f"the clips table must be written in the episodes' folder so that it can name them: "
                                f"{f.name} is in {f.parent}, use --out {f.parent / out.name}")
    config = _laughter_config(channel, threshold_db, encoder, clusters, seed, music_rule, embed_source)
    recognise, asr_name = transcriber(asr)
    csv_lines = read_sfd_csv(subtitles_csv) if subtitles_csv is not None else None  # once, before the slow part
    with warnings.catch_warnings():
        warnings.showwarning = _warn_line
        results = laughter_events(files, config, progress=True)
    check_window(results, window)  # before the slow transcription
    subs, sources = [], []
    for f, r in zip(files, results):
        if csv_lines is not None:
            s = csv_lines.get(f.stem, [])
            name = subtitles_csv.name
        else:
            found = find_subtitles(f)
            s = read_subtitle_file(found) if found else []
            name = found.name if found else ""
        if not name and recognise is not None:
            s, name = transcribe_file(f, recognise), f"{asr_name} transcript"
        check_against_duration(s, r.duration, name)
        subs.append(s)
        sources.append(name or "no text")
    label_config = LabelConfig(window=window, negative_ratio=negative_ratio, margin=margin, holdout=holdout, seed=seed)
    df = clip_table(results, subs, label_config)
    if df.empty:
        print(f"no laughter found in {len(files)} file(s): no clips labelled, nothing written")
        return
    write_laughter_json(out.with_name("laughter.json"), results, names=True)
    write_clip_table(df, out)
    rows = []
    for r in results:
        mine = df.file == Path(r.path).name
        rows.append([Path(r.path).name, len(r.laughter), int((mine & (df.label == 1)).sum()), int((mine & (df.label == 0)).sum()),
                     str(df[mine].split.iloc[0]) if mine.any() else "-"])
    for row, source in zip(rows, sources):
        row.append(source)
    _summary("clips", ["file", "laughs", "positives", "negatives", "split", "text from"], rows)
    asr_files = sum(src.endswith(" transcript") for src in sources)
    if asr_files:
        print(f"text: no subtitles for {asr_files} file(s), transcribed with {asr_name}")
    print(f"wrote {len(df)} clips to {out} and laughter to {out.with_name('laughter.json')}")


def _model_config(modalities: str, architecture: str, dim: int, tokens: int, window: float, audio_encoder: Optional[Path],
                  audio_channels: int, audio_dim: int, video_encoder: Optional[Path], frames: int, frame_size: int,
                  text_encoder: Optional[Path], text_tokens: int, aux_weight: float,
                  modality_dropout: float):
    text_dim = 384
    if text_encoder is not None:
        from storylab.text_encoder import SentenceEncoder
        text_dim = SentenceEncoder(text_encoder).dim
    for p, what in ((audio_encoder, "audio encoder checkpoint"), (video_encoder, "video model folder")):
        if p is not None and not p.exists():
            raise StorylabError(f"{what} not found: {p}")
    return FunnyNetConfig(modalities=modalities, architecture=architecture, dim=dim, tokens=tokens, window=window,
                          audio_encoder=str(audio_encoder) if audio_encoder else None, audio_channels=audio_channels,
                          audio_dim=audio_dim, video_encoder=str(video_encoder) if video_encoder else None,
                          frames=frames, frame_size=frame_size, text_encoder=str(text_encoder) if text_encoder else None,
                          text_tokens=text_tokens, text_dim=text_dim, aux_weight=aux_weight,
                          modality_dropout=modality_dropout)


def _clips_path(data: Path, clips: Optional[Path]) -> Path:
    if not data.is_dir():
        raise StorylabError(f"--data must be a folder with the episodes and clips table, got {data}")
    return clips if clips is not None else data / "clips.csv"


@train_app.command("funnynet")
def train_funnynet_command(
    data: Path = typer.Option(..., help="Folder with the episodes and the clips table from `storylab humor label`."),
    clips: Optional[Path] = typer.Option(None, help="Clips table; default DATA/clips.csv."),
    modalities: str = typer.Option("a,v,t", help="Modalities to train on: any subset of a (audio), v (visual), t (text)."),
    architecture: str = typer.Option("storylab", help="storylab (one gated unit per projection, 4-head scaled attention, "
                                     "cosine AdamW) or paper (the official layout: two gated units + LayerNorm, "
                                     "single-head unscaled CAF, gated classifier, LSTM(256) over all 64 tokens; Adam 1e-4 "
                                     "halved at epochs 20/40/80/100)."),
    ablation: bool = typer.Option(False, help="Train every subset (A, V, T, AV, AT, VT, AVT) into --out-dir."),
    out: Optional[Path] = typer.Option(None, help="Checkpoint to write; default runs/funnynet/funnynet_<modalities>.safetensors."),
    out_dir: Optional[Path] = typer.Option(None, help="Folder for --ablation checkpoints; default runs/funnynet."),
    epochs: int = typer.Option(100, help="Epochs over the training clips (paper: 100)."),
    batch_size: int = typer.Option(16, help="Batch size (paper: 16)."),
    lr: Optional[float] = typer.Option(None, help="Learning rate; default 3e-4 (storylab, peak of a cosine decay) or 1e-4 (paper)."),
    seed: int = typer.Option(0, help="Random seed."),
    dim: int = typer.Option(512, help="Projection width (paper: 512)."),
    tokens: int = typer.Option(16, help="Cross-attention fusion tokens per modality (paper: 16, so 16 x 32)."),
    window: float = typer.Option(8.0, help="Clip length in seconds (must match the clips table)."),
    audio_encoder: Optional[Path] = typer.Option(None, help="Frozen BYOL-A checkpoint; default a BYOL-A-design CNN trained with the head."),
    audio_channels: int = typer.Option(16, help="Width of the trained audio CNN (BYOL-A: 64)."),
    audio_dim: int = typer.Option(512, help="Output width of the trained audio CNN (BYOL-A: 2048)."),
    video_encoder: Optional[Path] = typer.Option(None, help="Local transformers video model folder (e.g. VideoMAE); default a small frame CNN."),
    frames: int = typer.Option(16, help="Frames per clip for the frame CNN (paper: 16)."),
    frame_size: int = typer.Option(64, help="Frame size for the frame CNN (VideoMAE uses its own)."),
    text_encoder: Optional[Path] = typer.Option(None, help="Local transformers text model folder; default the bundled all-MiniLM-L6-v2."),
    text_tokens: int = typer.Option(64, help="Token states per clip fed to the text LSTM (paper: 64)."),
    aux_weight: float = typer.Option(FunnyNetConfig.aux_weight, help="Weight of the unimodal auxiliary cross-entropy (a linear head per "
                                     "modality, Gradient-Blending with uniform weights); 0 = the paper's loss."),
    modality_dropout: Optional[float] = typer.Option(None, help="Training only: zero each modality's projected feature "
                                                     "with this probability per clip, keeping at least one (ModDrop; default "
                                                     f"{FunnyNetConfig.modality_dropout} with --architecture storylab, a deviation: "
                                                     "see docs/humor.md; 0 with --architecture paper, the paper's model)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Use the resume state beside the checkpoint (--no-resume deletes it)."),
) -> None:
    """Train FunnyNet-W (encoders, 512-d projections, cross-attention fusion, CE + NT-Xent) on labelled clips."""
    import torch

    from storylab.humor.train import FunnyNetTrainConfig, classification_scores, load_split, predict, train_funnynet
    from storylab.io import run_path, use_hint

    clips_path = _clips_path(data, clips)
    if architecture not in ("storylab", "paper"):
        raise StorylabError(f"--architecture must be storylab or paper, got '{architecture}'")
    paper = architecture == "paper"
    lr = lr if lr is not None else (1e-4 if paper else 3e-4)
    modality_dropout = modality_dropout if modality_dropout is not None else (0.0 if paper else FunnyNetConfig.modality_dropout)
    subsets = list(ABLATION_SUBSETS) if ablation else [parse_modalities(modalities)]
    # decode every modality once; each subset uses its own part
    full = _model_config("avt" if ablation else subsets[0], architecture, dim, tokens, window, audio_encoder, audio_channels,
                         audio_dim, video_encoder, frames, frame_size, text_encoder, text_tokens, 0.0, modality_dropout)
    train_inputs = load_split(clips_path, "train", full, progress=True)
    rows = []
    for subset in subsets:
        config = _model_config(subset, architecture, dim, tokens, window, audio_encoder, audio_channels, audio_dim, video_encoder,
                               frames, frame_size, text_encoder, text_tokens, aux_weight, modality_dropout)
        path = (out_dir or run_path("funnynet")) / f"funnynet_{subset}.safetensors" if (ablation or out is None) else out
        command = " ".join(["storylab"] + sys.argv[1:])
        model, losses = train_funnynet(train_inputs, config, FunnyNetTrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                                                                      recipe=architecture),
                                       path, extra={"command": command, "seed": seed}, resume=resume)
        scores = classification_scores(train_inputs.label.numpy(), predict(model, train_inputs))
        rows.append([subset.upper(), str(path), losses.get("loss", float("nan")), scores["f1"], scores["acc"], round(losses.get("seconds", 0.0), 1)])
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
    _summary("FunnyNet-W training (train split)", ["model", "checkpoint", "loss", "F1", "acc", "seconds"], rows)
    print(use_hint("storylab", "evaluate", "funnynet", "--data", data, *[a for r in rows for a in ("--checkpoint", r[1])]))


@evaluate_app.command("funnynet")
def evaluate_funnynet_command(
    data: Path = typer.Option(..., help="Folder with the episodes, the clips table and (for synthetic data) truth/."),
    checkpoint: Optional[List[Path]] = typer.Option(None, help="FunnyNet-W checkpoint(s); default every runs/funnynet/funnynet_*.safetensors (where `train funnynet` writes), else DATA/funnynet_*.safetensors."),
    clips: Optional[Path] = typer.Option(None, help="Clips table; default DATA/clips.csv."),
    split: str = typer.Option("test", help="Which clips to score: test, train or all."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON on stdout."),
) -> None:
    """Print F1/accuracy (funny = positive) per model, the modality ablation table and the laughter detector's scores."""
    from storylab.humor.train import classification_scores, load_funnynet, load_split, predict
    from storylab.metrics.significance import f1_bootstrap_interval, mcnemar_exact

    clips_path = _clips_path(data, clips)
    from storylab.io import run_path

    paths = list(checkpoint) if checkpoint else (sorted(run_path("funnynet").glob("funnynet_*.safetensors"))
                                                 or sorted(data.glob("funnynet_*.safetensors")))
    if not paths:
        raise StorylabError(f"no checkpoint given and no funnynet_*.safetensors in {run_path('funnynet')} or {data} "
                            f"(train one with: storylab train funnynet --data {data})")
    results = []
    cache = {}
    for p in paths:
        model = load_funnynet(p)
        key = json.dumps({k: v for k, v in vars(model.config).items() if k not in ("modalities", "architecture")},
                         sort_keys=True, default=str)
        if key not in cache:
            import dataclasses
            cache[key] = load_split(clips_path, None if split == "all" else split,
                                    dataclasses.replace(model.config, modalities="avt"), progress=True)
        inputs = cache[key]
        labels, probs = inputs.label.numpy(), predict(model, inputs)
        scores = classification_scores(labels, probs)
        low, high = f1_bootstrap_interval(labels, probs >= 0.5)
        results.append({"checkpoint": str(p), "modalities": model.config.modalities.upper(), **scores,
                        "f1_ci95": [low, high], "_correct": (probs >= 0.5) == labels.astype(bool)})
    order = {m.upper(): i for i, m in enumerate(ABLATION_SUBSETS)}
    results.sort(key=lambda r: order.get(r["modalities"], 99))
    full = next((r for r in results if r["modalities"] == "AVT"), None)
    for r in results:  # paired test against the full model on the same clips
        r["mcnemar_p_vs_avt"] = mcnemar_exact(r["_correct"], full["_correct"]) if full and r is not full else None
    for r in results:
        del r["_correct"]
    paper = {"A": "73.7", "V": "73.2", "T": "77.8", "AV": "84.3", "AT": "84.5", "VT": "74.9", "AVT": "88.2"}  # F1 % on Friends, lectures' slide
    _summary(f"FunnyNet-W on the {split} clips (funny = positive class)",
             ["model", "F1", "F1 95% CI", "acc", "precision", "recall", "clips", "McNemar p vs AVT", "paper F1 (Friends)"],
             [[r["modalities"], r["f1"], f"{r['f1_ci95'][0]:.3f}-{r['f1_ci95'][1]:.3f}", r["acc"], r["precision"],
               r["recall"], r["clips"], "-" if r["mcnemar_p_vs_avt"] is None else f"{r['mcnemar_p_vs_avt']:.2f}",
               paper.get(r["modalities"], "-")] for r in results], stream=sys.stdout)
    report = {"funnynet": results}
    detector = _detector_scores(data, clips_path)
    if detector is not None:
        _summary("laughter detector vs saved ground truth", ["event P@0.5", "event R@0.5", "event F1@0.5", "time acc", "events", "truth"],
                 [[detector["event_precision"], detector["event_recall"], detector["event_f1"], detector["time_accuracy"],
                   detector["events_predicted"], detector["events_truth"]]], stream=sys.stdout)
        report["laughter_detector"] = detector
    if as_json:
        print(json.dumps(report, indent=2))


def _detector_scores(data: Path, clips_path: Path):
    from storylab.humor.data import read_laughter_json
    from storylab.humor.evaluation import pooled_detector_scores

    truth_dir = data / "truth"
    laughter_path = clips_path.with_name("laughter.json")
    if not truth_dir.is_dir() or not laughter_path.exists():
        return None
    detected = read_laughter_json(laughter_path)
    pairs = []
    for f, pred in detected.items():
        t = truth_dir / f"{Path(f).stem}.json"
        if t.exists():
            truth = json.loads(t.read_text())
            pairs.append((pred, [(x["start"], x["end"]) for x in truth["laughter"]], float(truth["duration"])))
    return pooled_detector_scores(pairs, iou=0.5) if pairs else None


@humor_app.command("detect")
def detect_command(
    video: Path = typer.Argument(..., help="Video to scan (mp4, mkv, webm, ...)."),
    subtitles: Optional[Path] = typer.Option(None, help="Subtitles (.srt, .vtt or SFD .csv); default the .srt/.vtt next to the video."),
    checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, help="FunnyNet-W checkpoint; default the shipped AVT model trained on the synthetic sitcom."),
    as_json: bool = typer.Option(False, "--json", help="Print the funny moments as JSON on stdout."),
    plot: Optional[Path] = typer.Option(None, help="Timeline PNG; default runs/humor/<video stem>.funny.png."),
    stride: float = typer.Option(1.0, help="Seconds between scored windows."),
    threshold: float = typer.Option(MomentRule.threshold, help=THRESHOLD_HELP),
    smooth: float = typer.Option(MomentRule.smooth, help=SMOOTH_HELP),
    min_run: float = typer.Option(MomentRule.min_run, help=MIN_RUN_HELP),
    min_gap: float = typer.Option(MomentRule.min_gap, help=MIN_GAP_HELP),
    anchor: str = typer.Option(MomentRule.anchor, help=ANCHOR_HELP),
    keep_laughter: bool = typer.Option(False, help="Do not silence the video's own laughter before scoring (it is silenced by default, as in training)."),
    asr: str = typer.Option("pocketsphinx", help=ASR_HELP),
) -> None:
    """Find funny moments in a video with FunnyNet-W and write a timeline plot."""
    MomentRule(threshold, smooth, min_run, min_gap, anchor).check()
    from storylab.humor.detect import DetectConfig, funny_moments, timeline_plot
    from storylab.humor.laughter import laughter_events
    from storylab.humor.subtitles import check_against_duration, find_subtitles, read_subtitles
    from storylab.humor.train import load_funnynet

    if not video.exists():
        raise StorylabError(f"video not found: {video}")
    if checkpoint == DEFAULT_CHECKPOINT and not checkpoint.exists():
        raise StorylabError(f"no shipped FunnyNet-W checkpoint at {checkpoint}; train one (storylab train funnynet "
                            "--data DIR) and pass it with --checkpoint")
    from storylab.humor.asr import transcribe_file, transcriber

    recognise, asr_name = transcriber(asr)
    model = load_funnynet(checkpoint)
    from storylab.humor.detect import check_detect_input

    duration = check_detect_input(video, model.config.modalities, stride)  # before the transcription note
    sub_path = subtitles or find_subtitles(video)
    subs = read_subtitles(sub_path, video_id=video.stem) if sub_path else []
    notes = []  # printed once the detection has succeeded: a failure is one error line
    if sub_path:
        check_against_duration(subs, duration, sub_path.name)
    elif "t" in model.config.modalities and recognise is not None:
        subs = transcribe_file(video, recognise)
        notes.append(f"text: no subtitles for {video.name}, transcribed with {asr_name} ({len(subs)} words/lines)")
    elif "t" in model.config.modalities:
        notes.append(f"warning: no subtitles for {video.name} and --asr none: the text branch sees empty text")
    laughter = []
    with warnings.catch_warnings():
        warnings.showwarning = _warn_line
        laughter = laughter_events([video])[0].laughter if "a" in model.config.modalities or not keep_laughter else []
    times, scores, moments = funny_moments(video, model, subs, DetectConfig(stride, threshold, not keep_laughter, smooth, min_run, min_gap, anchor),
                                           laughter, progress=True)
    from storylab.io import run_path

    plot_path = plot or run_path("humor") / f"{video.stem}.funny.png"
    timeline_plot(plot_path, times, scores, moments, laughter, threshold,
                  f"{video.name}: FunnyNet-W ({model.config.modalities.upper()}), {len(moments)} funny moment(s)")
    if as_json:
        print(json.dumps({"path": str(video), "modalities": model.config.modalities, "plot": str(plot_path),
                          "threshold": threshold, "window": model.config.window,
                          "moments": [{"time": round(m.time, 2), "score": round(m.score, 4), "start": round(m.start, 2),
                                       "end": round(m.end, 2), "text": m.text} for m in moments],
                          "scores": [{"time": round(float(t), 2), "score": round(float(p), 4)} for t, p in zip(times, scores)]},
                         indent=2))
    _summary(f"funny moments in {video.name}", ["time", "score", "moment text"],
             [[round(m.time, 1), m.score, (m.text[-60:] if m.text else "")] for m in moments])
    for note in notes:
        print(note, file=sys.stderr)
    if not moments:
        print(f"no funny moment found in {video.name}: no window scored a smoothed P(funny) >= {threshold:g} "
              f"({len(times)} window(s) scored, the first ending at {times[0]:.1f} s)", file=sys.stderr)
    print(f"timeline plot: {plot_path}", file=sys.stderr)


@humor_app.command("evaluate")
def evaluate_moments_command(
    folders: List[Path] = typer.Argument(..., help="Episode folders with truth/ (synthetic) or laughter.json (storylab humor label)."),
    checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, help="FunnyNet-W checkpoint; default the shipped AVT model."),
    tolerance: float = typer.Option(2.0, help="Seconds between a moment and a true laughter onset for them to match (one-to-one)."),
    stride: float = typer.Option(1.0, help="Seconds between scored windows."),
    threshold: float = typer.Option(MomentRule.threshold, help=THRESHOLD_HELP),
    smooth: float = typer.Option(MomentRule.smooth, help=SMOOTH_HELP),
    min_run: float = typer.Option(MomentRule.min_run, help=MIN_RUN_HELP),
    min_gap: float = typer.Option(MomentRule.min_gap, help=MIN_GAP_HELP),
    anchor: str = typer.Option(MomentRule.anchor, help=ANCHOR_HELP),
    sweep: bool = typer.Option(False, help="Also print the precision-recall curve over the threshold (the other settings fixed)."),
    calibrate: bool = typer.Option(False, help="Also choose the rule (threshold, smoothing, run, gap, anchor) with the highest F1 "
                                   "among those reaching --target-precision on these folders: use validation episodes, "
                                   "never the test ones."),
    target_precision: float = typer.Option(0.9, help="Moment precision the calibrated rule must reach."),
    keep_laughter: bool = typer.Option(False, help="Do not silence the episodes' own laughter before scoring."),
    asr: str = typer.Option("none", help="Text for episodes without subtitles: " + ASR_HELP.split(": ", 1)[1]),
    plot: Optional[Path] = typer.Option(None, help="With --sweep: write the precision-recall curve as a PNG here."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples of the episodes for the 95% intervals."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores (and curves) as JSON on stdout."),
) -> None:
    """Moment-level precision/recall of `humor detect` over whole episodes, matched to true laughter onsets."""
    from storylab.humor.detect import DetectConfig
    from storylab.humor.moments import calibrate as calibrate_rule
    from storylab.humor.moments import episode_counts, episode_truths, evaluate_rule, pr_curve, pr_figure, score_episodes

    rule = MomentRule(threshold, smooth, min_run, min_gap, anchor)
    rule.check()
    out = sys.stderr if as_json else sys.stdout  # --json: stdout is the JSON alone
    if tolerance < 0:
        raise StorylabError(f"--tolerance must be at least 0 s, got {tolerance:g}")
    if not 0.0 < target_precision <= 1.0:
        raise StorylabError(f"--target-precision must be in (0, 1], got {target_precision:g}")
    if bootstrap < 0:
        raise StorylabError(f"--bootstrap must be at least 0, got {bootstrap}")
    if plot is not None and not sweep:
        raise StorylabError("--plot draws the precision-recall curve: add --sweep")
    sources = {episode_truths(f)[1] for f in folders}  # bad folders fail here, before the model loads
    if not checkpoint.exists():
        raise StorylabError(f"FunnyNet-W checkpoint not found: {checkpoint}")
    from storylab.humor.train import load_funnynet

    model = load_funnynet(checkpoint)
    config = DetectConfig(stride, threshold, not keep_laughter, smooth, min_run, min_gap, anchor)
    curves = score_episodes(folders, model, config, asr=asr, progress=True)
    report: dict = {"checkpoint": str(checkpoint), "tolerance": tolerance, "truth": sorted(sources),
                    "rule": vars(rule), "scores": evaluate_rule(curves, rule, tolerance, n_boot=bootstrap, seed=seed)}
    rows = [[c.name, round(c.duration / 60, 2), n["truth"], n["predicted"], n["tp"], n["predicted"] - n["tp"]]
            for c, n in zip(curves, episode_counts(curves, rule, tolerance))]
    _summary(f"funny moments per episode (match within {tolerance:g} s of a true laughter onset)",
             ["file", "minutes", "true laughs", "moments", "matched", "false alarms"], rows, stream=out)
    sc = report["scores"]

    def ci(name):
        return f"{sc[name]:.3f} [{sc[name + '_ci'][0]:.3f}, {sc[name + '_ci'][1]:.3f}]" if name + "_ci" in sc else f"{sc[name]:.3f}"

    timing = "-" if sc["timing_error_mean_abs"] is None else f"{sc['timing_error_mean_abs']:.2f} / {sc['timing_error_median']:+.2f}"
    _summary(f"moment-level scores, {sc['episodes']} episode(s), 95% bootstrap over episodes",
             ["precision", "recall", "F1", "false alarms / min", "timing |err| mean / median (s)"],
             [[ci("precision"), ci("recall"), ci("f1"), sc["false_alarms_per_minute"], timing]], stream=out)
    print(f"rule: threshold {rule.threshold:g}, smooth {rule.smooth:g} s, min run {rule.min_run:g} s, "
          f"min gap {rule.min_gap:g} s, anchor {rule.anchor}; truth from {', '.join(sorted(sources))}", file=out)
    if sweep:
        rows = pr_curve(curves, rule, tolerance)
        report["pr_curve"] = rows
        _summary("precision-recall over the threshold", ["threshold", "precision", "recall", "F1", "false alarms / min"],
                 [[r["threshold"], r["precision"], r["recall"], r["f1"], r["false_alarms_per_minute"]] for r in rows],
                 stream=out)
        if plot is not None:
            pr_figure(plot, {"this rule": rows}, {"this rule": (sc["recall"], sc["precision"])},
                      f"moment precision-recall over the threshold ({len(curves)} episodes, tolerance {tolerance:g} s)")
            print(f"precision-recall plot: {plot}", file=out)
    if calibrate:
        best, scores, tried = calibrate_rule(curves, tolerance, target_precision)
        report["calibrated"] = {"rule": vars(best), "scores": scores, "rules_tried": tried}
        reached = "reaches" if scores["precision"] >= target_precision else "no rule reaches"
        print(f"calibrated ({tried} rules tried; {reached} precision {target_precision:g}): --threshold {best.threshold:g} "
              f"--smooth {best.smooth:g} --min-run {best.min_run:g} --min-gap {best.min_gap:g} --anchor {best.anchor} -> precision "
              f"{scores['precision']:.3f}, recall {scores['recall']:.3f}, F1 {scores['f1']:.3f} on these episodes", file=out)
    if as_json:
        report["curves"] = [c.to_json() for c in curves]
        print(json.dumps(report, indent=2))
