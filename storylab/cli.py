"""The front door: one ``storylab`` command that gathers every wing's commands.

Bad input reaches the user as one line ``error: <what is wrong>`` and a non-zero exit code; no
traceback. Commands live in each wing's ``cli`` module and register on :mod:`storylab.cli_groups`.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from pathlib import Path

import typer

from storylab.cli_groups import app, evaluate_app
from storylab.errors import StorylabError, Terminated
from storylab.guidance.names import SPEC_HELP, parse_scales
from storylab.threads import MAX_THREADS, physical_cores, use_threads

# Modules that register commands on the groups. A wing whose CLI module is missing is skipped, so
# the front door never breaks because one wing is still being written.
COMMAND_MODULES = (
    "storylab.guidance.cli",
    "storylab.images.commands.cli",
    "storylab.images.commands.features_cli",
    "storylab.images.commands.control_cli",
    "storylab.images.commands.zoo_cli",
    "storylab.images.commands.lecture_cli",
    "storylab.camera.cli",
    "storylab.humor.cli",
    "storylab.videoqa.cli",
    "storylab.demo",
    "storylab.app.cli",
)

for _name in COMMAND_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # only a missing module of our own is tolerated
        if exc.name != _name:
            raise


@app.callback()
def _global_options(
    threads: int | None = typer.Option(
        None, "--threads", envvar="STORYLAB_THREADS", min=1, max=MAX_THREADS, show_default=False,
        help="CPU threads torch uses per operation, in every command (give it before the command: storylab "
             "--threads 1 sample ...). Default: OMP_NUM_THREADS when set, else the number of physical cores "
             f"({physical_cores()} here); data-loader workers use 1. On a busy machine fewer can be faster "
             "(bench/threads.py)."),
) -> None:
    """storylab: multimodal story-level understanding and generation of visual data."""
    use_threads(threads)


def _split_schedules(text: str) -> list[str]:
    specs = [s.strip() for s in text.split(";") if s.strip()]
    if not specs:
        raise StorylabError("--schedules is empty (separate SPECs with ';')")
    return specs


# `evaluate pipeline` lives in the front door: it joins the guidance foundation's study with the
# images wing's condition extractors (--control canny=photo.png), and neither may import the other.
@evaluate_app.command("pipeline")
def evaluate_pipeline(
    model: Path = typer.Option(..., "--model", help="A diffusers text-to-image pipeline saved on disk (SD 1.5, SDXL, ...)."),
    prompts: Path = typer.Option(..., "--prompts", help="Text file, one prompt per line ('#' lines skipped)."),
    schedules: str = typer.Option("constant;linear;cosine;clamp:linear:c=2;pcs:s=1", "--schedules",
                                  help=f"Schedule SPECs separated by ';' ({SPEC_HELP})."),
    scales: str = typer.Option("3,5,7.5", "--scales", help="Comma-separated guidance scales (diffusers convention, >= 1)."),
    n: int = typer.Option(4, "--n", help="Images per prompt and cell (the same seeds in every cell)."),
    steps: int = typer.Option(30, "--steps", help="Sampling steps (the pipeline's own scheduler)."),
    seed: int = typer.Option(0, "--seed", help="Base seed: image j of prompt p uses seed + 1000 p + j."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="Negative prompt of the unconditional branch (default: empty).",
                                       show_default=False),
    clip: Path | None = typer.Option(None, "--clip", help="Local CLIP folder (CLIPModel + processor) for CLIP score and features (default: none, images only)."),
    reference: Path | None = typer.Option(None, "--reference", help="Folder of reference images for FID / PRDC on CLIP image features (default: none, no FID/PRDC)."),
    control: list[str] = typer.Option([], "--control",
                                      help="ControlNet pipelines: KIND=PATH[:scale[:start:end]], one per ControlNet in the "
                                           "pipeline's order. KIND: canny (= edges), sobel, scribble, mask, distance (= depth), "
                                           "extracted from the image PATH at the pipeline's resolution exactly as 'storylab "
                                           "control extract KIND PATH --size <resolution>' writes it; scale, start, end: "
                                           "diffusers' controlnet_conditioning_scale and control_guidance_start/end "
                                           "(1, 0, 1). Not together with --control-image (default: none)."),
    control_image: list[Path] = typer.Option([], "--control-image",
                                              help="ControlNet pipelines: a ready condition image per ControlNet, in order, "
                                                   "used as is (scale 1, whole run). Not together with --control (default: none)."),
    out: Path = typer.Option(Path("runs/pipeline_study"), "--out", help="Output folder (resumes a killed run with the same settings)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    rules: str = typer.Option("cfg", "--rules", help="Comma-separated guidance rules: cfg (any pipeline) and, on SDXL through "
                              "diffusers' modular blocks, cfg-zero*, tcfg, fdg, apg-mix, pag, seg, slg, autoguidance "
                              "(--scales is their CFG scale; docs/guidance.md has the table)."),
) -> None:
    """The Wang et al. schedule study on a local text-to-image pipeline: every schedule x scale, same seeds, scored."""
    from rich.console import Console
    from rich.table import Table

    from storylab.guidance.pipeline_study import (PipelineControl, PipelineStudyConfig, pipeline_resolution,
                                                  run_pipeline_study, summary_rows)
    from storylab.images.commands.control_cli import pipeline_control  # the images wing's extractors, in one import

    if control and control_image:
        raise StorylabError("--control and --control-image together: give every ControlNet's condition with one of "
                            "them (--control KIND=PATH extracts it, --control-image FILE takes a ready one)")
    controls = [PipelineControl(path, source={"control_image": str(path)}) for path in control_image]
    if control:
        size = pipeline_resolution(model)
        for text in control:
            spec, image, settings = pipeline_control(text, size)
            same = f"storylab control extract {settings['extractor']} {spec.path} --size {size}"
            controls.append(PipelineControl(image, spec.scale, spec.start, spec.end, source={**settings, "same_as": same}))
    cfg = PipelineStudyConfig(model=model, prompts=prompts, schedules=_split_schedules(schedules),
                              scales=parse_scales(scales), out=out, n=n, steps=steps, seed=seed,
                              negative_prompt=negative_prompt, clip=clip, reference=reference,
                              controls=controls or None, progress=progress,
                              rules=[r.strip() for r in rules.split(",") if r.strip()] or ["cfg"])
    result = run_pipeline_study(cfg)
    scored = (f"; FID and PRDC per cell at n = {len(result['prompts']) * n} against {result['n_reference']} reference "
              "images" if result.get("n_reference") and result["features"] else "")
    table = Table(title=f"pipeline study: {len(result['prompts'])} prompts x {n} images, {steps} steps"
                        f" (features: {'CLIP image embeddings' if result['features'] else 'none'}{scored})")
    for col in ("rule: schedule", "scale", "CLIP", "FID", "prec", "recall", "dens", "cov", "Vendi", "NFE", "s/img"):
        table.add_column(col, justify="left" if col == "rule: schedule" else "right")
    for row in summary_rows(result):
        table.add_row(*row)
    console = Console()
    console.print(table)
    if result.get("fid_warning"):
        console.print(result["fid_warning"], soft_wrap=True)
    for c in result["controls"]:
        made = f"{c['extractor']} of {c['input']} ({c['size']} px)" if "extractor" in c else c.get("control_image", "")
        console.print(f"ControlNet {c['controlnet']}: {made}, scale {c['scale']:g}, window {c['start']:g}-{c['end']:g} of sampling "
                      f"-> {out / c['condition']}", soft_wrap=True)
    console.print(f"wrote {out / 'study.json'}" + ("" if not result["features"] else " and the trade-off plots"))


def _click_exceptions():
    """typer >= 0.20 vendors click as ``typer._click``; older releases use click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions
    return exceptions


