"""Option validation at the CLI boundary: one table of allowed ranges for every numeric option.

Every numeric option of every command is checked once, here, before the command runs: ``nan`` and
infinities are refused, a learning rate must be positive, a seed must fit numpy's 32-bit generator,
a video size must be even for libx264, a sampling step count is bounded so that a typo cannot run
for hours. The allowed range is added to the option's ``--help`` line. A new numeric option needs a
row in :data:`RULES` (or :data:`COMMAND_RULES` when the same name means something else in one
command); ``tests/test_fuzz_cli.py`` fails until it has one.

The same pass (:func:`harden`) gives the commands one vocabulary without touching the wings: the
old spellings ``--guidance-scale`` and ``--cfg-scale`` are hidden aliases of ``--scale``, boolean
flags show no ``<bool>`` placeholder, defaults inside the installed package print as short names,
and an output path equal to an input path is refused before anything is written.

This is written by hand because click's ``IntRange``/``FloatRange`` accept ``nan`` (every comparison
with it is false), have no open bounds for integers, no "even" or "multiple of" constraint, and
typer builds its parameters itself, so the table is applied to the built command tree.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from storylab.errors import StorylabError
from storylab.io import check_input_file, check_output_file, special_file_kind

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bound:
    """The allowed values of one numeric option: a finite number in [lo, hi] (or open ends)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    multiple_of: int | None = None

    def violation(self, value: float) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number ({self.describe()}), got {value}"
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return f"must be {self.describe()}, got {value}"
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return f"must be {self.describe()}, got {value}"
        if self.multiple_of and value % self.multiple_of:
            return f"must be {self.describe()}, got {value}"
        return None

    def describe(self) -> str:
        """The range as help text, e.g. ``0<x<=1000`` or ``x>=1, a multiple of 8``."""
        lo = None if self.lo is None else f"{_num(self.lo)}{'<' if self.lo_open else '<='}"
        hi = None if self.hi is None else f"{'<' if self.hi_open else '<='}{_num(self.hi)}"
        if lo and hi:
            text = f"{lo}x{hi}"
        elif lo:
            text = f"x{'>' if self.lo_open else '>='}{_num(self.lo)}"
        elif hi:
            text = f"x{hi}"
        else:
            text = "finite"
        if self.multiple_of == 2:
            text += ", even"
        elif self.multiple_of:
            text += f", a multiple of {self.multiple_of}"
        return text


