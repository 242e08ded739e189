"""ControlNet condition extractors (purely algorithmic, no downloaded weights) and condition fidelity.

ControlNet (Zhang, Rao & Agrawala 2023, sec. 4) trains on pairs (image, c_f) where the task-specific
condition c_f is computed from the image by a detector. The detectors that need weights (HED,
MiDaS, OpenPose) are out of reach offline; these five are algorithms:

* ``canny``    - Canny edges (OpenCV ``cv2.Canny`` with its default L1 gradient |gx| + |gy|, as the
  ControlNet annotator calls it; the L2 gradient is an option), thresholds 100/200, binary.
* ``sobel``    - Sobel gradient magnitude (OpenCV ``cv2.Sobel``), continuous in [0, 1].
* ``scribble`` - a thick, jittered skeleton of the strokes, like a quick hand drawing: Zhang-Suen
  thinning of the ink mask, warped by a smooth random displacement field, dilated; binary.
* ``mask``     - the ink mask (threshold at mid-grey), binary.
* ``distance`` - a "depth-like" map: the Euclidean distance transform of the ink mask
  (``cv2.distanceTransform``), i.e. how far inside a stroke a pixel is, continuous in [0, 1].

Every extractor takes any grayscale or RGB image, normalises its polarity (bright ink on a dark
background, like the digits), resizes it to the condition resolution (``size``, 32 for the 8x8
digit model: the hint encoder brings it down to 8x8 as the paper's brings 512 to 64) and returns a
float map ``(size, size)`` in [0, 1].

Condition fidelity re-extracts the condition from a generated image and compares it with the
input condition: F1 with a small pixel tolerance for the binary kinds, RMSE for the continuous ones.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np
from storylab.errors import StorylabError

if TYPE_CHECKING:  # torch is imported where a tensor is made: `control extract` is pure OpenCV and starts fast
    import torch
    from PIL import Image

COND_SIZE = 32
BINARY_KINDS = ("canny", "scribble", "mask")
CONTINUOUS_KINDS = ("sobel", "distance")
KINDS = ("canny", "sobel", "scribble", "mask", "distance")
ALIASES = {"edges": "canny", "edge": "canny", "depth": "distance", "gradient": "sobel"}
F1_TOLERANCE = 1.0  # pixels at the condition resolution (a quarter of a digit pixel)


def check_kind(kind: str) -> str:
    """Return the canonical condition kind, or raise one clear line for an unknown one."""
    key = ALIASES.get(kind.strip().lower(), kind.strip().lower())
    if key not in KINDS:
        raise StorylabError(f"unknown condition kind '{kind}' (choose from {', '.join(KINDS)}; 'edges' = canny)")
    return key


def load_gray_image(path: str | Path) -> np.ndarray:
    """Read any image file as a grayscale float array ``(H, W)`` in [0, 1]; bad files are one clear line."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise StorylabError(f"image not found: {p}")
    if p.is_dir():
        raise StorylabError(f"expected an image file, got a folder: {p}")
    if p.stat().st_size == 0:
        raise StorylabError(f"image file is empty (0 bytes): {p}")
    try:
        with Image.open(p) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                raise StorylabError(f"image is empty (0 pixels): {p}")
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                # Composite transparency on black so that an alpha-only drawing keeps its strokes.
                base = Image.new("RGBA", img.size, (0, 0, 0, 255))
                img = Image.alpha_composite(base, img.convert("RGBA"))
            gray = np.asarray(img.convert("F" if img.mode in ("I", "I;16", "F") else "L"), dtype=np.float32)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise StorylabError(f"not a readable image file: {p}") from exc
    if img.mode in ("I", "I;16", "F"):
        lo, hi = float(gray.min()), float(gray.max())
        return (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray)
    return gray / 255.0


