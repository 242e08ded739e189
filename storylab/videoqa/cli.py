"""``storylab videoqa``: evaluate, score and tabulate Short Film Dataset runs (MCQA / OEQA, V / L / VL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import videoqa_app
from storylab.errors import StorylabError

BACKEND_DOC = ("Model: openai://HOST:PORT/MODEL (any OpenAI-compatible chat server: vLLM, llama.cpp, Ollama; "
               "openai+https://HOST/MODEL for TLS; key from $OPENAI_API_KEY), hf:PATH (local transformers folder), "
               "retrieval (offline MiniLM subtitle-retrieval baseline) or random (chance row).")
JUDGE_DOC = ("OEQA judge: embedding (offline MiniLM similarity, yes when >= 0.5), embedding@T (threshold T), "
             "or an LLM judge backend openai://HOST:PORT/MODEL or hf:PATH (Video-ChatGPT protocol, temperature 0).")


def _console():
    from rich.console import Console
    return Console()


@videoqa_app.command("eval")
def eval_command(
    out: Path = typer.Option(..., "--out", help="Run folder: predictions.jsonl, judgements.jsonl, cache/, summary.json. "
                             "Rerunning with the same folder resumes."),
    questions: Optional[Path] = typer.Option(None, "--questions", help="SFD questions CSV (question_id, video_id, "
                                             "question, answer, option_0..option_4, correct_answer). Default: none; "
                                             "required unless --sample."),
    subtitles: Optional[Path] = typer.Option(None, "--subtitles", help="SFD subtitles CSV (text,start,end,speaker,"
                                             "video_id) or a folder of <video_id>.srt/.vtt files; needed for L and VL."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Folder of <video_id>.mp4/.mkv/.webm files; needed for "
                                          "V and VL."),
    sample: bool = typer.Option(False, "--sample", help="Use the shipped sample film 'The Tower Clock' for any of "
                                "--questions/--subtitles/--videos not given."),
    task: str = typer.Option("mcqa", "--task", help="mcqa (five options, letter answer) or oeqa (open-ended, judged)."),
    mode: str = typer.Option("L", "--mode", help="V (frames only), L (subtitles only) or VL (both)."),
    backend: str = typer.Option("retrieval", "--backend", help=BACKEND_DOC),
    name: Optional[str] = typer.Option(None, "--name", help="Row name in the results table (default: the model name)."),
    frames: int = typer.Option(8, "--frames", help="Frames sampled uniformly (linspace) over the film for V/VL."),
    max_subtitle_tokens: int = typer.Option(6000, "--max-subtitle-tokens", help="Token budget for subtitles; over it, "
                                            "lines are dropped evenly across the film and the record says so."),
    speakers: bool = typer.Option(False, "--speakers/--no-speakers", help="Prefix subtitle lines with the speaker label."),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions (default: all)."),
    judge: str = typer.Option("embedding", "--judge", help=JUDGE_DOC),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds to wait for one server reply."),
    retries: int = typer.Option(3, "--retries", help="Retries of a failed request (timeouts, refused, HTTP 429/5xx, garbage)."),
    backoff: float = typer.Option(1.0, "--backoff", help="First retry delay in seconds; doubles on each retry."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Maximum tokens the model may generate per answer."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random backend."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Reply cache folder (default: OUT/cache); share it between "
                                         "runs to never pay twice for the same request."),
    ignore_extra_subtitles: bool = typer.Option(False, "--ignore-extra-subtitles", help="Accept subtitles of videos that "
                                                "no question asks about (default: refuse, it usually means mismatched files)."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (retrieval baseline, embedding judge, hf: models); "
                                "raise it for a large hf: model on an idle machine."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Answer SFD questions with a model and write predictions (JSONL) and a summary; resumes when rerun."""
    from storylab.videoqa.prompts import PromptConfig
    from storylab.videoqa.runner import EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    if sample:
        paths = sample_paths()
        questions = questions or paths.questions
        subtitles = subtitles or paths.subtitles
        videos = videos or paths.videos
    if questions is None:
        raise StorylabError("--questions is required (or --sample for the shipped sample film)")
    if frames < 1 or frames > 512:
        raise StorylabError(f"--frames must be in 1-512, got {frames}")
    if max_subtitle_tokens < 1 or max_tokens < 1 or retries < 0 or timeout <= 0 or backoff < 0:
        raise StorylabError("--max-subtitle-tokens and --max-tokens must be >= 1, --retries >= 0, --timeout > 0, "
                            "--backoff >= 0")
    mode = mode.upper()
    cfg = EvalConfig(questions=questions, out=out, task=task.lower(), mode=mode, backend=backend,
                     subtitles=subtitles, videos=videos,
                     prompt=PromptConfig(num_frames=frames, max_subtitle_tokens=max_subtitle_tokens, with_speaker=speakers),
                     concurrency=concurrency, limit=limit, judge=judge, name=name, timeout=timeout, retries=retries,
                     backoff=backoff, max_tokens=max_tokens, seed=seed, cache_dir=cache,
                     ignore_extra_subtitles=ignore_extra_subtitles, progress=progress, threads=threads)
    summary = run_eval(cfg)
    _console().print(summary_table(summary))
    _console().print(f"predictions: {out / 'predictions.jsonl'}  summary: {out / 'summary.json'}")


