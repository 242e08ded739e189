"""The shared Accelerate training loop: learning, atomic checkpoints, resume, NaN stop, 2 processes."""

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.training import TrainConfig, load_checkpoint, load_resume_state, save_checkpoint, state_path_for, train


def _regression_loader(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True,
                                       generator=torch.Generator().manual_seed(seed))


def _mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def _config(steps, **kw):
    return TrainConfig(steps=steps, lr=0.05, lr_schedule="constant", ema_decay=None, checkpoint_every=10,
                       log_every=5, progress=False, **kw)


def test_loop_learns_a_linear_map():
    model = nn.Linear(3, 1)
    state = train(model, _mse, _regression_loader(), _config(120))
    assert state.history[-1]["loss"] < 0.01 * state.history[0]["loss"]


def test_checkpoint_round_trip_and_kind_check(tmp_path):
    model = nn.Linear(3, 1)
    path = save_checkpoint(tmp_path / "m.safetensors", model.state_dict(), "toy", {"width": 3}, {"seed": 1})
    ckpt = load_checkpoint(path, "toy")
    assert ckpt.config == {"width": 3} and ckpt.extra == {"seed": 1}
    assert torch.equal(ckpt.state_dict["weight"], model.weight.detach())
    with pytest.raises(StorylabError, match="is a 'toy' checkpoint, expected 'digits-denoiser'"):
        load_checkpoint(path, "digits-denoiser")
    with pytest.raises(StorylabError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(StorylabError, match="not a storylab checkpoint"):
        load_checkpoint(junk)


def test_resume_continues_from_the_saved_step(tmp_path):
    out = tmp_path / "m.safetensors"
    saved = []

    def save(raw, ema, step):
        saved.append(step)
        save_checkpoint(out, raw.state_dict(), "toy", {})

    torch.manual_seed(0)
    first = nn.Linear(3, 1)
    train(first, _mse, _regression_loader(), _config(20), save_fn=save, state_path=state_path_for(out))
    assert saved == [10, 20] and load_resume_state(state_path_for(out))["step"] == 20
    # a longer run with the same state resumes at 20 instead of starting over
    second = nn.Linear(3, 1)
    state = train(second, _mse, _regression_loader(), _config(30), save_fn=save, state_path=state_path_for(out))
    assert saved == [10, 20, 30]
    assert state.history[0]["step"] == 25
    assert not torch.equal(second.weight, nn.Linear(3, 1).weight)


def test_a_state_the_caller_already_read_is_resumed_without_reading_the_file_again(tmp_path):
    out = tmp_path / "m.safetensors"
    save = lambda raw, ema, step: save_checkpoint(out, raw.state_dict(), "toy", {})  # noqa: E731
    torch.manual_seed(0)
    train(nn.Linear(3, 1), _mse, _regression_loader(), _config(20), save_fn=save, state_path=state_path_for(out))
    saved = load_resume_state(state_path_for(out))
    state_path_for(out).unlink()  # the loop must take the state it is given, not look for the file
    state = train(nn.Linear(3, 1), _mse, _regression_loader(), _config(30), save_fn=save,
                  state_path=state_path_for(out), resume_state=saved)
    assert state.history[0]["step"] == 25 and load_resume_state(state_path_for(out))["step"] == 30


def test_a_callback_that_stops_the_run_keeps_the_checkpoint_of_its_step(tmp_path):
    out = tmp_path / "m.safetensors"

    class Stop(Exception):
        pass

    def stop_at_10(state):
        if state.step == 10:
            raise Stop

    with pytest.raises(Stop):
        train(nn.Linear(3, 1), _mse, _regression_loader(), _config(30), state_path=state_path_for(out),
              save_fn=lambda raw, ema, step: save_checkpoint(out, raw.state_dict(), "toy", {}, {"step": step}),
              callbacks=[stop_at_10])
    assert load_resume_state(state_path_for(out))["step"] == 10 and load_checkpoint(out).extra["step"] == 10


def test_a_resumed_run_draws_the_epoch_its_step_falls_in(tmp_path):
    class RecordingBatchSampler(torch.utils.data.Sampler):
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __len__(self):
            return 4  # 4 batches of 16 out of 64 samples

        def __iter__(self):
            return iter([list(range(i, i + 16)) for i in range(0, 64, 16)])

    x = torch.randn(64, 3)
    dataset = torch.utils.data.TensorDataset(x, x[:, :1])
    out = tmp_path / "m.safetensors"
    save = lambda raw, ema, step: save_checkpoint(out, raw.state_dict(), "toy", {})  # noqa: E731
    first = RecordingBatchSampler()
    train(nn.Linear(3, 1), _mse, torch.utils.data.DataLoader(dataset, batch_sampler=first), _config(10),
          save_fn=save, state_path=state_path_for(out))
    # (Accelerate's loader may pass the same epoch on again when it starts iterating)
    assert list(dict.fromkeys(first.epochs)) == [0, 1, 2]  # 10 steps of 4 batches an epoch
    second = RecordingBatchSampler()
    train(nn.Linear(3, 1), _mse, torch.utils.data.DataLoader(dataset, batch_sampler=second), _config(20),
          save_fn=save, state_path=state_path_for(out))
    assert list(dict.fromkeys(second.epochs)) == [2, 3, 4]  # step 10 falls in epoch 2; steps 11-20


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path):
    out = tmp_path / "m.safetensors"
    calls = {"n": 0}

    def exploding(model, batch):
        calls["n"] += 1
        loss = _mse(model, batch)
        return loss * float("nan") if calls["n"] > 12 else loss

    with pytest.raises(StorylabError, match="loss became nan at step 13"):
        train(nn.Linear(3, 1), exploding, _regression_loader(), _config(50),
              save_fn=lambda raw, ema, step: save_checkpoint(out, raw.state_dict(), "toy", {"step": step}),
              state_path=state_path_for(out))
    assert load_checkpoint(out, "toy").config == {"step": 10}
    assert load_resume_state(state_path_for(out))["step"] == 10


SCRIPT = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from accelerate import Accelerator
    from storylab.training import TrainConfig, train
    acc = Accelerator(cpu=True)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0)); y = x.sum(1, keepdim=True)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    model = nn.Linear(3, 1)
    state = train(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), loader,
                  TrainConfig(steps=6, lr=0.01, ema_decay=None, checkpoint_every=0, log_every=3, progress=False),
                  accelerator=acc)
    w = state.model.weight.detach().flatten().tolist()
    print(f"RANK {acc.process_index} OF {acc.num_processes} STEP {state.step} W {w}", flush=True)
''')


def test_two_cpu_processes_train_in_lockstep(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    out = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                          "--num_machines", "1", "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend",
                          "no", str(script)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = re.findall(r"RANK \d OF \d STEP \d+ W \[[^\]]*\]", out.stdout)
    assert sorted(l.split()[1] for l in lines) == ["0", "1"]
    assert all("OF 2 STEP 6" in l for l in lines)
    weights = {l.split(" W ")[1] for l in lines}
    assert len(weights) == 1  # gradients were all-reduced: both replicas hold the same weights