def _num(value: float) -> str:
    """A bound as it reads best: 4294967295, 1000000, 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def positive(hi: float | None = None) -> Bound:
    """x > 0 (and <= hi)."""
    return Bound(0, hi, lo_open=True)


def count(lo: int = 1, hi: int | None = None) -> Bound:
    """An integer count lo <= x <= hi."""
    return Bound(lo, hi)


FRACTION = Bound(0, 1)
FRACTION_OPEN = Bound(0, 1, hi_open=True)
FINITE = Bound()
MILLION = 1_000_000
SAMPLING_STEPS = count(1, 10_000)  # a sampler with more steps than this is a typo, not a setting

# Option long name -> allowed values, for every numeric option of every command.
RULES: dict[str, Bound] = {
    # optimisation
    "--steps": count(1, 10 * MILLION), "--prior-steps": count(1, 10 * MILLION), "--epochs": count(1, MILLION),
    "--warmup": count(0, 10 * MILLION), "--batch-size": count(1, 65_536), "--prior-batch-size": count(1, 65_536),
    "--lr": positive(), "--prior-lr": positive(),  # huge is allowed: tests drive the loss to nan with it
     "--seed": count(0, 2**32 - 1),
    "--eval-every": count(0, 10 * MILLION), "--eval-count": count(1, 100_000), "--threads": count(0, 1024),
    "--ema": FRACTION_OPEN, "--p-uncond": FRACTION, "--limit": count(1, 10**9),
    # network sizes
    "--channels": Bound(8, 1024, multiple_of=8), "--latent-dim": count(1, 4096), "--width": count(1, 4096),
    "--depth": count(1, 64), "--codebook-size": count(1, 65_536), "--code-dim": count(1, 4096),
    "--dim": count(1, 8192), "--tokens": count(1, 4096), "--audio-channels": count(1, 1024),
    "--audio-dim": count(1, 8192), "--frame-size": count(8, 1024), "--text-tokens": count(1, 4096),
    "--patch": count(1, 1024), "--max-shift": count(0, 8), "--hidden": count(1, 8192),
    # losses and model weights
    "--beta": Bound(0, 1000), "--commitment": Bound(0, 100), "--restart-after": count(0, 10 * MILLION),
    "--aux-weight": Bound(0, 100), "--modality-dropout": FRACTION_OPEN, "--p-mean": Bound(-20, 20),
    "--p-std": positive(20),
    # sampling and guidance
    "--scale": Bound(0, 1000), "--per-class": count(1, 10_000), "--negative-class": count(-1, 9),
    "--negative-scale": Bound(0, 1000),
    "--rescale": FRACTION, "--eta": FRACTION, "--apg-eta": FRACTION, "--apg-norm": Bound(0, 1000),
    "--apg-momentum": Bound(-1, 1), "--pairs": count(1, 100), "--nearest": Bound(hi=100_000), "--count": count(1, 100_000),
    "--size": count(8, 1024), "--frames": count(1, 10_000), "--temperature": Bound(0, 2),
    # time, rates and media
    "--fps": positive(1000), "--n": count(1, MILLION), "--test-fraction": FRACTION_OPEN,
    "--min-seconds": positive(3600), "--max-seconds": positive(3600), "--episodes": count(1, 10_000),
    "--duration": positive(86_400), "--scenes": count(1, 1000), "--height": count(1, 4096),
    "--threshold-db": Bound(-200, 0), "--clusters": count(1, 64), "--negative-ratio": Bound(0, 100),
    "--margin": Bound(0, 3600), "--holdout": FRACTION_OPEN, "--window": positive(3600),
    "--stride": positive(3600), "--threshold": FRACTION, "--smooth": Bound(0, 3600), "--min-run": Bound(0, 3600),
    "--min-gap": Bound(0, 3600), "--tolerance": positive(3600), "--target-precision": FRACTION,
    "--bootstrap": count(0, 100_000),
    # services
    "--max-subtitle-tokens": count(1, 10**8), "--concurrency": count(1, 256), "--timeout": positive(86_400),
    "--retries": count(0, 100), "--backoff": Bound(0, 3600), "--max-tokens": count(1, MILLION),
    "--port": count(1, 65_535), "--test-per-class": count(1, 100_000), "--pool-per-class": count(1, 100_000),
}

# (command path, option) -> allowed values, where one command gives a name another meaning.
COMMAND_RULES: dict[tuple[str, str], Bound] = {
    **{(cmd, "--steps"): SAMPLING_STEPS for cmd in (
        "guidance weights", "sample digits", "evaluate digits", "evaluate controlnet", "evaluate zoo",
        "camera generate", "evaluate guidance-removal", "evaluate code-slide-loops")},
    ("evaluate guidance-removal", "--points"): count(1, 49),
    ("evaluate guidance-removal", "--window"): FRACTION_OPEN,
    ("evaluate code-slide-loops", "--w0"): Bound(1, 1000),
    ("evaluate code-slide-loops", "--show"): count(1, 32),
    **{(f"sample {family}", "--steps"): count(2, 1000) for family in ("ae", "vae", "cvae", "vqvae", "gan", "ldm")},
    # libx264 with yuv420p needs even sizes; 16 px is the smallest frame the synthetic scenes draw
    ("humor synth", "--width"): Bound(16, 3840, multiple_of=2),
    ("humor synth", "--height"): Bound(16, 2160, multiple_of=2),
    ("humor synth", "--fps"): count(1, 120),
    ("camera generate", "--frames"): count(2, 300),
}

# the guidance scale is --scale everywhere; these spellings stay accepted, hidden, for one release
HIDDEN_ALIASES: dict[str, str] = {"--guidance-scale": "--scale", "--cfg-scale": "--scale"}

# parameter names whose value is a path the command writes
OUTPUT_PARAMS = frozenset({"out", "out_dir", "plot", "render", "render_path"})
FILE_PARAMS = frozenset({"plot", "render", "render_path"})  # always files
# outputs that are files although their default (None) has no suffix to say so
FILE_OUTPUTS = frozenset({("sample digits", "out"), ("sample fashion-mnist", "out"), ("sample mnist", "out"),
                          ("camera generate", "out"), ("camera render", "out"),
                          ("train controlnet", "out"), ("evaluate reference", "out"),
                          *((f"train {family}", "out") for family in ("ae", "vae", "cvae", "vqvae", "gan", "ldm")),
                          ("train director", "out"), ("train funnynet", "out"), ("humor laughter", "out"),
                          ("humor label", "out"), ("evaluate director", "out")})


def output_is_file(command_path: str, name: str, default: Any) -> bool | None:
    """Whether output parameter ``name`` of a command is a file (True), a folder (False), or unknown (None:
    decided by the path given, a suffix meaning a file)."""
    if name in FILE_PARAMS or (command_path, name) in FILE_OUTPUTS:
        return True
    if isinstance(default, (str, os.PathLike)):
        return bool(Path(default).suffix)
    return None


def _is_number(param: Any) -> bool:
    desc = getattr(param, "type_descriptor", None)
    annotation = getattr(desc, "annotation", None)
    return annotation in (int, float) and not getattr(param, "is_flag", False)


def _long_name(param: Any) -> str:
    longs = [o for o in param.opts if o.startswith("--")]
    return longs[0] if longs else f"--{param.name.replace('_', '-')}"


def rule_for(command_path: str, param: Any) -> Bound | None:
    """The allowed values of ``param`` in ``command_path`` (e.g. ``"humor synth"``), or None."""
    name = _long_name(param)
    return COMMAND_RULES.get((command_path, name), RULES.get(name))


def numeric_options(command: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (command path, parameter) pair of a numeric option in the command tree."""
    if hasattr(command, "commands"):
        return [pair for name, sub in command.commands.items()
                for pair in numeric_options(sub, f"{path} {name}".strip())]
    return [(path, p) for p in command.params if _is_number(p)]


