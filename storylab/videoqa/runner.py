"""One SFD evaluation run: answer every question with a backend, log predictions, judge, summarise.

The run folder holds ``run.json`` (settings), ``predictions.jsonl`` (append-only, one record per
question, flushed as each answer arrives), ``judgements.jsonl`` (OEQA verdicts, append-only),
``cache/`` (model replies by request) and ``summary.json`` (metrics, written atomically at the end).
Rerunning the same command resumes: answered questions are skipped and cached replies are reused.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from storylab.errors import StorylabError
from storylab.io import atomic_write_json, atomic_write_text
from storylab.subtitles import Subtitle
from storylab.videoqa.backends import Backend, QAItem, Reply, make_backend
from storylab.videoqa.data import Question, check_subtitle_videos, load_questions, load_subtitles
from storylab.videoqa.frames import FrameCache, find_video
from storylab.videoqa.parsing import PARSERS, parse_answer
from storylab.videoqa.pool import run_concurrently
from storylab.videoqa.prompts import (MODES, PROMPT_STYLES, TASKS, Prompt, PromptConfig, SubtitleTrack,
                                      approx_token_count, build_prompt, prompt_track)
from storylab.videoqa.scoring import check_predictions, judge_predictions, read_jsonl, score_mcqa, score_oeqa

PREDICTIONS = "predictions.jsonl"
JUDGEMENTS = "judgements.jsonl"
SUMMARY = "summary.json"
RUN = "run.json"


@dataclass
class EvalConfig:
    """Everything an ``storylab videoqa eval`` run needs; the CLI fills it (defaults: the SFD setting)."""

    questions: Path
    out: Path
    task: str = "mcqa"
    mode: str = "L"
    backend: str = "retrieval"
    subtitles: Path | None = None
    videos: Path | None = None
    prompt: PromptConfig = field(default_factory=PromptConfig)
    concurrency: int = 4
    limit: int | None = None
    judge: str = "embedding"
    name: str | None = None
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 1.0
    max_tokens: int = 128
    seed: int = 0
    cache_dir: Path | None = None
    ignore_extra_subtitles: bool = False
    progress: bool = True
    threads: int | None = 1  # torch CPU threads during the run (None: leave torch's setting)
    skip_missing: bool = False  # drop films without a video or subtitles, as SFD's LongVA run does
    dataset: str | None = None  # data-set name in the results table (default: the questions file's name)


@dataclass
class Inputs:
    """The loaded, checked inputs of a run."""

    questions: list[Question]
    subtitles: dict[str, list[Subtitle]]
    skipped: list[str] = field(default_factory=list)  # video ids dropped by --skip-missing
    skipped_questions: int = 0
    unused_subtitles: list[str] = field(default_factory=list)  # subtitled films no question asks about


def load_inputs(cfg: EvalConfig) -> Inputs:
    """Load and check questions, subtitles and (for V/VL) the presence of every video file."""
    if cfg.task not in TASKS:
        raise StorylabError(f"unknown task {cfg.task!r}; choose one of {', '.join(TASKS)}")
    if cfg.prompt.style not in PROMPT_STYLES:
        raise StorylabError(f"unknown prompt style {cfg.prompt.style!r}; choose one of {', '.join(PROMPT_STYLES)}")
    if cfg.mode not in MODES:
        raise StorylabError(f"unknown mode {cfg.mode!r}; choose one of {', '.join(MODES)}")
    if cfg.concurrency < 1:
        raise StorylabError(f"--concurrency must be >= 1, got {cfg.concurrency}")
    if cfg.limit is not None and cfg.limit < 1:
        raise StorylabError(f"--limit must be >= 1, got {cfg.limit}")
    questions = load_questions(cfg.questions, cfg.task)
    if cfg.limit is not None:
        questions = questions[:cfg.limit]
    subtitles: dict[str, list[Subtitle]] = {}
    unused: list[str] = []
    if "L" in cfg.mode:
        if cfg.subtitles is None:
            raise StorylabError(f"mode {cfg.mode} needs --subtitles (an SFD subtitles CSV or a folder of .srt/.vtt)")
        subtitles = load_subtitles(cfg.subtitles)
        if not cfg.ignore_extra_subtitles:
            all_questions = questions if cfg.limit is None else load_questions(cfg.questions, cfg.task)
            unused = check_subtitle_videos(subtitles, all_questions, str(cfg.subtitles))
    elif cfg.skip_missing and cfg.subtitles is not None:
        subtitles = load_subtitles(cfg.subtitles)
    if "V" in cfg.mode:
        if cfg.videos is None:
            raise StorylabError(f"mode {cfg.mode} needs --videos (a folder of <video_id>.mp4/.mkv files)")
    if cfg.videos is not None and ("V" in cfg.mode or cfg.skip_missing) and not Path(cfg.videos).is_dir():
        raise StorylabError(f"videos folder not found: {cfg.videos}")
    skipped: list[str] = []
    if cfg.skip_missing:  # as SFD's LongVA run: a film without its video or its subtitles is left out
        for vid in dict.fromkeys(q.video_id for q in questions):
            no_video = cfg.videos is not None and not _has_video(cfg.videos, vid)
            no_subs = cfg.subtitles is not None and not subtitles.get(vid)
            if no_video or no_subs:
                skipped.append(vid)
        before = len(questions)
        questions = [q for q in questions if q.video_id not in set(skipped)]
        if not questions:
            raise StorylabError(f"--skip-missing left no question: none of the {len(skipped)} film(s) has both "
                                "its video and its subtitles")
        return Inputs(questions, subtitles, skipped, before - len(questions), unused)
    if "V" in cfg.mode:
        for vid in dict.fromkeys(q.video_id for q in questions):
            find_video(cfg.videos, vid)
    return Inputs(questions, subtitles, unused_subtitles=unused)


def _has_video(videos: Path, video_id: str) -> bool:
    try:
        find_video(videos, video_id)
    except StorylabError:
        return False
    return True


class _AppendLog:
    """An append-only JSONL file opened on the first line (a run that answers nothing writes nothing)."""

    def __init__(self, path: Path) -> None:
        self.path, self._file = path, None

    def write(self, line: str) -> None:
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(line)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def __enter__(self) -> "_AppendLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._file is not None:
            self._file.close()


def _run_settings(cfg: EvalConfig, backend: Backend) -> dict[str, Any]:
    return {"task": cfg.task, "mode": cfg.mode, "backend": backend.spec, "prompt": asdict(cfg.prompt),
            "prompt_style": cfg.prompt.style, "parser": PARSERS[cfg.prompt.style] if cfg.task == "mcqa" else "judge",
            "skip_missing": cfg.skip_missing}


def _resume(out: Path, settings: dict[str, Any], known: dict[str, Question]) -> list[dict[str, Any]]:
    """Records already in ``out`` (after checking they come from the same settings); repairs a torn last line."""
    run_file, pred_file = out / RUN, out / PREDICTIONS
    if run_file.exists():
        try:
            previous = json.loads(run_file.read_text())
        except ValueError:
            raise StorylabError(f"{run_file} is not valid JSON; use another --out") from None
        diff = [k for k in settings if previous.get(k) != settings[k]]
        if diff:
            raise StorylabError(f"--out {out} holds a run with other settings ({', '.join(diff)}); "
                                "use another --out folder")
    elif pred_file.exists():
        raise StorylabError(f"--out {out} has {PREDICTIONS} but no {RUN}; use another --out folder")
    if not pred_file.exists():
        return []
    raw = pred_file.read_text(encoding="utf-8", errors="replace")
    if raw and not raw.endswith("\n"):  # killed mid-write: drop the torn line so appends stay valid
        atomic_write_text(pred_file, raw[:raw.rfind("\n") + 1])
    records = read_jsonl(pred_file)
    for rec in records:
        if str(rec.get("question_id")) not in known:
            raise StorylabError(f"{pred_file} has question {rec.get('question_id')} that is not in the questions "
                                "file; use another --out folder")
    check_predictions(records, known, str(pred_file))  # the rule `videoqa score` applies (no duplicate, ...)
    return records


LOCK = ".lock"


@contextlib.contextmanager
def run_lock(out: Path):
    """Hold an exclusive lock on ``out`` for one run, so two runs never append to the same predictions.

    ``fcntl.flock`` on ``OUT/.lock``: the lock dies with the process, so a killed run never leaves
    the folder locked. Where ``fcntl`` does not exist (Windows) the run goes unlocked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StorylabError(f"--out {out} is in use by another videoqa run; wait for it to finish "
                                "or use another --out folder") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prompt_for(q: Question, cfg: EvalConfig, backend: Backend, subtitles: SubtitleTrack,
                frames: list) -> Prompt:
    """Build the prompt, capping the subtitle budget by the model's context when the backend knows it."""
    count = _counter(backend)
    pcfg = cfg.prompt
    if backend.context_length is not None and "L" in cfg.mode:
        bare = build_prompt(q, cfg.task, cfg.mode, [], frames, pcfg, count)
        room = backend.context_length - cfg.max_tokens - count(bare.system + bare.text) - 32
        if room < 1:
            raise StorylabError(f"backend {backend.spec}: the context of {backend.context_length} tokens leaves no "
                                "room for subtitles; lower --max-tokens")
        if room < pcfg.max_subtitle_tokens:
            pcfg = PromptConfig(**{**asdict(pcfg), "max_subtitle_tokens": room})
    return build_prompt(q, cfg.task, cfg.mode, subtitles, frames, pcfg, count)