@functools.lru_cache(maxsize=1)
def command():
    """The click command tree of ``storylab``, with the option table and vocabulary of :mod:`storylab.cli_types`.

    Built once per process (about 50 ms): the in-process test runner calls :func:`main` many times."""
    from typer.main import get_command

    from storylab.cli_types import harden

    return harden(get_command(app))


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system error, naming the path (``filename2`` is a rename's target)."""
    if exc.strerror is None and exc.filename is None:  # a library's OSError (PIL: "cannot identify image file ...")
        return str(exc) or type(exc).__name__
    reason = exc.strerror or str(exc)
    target = exc.filename2 if exc.filename2 is not None else exc.filename
    if isinstance(exc, IsADirectoryError) and exc.filename2 is not None:
        return f"cannot write {target}: it is an existing folder"
    if isinstance(exc, (NotADirectoryError, FileExistsError)) and target is not None:
        return f"cannot use {target}: {reason.lower()} (a file is in the way of a folder, or a folder of a file)"
    return f"{reason.lower()}: {target}" if target is not None else reason.lower()


def _secondary_process() -> bool:
    """True in a process of a multi-process launch (torchrun, ``accelerate launch --multi_gpu``) other
    than the main one: ``RANK`` > 0 in a ``WORLD_SIZE`` > 1."""
    import os

    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) > 0
    except ValueError:
        return False


