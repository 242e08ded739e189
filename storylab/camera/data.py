"""An E.T.-format split as DIRECTOR training tensors: padded features, masks and caption encodings.

Captions are encoded once with the frozen sentence encoder (token states for config C, the pooled
vector for A and B) and cached under ``ROOT/.storylab_cache/`` (E.T. likewise ships precomputed CLIP
text features next to the data), keyed by the encoder and the captions.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from storylab.camera.constants import MAX_FRAMES
from storylab.camera.et_format import read_sample, read_split
from storylab.camera.features import encode_camera, encode_character, pad_features
from storylab.errors import StorylabError
from storylab.training.progress import progress_bar


@dataclass
class DirectorData:
    """Stacked samples of one split (N samples, T = max_frames, L = text tokens)."""

    ids: list[str]
    captions: list[str]
    x: torch.Tensor            # (N, T, 9) camera features
    mask: torch.Tensor         # (N, T) bool
    char: torch.Tensor         # (N, T, 3) character features
    cam_segments: torch.Tensor  # (N, T) long: the n_i - 1 reference tags of sample i, then -1
    missing_tags: list[str] | None = None  # ids without cam_segments/<id>.npy
    part: str = "train"
    text: torch.Tensor | None = None         # (N, Dt) pooled
    text_tokens: torch.Tensor | None = None  # (N, L, Dt) float16
    text_mask: torch.Tensor | None = None    # (N, L) float

    def __len__(self) -> int:
        return len(self.ids)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors a training batch holds, in a fixed order (see :func:`unpack_batch`)."""
        return (self.x, self.mask, self.char, self.text, self.text_tokens, self.text_mask)


def load_samples(root: str | os.PathLike, subset: str = "mixed", part: str = "train", limit: int | None = None,
                 max_frames: int = MAX_FRAMES, caption_field: str = "caption", progress: bool = True,
                 sort_ids: bool = False) -> DirectorData:
    """Read and featurise a split (camera features, character features, reference tags); ``sort_ids``
    orders the ids as the authors' loader does (before ``limit``)."""
    ids = read_split(root, subset, part)
    ids = (sorted(ids) if sort_ids else ids)[:limit]
    xs, masks, chars, segs, captions, missing = [], [], [], [], [], []
    with progress_bar(f"reading {part} split", total=len(ids), enabled=progress) as bar:
        for sid in ids:
            s = read_sample(root, sid)
            caption = getattr(s, caption_field)
            if caption is None:
                raise StorylabError(f"sample {sid} has no {caption_field}/{sid}.txt")
            x, m = pad_features(encode_camera(s.kitti_poses), max_frames)
            if s.char_positions is None:  # zeros would train on a character standing still at the origin
                raise StorylabError(f"sample {sid} has no char/{sid}.npy under {root}: DIRECTOR and CLaTr condition "
                                    "on the character's path (an E.T. folder has char/ beside traj/ and caption/)")
            c, _ = pad_features(encode_character(s.char_positions), max_frames)
            seg = np.full(max_frames, -1, dtype=np.int64)
            if s.cam_segments is not None:
                seg[:s.n_frames - 1] = s.cam_segments
            else:
                missing.append(sid)
            xs.append(x), masks.append(m), chars.append(c), segs.append(seg), captions.append(caption)
            bar.advance()
    return DirectorData(ids, captions, torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(masks)),
                        torch.from_numpy(np.stack(chars)), torch.from_numpy(np.stack(segs)), missing_tags=missing, part=part)


