"""Two-stage DIRECTOR: camera-frame motion features, the no-motion gate, the motion planner, training and generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from storylab.camera.director import Director, DirectorConfig
from storylab.camera.features import encode_camera
from storylab.camera.motion import (apply_motion_gate, codes_to_labels, decode_ego, ego_scales, ego_to_world, encode_ego,
                                    plan_rows, tag_codes, world_to_ego)
from storylab.camera.sampling import SamplingConfig, sample_trajectories
from storylab.camera.synth import SynthConfig, camera_path, character_path
from storylab.camera.tagging import camera_velocities, tag_camera
from storylab.errors import StorylabError


def trajectory(seed: int, primitives=("truck", "orbit", "boom"), n: int = 160) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cfg = SynthConfig()
    return camera_path(list(primitives), character_path("turn", n, cfg, rng), cfg, rng)


def test_zero_motion_rows_decode_to_a_static_camera_exactly():
    """Whatever the first pose, all-zero rows after it are a camera that neither moves nor turns (bit for bit)."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        first = encode_ego(trajectory(int(rng.integers(100)))[:1], 0.01, np.array([0.02, 0.01, 0.03]))
        feats = np.concatenate([first, np.zeros((120, 9), np.float32)])
        poses = decode_ego(feats, float(rng.uniform(1e-3, 1)), rng.uniform(1e-3, 1, 3))
        assert np.array_equal(poses, np.broadcast_to(poses[0], poses.shape))
        assert (tag_camera(poses).frames == 0).all()


def test_ego_features_round_trip_and_carry_the_tagger_velocity():
    poses = trajectory(1)
    rot_scale, trans_scale = 0.004, np.array([0.02, 0.008, 0.03])
    feats = encode_ego(poses, rot_scale, trans_scale)
    back = decode_ego(feats, rot_scale, trans_scale)
    assert np.abs(back - poses).max() < 1e-5  # float32 features
    # row t's translation is the tagger's camera-frame velocity of motion t - 1, divided by fps and the scale
    velocity = camera_velocities(poses) / 25.0
    np.testing.assert_allclose(feats[1:, 6:] * trans_scale, velocity, rtol=1e-5, atol=1e-8)


def test_ego_and_world_features_convert_both_ways_on_padded_batches():
    poses = [trajectory(2, n=90), trajectory(3, n=60)]
    world = torch.zeros(2, 100, 9)
    mask = torch.zeros(2, 100, dtype=torch.bool)
    for i, p in enumerate(poses):
        world[i, :len(p)] = torch.from_numpy(encode_camera(p))
        mask[i, :len(p)] = True
    rot, trans = ego_scales(poses)
    back = ego_to_world(world_to_ego(world, mask, rot, trans), mask, rot, trans)
    assert torch.allclose(back, world, atol=2e-4) and (back[~mask] == 0).all()


def test_ego_scales_are_root_mean_squares_of_the_unit_features():
    poses = [trajectory(4), trajectory(5, ("push", "static"))]
    rows = np.concatenate([encode_ego(p, 1.0, np.ones(3))[1:] for p in poses])
    rot, trans = ego_scales(poses)
    assert rot == pytest.approx(np.sqrt(np.mean(rows[:, :6] ** 2)))
    np.testing.assert_allclose(trans, np.sqrt(np.mean(rows[:, 6:] ** 2, axis=0)))


def test_tag_codes_cover_the_27_classes_and_plan_rows_shift_by_one():
    labels = np.arange(27)
    codes = tag_codes(labels)
    assert set(np.unique(codes)) == {-1.0, 0.0, 1.0}
    np.testing.assert_array_equal(codes_to_labels(codes), labels)
    np.testing.assert_array_equal(codes[9], [1, 0, 0])   # trucking_right: x positive
    np.testing.assert_array_equal(codes[2], [0, 0, -1])  # pull_out: z negative
    segs = torch.tensor([[9, 9, 2, -1, -1], [0, 5, 5, 5, -1]])
    rows = plan_rows(segs)
    assert rows.shape == (2, 5, 3)
    assert (rows[:, 0] == 0).all()  # row 0 has no motion before it
    np.testing.assert_array_equal(rows[0, 1:4].numpy(), tag_codes(np.array([9, 9, 2])))
    np.testing.assert_array_equal(rows[1, 1:5].numpy(), tag_codes(np.array([0, 5, 5, 5])))
    assert (rows[0, 4] == 0).all()  # after the last tag of a 4-pose sample


def test_motion_gate_zeroes_still_axes_or_still_frames_only():
    x = torch.randn(1, 4, 9)
    plan = torch.tensor([[[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, -1, 1]]], dtype=torch.float)
    axis = apply_motion_gate(x, plan, "axis")
    frame = apply_motion_gate(x, plan, "frame")
    assert torch.equal(axis[..., :6], x[..., :6]) and torch.equal(frame[..., :6], x[..., :6])  # rotation untouched
    assert torch.equal(axis[0, 0], x[0, 0]) and torch.equal(frame[0, 0], x[0, 0])  # row 0 is absolute
    expected = x[..., 6:].clone()
    expected[0, 1, 1:] = 0
    expected[0, 2] = 0
    expected[0, 3, 0] = 0
    assert torch.equal(axis[..., 6:], expected)
    expected = x[..., 6:].clone()
    expected[0, 2] = 0
    assert torch.equal(frame[..., 6:], expected)
    assert torch.equal(apply_motion_gate(x, plan, "none"), x)
    with pytest.raises(StorylabError, match="unknown motion gate 'soft'"):
        apply_motion_gate(x, plan, "soft")


