"""Read MNIST-format IDX files (LeCun et al. 1998's format; plain or gzip), with one-line errors.

An IDX file is a big-endian header - two zero bytes, a type code (0x08 = unsigned byte), the number
of dimensions - then one uint32 per dimension and the raw values. Images are ``idx3`` (N, H, W) and
labels ``idx1`` (N,). Written by hand because the format is 20 lines and the libraries that read it
(torchvision, tensorflow-datasets) either do not work here or are far too large a dependency; numpy
does the decoding.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from storylab.errors import StorylabError

UBYTE = 0x08


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StorylabError(f"IDX file not found: {path}") from None
    except OSError as exc:
        raise StorylabError(f"cannot read IDX file {path}: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise StorylabError(f"{path}: corrupt gzip stream ({exc})") from None
    return raw


def read_idx(path: str | Path, ndim: int | None = None) -> np.ndarray:
    """The uint8 array stored in the IDX file ``path`` (``.gz`` or plain); ``ndim`` checks its rank."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise StorylabError(f"{path}: not an IDX file (wrong magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != UBYTE:
        raise StorylabError(f"{path}: IDX type code 0x{raw[2]:02x} is not supported (only 0x08, unsigned bytes)")
    rank = raw[3]
    if ndim is not None and rank != ndim:
        raise StorylabError(f"{path}: expected an IDX file with {ndim} dimension(s), found {rank}")
    header = 4 + 4 * rank
    if len(raw) < header:
        raise StorylabError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=rank, offset=4))
    expected = int(np.prod(shape)) if shape else 0
    if len(raw) - header < expected:
        raise StorylabError(f"{path}: truncated IDX file: header promises {expected} values of shape {shape}, "
                            f"found {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(shape)


def read_idx_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` int64 from an idx3/idx1 pair of the same length."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise StorylabError(f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
                            f"{labels.shape[0]} labels")
    return images, labels.astype(np.int64)


def find_idx(folder: str | Path, split: str) -> tuple[Path, Path]:
    """The images and labels files of ``split`` (``train`` or ``t10k``/``test``) in an MNIST-style folder.

    Accepts the standard names ``{train,t10k}-{images-idx3,labels-idx1}-ubyte`` with or without
    ``.gz`` (and the ``.`` spelling ``images.idx3-ubyte`` some copies use).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StorylabError(f"IDX data folder not found: {folder}")
    prefixes = ("train",) if split == "train" else ("t10k", "test")
    found = []
    for kind, tag in (("images", "idx3"), ("labels", "idx1")):
        hits = [folder / f"{p}-{kind}{sep}{tag}-ubyte{gz}" for p in prefixes for sep in ("-", ".") for gz in (".gz", "")]
        hit = next((h for h in hits if h.exists()), None)
        if hit is None:
            raise StorylabError(f"{folder}: no {prefixes[0]}-{kind}-{tag}-ubyte[.gz] file ({split} split)")
        found.append(hit)
    return found[0], found[1]
