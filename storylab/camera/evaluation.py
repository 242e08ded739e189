"""CLaTr-style evaluation of DIRECTOR configs (Courant et al., ECCV 2024, Sec. 5.1, Table 2).

For each config, one trajectory is generated per test sample (its caption, character path and
length). Metrics, with the real test set always passed first (the order the definitions require;
the public code swaps precision/recall arguments, which we do not reproduce):

* FD_CLaTr - Frechet distance between CLaTr embeddings of real and generated trajectories;
* precision / recall (k = 3) and density / coverage (k = 3) on the same embeddings;
* CLaTr-Score - max(0, 100 x mean cosine(generated trajectory embedding, caption embedding));
* C-P / C-R / C-F1 - re-tagging of generated trajectories against the reference tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from storylab.camera.clatr import Clatr, embed_texts, embed_trajectories
from storylab.camera.director import ARCH_LETTERS, Director
from storylab.camera.sampling import SamplingConfig, generate_split
from storylab.camera.tag_metrics import classification_scores, reference_tags, retag, split_valid

PAPER_FD = {"A": 3.88, "B": 6.10, "C": 3.76}  # FD_CLaTr on E.T. mixed (paper); C best, B worst


def clatr_score(traj_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """max(0, 100 x mean cosine similarity) between paired trajectory and text embeddings."""
    cos = torch.nn.functional.cosine_similarity(traj_emb, text_emb, dim=-1).mean()
    return max(0.0, 100.0 * float(cos))


def trajectory_metrics(clatr: Clatr, real_feats: list, fake_feats: list, text: torch.Tensor,
                       reference_tags: list) -> dict[str, float]:
    """All CLaTr-style metrics of generated features against the real test split."""
    from storylab.metrics import density_coverage, frechet_distance, precision_recall

    real = embed_trajectories(clatr, real_feats).numpy()
    fake = embed_trajectories(clatr, fake_feats).numpy()
    precision, recall = precision_recall(real, fake, k=3)
    density, coverage = density_coverage(real, fake, k=3)
    text_emb = embed_texts(clatr, text)
    return {"FD_CLaTr": float(frechet_distance(real, fake)), "P": precision, "R": recall, "D": density,
            "C": coverage, "CLaTr-Score": clatr_score(torch.from_numpy(fake), text_emb),
            **classification_scores(reference_tags, retag(fake_feats))}


@dataclass
class ConfigResult:
    name: str
    metrics: dict[str, float]


def evaluate_configs(nets: dict[str, Director], test, clatr: Clatr, cfg: SamplingConfig, seed: int = 0,
                     progress: bool = True) -> list[ConfigResult]:
    """Metrics of every config on the test split, plus the real test set as a reference row."""
    real_feats = split_valid(test.x, test.mask)
    ref_tags = reference_tags(test.cam_segments, list(range(len(real_feats))), [len(f) for f in real_feats])
    results = []
    for arch, net in nets.items():
        fake = generate_split(net, test, cfg, seed=seed, progress=progress)
        results.append(ConfigResult(f"{ARCH_LETTERS.get(arch, '?')} ({arch})",
                                    trajectory_metrics(clatr, real_feats, fake, test.text, ref_tags)))
    real = trajectory_metrics(clatr, real_feats, real_feats, test.text, ref_tags)
    results.append(ConfigResult("real test set", real))
    return results


def results_table(results: list[ConfigResult], title: str):
    """A rich table of the results (columns as in the paper's Table 2)."""
    from rich.table import Table

    cols = ["FD_CLaTr", "P", "R", "D", "C", "CLaTr-Score", "C-P", "C-R", "C-F1"]
    table = Table(title=title)
    table.add_column("method")
    for c in cols:
        table.add_column(c + (" ↓" if c == "FD_CLaTr" else " ↑"), justify="right")
    for r in results:
        table.add_row(r.name, *(f"{r.metrics[c]:.3f}" for c in cols))
    return table