def to_gray(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Grayscale float ``(H, W)`` in [0, 1] from ``(H, W)``, ``(H, W, 3|4)`` or ``(1|3, H, W)`` arrays."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1) if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.ndim != 2 or arr.size == 0:
        raise StorylabError(f"expected a non-empty grayscale or RGB image, got shape {tuple(arr.shape)}")
    if arr.max() > 1.0 + 1e-6:
        arr = arr / 255.0
    return np.clip(arr, 0.0, 1.0)


def prepare(image: np.ndarray | torch.Tensor, size: int = COND_SIZE) -> np.ndarray:
    """Grayscale, bright-ink polarity and bilinear/area resize to ``(size, size)`` float32 in [0, 1].

    Polarity: if the border is brighter than the image's mean the image is inverted, so dark ink on
    white paper becomes bright ink on black like the digits.
    """
    gray = to_gray(image)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > gray.mean() + 1e-6:
        gray = 1.0 - gray
    h, w = gray.shape
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    return np.clip(cv2.resize(gray, (size, size), interpolation=interp), 0.0, 1.0).astype(np.float32)


def ink_mask(gray: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary ink mask (uint8 0/1) of a prepared image."""
    return (gray >= threshold).astype(np.uint8)


def canny_edges(gray: np.ndarray, low: int = 100, high: int = 200, l2_gradient: bool = False) -> np.ndarray:
    """Canny edges (Canny 1986) of the 8-bit image, as ControlNet's canny annotator computes them.

    The annotator calls ``cv2.Canny(img, low, high)``: OpenCV's default L1 gradient magnitude
    |gx| + |gy| (``l2_gradient=True`` uses sqrt(gx^2 + gy^2) instead). OpenCV has no default
    thresholds; 100/200 are the initial values of the ControlNet canny demo's sliders.
    """
    u8 = np.round(gray * 255).astype(np.uint8)
    return (cv2.Canny(u8, low, high, L2gradient=l2_gradient) > 0).astype(np.float32)


def sobel_edges(gray: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude sqrt(gx^2 + gy^2), divided by 4 (the 3x3 kernel's response to a unit step)."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return np.clip(np.sqrt(gx * gx + gy * gy) / 4.0, 0.0, 1.0).astype(np.float32)


def zhang_suen_thinning(mask: np.ndarray) -> np.ndarray:
    """One-pixel skeleton of a binary mask (Zhang & Suen 1984, two sub-iterations until stable).

    Hand-written (vectorised numpy) because OpenCV's ``ximgproc.thinning`` lives in the contrib
    build, which storylab does not depend on; scipy has no thinning.
    """
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for sub in (0, 1):
            p = img
            n = [np.roll(np.roll(p, dy, 0), dx, 1) for dy, dx in
                 ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))]
            # neighbours P2..P9 clockwise from north: roll by (+1, 0) brings the north pixel here
            p2, p3, p4, p5, p6, p7, p8, p9 = n
            b = p2 + p3 + p4 + p5 + p6 + p7 + p8 + p9
            seq = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            a = sum(((seq[i] == 0) & (seq[i + 1] == 1)).astype(np.uint8) for i in range(8))
            if sub == 0:
                c1, c2 = p2 * p4 * p6, p4 * p6 * p8
            else:
                c1, c2 = p2 * p4 * p8, p2 * p6 * p8
            remove = (p == 1) & (b >= 2) & (b <= 6) & (a == 1) & (c1 == 0) & (c2 == 0)
            if remove.any():
                img = img.copy()
                img[remove] = 0
                changed = True
        if not changed:
            return img[1:-1, 1:-1]


def scribble(gray: np.ndarray, seed: int | None = 0, jitter: float = 1.0, thickness: int = 3) -> np.ndarray:
    """A hand-drawing-like scribble: skeleton of the ink mask, smoothly jittered, dilated to ``thickness``.

    The jitter is a random displacement field (Gaussian-smoothed white noise, max ``jitter`` pixels)
    applied with ``cv2.remap``; ``seed=None`` or ``jitter=0`` gives the deterministic skeleton
    (used to re-extract scribbles from generated images for the fidelity metric).
    """
    skeleton = zhang_suen_thinning(ink_mask(gray)).astype(np.float32)
    h, w = skeleton.shape
    if jitter > 0 and seed is not None:
        rng = np.random.default_rng(seed)
        field = rng.standard_normal((2, h, w)).astype(np.float32)
        field = np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=h / 6) for f in field])
        field *= jitter / max(float(np.abs(field).max()), 1e-6)
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        skeleton = cv2.remap(skeleton, xs + field[0], ys + field[1], cv2.INTER_LINEAR, borderValue=0)
        skeleton = (skeleton >= 0.35).astype(np.float32)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness))
    return (cv2.dilate(skeleton, kernel) > 0).astype(np.float32)


def distance_map(gray: np.ndarray, max_distance: float = 4.0) -> np.ndarray:
    """Depth-like map: Euclidean distance of each ink pixel to the background, / ``max_distance``, clipped."""
    dist = cv2.distanceTransform(ink_mask(gray), cv2.DIST_L2, 5)
    return np.clip(dist / max_distance, 0.0, 1.0).astype(np.float32)


EXTRACTORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "canny": canny_edges,
    "sobel": sobel_edges,
    "scribble": scribble,
    "mask": lambda g: ink_mask(g).astype(np.float32),
    "distance": distance_map,
}


def extract(kind: str, image: np.ndarray | torch.Tensor, size: int = COND_SIZE, seed: int | None = 0,
            l2_gradient: bool = False) -> np.ndarray:
    """The ``kind`` condition of any grayscale/RGB image, ``(size, size)`` float32 in [0, 1].

    ``seed`` only matters for ``scribble`` (its jitter); ``None`` gives the un-jittered skeleton.
    ``l2_gradient`` only for ``canny`` (see :func:`canny_edges`).
    """
    kind = check_kind(kind)
    gray = prepare(image, size)
    if kind == "scribble":
        return scribble(gray, seed=seed, jitter=1.0 if seed is not None else 0.0)
    if kind == "canny":
        return canny_edges(gray, l2_gradient=l2_gradient)
    return EXTRACTORS[kind](gray)


def extractor_settings(kind: str, size: int = COND_SIZE, seed: int | None = 0,
                       l2_gradient: bool = False) -> dict[str, Any]:
    """Every setting :func:`extract` uses for ``kind`` (its extractor's defaults included), for study records."""
    def defaults(fn: Callable[..., Any]) -> dict[str, Any]:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}

    kind = check_kind(kind)
    settings = {"canny": lambda: {**defaults(canny_edges), "l2_gradient": l2_gradient},
                "sobel": lambda: {"ksize": 3, "divisor": 4.0},
                "scribble": lambda: {**defaults(scribble), "seed": seed, "jitter": 1.0 if seed is not None else 0.0},
                "mask": lambda: defaults(ink_mask),
                "distance": lambda: {**defaults(ink_mask), **defaults(distance_map)}}[kind]()
    return {"extractor": kind, "size": size, "prepare": "grayscale; inverted if the border is brighter than the "
            "mean (bright ink on dark); resized to size x size (area down, bilinear up)", **settings}


def extract_file(kind: str, path: str | Path, size: int = COND_SIZE, seed: int | None = 0,
                 l2_gradient: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an image file and :func:`extract` its ``kind`` condition; returns the map and its settings.

    This is what ``storylab control extract`` writes (through :func:`condition_image`) and what
    ``storylab evaluate pipeline --control KIND=PATH`` hands to a ControlNet pipeline.
    """
    kind = check_kind(kind)
    cond = extract(kind, load_gray_image(path), size=size, seed=seed, l2_gradient=l2_gradient)
    return cond, {**extractor_settings(kind, size, seed, l2_gradient), "input": str(path)}


def extract_batch(kind: str, images: torch.Tensor, size: int = COND_SIZE, seed: int | None = 0) -> torch.Tensor:
    """Conditions of model-range images ``(N, 1, h, w)`` in [-1, 1] -> ``(N, 1, size, size)`` in [0, 1].

    Digit images are already bright-on-dark, so the polarity check is skipped for them (a blank
    generated image must not be inverted). Scribble jitter uses ``seed + i`` per image.
    """
    kind = check_kind(kind)
    unit = ((images.detach().cpu().float().clamp(-1, 1) + 1) / 2)[:, 0].numpy()
    out = np.empty((unit.shape[0], size, size), dtype=np.float32)
    for i, img in enumerate(unit):
        gray = np.clip(cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR), 0, 1).astype(np.float32)
        if kind == "scribble":
            out[i] = scribble(gray, seed=None if seed is None else seed + i, jitter=0.0 if seed is None else 1.0)
        else:
            out[i] = EXTRACTORS[kind](gray)
    import torch

    return torch.from_numpy(out).unsqueeze(1)


POLARITIES = ("auto", "bright", "dark")


def looks_dark_on_light(gray: np.ndarray) -> bool:
    """Whether a condition map looks drawn as dark strokes on white paper (its "on" pixels are the dark ones).

    A condition is bright where the feature is, and features are sparse: edges, strokes and masks
    cover a minority of the frame and rarely its border. A map whose border is mostly bright *and*
    whose pixels are mostly bright is a drawing on paper, the input ControlNet's scribble demo
    expects (it marks the pixels darker than mid-grey as the scribble).
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return bool((border >= 0.5).mean() > 0.5 and (gray >= 0.5).mean() > 0.5)


def load_condition(path: str | Path, kind: str, size: int = COND_SIZE, polarity: str = "auto",
                   report: Callable[[str], None] | None = None) -> torch.Tensor:
    """Read a condition map written by ``storylab control extract`` (or drawn by hand) -> ``(1, 1, size, size)``.

    A condition is bright where the feature is. ``polarity``: ``bright`` uses the map as drawn,
    ``dark`` inverts it (dark strokes are the feature, as ControlNet's scribble demo reads its
    input), ``auto`` inverts only a map that :func:`looks_dark_on_light` and says so through
    ``report``. Binary kinds are re-binarised at 0.5 after resizing.
    """
    kind = check_kind(kind)
    if polarity not in POLARITIES:
        raise StorylabError(f"unknown condition polarity '{polarity}' (choose from {', '.join(POLARITIES)})")
    gray = to_gray(load_gray_image(path))
    invert = polarity == "dark" or (polarity == "auto" and looks_dark_on_light(gray))
    if invert:
        if polarity == "auto" and report is not None:
            report(f"note: {path} looks like dark strokes on white paper ({100 * float((gray >= 0.5).mean()):.1f}% "
                   f"of pixels bright); inverted so that the strokes are the condition (--control-polarity bright "
                   f"keeps it as drawn)")
        gray = 1.0 - gray
    h, w = gray.shape
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    cond = np.clip(cv2.resize(gray, (size, size), interpolation=interp), 0, 1)
    if kind in BINARY_KINDS:
        cond = (cond >= 0.5).astype(np.float32)
    import torch

    return torch.from_numpy(cond.astype(np.float32))[None, None]


def condition_image(cond: np.ndarray | torch.Tensor) -> Image.Image:
    """A condition map ``(H, W)`` in [0, 1] as the 8-bit grayscale image :func:`save_condition` writes."""
    from PIL import Image

    arr = cond.detach().cpu().numpy() if hasattr(cond, "detach") else np.asarray(cond)
    return Image.fromarray(np.round(np.clip(np.squeeze(arr), 0, 1) * 255).astype(np.uint8))  # 2-D uint8: mode L


def save_condition(cond: np.ndarray | torch.Tensor, path: str | Path) -> Path:
    """Write a condition map ``(H, W)`` in [0, 1] as an 8-bit grayscale PNG, atomically."""
    from storylab.io import atomic_path

    with atomic_path(path) as tmp:
        condition_image(cond).save(tmp, format="PNG")
    return Path(path)


def tolerant_f1(pred: np.ndarray, ref: np.ndarray, tolerance: float = F1_TOLERANCE) -> float:
    """F1 of binary maps where a pixel matches if the other map has a pixel within ``tolerance`` (BSDS-style).

    precision = share of predicted pixels within tolerance of a reference pixel; recall = share of
    reference pixels within tolerance of a predicted pixel. Both empty: 1; one empty: 0.
    """
    p, r = pred > 0.5, ref > 0.5
    if not p.any() and not r.any():
        return 1.0
    if not p.any() or not r.any():
        return 0.0
    dist_to_r = cv2.distanceTransform((~r).astype(np.uint8), cv2.DIST_L2, 5)
    dist_to_p = cv2.distanceTransform((~p).astype(np.uint8), cv2.DIST_L2, 5)
    precision = float((dist_to_r[p] <= tolerance).mean())
    recall = float((dist_to_p[r] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class Fidelity:
    """Per-sample condition fidelity: ``scores`` (F1 or RMSE), the metric's name, and whether higher is better."""

    scores: np.ndarray
    metric: str
    higher_is_better: bool

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores))


def condition_fidelity(kind: str, images: torch.Tensor, conditions: torch.Tensor,
                       tolerance: float = F1_TOLERANCE) -> Fidelity:
    """Re-extract ``kind`` from generated ``images`` (N, 1, 8, 8) and compare with ``conditions`` (N, 1, S, S).

    Binary kinds: tolerant F1 (scribbles are re-extracted without jitter and compared after both are
    thinned to skeletons, so the drawing's thickness does not count); continuous kinds: RMSE.
    """
    kind = check_kind(kind)
    size = conditions.shape[-1]
    again = extract_batch(kind, images, size=size, seed=None)[:, 0].numpy()
    ref = conditions.detach().cpu()[:, 0].numpy()
    if kind in CONTINUOUS_KINDS:
        return Fidelity(np.sqrt(((again - ref) ** 2).reshape(len(ref), -1).mean(1)), "RMSE", False)
    scores = []
    for a, r in zip(again, ref):
        if kind == "scribble":
            a, r = zhang_suen_thinning(a > 0.5), zhang_suen_thinning(r > 0.5)
            scores.append(tolerant_f1(a, r, tolerance + 1.0))
        else:
            scores.append(tolerant_f1(a, r, tolerance))
    return Fidelity(np.asarray(scores, dtype=np.float64), "F1", True)