def _bounded_callback(bound: Bound, previous: Callable | None) -> Callable:
    from typer._click.exceptions import BadParameter

    def check(ctx: Any, param: Any, value: Any) -> Any:
        if previous is not None:
            value = previous(ctx, param, value)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if item is not None and (why := bound.violation(item)):
                raise BadParameter(why, ctx=ctx, param=param)
        return value

    return check


def _short_default(value: Any) -> str | None:
    """A default inside the installed package, as ``shipped <name>`` instead of an absolute path."""
    if isinstance(value, (str, os.PathLike)):
        try:
            rel = Path(value).resolve().relative_to(PACKAGE_DIR)
        except (ValueError, OSError):
            return None
        return f"shipped {rel.name}"
    return None


def public_options(names: list[str]) -> list[str]:
    """Option names as ``--help`` shows them: a hidden alias becomes the name it stands for (once)."""
    return list(dict.fromkeys(HIDDEN_ALIASES.get(n, n) for n in names))


def _with_aliases(param: Any, aliases: list[str]) -> None:
    """Accept ``aliases`` on the command line without listing them in ``--help``."""
    original = param.add_to_parser

    def add_to_parser(parser: Any, ctx: Any) -> None:
        shown = param.opts
        param.opts = [*shown, *aliases]
        try:
            original(parser, ctx)
        finally:
            param.opts = shown

    param.add_to_parser = add_to_parser


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _paths(value: Any) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, Path)]
    return []


# what matplotlib's Agg, PDF, PS and SVG backends write (``fig.canvas.get_supported_filetypes()``)
PLOT_FORMATS = frozenset({"eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz",
                          "tif", "tiff", "webp", "avif"})