def _counter(backend: Backend):
    """The backend's own token counter (hf:), else the characters / 4 estimate."""
    return getattr(backend, "count_tokens", None) or approx_token_count


def make_record(q: Question, cfg: EvalConfig, backend: Backend, prompt: Prompt, reply: Reply,
                seconds: float) -> dict[str, Any]:
    """One predictions line: ids, prompt hash and truncation, raw reply, parsed answer and correctness."""
    rec: dict[str, Any] = {"question_id": q.question_id, "video_id": q.video_id, "task": cfg.task, "mode": cfg.mode,
                           "backend": backend.spec, "prompt_style": cfg.prompt.style, "prompt_hash": prompt.hash(),
                           "response": reply.text}
    if cfg.task == "mcqa":
        parsed = parse_answer(reply.text, q.options, cfg.prompt.style)
        rec.update(parsed=parsed.letter, parse_rule=parsed.rule, answer=q.correct_letter,
                   correct=parsed.index == q.correct_answer)
    else:
        rec["reference"] = q.answer
    rec.update(subtitles_kept=prompt.subtitles_kept, subtitles_total=prompt.subtitles_total,
               subtitles_truncated=prompt.truncated, num_frames=len(prompt.frames), cached=reply.cached,
               seconds=round(seconds, 4))
    if reply.meta:
        rec["meta"] = reply.meta
    return rec