def _known_library_error(exc: BaseException) -> str | None:
    """One line for errors of libraries that mean bad input, not a bug (checked by type, then by message)."""
    pil = sys.modules.get("PIL.Image")
    if pil is not None and isinstance(exc, getattr(pil, "DecompressionBombError", ())):
        return f"image refused: {exc}"
    if isinstance(exc, ValueError) and "is not supported (supported formats:" in str(exc):  # matplotlib savefig
        return f"cannot save the plot: {exc}"
    if isinstance(exc, ValueError) and str(exc).startswith("unknown url type"):  # urllib on a bad endpoint
        return f"not a URL ({exc}); use openai://HOST:PORT/MODEL or http://HOST:PORT/v1"
    if isinstance(exc, json.JSONDecodeError):  # a JSON input (or a checkpoint's JSON metadata) is broken
        return f"an input is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if isinstance(exc, UnicodeDecodeError):
        return f"a text input is not {exc.encoding} ({exc.reason} at byte {exc.start}); convert it to UTF-8"
    if isinstance(exc, EOFError):  # numpy / pickle readers on an empty or cut file
        return f"an input file ended too early (empty or truncated): {exc}" if str(exc) else \
            "an input file ended too early (empty or truncated)"
    if isinstance(exc, MemoryError):
        return "out of memory: lower the batch size, the image size or the number of samples"
    return None


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every failure becomes one line ``error: ...`` on stderr and a non-zero exit code.

    Usage errors and :class:`StorylabError` exit 2, an interrupt (Ctrl-C) exits 130 with
    ``error: interrupted``, SIGTERM exits 143 with ``error: terminated`` after the same clean-up
    (``finally`` blocks run: temporary files go, locks are released); file-system errors and known bad-input errors of libraries (an image
    too large, a plot with an unknown extension) are one line that names the path. Anything else
    is a bug: one line too, with ``STORYLAB_DEBUG=1`` showing the traceback.
    """
    import os

    from typer.exceptions import Abort, Exit

    exc_types = _click_exceptions()
    args = sys.argv[1:] if argv is None else list(argv)
    previous_term = _catch_sigterm()
    secondary = _secondary_process()
    if secondary:  # under `accelerate launch`, the main process alone reports (its peers do the same work)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    try:
        cli = command()
        with cli.make_context("storylab", args) as ctx:
            result = cli.invoke(ctx)
    except Exit as exc:  # --help, ctx.exit()
        sys.exit(exc.exit_code)
    except exc_types.NoArgsIsHelpError as exc:  # a group called without a command: show its help
        print(exc.ctx.get_help())
        sys.exit(0)
    except exc_types.UsageError as exc:  # unknown command or option, a value of the wrong type or range
        if getattr(exc, "possibilities", None):  # "Possible options" never names a hidden alias
            from storylab.cli_types import public_options

            exc.possibilities = public_options(exc.possibilities)
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except exc_types.ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except Terminated:
        print("error: terminated", file=sys.stderr)
        sys.exit(143)
    except StorylabError as exc:
        if exc.exit_code == 0:  # nothing to do, and that is not a failure (a finished run resumed)
            print(exc)
            sys.exit(0)
        if not secondary:
            print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except BrokenPipeError:  # `storylab ... | head`: the reader left, nothing more to say
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout again at exit
        sys.stdout = sys.stderr
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("STORYLAB_DEBUG"):
            raise
        line = _os_error_line(exc) if isinstance(exc, OSError) else _known_library_error(exc)
        if line is None:
            line = (f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    "please report it, STORYLAB_DEBUG=1 shows the traceback")
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)
    finally:
        _restore_sigterm(previous_term)
    sys.exit(result if isinstance(result, int) else 0)


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated()


def _catch_sigterm() -> object:
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only); return the old handler."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _restore_sigterm(previous: object) -> None:
    import signal

    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
