"""Atomic file output: write to a temporary name in the same folder, then rename.

A killed process therefore never leaves a half-written file under the final name. Used by every
command that writes a result (images, JSON, checkpoints, CSV, video).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from storylab.errors import StorylabError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def ensure_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) or raise :class:`StorylabError` naming what is in the way."""
    folder = Path(folder)
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            raise StorylabError(f"cannot create folder {folder}: {part} is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorylabError(f"cannot create folder {folder}: {(exc.strerror or str(exc)).lower()}") from exc
    return folder


_SPECIAL_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def special_file_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder ("a FIFO (named pipe)", ...).

    Symbolic links are followed (``/dev/stdout`` is the device it points to); a missing path is None.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return None


def check_output_file(path: str | os.PathLike, what: str = "") -> None:
    """Refuse an output file that is a device, FIFO or socket: the atomic rename would replace it.

    ``what`` names the option in the message (``--out``). Only a new path or a regular file may be
    written; renaming over ``/dev/null`` would, as root, put a regular file in its place.
    """
    kind = special_file_kind(path)
    if kind is not None:
        label = f"{what} {path}" if what else str(path)
        raise StorylabError(f"cannot write {label}: it is {kind}, not a regular file (give a new file name)")


def check_input_file(path: str | os.PathLike, what: str = "") -> None:
    """Refuse an input that is a device, FIFO or socket before anything opens it (opening a FIFO blocks)."""
    kind = special_file_kind(path)
    if kind is not None:
        label = f"{what} {path}" if what else str(path)
        raise StorylabError(f"cannot read {label}: it is {kind}, not a regular file")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    ``suffix`` defaults to the final file's suffix so that libraries which pick a format from the
    extension (matplotlib, PIL, PyAV) still see the right one.
    """
    final = Path(path)
    if final.is_dir():
        raise StorylabError(f"cannot write {final}: it is an existing folder (give a file name)")
    check_output_file(final)
    ensure_folder(final.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.tmp.", suffix=final.suffix if suffix is None else suffix,
                                   dir=final.parent)
    except OSError as exc:
        raise StorylabError(f"cannot write {final}: {(exc.strerror or str(exc)).lower()}") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp_path, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as strict JSON to ``path`` atomically and return the path.

    NaN and infinities (an undefined metric) are written as ``null``: Python's ``NaN`` token is not
    JSON, and strict parsers (browsers, ``jq``) reject a file that contains it.
    """
    text = json.dumps(_finite_or_null(obj), indent=indent, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def _finite_or_null(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (numpy / torch values converted first)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_null(v) for v in obj]
    if not isinstance(obj, (str, bytes, int, bool, type(None), Path)) and (hasattr(obj, "tolist") or hasattr(obj, "item")):
        return _finite_or_null(_json_default(obj))
    return obj


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically; an extension matplotlib cannot write is a clear error."""
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    supported = fig.canvas.get_supported_filetypes()
    if fmt not in supported:
        raise StorylabError(f"cannot save a plot as {path}: unknown extension '.{fmt}' "
                            f"(use one of {', '.join('.' + k for k in sorted(supported))})")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)
    return Path(path)


def _json_default(obj: Any) -> Any:
    """Convert numpy / torch scalars and arrays into JSON-serialisable Python objects."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


RUNS = Path("runs")  # relative: resolved against the current directory when a command runs


def run_path(name: str) -> Path:
    """Default output of a training command: ``runs/<name>`` under the current directory (created on save),
    so a default run never overwrites a checkpoint shipped inside the installed package."""
    return RUNS / name


def next_free(path: str | os.PathLike) -> Path:
    """``path`` if nothing is there, else the first free ``<stem>-2<suffix>``, ``-3``, ...: a default
    output never overwrites an earlier result silently."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


def use_hint(*command: str | Path) -> str:
    """The line a training command prints last: how to use what it wrote (paths shell-quoted)."""
    return "use it with: " + " ".join(shlex.quote(str(part)) for part in command)


def safe_id(value: str, what: str = "id") -> str:
    """``value`` if it can name one file inside a folder; a :class:`StorylabError` otherwise.

    Ids read from data files (a questions CSV's ``video_id``, an E.T. split line, a clip table's
    file) become file names. An absolute path, a path separator, ``..`` or a NUL byte could make
    such a name point outside its folder, so they are refused; a leading ``-`` or ``_`` is fine
    (ids are never passed to a program as arguments).
    """
    from storylab.errors import StorylabError

    text = str(value)
    if (not text or text in (".", "..") or "/" in text or "\\" in text or ".." in text or "\x00" in text
            or os.path.isabs(text) or (len(text) > 1 and text[1] == ":")):
        raise StorylabError(f"refusing {what} {text!r}: an id must name a file inside its folder "
                            "(no path separator, no '..', not absolute)")
    return text


def safe_join(folder: str | os.PathLike, name: str, suffix: str = "", what: str = "id") -> Path:
    """``folder / (name + suffix)`` after :func:`safe_id`, checked to stay inside ``folder``."""
    from storylab.errors import StorylabError

    path = Path(folder) / f"{safe_id(name, what)}{suffix}"
    if Path(folder).resolve() not in path.resolve().parents:
        raise StorylabError(f"refusing {what} {name!r}: it resolves outside {folder}")
    return path
