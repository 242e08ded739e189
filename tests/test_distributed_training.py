"""Every trainer family on two CPU processes (gloo), through storylab's own trainer functions.

For one trainer of each family (images denoiser, zoo VAE, ControlNet, DIRECTOR, FunnyNet-W) the run
ends, the two processes saw different samples, their weights are bitwise equal after the last
step, the checkpoint loads in the matching command, and (where the loss of a batch is the mean of
per-sample losses) a 2-process run with per-process batch B ends where a 1-process run with batch
2B ends: DistributedDataParallel's averaged gradient of two B-batches is the gradient of their
union. For that comparison the noise a sample gets is made a function of the sample itself, dropout
is off and BatchNorm uses its running statistics, so nothing depends on which process or batch a
sample is in.

The processes are forked from this one with accelerate's debug rendezvous (a file store), so no
second torch import is paid; one test runs the real ``accelerate launch --multi_gpu`` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from storylab.errors import StorylabError
from storylab.training import TrainConfig, load_checkpoint, load_resume_state, state_path_for
from tests.cli_runner import run_cli

STEPS, B = 3, 4
BATCH = {"funnynet": 2}  # per process; FunnyNet-W's 16 clips make 4 steps of 2 x 2


# ---- launching ----------------------------------------------------------------------------------

def launch(fn, args: tuple, num_processes: int) -> None:
    """Run ``fn(*args)`` in ``num_processes`` forked CPU processes joined by a gloo process group
    (accelerate's ``debug_launcher``, with the rendezvous file of our own so that runs never share one)."""
    from accelerate.utils import PrepareForLaunch, patch_environment
    from torch.multiprocessing import start_processes

    with tempfile.TemporaryDirectory() as tmp, patch_environment(
            world_size=num_processes, master_addr="127.0.0.1", master_port="29500", accelerate_mixed_precision="no",
            accelerate_debug_rdv_file=os.path.join(tmp, "rdv"), accelerate_use_cpu="yes", gloo_socket_ifname="lo"):
        start_processes(PrepareForLaunch(fn, debug=True), args=args, nprocs=num_processes, start_method="fork")


class FixedNoise:
    """``torch`` for a loss module, with its noise draws replaced by functions of the sample itself:
    ``randn_like(x)`` is a fixed pattern of x's values, ``randn`` zeros, ``randint`` the middle
    value, ``rand`` ones (no condition dropout). A sample's noise then does not depend on the batch
    or the process it lands in, which is what lets a 2 x B run be compared with a 1 x 2B run."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def randn_like(x, **_):
        pattern = torch.arange(x[0].numel(), dtype=x.dtype, device=x.device).reshape(x.shape[1:])
        return torch.sin(7.3 * x.detach() + 0.61 * pattern)

    @staticmethod
    def randn(*size, generator=None, dtype=None, device=None, **_):
        size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return torch.zeros(size, dtype=dtype, device=device)

    @staticmethod
    def randint(low, high=None, size=None, generator=None, device=None, **_):
        low, high = (0, low) if high is None else (low, high)
        return torch.full(tuple(size), (low + high) // 2, dtype=torch.long, device=device)

    @staticmethod
    def rand(*size, generator=None, device=None, **_):
        size = size[0] if len(size) == 1 and isinstance(size[0], (tuple, list, torch.Size)) else size
        return torch.ones(size, device=device)


def _tiny_train_config(steps: int) -> TrainConfig:
    return TrainConfig(steps=steps, lr=2e-3, warmup_steps=0, ema_decay=0.9, checkpoint_every=0, log_every=1, seed=0,
                       progress=False)


def _run_family(family: str, out: Path, batch: int, steps: int, fixed: bool, data: dict) -> None:
    """One real storylab trainer of ``family``, tiny."""
    if family == "denoiser":
        from storylab.images.networks.denoiser import DigitDiffusionConfig, train_digit_model
        from storylab.images.networks.unet import UNetConfig

        config = DigitDiffusionConfig(unet=UNetConfig(channels=8, channel_mult=(1, 2), emb_dim=16, groups=4),
                                      p_uncond=0.0 if fixed else 0.1)
        train_digit_model(out, config, _tiny_train_config(steps), batch_size=batch)
    elif family == "vae":
        from storylab.images.zoo.vae import VAEConfig, train_vae

        train_vae(out, VAEConfig(latent_dim=4, width=8, hidden=32), _tiny_train_config(steps), batch_size=batch)
    elif family == "controlnet":
        from storylab.images.assets import DENOISER
        from storylab.images.control.control_training import ControlTrainingConfig, train_controlnet

        train_controlnet(out, DENOISER, ControlTrainingConfig(kind="canny", steps=steps, batch_size=batch,
                                                              p_uncond=0.0 if fixed else 0.5, eval_every=steps,
                                                              eval_count=2, eval_steps=1), progress=False)
    elif family == "director":
        from storylab.camera.training import DirectorTrainConfig, train_director

        train_director(data["director"], data["director_config"],
                       DirectorTrainConfig(steps=steps, batch_size=batch, warmup_steps=0, progress=False,
                                           p_shared=0.0 if fixed else 0.1, p_modality=0.0 if fixed else 0.1), out)
    elif family == "funnynet":
        import dataclasses

        from storylab.humor.train import FunnyNetTrainConfig, train_funnynet

        config = data["funnynet_config"]
        if fixed:  # dropout off; NT-Xent contrasts a process's batch, so it is left out of the comparison
            config = dataclasses.replace(config, dropout=0.0, modality_dropout=0.0, nt_xent_weight=0.0)
        # the trainer counts epochs: one is 16 clips / (2 processes x 2) = 4 steps, as for 1 process x 4
        train_funnynet(data["funnynet"], config, FunnyNetTrainConfig(epochs=1, batch_size=batch, seed=0, progress=False),
                       out)
    else:
        raise ValueError(family)


def _fresh_state() -> None:
    """A fork inherits the parent's (single-process) accelerate state: start again, on CPU processes."""
    from accelerate.state import AcceleratorState, PartialState

    AcceleratorState._reset_state(True)
    PartialState(cpu=True)


def _worker(family: str, folder: str, batch: int, steps: int, fixed: bool, data: dict) -> None:
    """In each process: run the trainer, recording which samples this process drew and its final weights."""
    from accelerate.state import PartialState

    import storylab.training.loop as loop
    from storylab.training import save_checkpoint

    _fresh_state()
    rank = PartialState().process_index
    seen: list[int] = []
    fetcher = torch.utils.data._utils.fetch._MapDatasetFetcher  # what a loader calls with each batch's indices
    fetch = fetcher.fetch
    fetcher.fetch = lambda self, index: (seen.extend(int(i) for i in index), fetch(self, index))[1]
    if fixed:
        import storylab.diffusion.edm as edm
        import storylab.diffusion.losses as losses
        import storylab.images.zoo.vae as vae

        for module in (losses, edm, vae):
            module.torch = FixedNoise()
        # BatchNorm (FunnyNet-W's audio CNN) normalises with its running statistics, not the batch's,
        # and every dropout layer (the audio CNN's own included) passes its input through
        torch.nn.modules.batchnorm._BatchNorm.train = lambda self, mode=True: torch.nn.Module.train(self, False)
        torch.nn.Dropout.forward = lambda self, x: x
    final: dict = {}
    real_train = loop.train

    def capture(*args, **kwargs):
        final["initial"] = {k: v.detach().clone() for k, v in args[0].state_dict().items()}
        state = real_train(*args, **kwargs)
        final["model"] = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        final["steps"] = state.step
        final["loss"] = state.losses.get("loss")
        return state

    for module in list(sys.modules.values()):  # every trainer module's ``from storylab.training import train``
        if getattr(module, "train", None) is real_train and getattr(module, "__name__", "").startswith("storylab"):
            module.train = capture
    _run_family(family, Path(folder) / "model.safetensors", batch, steps, fixed, data)
    save_checkpoint(Path(folder) / f"rank{rank}.safetensors",
                    {**final["model"], **{f"initial.{k}": v for k, v in final["initial"].items()}}, "test-weights", {},
                    {"seen": seen, "steps": final["steps"], "loss": final["loss"],
                     "world": PartialState().num_processes})


def _result(folder: Path, rank: int, initial: bool = False):
    """The final weights (or, with ``initial``, the weights before the first step) and the record of ``rank``."""
    ckpt = load_checkpoint(folder / f"rank{rank}.safetensors", "test-weights")
    prefix = "initial."
    weights = {k[len(prefix):] if initial else k: v for k, v in ckpt.state_dict.items() if k.startswith(prefix) == initial}
    return weights, ckpt.extra


# ---- the data each family needs, made once ------------------------------------------------------

@pytest.fixture(scope="module")
def family_data(tmp_path_factory) -> dict:
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.director import DirectorConfig
    from storylab.camera.synth import SynthConfig, write_synth_dataset
    from storylab.humor.config import FunnyNetConfig
    from storylab.humor.data import clip_inputs
    from storylab.humor.synth import SynthConfig as SitcomConfig, synth_sitcom
    from storylab.text_encoder import SentenceEncoder

    root = tmp_path_factory.mktemp("dist-data")
    write_synth_dataset(str(root / "et"), 30, seed=3, test_fraction=4 / 30, cfg=SynthConfig(max_seconds=2.5),
                        progress=False)
    encoder = SentenceEncoder(None)
    director_config = DirectorConfig.build("crossattn", "tiny")
    import dataclasses

    director_config = dataclasses.replace(director_config, text_dim=encoder.dim)
    director = attach_text(load_samples(root / "et", "mixed", "train"), encoder, root / "et", True)
    synth_sitcom(root / "sitcom", SitcomConfig(episodes=1, duration=24.0, scenes=1, fps=5, width=64, height=48, seed=3),
                 progress=False)
    funny_config = FunnyNetConfig(modalities="at", dim=32, audio_channels=4, audio_dim=16, frames=2, frame_size=16,
                                  text_tokens=4, tokens=4)
    starts = [float(s) for s in range(16)]
    episode = str(root / "sitcom" / "episode_001.mp4")
    funnynet = clip_inputs([episode] * len(starts), starts, [s + funny_config.window for s in starts],
                           [i % 2 for i in range(len(starts))], ["a line"] * len(starts), funny_config, {})
    return {"director": director, "director_config": director_config, "funnynet": funnynet,
            "funnynet_config": funny_config, "et": root / "et", "episode": episode}


# ---- the properties -----------------------------------------------------------------------------

FAMILIES = ["denoiser", "vae", "controlnet", "director", "funnynet"]
# DIRECTOR batches group samples of similar length, so a batch of 2B is not the union of two batches of B
EQUIVALENT = ["denoiser", "vae", "controlnet", "funnynet"]


@pytest.mark.parametrize("family", FAMILIES)
def test_two_processes_train_in_lockstep_on_different_samples(family, family_data, tmp_path):
    launch(_worker, (family, str(tmp_path), BATCH.get(family, B), STEPS, False, family_data), 2)
    (w0, r0), (w1, r1) = _result(tmp_path, 0), _result(tmp_path, 1)
    assert r0["world"] == r1["world"] == 2 and r0["steps"] == r1["steps"] == (4 if family == "funnynet" else STEPS)
    assert r0["seen"] and r1["seen"] and not set(r0["seen"]) & set(r1["seen"])  # the loader was sharded
    assert r0["loss"] == r1["loss"]  # the logged loss is the mean over both processes
    assert set(w0) == set(w1)
    assert all(torch.equal(w0[k], w1[k]) for k in w0), [k for k in w0 if not torch.equal(w0[k], w1[k])][:3]
    out = tmp_path / "model.safetensors"
    assert out.exists() and not (tmp_path / "model.tmp").exists()
    _loads_in_its_command(family, out, family_data, tmp_path)


def _loads_in_its_command(family: str, out: Path, data: dict, tmp_path: Path) -> None:
    """The checkpoint the main process wrote is used by the command that consumes it."""
    if family == "denoiser":
        args = ["sample", "digits", "--checkpoint", out, "--classes", "3", "--per-class", "1", "--steps", "2",
                "--no-progress", "--out", tmp_path / "s.png"]
    elif family == "vae":
        args = ["sample", "vae", "--checkpoint", out, "--per-class", "1", "--pairs", "1", "--out", tmp_path / "s.png"]
    elif family == "controlnet":
        import numpy as np
        from PIL import Image

        from storylab.images.control.conditions import extract
        from storylab.images.data.datasets import load_split

        digit = (load_split("digits", "test").images[0, 0].numpy() + 1) / 2
        Image.fromarray((extract("canny", digit) * 255).astype(np.uint8)).save(tmp_path / "cond.png")
        args = ["sample", "digits", "--classes", "none", "--per-class", "1", "--steps", "2", "--no-progress",
                "--control", f"{out}={tmp_path / 'cond.png'}", "--out", tmp_path / "s.png"]
    elif family == "director":
        args = ["camera", "generate", "the camera pushes in", "--checkpoint", out, "--steps", "2",
                "--out", tmp_path / "traj.txt"]
    else:
        args = ["humor", "detect", data["episode"], "--checkpoint", out, "--plot", tmp_path / "t.png"]
    result = run_cli(*map(str, args))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("family", EQUIVALENT)
def test_two_processes_of_batch_b_equal_one_process_of_batch_2b(family, family_data, tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    batch = BATCH.get(family, B)
    launch(_worker, (family, str(two), batch, STEPS, True, family_data), 2)
    launch(_worker, (family, str(one), 2 * batch, STEPS, True, family_data), 1)
    (w2, r2), (w1, r1) = _result(two, 0), _result(one, 0)
    assert r1["world"] == 1 and r2["world"] == 2 and r1["steps"] == r2["steps"]
    seen_one, seen_two = r1["seen"], [r2["seen"], _result(two, 1)[1]["seen"]]
    for step in range(r1["steps"]):  # step k of the two processes took the samples of the one process's step k
        assert set(seen_one[2 * batch * step:2 * batch * (step + 1)]) == {
            i for seen in seen_two for i in seen[batch * step:batch * (step + 1)]}
    w0, _ = _result(one, 0, initial=True)
    assert all(torch.equal(w0[k], _result(two, 0, initial=True)[0][k]) for k in w0)  # the same start
    keys = [k for k in w1 if w1[k].is_floating_point()]
    update_one = torch.cat([(w1[k].double() - w0[k].double()).flatten() for k in keys])
    update_two = torch.cat([(w2[k].double() - w0[k].double()).flatten() for k in keys])
    # Adam divides by sqrt(v): a gradient that is ~0 up to rounding may move either way by lr, so the
    # updates are compared as vectors (relative norm), not element by element
    gap = float((update_two - update_one).norm() / update_one.norm())
    print(f"{family}: |update(2 x {batch}) - update(1 x {2 * batch})| / |update(1 x {2 * batch})| = {gap:.2e}")
    assert gap < 1e-3, gap
    assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-5)


# ---- launch and resume errors -------------------------------------------------------------------

def _resume_worker(folder: str) -> None:
    from accelerate.state import PartialState

    _fresh_state()
    from storylab.images.zoo.autoencoder import AEConfig, train_autoencoder

    try:
        train_autoencoder(Path(folder) / "ae.safetensors", AEConfig(), _tiny_train_config(4), batch_size=8)
    except StorylabError as exc:
        Path(folder, f"error{PartialState().process_index}.txt").write_text(str(exc))


def test_a_state_of_another_process_count_is_one_line(tmp_path):
    from storylab.images.zoo.autoencoder import AEConfig, train_autoencoder

    out = tmp_path / "ae.safetensors"
    train_autoencoder(out, AEConfig(), _tiny_train_config(2), batch_size=8)  # one process: this one
    assert state_path_for(out).exists()
    launch(_resume_worker, (str(tmp_path),), 2)
    for rank in (0, 1):
        line = (tmp_path / f"error{rank}.txt").read_text()
        assert line == (f"{state_path_for(out)} was written by a run on 1 process, this run has 2; relaunch with "
                        f"--num_processes 1, or delete {state_path_for(out)} or pass --no-resume to start over")


def _small_worker(folder: str) -> None:
    from accelerate.state import PartialState

    _fresh_state()
    from storylab.images.networks.denoiser import DigitDiffusionConfig, train_digit_model
    from storylab.images.networks.unet import UNetConfig

    try:
        train_digit_model(Path(folder) / "d.safetensors", DigitDiffusionConfig(unet=UNetConfig(channels=8, groups=4)),
                          _tiny_train_config(2), batch_size=1000)
    except StorylabError as exc:
        Path(folder, f"error{PartialState().process_index}.txt").write_text(str(exc))


def test_a_training_set_too_small_for_the_processes_is_one_line(tmp_path):
    from storylab.images.data.datasets import load_split

    n = len(load_split("digits", "train").labels)
    launch(_small_worker, (str(tmp_path),), 2)
    assert (tmp_path / "error0.txt").read_text() == (
        f"the training set ({n} examples) makes 1 batch, fewer than the 2 processes: lower --batch-size "
        "or launch fewer processes")
    assert not (tmp_path / "d.safetensors").exists()


LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1", "--main_process_port", "0",
          "--mixed_precision", "no",
          "--dynamo_backend", "no"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1",
            "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}


def test_accelerate_launch_multi_gpu_runs_train_digits_on_two_processes(tmp_path):
    """The README's command, as a user types it (CPU processes)."""
    out = tmp_path / "d.safetensors"
    result = subprocess.run([*LAUNCH, "--multi_gpu", "--num_processes", "2", "-m", "storylab.cli", "train", "digits",
                             "--steps", "2", "--batch-size", "8", "--channels", "8", "--no-progress", "--out", str(out)],
                            capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"saved {out}") == 1  # the main process alone reports
    assert load_checkpoint(out, "digits-denoiser").extra["step"] == 2
    assert load_resume_state(state_path_for(out))["num_processes"] == 2


def test_num_processes_without_a_multi_process_launcher_is_one_line(tmp_path):
    out = tmp_path / "d.safetensors"
    result = subprocess.run([*LAUNCH, "--num_processes", "2", "-m", "storylab.cli", "train", "digits", "--steps", "2",
                             "--no-progress", "--out", str(out)], capture_output=True, text=True, env=_env(), timeout=300)
    # accelerate's launcher adds its own CalledProcessError report after the worker's exit status 2
    assert result.returncode != 0 and "returned non-zero exit status 2" in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: accelerate launch started one process although more were asked for (its simple "
                      "launcher runs one worker); add --multi_gpu (with ACCELERATE_USE_CPU=1 for CPU processes), "
                      "or drop --num_processes"]
    assert "storylab" not in result.stderr.split("error:")[0] and not out.exists()  # no storylab traceback


def test_the_launcher_check_reads_what_each_launcher_sets():
    from storylab.training.loop import check_launcher

    simple = {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO", "MASTER_ADDR": "127.0.0.1",
              "MASTER_PORT": "29500"}  # accelerate's simple launcher with --num_processes 2
    with pytest.raises(StorylabError, match="^accelerate launch started one process although more were asked for"):
        check_launcher(simple)
    for fine in ({}, {"ACCELERATE_MIXED_PRECISION": "no"},  # plain `storylab`, `accelerate launch` of 1 process
                 {**simple, "WORLD_SIZE": "2", "RANK": "0"}, {**simple, "PMI_SIZE": "2"}):  # torchrun, mpirun
        check_launcher(fine)
