"""CLaTr-style evaluation of DIRECTOR configs (Courant et al., ECCV 2024, Sec. 5.1, Table 2).

For each config, one trajectory is generated per sample (its caption, character path and length).
Metrics:

* FD_CLaTr - Frechet distance between CLaTr embeddings of real and generated trajectories;
* precision / recall / density / coverage (k = 3) on the same embeddings;
* CLaTr-Score - max(0, 100 x mean cosine(generated trajectory embedding, caption embedding));
* C-P / C-R / C-F1 - re-tagging of generated trajectories against the reference tags;
* text <-> trajectory retrieval R@1/2/3/5/10 and MedR between the captions' and the generated
  trajectories' CLaTr embeddings (:mod:`storylab.camera.retrieval`, the authors' CLaTr metrics).

Two protocols (:class:`EvalProtocol`):

* ``storylab`` (default): every metric on the test split, P/R/D/C on the whole set at once.
* ``paper``: the authors' evaluation script - FD_CLaTr and P/R/D/C from generating the *train* split
  (its samples sorted by id, P/R/D/C averaged over 5 equal chunks), CLaTr-Score and C-metrics on
  the test split; with the ``mixed`` subset this is how the paper's Table 2 was measured.

P/R/D/C take the real set first by default (the definitions of Kynkaenniemi et al. and Naeem et al.);
``prdc_as_published`` reproduces the published code instead (:func:`prdc_as_published`), so numbers
can be lined up with the paper's table.
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
PROTOCOLS = ("storylab", "paper")


@dataclass
class EvalProtocol:
    """How the metrics are computed (see the module docstring)."""

    name: str = "storylab"
    prdc_as_published: bool = False
    sample_latent: bool = True  # CLaTr embeddings: a latent draw as the authors, or the mean (False)
    prdc_chunks: int = 1

    @classmethod
    def build(cls, name: str, prdc_as_published: bool = False, sample_latent: bool = True) -> "EvalProtocol":
        from storylab.errors import StorylabError

        if name not in PROTOCOLS:
            raise StorylabError(f"unknown protocol '{name}' (choose from {', '.join(PROTOCOLS)})")
        return cls(name, prdc_as_published, sample_latent, 5 if name == "paper" else 1)


def clatr_score(traj_emb: torch.Tensor, text_emb: torch.Tensor) -> float:
    """max(0, 100 x mean cosine similarity) between paired trajectory and text embeddings."""
    cos = torch.nn.functional.cosine_similarity(traj_emb, text_emb, dim=-1).mean()
    return max(0.0, 100.0 * float(cos))


def prdc_as_published(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float, float, float]:
    """Precision, recall, density, coverage as the published DIRECTOR code computes them.

    Its metric is called with (generated, reference) for its (real, fake) arguments, so every role is
    swapped, and its recall compares d(g_i, r_j) with the k-NN radius of reference *i* (a radius
    indexed by the generated sample's position; the sets have equal size there). Open balls (<).
    Written out here only to reproduce those numbers; :func:`storylab.metrics.precision_recall` and
    :func:`storylab.metrics.density_coverage` are the definitions.
    """
    from scipy.spatial.distance import cdist

    gen, ref = np.asarray(fake, np.float64), np.asarray(real, np.float64)
    if len(gen) != len(ref):
        from storylab.errors import StorylabError
        raise StorylabError(f"--prdc-as-published needs as many generated as reference samples "
                            f"({len(gen)} and {len(ref)})")
    radius = lambda a: np.sort(cdist(a, a), axis=1)[:, k]  # noqa: E731  (k-th neighbour besides itself)
    r_gen, r_ref = radius(gen), radius(ref)
    d = cdist(gen, ref)  # (generated i, reference j)
    precision = float((d < r_gen[:, None]).any(axis=0).mean())
    recall = float((d < r_ref[:, None]).any(axis=1).mean())
    density = float((d < r_gen[:, None]).sum(axis=0).mean() / k)
    coverage = float((d.min(axis=1) < r_gen).mean())
    return precision, recall, density, coverage


def manifold_metrics(real: np.ndarray, fake: np.ndarray, protocol: EvalProtocol) -> dict[str, float]:
    """P/R/D/C (k = 3) of paired real/fake embeddings, averaged over ``protocol.prdc_chunks`` chunks."""
    from storylab.metrics import density_coverage, precision_recall

    rows = []
    for r, f in zip(np.array_split(real, protocol.prdc_chunks) if protocol.prdc_chunks > 1 else [real],
                    np.array_split(fake, protocol.prdc_chunks) if protocol.prdc_chunks > 1 else [fake]):
        if protocol.prdc_as_published:
            rows.append(prdc_as_published(r, f, k=3))
        else:
            rows.append(precision_recall(r, f, k=3) + density_coverage(r, f, k=3))
    p, rec, d, c = np.mean(rows, axis=0)
    return {"P": float(p), "R": float(rec), "D": float(d), "C": float(c)}


def distribution_metrics(clatr: Clatr, real_feats: list, fake_feats: list, protocol: EvalProtocol,
                         seed: int = 0) -> dict[str, float]:
    """FD_CLaTr and P/R/D/C between CLaTr embeddings of real and generated trajectories."""
    from storylab.metrics import frechet_distance

    real = embed_trajectories(clatr, real_feats, sample=protocol.sample_latent, seed=seed).numpy()
    fake = embed_trajectories(clatr, fake_feats, sample=protocol.sample_latent, seed=seed + 1).numpy()
    return {"FD_CLaTr": float(frechet_distance(real, fake)), **manifold_metrics(real, fake, protocol)}


def semantic_metrics(clatr: Clatr, fake_feats: list, text: torch.Tensor, reference: list,
                     protocol: EvalProtocol, seed: int = 0) -> dict[str, float]:
    """CLaTr-Score and C-P/C-R/C-F1; a sample whose reference tags are missing (None) is left out of the
    C-metrics, and they are NaN when no sample has tags."""
    fake = embed_trajectories(clatr, fake_feats, sample=protocol.sample_latent, seed=seed + 2)
    text_emb = embed_texts(clatr, text, sample=protocol.sample_latent, seed=seed + 3)
    keep = [i for i, r in enumerate(reference) if r is not None]
    static = float("nan")
    if keep:
        retagged = retag([fake_feats[i] for i in keep])
        tags = classification_scores([reference[i] for i in keep], retagged)
        still = [t for t, i in zip(retagged, keep) if (reference[i] == 0).all()]
        if still:  # the share of frames re-tagged static on the captions whose camera never moves
            static = float(np.mean(np.concatenate(still) == 0))
    else:
        tags = {"C-P": float("nan"), "C-R": float("nan"), "C-F1": float("nan")}
    tags["static on all-static"] = static
    from storylab.camera.retrieval import retrieval_metrics

    retrieval = retrieval_metrics(text_emb.numpy(), fake.numpy(), text.float().numpy())
    return {"CLaTr-Score": clatr_score(fake, text_emb), **tags, **retrieval}


def trajectory_metrics(clatr: Clatr, real_feats: list, fake_feats: list, text: torch.Tensor,
                       reference_tags: list, protocol: EvalProtocol | None = None, seed: int = 0) -> dict[str, float]:
    """All CLaTr-style metrics of generated features against one real split."""
    protocol = protocol or EvalProtocol()
    return {**distribution_metrics(clatr, real_feats, fake_feats, protocol, seed),
            **semantic_metrics(clatr, fake_feats, text, reference_tags, protocol, seed)}


@dataclass
class ConfigResult:
    name: str
    metrics: dict[str, float]


def split_reference(data) -> tuple[list, list]:
    """Real (n_i, 9) features of a split and their reference tags (None where cam_segments/ has none)."""
    real = split_valid(data.x, data.mask)
    missing = set(data.missing_tags or [])
    tags = reference_tags(data.cam_segments, list(range(len(real))), [len(f) for f in real])
    return real, [None if sid in missing else t for sid, t in zip(data.ids, tags)]


def evaluate_configs(nets: dict[str, Director], test, clatr: Clatr, cfg: SamplingConfig, seed: int = 0,
                     progress: bool = True, protocol: EvalProtocol | None = None,
                     train=None) -> list[ConfigResult]:
    """Metrics of every config, plus the real set as a reference row.

    ``protocol.name == "paper"`` needs ``train`` (the split FD_CLaTr and P/R/D/C are measured on).
    """
    protocol = protocol or EvalProtocol()
    real_test, ref_test = split_reference(test)
    dist_data = train if protocol.name == "paper" else test
    if dist_data is None:
        from storylab.errors import StorylabError
        raise StorylabError("the paper protocol measures FD_CLaTr on the train split; none was given")
    real_dist = real_test if dist_data is test else split_valid(dist_data.x, dist_data.mask)
    results = []
    for arch, net in nets.items():
        fake_test = generate_split(net, test, cfg, seed=seed, progress=progress)
        fake_dist = fake_test if dist_data is test else generate_split(net, dist_data, cfg, seed=seed, progress=progress)
        metrics = {**distribution_metrics(clatr, real_dist, fake_dist, protocol, seed),
                   **semantic_metrics(clatr, fake_test, test.text, ref_test, protocol, seed)}
        label = "2-stage C" if net.cfg.two_stage else ARCH_LETTERS.get(net.cfg.arch, "?")
        results.append(ConfigResult(f"{label} ({arch})", metrics))
    real = {**distribution_metrics(clatr, real_dist, real_dist, protocol, seed),
            **semantic_metrics(clatr, real_test, test.text, ref_test, protocol, seed)}
    results.append(ConfigResult("real data", real))
    return results


def retrieval_table(results: list[ConfigResult], title: str):
    """A rich table of the text->trajectory and trajectory->text R@k and MedR of each result."""
    from rich.table import Table

    from storylab.camera.retrieval import RECALL_AT

    table = Table(title=title)
    table.add_column("method")
    keys = [f"{d} {m}" for d in ("text->traj", "traj->text") for m in [f"R@{k}" for k in RECALL_AT] + ["MedR"]]
    for k in keys:
        table.add_column(k + (" ↓" if k.endswith("MedR") else " ↑"), justify="right")
    for r in results:
        table.add_row(r.name, *(f"{r.metrics[k]:.2f}" for k in keys))
    return table


def results_table(results: list[ConfigResult], title: str, caption: str | None = None):
    """A rich table of the results (columns as in the paper's Table 2); NaN shows as n/a."""
    from rich.table import Table

    cols = ["FD_CLaTr", "P", "R", "D", "C", "CLaTr-Score", "C-P", "C-R", "C-F1"]
    table = Table(title=title, caption=caption)
    table.add_column("method")
    for c in cols:
        table.add_column(c + (" ↓" if c == "FD_CLaTr" else " ↑"), justify="right")
    for r in results:
        table.add_row(r.name, *("n/a" if np.isnan(r.metrics[c]) else f"{r.metrics[c]:.3f}" for c in cols))
    return table
