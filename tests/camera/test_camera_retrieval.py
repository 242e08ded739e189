"""CLaTr's retrieval metrics (R@1/2/3/5/10, median rank) on hand-worked similarity matrices."""

from __future__ import annotations

import numpy as np
import pytest

from storylab.camera.retrieval import ground_truth_ranks, ranks_to_metrics, retrieval_metrics

# rows: captions, columns: trajectories; the ground truth is the diagonal
S = np.array([[0.9, 0.1, 0.9, 0.0],
              [0.2, 0.5, 0.7, 0.1],
              [0.3, 0.3, 0.3, 0.3],
              [0.0, 0.8, 0.1, 0.6]])


def test_text_to_trajectory_ranks_average_ties():
    # row 0: one other column ties the diagonal (positions 0 and 1 -> 0.5); row 1: 0.7 is closer (1);
    # row 2: all four tie (positions 0..3 -> 1.5); row 3: 0.8 is closer (1)
    np.testing.assert_array_equal(ground_truth_ranks(S), [0.5, 1.0, 1.5, 1.0])
    m = ranks_to_metrics(ground_truth_ranks(S))
    # R@1 = 1/4 ranks below 1; every rank is below 2; median of (0.5, 1, 1, 1.5) is 1, + 1
    assert m == {"R@1": 25.0, "R@2": 100.0, "R@3": 100.0, "R@5": 100.0, "R@10": 100.0, "MedR": 2.0}


def test_trajectory_to_text_ranks_the_transpose():
    # column 0: 0.9 is the best (0); column 1: 0.8 beats 0.5 (1); column 2: 0.9 and 0.7 beat 0.3 (2); column 3: 0
    np.testing.assert_array_equal(ground_truth_ranks(S.T), [0.0, 1.0, 2.0, 0.0])
    m = ranks_to_metrics(ground_truth_ranks(S.T))
    assert m == {"R@1": 50.0, "R@2": 75.0, "R@3": 100.0, "R@5": 100.0, "R@10": 100.0, "MedR": 1.5}


def test_near_duplicate_captions_count_as_matches_above_the_threshold():
    # captions 0 and 2 are the same sentence: for trajectory 2, caption 0 (0.9) is as right as caption 2 (0.3)
    selfsim = np.eye(4)
    selfsim[0, 2] = selfsim[2, 0] = 1.0
    np.testing.assert_array_equal(ground_truth_ranks(S.T, selfsim, 0.95), [0.0, 1.0, 0.0, 0.0])
    assert ranks_to_metrics(ground_truth_ranks(S.T, selfsim, 0.95))["MedR"] == 1.0
    # a self-similarity of 0.85 is below 2 x 0.95 - 1 = 0.9: not a match, but above 2 x 0.9 - 1 = 0.8
    selfsim[0, 2] = selfsim[2, 0] = 0.85
    np.testing.assert_array_equal(ground_truth_ranks(S.T, selfsim, 0.95), [0.0, 1.0, 2.0, 0.0])
    np.testing.assert_array_equal(ground_truth_ranks(S.T, selfsim, 0.9), [0.0, 1.0, 0.0, 0.0])


def test_retrieval_metrics_of_embeddings_and_their_errors():
    emb = np.eye(12)
    m = retrieval_metrics(emb * 3.0, emb + 0.01, caption_features=None)  # scale does not matter (cosine)
    assert all(m[f"{d} R@{k}"] == 100.0 for d in ("text->traj", "traj->text") for k in (1, 2, 3, 5, 10))
    assert m["text->traj MedR"] == m["traj->text MedR"] == 1.0
    # reversing the pairing: every ground truth is the worst of 12 (rank 11, MedR 12)
    rev = retrieval_metrics(emb, -emb + 1.0, caption_features=None)
    assert rev["text->traj R@10"] == 0.0 and rev["text->traj MedR"] == 12.0
    with pytest.raises(ValueError, match="square similarity matrix"):
        ground_truth_ranks(np.zeros((2, 3)))


def test_evaluate_clatr_prints_and_writes_retrieval(tmp_path):
    import json

    from storylab.camera.synth import SynthConfig, write_synth_dataset
    from tests.cli_runner import run_cli

    root = tmp_path / "et"
    write_synth_dataset(str(root), 12, seed=4, test_fraction=0.5, cfg=SynthConfig(max_seconds=2.5), progress=False)
    report = tmp_path / "r.json"
    result = run_cli("evaluate", "clatr", "--data", str(root), "--out", str(report))
    assert result.returncode == 0, result.stderr
    info = json.loads(report.read_text())
    assert info["test_samples"] == 6 and info["threshold"] == 0.95
    metrics = info["metrics"]
    assert set(metrics) == {f"{d} {k}" for d in ("text->traj", "traj->text")
                            for k in ("R@1", "R@2", "R@3", "R@5", "R@10", "MedR")}
    assert metrics["text->traj R@10"] == 100.0  # 6 candidates: every rank is below 10
    assert 1.0 <= metrics["traj->text MedR"] <= 6.0 and "R@1" in result.stdout and "MedR" in result.stdout
    bad = run_cli("evaluate", "clatr", "--data", str(root), "--threshold", "2", "--out", str(tmp_path / "x.json"))
    assert bad.returncode == 2 and bad.stderr.strip() == ("error: Invalid value for '--threshold': must be 0<=x<=1, "
                                                          "got 2.0 (see 'storylab evaluate clatr --help')")
    assert not (tmp_path / "x.json").exists()