def run_eval(cfg: EvalConfig, backend: Backend | None = None) -> dict[str, Any]:
    """Answer every question (resuming), judge OEQA answers, write ``summary.json`` and return it.

    torch runs with ``cfg.threads`` CPU threads for the duration of the run (restored afterwards):
    the encoder calls of the baseline and judge are small, and extra threads only fight each other
    and the request threads on a busy machine.
    """
    import torch

    if cfg.threads is None:
        return _run_eval(cfg, backend)
    if cfg.threads < 1:
        raise StorylabError(f"--threads must be >= 1, got {cfg.threads}")
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _run_eval(cfg, backend)
    finally:
        torch.set_num_threads(previous)


def _run_eval(cfg: EvalConfig, backend: Backend | None) -> dict[str, Any]:
    from storylab.http_client import default_max_reply_bytes

    default_max_reply_bytes()  # a bad $STORYLAB_MAX_REPLY_BYTES is refused before the folder is touched
    inputs = load_inputs(cfg)
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise StorylabError(f"--out {out} exists and is not a folder")
    existed = out.exists()
    before = set(out.rglob("*")) if existed else set()
    try:
        with run_lock(out):
            return _locked_run(cfg, backend, inputs, out)
    except BaseException:  # a refused, failed, interrupted or terminated run that saved nothing leaves nothing
        if not _has_predictions(out):
            _remove_new(out, before, existed)
        raise


def _has_predictions(out: Path) -> bool:
    pred = out / PREDICTIONS
    try:
        return pred.stat().st_size > 0
    except OSError:
        return False