def summary_table(summary: dict):
    """A rich table of one run's metrics."""
    from rich.table import Table

    table = Table(title=f"{summary['method']} - {summary['task'].upper()} {summary['mode']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("accuracy" if summary["task"] == "mcqa" else "yes-rate", f"{100 * summary['accuracy']:.1f}%")]
    if summary["task"] == "oeqa":
        rows += [("mean score (0-5)", f"{summary['mean_score']:.2f}"), ("judge", str(summary["judge"]))]
    rows += [("questions", str(summary["n"])), ("unparsed", str(summary["unparsed"])),
             ("missing", str(summary.get("missing", 0)))]
    for key, label in (("subtitles_truncated", "subtitles truncated"), ("cached_replies", "cached replies"),
                       ("answered_now", "answered this run"), ("harness_ms_per_question", "harness ms / question"),
                       ("backend_s_per_question", "backend s / question"), ("wall_s", "wall time (s)")):
        if summary.get(key) is not None:
            rows.append((label, str(summary[key])))
    for k, v in rows:
        table.add_row(k, v)
    return table


@videoqa_app.command("score")
def score_command(
    predictions: Path = typer.Argument(..., help="Predictions JSONL from any tool: each line has question_id and response."),
    questions: Path = typer.Option(..., "--questions", help="The SFD questions CSV the predictions answer."),
    task: str = typer.Option("auto", "--task", help="mcqa, oeqa, or auto (the records' task field, else mcqa)."),
    judge: str = typer.Option("embedding", "--judge", help=JUDGE_DOC),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Reply cache folder for an LLM judge (default: none)."),
    concurrency: int = typer.Option(4, "--concurrency", help="Judge requests in flight at once (OEQA)."),
    as_json: bool = typer.Option(False, "--json", help='Print {"accuracy": a, "n": n, "unparsed": u, ...} as JSON; '
                                 "accuracy is a fraction in [0, 1]."),
) -> None:
    """Recompute MCQA accuracy or OEQA yes-rate / mean score from a predictions file."""
    from storylab.videoqa.data import load_questions
    from storylab.videoqa.judge import make_judge
    from storylab.videoqa.scoring import check_predictions, judge_predictions, read_jsonl, score_mcqa, score_oeqa

    known = {q.question_id: q for q in load_questions(questions)}
    records = read_jsonl(predictions)
    if not records:
        raise StorylabError(f"predictions file {predictions} has no records")
    check_predictions(records, known, str(predictions))
    if task == "auto":
        tasks = {str(r.get("task", "mcqa")).lower() for r in records}
        if len(tasks) > 1:
            raise StorylabError(f"predictions {predictions} mix tasks {sorted(tasks)}; pass --task")
        task = tasks.pop()
    if task == "mcqa":
        result = score_mcqa(records, known)
    elif task == "oeqa":
        j = make_judge(judge, cache_dir=cache)
        result = score_oeqa(judge_predictions(records, known, j, None, concurrency), j.spec, len(known))
    else:
        raise StorylabError(f"unknown task {task!r}; choose mcqa, oeqa or auto")
    if as_json:
        print(json.dumps(result))
        return
    result.update(method=str(predictions), mode=str(records[0].get("mode", "?")))
    _console().print(summary_table(result))


@videoqa_app.command("table")
def table_command(
    runs: list[Path] = typer.Argument(..., help="Run folders of `storylab videoqa eval` (searched for summary.json)."),
    paper: bool = typer.Option(False, "--paper", help="Add the SFD paper's rows (from the lectures) for comparison."),
    as_json: bool = typer.Option(False, "--json", help="Print rows as JSON ({method: {column: percent}}) instead."),
) -> None:
    """Print the lectures' SFD table: rows = methods, columns = MCQA V/L/VL and OEQA V/L/VL (% accuracy)."""
    from storylab.videoqa.table import COLUMNS, find_summaries, load_summary, render_table, results_table

    names, grid = results_table([load_summary(p) for p in find_summaries(runs)], with_paper=paper)
    if as_json:
        print(json.dumps({n: {f"{t.upper()} {m}": v for (t, m), v in zip(COLUMNS, row)} for n, row in zip(names, grid)}))
        return
    _console().print(render_table(names, grid))