def check_output(flag: str, out: Path, default: Any = None, is_file: bool | None = None,
                 trailing_slash: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work is done.

    A path with a suffix (or whose default has one) is a file; one without is a folder. Refused: a
    file under a regular file, a file output that is an existing folder or was typed with a trailing
    ``/`` (``trailing_slash``: pathlib drops it), a file output that is a device, FIFO or socket (the
    atomic rename would replace it), a folder output that is an existing file, a folder that exists
    but cannot be written to.
    """
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise StorylabError(f"cannot write {flag} {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise StorylabError(f"cannot write {flag} {out}: folder {parent} is not writable")
            break
    if is_file is None:
        is_file = bool(Path(default).suffix) if isinstance(default, (str, os.PathLike)) else bool(out.suffix)
    if is_file and out.is_dir():
        raise StorylabError(f"cannot write {flag} {out}: it is an existing folder (give a file name)")
    if is_file and trailing_slash:
        raise StorylabError(f"cannot write {flag} {out}/: a path ending in '/' names a folder, a file is expected "
                            f"(drop the '/')")
    if is_file:
        check_output_file(out, flag)
    if not is_file and out.exists() and not out.is_dir():
        kind = special_file_kind(out) or "an existing file"
        raise StorylabError(f"cannot write {flag} {out}: it is {kind}, a folder is expected")


def _guard_outputs(callback: Callable, params: list[Any], path: str = "") -> Callable:
    """Wrap a command so that unwritable outputs, plot formats and outputs equal to inputs are refused first."""
    names = {p.name: _long_name(p) if getattr(p, "opts", None) and p.opts[0].startswith("-") else p.name.upper()
             for p in params}
    defaults = {p.name: p.default for p in params}

    @functools.wraps(callback)
    def guarded(**kwargs: Any) -> Any:
        outputs = [(n, p) for n, v in kwargs.items() if n in OUTPUT_PARAMS for p in _paths(v)]
        inputs = [(n, p) for n, v in kwargs.items() if n not in OUTPUT_PARAMS for p in _paths(v)]
        for in_name, src in inputs:  # a FIFO or a device would block or never end once opened
            check_input_file(src, names[in_name])
        slashed = _trailing_slash_params()
        for out_name, out in outputs:
            for in_name, src in inputs:
                if src.is_dir():  # a folder output inside or equal to a data folder is the wing's business
                    continue
                if _same_file(out, src) or out.absolute() == src.absolute():
                    raise StorylabError(f"{names[out_name]} {out} is the input {names[in_name]}; "
                                        "choose another output path (inputs are never overwritten)")
            is_file = output_is_file(path, out_name, defaults.get(out_name))
            if is_file is None and out_name in slashed:
                is_file = False  # 'x.d/' where the command does not say: the user asked for a folder
            check_output(names[out_name], out, defaults.get(out_name), is_file, trailing_slash=out_name in slashed)
            if out_name == "plot" and out.suffix.lstrip(".").lower() not in PLOT_FORMATS:
                raise StorylabError(f"cannot save a plot as {out}: unknown extension '{out.suffix}' "
                                    f"(use one of {', '.join('.' + f for f in sorted(PLOT_FORMATS))})")
        return callback(**kwargs)

    return guarded


_SLASHED = "storylab.trailing_slash"  # ctx.meta key: names of output parameters typed with a trailing '/'


def _trailing_slash_params() -> set[str]:
    try:
        from typer._click.globals import get_current_context
    except ImportError:  # pragma: no cover - typer < 0.20 uses click itself
        from click import get_current_context

    ctx = get_current_context(silent=True)
    return set(ctx.meta.get(_SLASHED, ())) if ctx is not None else set()


def _remember_trailing_slash(param: Any) -> None:
    """Record (in the click context) whether ``param`` was typed with a trailing ``/``: ``Path`` drops it."""
    original = param.process_value

    def process_value(ctx: Any, value: Any) -> Any:
        raw = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(v, str) and v.endswith(("/", os.sep)) and v.strip("/") for v in raw):
            ctx.meta.setdefault(_SLASHED, set()).add(param.name)
        return original(ctx, value)

    param.process_value = process_value


def _no_placeholder(ctx: Any) -> None:
    """A flag takes no value, so its help line shows no ``<bool>`` placeholder."""
    return None


def _plain_help_flag(command: Any) -> None:
    original = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = original(ctx)
        if option is not None:
            option.display_type_rich = _no_placeholder
        return option

    command.get_help_option = get_help_option


def harden(command: Any, path: str = "") -> Any:
    """Apply the option table, the hidden aliases, the help fixes and the output guard to a command tree."""
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            harden(sub, f"{path} {name}".strip())
        _plain_help_flag(command)
        return command
    if getattr(command, "_storylab_hardened", False):
        return command
    command._storylab_hardened = True
    _plain_help_flag(command)
    taken = {o for p in command.params for o in getattr(p, "opts", [])}
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.display_type_rich = _no_placeholder
        old = [o for o in param.opts if o in HIDDEN_ALIASES]
        if old and HIDDEN_ALIASES[old[0]] not in taken:
            param.opts = [HIDDEN_ALIASES[old[0]] if o == old[0] else o for o in param.opts]
            _with_aliases(param, old)
        if (short := _short_default(param.default)) is not None and not isinstance(param.show_default, str):
            param.show_default = short
        if param.name in OUTPUT_PARAMS:
            _remember_trailing_slash(param)
        if _is_number(param):
            bound = rule_for(path, param)
            if bound is not None:
                param.callback = _bounded_callback(bound, param.callback)
                text = bound.describe()
                param._get_number_range_help_str = lambda text=text: text
    if command.callback is not None:
        command.callback = _guard_outputs(command.callback, command.params, path)
    return command