def token_states(encoder, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-layer token states (N, L, D) and mask (N, L), padded to the longest caption of the batch.

    Our captions have ~25 tokens, so padding to the longest rather than to 77 is ~3x cheaper;
    padding positions are masked (and zeroed) downstream.
    """
    out = encoder.token_states(list(texts), pad_to_longest=True)
    return out.states, out.mask


@torch.no_grad()
def caption_vectors(encoder, texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """(N, D) caption vectors for configs A and B.

    With a local CLIP folder, E.T.'s text feature: the end-of-text token's state after the final layer
    norm, neither projected nor normalised (the authors' "token" features; config C uses the token
    sequence instead). Other encoders: their pooled, normalised sentence embedding.
    """
    if not str(encoder.kind).startswith("clip"):
        return encoder.encode(list(texts))
    chunks = []
    for i in range(0, len(texts), batch_size):
        batch = encoder.tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True,
                                  max_length=encoder.max_length, return_tensors="pt").to(encoder.device)
        out = encoder.model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        chunks.append(out.pooler_output.float())  # the EOT position of last_hidden_state (after ln_final)
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.dim)


def encode_captions(encoder, captions: list[str], tokens: bool, batch_size: int = 64,
                    progress: bool = True) -> dict[str, torch.Tensor]:
    """Pooled vectors (and, with ``tokens``, masked token states in float16) for a list of captions."""
    out: dict[str, list[torch.Tensor]] = {"text": [], "text_tokens": [], "text_mask": []}
    with progress_bar("encoding captions", total=len(captions), enabled=progress) as bar:
        for i in range(0, len(captions), batch_size):
            part = captions[i:i + batch_size]
            out["text"].append(caption_vectors(encoder, part))
            if tokens:
                states, mask = token_states(encoder, part)
                full = torch.zeros(len(part), encoder.max_length, states.shape[-1])
                full[:, :states.shape[1]] = states * mask[..., None]
                m = torch.zeros(len(part), encoder.max_length)
                m[:, :mask.shape[1]] = mask.float()
                out["text_tokens"].append(full.half())
                out["text_mask"].append(m)
            bar.advance(len(part))
    return {k: torch.cat(v) for k, v in out.items() if v}


def attach_text(data: DirectorData, encoder, root: str | os.PathLike | None, tokens: bool,
                progress: bool = True) -> DirectorData:
    """Fill ``data.text`` (and token states) from the encoder, through the on-disk cache when ``root`` is given."""
    from safetensors.torch import load_file, save_file

    from storylab.io import atomic_path

    # "eot": CLIP folders give the unprojected end-of-text state since issue 14 (a new key, not a stale cache)
    key = hashlib.sha1((str(encoder.path) + "\n" + str(tokens) + "\neot\n" + "\n".join(data.captions)).encode()).hexdigest()
    cache = Path(root) / ".storylab_cache" / f"text_{key[:16]}.safetensors" if root is not None else None
    if cache is not None and cache.exists():
        enc = load_file(str(cache))
    else:
        enc = encode_captions(encoder, data.captions, tokens, progress=progress)
        if cache is not None:
            try:
                with atomic_path(cache) as tmp:
                    save_file({k: v.contiguous() for k, v in enc.items()}, str(tmp))
            except OSError:  # a read-only data folder: work without the cache
                pass
    data.text = enc["text"]
    data.text_tokens = enc.get("text_tokens")
    data.text_mask = enc.get("text_mask")
    if data.text_tokens is None:  # configs A and B never read them; keep the batch layout fixed
        data.text_tokens = torch.zeros(len(data), 1, data.text.shape[1], dtype=torch.float16)
        data.text_mask = torch.zeros(len(data), 1)
    return data


def make_condition(mask: torch.Tensor, char: torch.Tensor, text: torch.Tensor, text_tokens: torch.Tensor,
                   text_mask: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Crop a padded batch to its longest valid length and build the DIRECTOR condition dict."""
    t = int(mask.sum(1).max())
    n_tok = max(1, int((text_mask > 0).sum(1).max()))
    cond = {"char": char[:, :t].float(), "text": text.float(), "text_tokens": text_tokens[:, :n_tok].float(),
            "text_mask": text_mask[:, :n_tok].float(), "mask": mask[:, :t]}
    return cond, mask[:, :t]


class LengthBucketBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of similar length: shuffle, cut into pools of ``pool`` batches, sort each pool by length,
    batch it, shuffle the batches.

    Each batch is cropped to its longest sample (:func:`make_condition`) and attention costs grow as
    T^2, so with lengths of 2-12 s (50-300 frames) random batches almost always pay for 300 frames
    while bucketed ones pay for about the mean. Written here because PyTorch has no length-grouped
    sampler (transformers' ``LengthGroupedSampler`` is tied to its Trainer). Deterministic per
    ``seed`` and epoch; every sample appears once per epoch.
    """

    def __init__(self, lengths: torch.Tensor, batch_size: int, seed: int = 0, pool: int = 50,
                 drop_last: bool = False) -> None:
        self.lengths = torch.as_tensor(lengths)
        self.batch_size, self.seed, self.pool, self.drop_last = batch_size, seed, pool, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1  # a fresh order on the next pass even if nobody calls set_epoch
        order = torch.randperm(len(self.lengths), generator=gen)
        batches: list[list[int]] = []
        span = self.batch_size * self.pool
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], descending=True, stable=True)].tolist()
            for b in range(0, len(chunk), self.batch_size):
                if len(chunk[b:b + self.batch_size]) == self.batch_size or not self.drop_last:
                    batches.append(chunk[b:b + self.batch_size])
        for i in torch.randperm(len(batches), generator=gen).tolist():
            yield batches[i]