def _remove_new(out: Path, before: set[Path], existed: bool) -> None:
    """Remove what this run created under ``out`` (and ``out`` itself if the run made it); nothing older."""
    import shutil

    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for path in sorted(set(out.rglob("*")) - before, key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()


def _locked_run(cfg: EvalConfig, backend: Backend | None, inputs: Any, out: Path) -> dict[str, Any]:
    from storylab.training.progress import progress_bar

    cache_dir = cfg.cache_dir or out / "cache"
    if backend is None:
        backend = make_backend(cfg.backend, cache_dir=cache_dir, timeout=cfg.timeout, retries=cfg.retries,
                               backoff=cfg.backoff, max_tokens=cfg.max_tokens, seed=cfg.seed)
    judge = None
    if cfg.task == "oeqa":  # a bad judge spec fails before any question is asked
        from storylab.videoqa.judge import make_judge
        judge = make_judge(cfg.judge, cache_dir=cache_dir, timeout=cfg.timeout, retries=cfg.retries, backoff=cfg.backoff)
    settings = _run_settings(cfg, backend)
    known = {q.question_id: q for q in inputs.questions}
    records = _resume(out, settings, known)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / RUN, {**settings, "questions": str(cfg.questions), "subtitles": str(cfg.subtitles or ""),
                                  "videos": str(cfg.videos or ""), "name": cfg.name or backend.label})
    done = {str(r["question_id"]) for r in records}
    todo = [q for q in inputs.questions if q.question_id not in done]
    frame_cache = FrameCache(cfg.videos, cfg.prompt.num_frames, cfg.prompt.frame_max_side) if "V" in cfg.mode else None
    harness = [0.0, 0.0]  # seconds spent in the harness (prompt, parse, write) and in the backend
    tracks: dict[str, SubtitleTrack] = {}  # formatted subtitles per film, shared by its questions

    def work(q: Question) -> tuple[Prompt, Reply, float, float]:
        t0 = time.perf_counter()
        frames = frame_cache.frames(q.video_id) if frame_cache is not None else []
        if q.video_id not in tracks:
            tracks[q.video_id] = prompt_track(inputs.subtitles.get(q.video_id, []), cfg.prompt, _counter(backend))
        prompt = _prompt_for(q, cfg, backend, tracks[q.video_id], frames)
        t1 = time.perf_counter()
        reply = backend.answer(QAItem(q, cfg.task, cfg.mode, prompt, inputs.subtitles.get(q.video_id, []),
                                      cfg.prompt.style))
        return prompt, reply, t1 - t0, time.perf_counter() - t1

    started = time.perf_counter()
    with _AppendLog(out / PREDICTIONS) as log, \
            progress_bar(f"{backend.label} {cfg.task} {cfg.mode}", total=len(inputs.questions), completed=len(done),
                         enabled=cfg.progress) as bar:
        def save(q: Question, result: tuple[Prompt, Reply, float, float]) -> None:
            t0 = time.perf_counter()
            prompt, reply, build_s, backend_s = result
            rec = make_record(q, cfg, backend, prompt, reply, backend_s)
            log.write(json.dumps(rec, ensure_ascii=False) + "\n")
            log.flush()
            records.append(rec)
            harness[0] += build_s + time.perf_counter() - t0
            harness[1] += backend_s
            if cfg.task == "mcqa":
                bar.update(len(records), acc=sum(bool(r.get("correct")) for r in records) / len(records))
            else:
                bar.advance()

        from storylab.http_client import abort_inflight, clear_abort

        try:
            run_concurrently(todo, work, save, cfg.concurrency, on_interrupt=abort_inflight)
        except StorylabError as exc:
            if not records:  # nothing saved: the run folder is removed on the way out
                raise StorylabError(f"{exc} (no answer was saved; nothing is left in {out})", exc.exit_code) from None
            raise StorylabError(f"{exc} ({len(records)} of {len(inputs.questions)} answers are saved in "
                                f"{out / PREDICTIONS}; rerun the same command to resume)", exc.exit_code) from None
        finally:
            clear_abort()
    answer_s = time.perf_counter() - started
    try:
        summary = summarise(cfg, backend, inputs, records, out, judge)
    except StorylabError as exc:
        raise StorylabError(f"{exc} (all {len(records)} answers are saved in {out / PREDICTIONS} and finished "
                            f"verdicts in {out / JUDGEMENTS}; rerun the same command to resume)", exc.exit_code) from None
    n_new = len(todo)
    summary.update(wall_s=round(time.perf_counter() - started, 3), answer_s=round(answer_s, 3), answered_now=n_new,
                   harness_ms_per_question=round(1000 * harness[0] / n_new, 3) if n_new else None,
                   backend_s_per_question=round(harness[1] / n_new, 4) if n_new else None)
    atomic_write_json(out / SUMMARY, summary)
    return summary


def summarise(cfg: EvalConfig, backend: Backend, inputs: Inputs, records: list[dict[str, Any]], out: Path,
              judge=None) -> dict[str, Any]:
    """The run's metrics (MCQA accuracy, or OEQA yes-rate and mean score with ``judge``) plus bookkeeping counts."""
    from storylab.training.progress import progress_bar

    known = {q.question_id: q for q in inputs.questions}
    if cfg.task == "mcqa":
        metrics = score_mcqa(records, known, cfg.prompt.style)
    else:
        with progress_bar(f"judge {judge.spec}", total=len(records), enabled=cfg.progress) as bar:
            verdicts = judge_predictions(records, known, judge, out / JUDGEMENTS, cfg.concurrency, bar)
        metrics = score_oeqa(verdicts, judge.spec, len(known) + inputs.skipped_questions)  # skipped films score 0
    return {"method": cfg.name or backend.label, "backend": backend.spec, "mode": cfg.mode, **metrics,
            "dataset": cfg.dataset or Path(cfg.questions).name, "prompt_style": cfg.prompt.style,
            "skipped_questions": inputs.skipped_questions, "skipped_videos": inputs.skipped,
            "subtitled_videos_without_questions": len(inputs.unused_subtitles),
            "subtitles_truncated": sum(bool(r.get("subtitles_truncated")) for r in records),
            "cached_replies": sum(bool(r.get("cached")) for r in records),
            "videos_without_subtitles": sorted({q.video_id for q in inputs.questions
                                                if "L" in cfg.mode and not inputs.subtitles.get(q.video_id)}),
            "questions_file": str(cfg.questions), "prompt": asdict(cfg.prompt)}