def tiny_two_stage() -> Director:
    torch.manual_seed(0)
    cfg = DirectorConfig.build("crossattn", model="twostage", d_model=16, n_layers=1, n_heads=2, cond_layers=1,
                               n_registers=2, max_frames=80, text_dim=8, dropout=0.0, planner_layers=1,
                               ego_rot_scale=0.004, ego_trans_scale=(0.02, 0.01, 0.03))
    return Director(cfg).eval()


def condition(b: int = 2, t: int = 70) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 50:] = False
    return {"char": torch.randn(b, t, 3, generator=g), "text": torch.zeros(b, 8),
            "text_tokens": torch.randn(b, 6, 8, generator=g), "text_mask": torch.ones(b, 6), "mask": mask}


def test_a_still_plan_generates_a_static_camera_whatever_the_denoiser():
    """Force the planner to say 'still' on every axis: the generated camera stands still exactly, at w 1.4."""
    net = tiny_two_stage()
    with torch.no_grad():
        net.planner.head.weight.zero_()
        net.planner.head.bias.copy_(torch.tensor([5.0, 0.0, 0.0] * 3 * net.cfg.planner_patch))
    cond = condition()
    feats = sample_trajectories(net, cond, 70, SamplingConfig(steps=3), seed=0)
    from storylab.camera.features import decode_camera

    for i, n in enumerate(cond["mask"].sum(1).tolist()):
        poses = decode_camera(feats[i, :n].double().numpy())
        assert np.abs(poses[:, :3, 3] - poses[0, :3, 3]).max() < 1e-5  # the world features are float32
        assert (tag_camera(poses).frames == 0).all()


def test_planner_output_follows_ets_segment_rules():
    """Plans are per-axis codes whose labels have no segment shorter than E.T.'s 25 frames (after merging)."""
    net = tiny_two_stage()
    cond = condition()
    plan = net.planner.plan(cond)
    assert plan.shape == (2, 70, 3) and set(torch.unique(plan).tolist()) <= {-1.0, 0.0, 1.0}
    assert (plan[:, 0] == 0).all() and (plan[1, 50:] == 0).all()
    from storylab.camera.tagging import segments_of

    for i, n in enumerate(cond["mask"].sum(1).tolist()):
        labels = codes_to_labels(plan[i, 1:n].numpy())
        segs = segments_of(labels)
        assert len(segs) == 1 or min(s.length for s in segs) >= 25


def test_two_stage_needs_crossattn_and_a_known_representation():
    with pytest.raises(StorylabError, match="the motion planner needs config crossattn"):
        DirectorConfig.build("adaln", model="twostage")
    with pytest.raises(StorylabError, match="unknown trajectory representation 'polar'"):
        DirectorConfig.build("crossattn", representation="polar")
    with pytest.raises(StorylabError, match="unknown model 'vq'"):
        DirectorConfig.build("crossattn", model="vq")
    assert not DirectorConfig.build("crossattn").two_stage  # the paper's DIRECTOR stays the default of build


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from storylab.camera.synth import write_synth_dataset

    root = tmp_path_factory.mktemp("et2")
    write_synth_dataset(str(root), 26, seed=3, test_fraction=6 / 26, cfg=SynthConfig(max_seconds=2.5), progress=False)
    return root


def test_tiny_two_stage_trains_generates_and_never_reads_reference_tags(tiny_set, tmp_path):
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.sampling import generate_split
    from storylab.camera.training import load_director
    from storylab.text_encoder import SentenceEncoder
    from storylab.training import load_checkpoint
    from tests.cli_runner import run_cli

    ckpt = tmp_path / "two.safetensors"
    result = run_cli("train", "director", "--data", str(tiny_set), "--model", "twostage", "--steps", "3",
                     "--batch-size", "4", "--out", str(ckpt), "--eval-every", "3")
    assert result.returncode == 0, result.stderr
    assert "step 3: C-P" in result.stdout and "--model twostage" in load_checkpoint(ckpt, "director").extra["command"]
    net, _ = load_director(ckpt)
    assert net.cfg.two_stage and net.cfg.representation == "ego" and net.cfg.ego_rot_scale != 1.0
    out = tmp_path / "traj.txt"
    result = run_cli("camera", "generate", "The camera trucks right while the character walks right.",
                     "--checkpoint", str(ckpt), "--frames", "60", "--char-motion", "right", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 60

    # generation reads the caption, the character and the length, never the sample's reference tags
    test = attach_text(load_samples(tiny_set, part="test", progress=False), SentenceEncoder(), tiny_set, True, False)
    first = generate_split(net, test, SamplingConfig(steps=3), seed=5)
    test.cam_segments = torch.randint(0, 27, test.cam_segments.shape)
    second = generate_split(net, test, SamplingConfig(steps=3), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
