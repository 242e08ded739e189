"""The training loop with EMA on and the real LR schedule, and resume states that do not belong to the run.

Expected values are derived by hand: with Adam's betas = (0, 0) and no gradient clipping, a scalar
weight under the loss ``w`` moves by exactly ``-lr_t`` each step (m = g, v = g^2, update lr g/|g|),
so the weight trajectory reads off the learning rate actually used, and the EMA of that trajectory
is written out in the test.
"""

import math

import pytest
import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.training import TrainConfig, state_path_for, train
from storylab.training.loop import check_resume_state


class Scalar(nn.Module):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([value], dtype=torch.float64))


def _loader(n=4, batch_size=1):
    data = torch.utils.data.TensorDataset(torch.zeros(n, 1))
    return torch.utils.data.DataLoader(data, batch_size=batch_size, drop_last=True)


def _linear_loss(model, batch):
    return model.w.sum()  # d loss / d w = 1 at every step


def _config(steps, **kw):
    base = dict(steps=steps, lr=0.1, betas=(0.0, 0.0), grad_clip=None, ema_decay=None, checkpoint_every=0,
                log_every=1, progress=False)
    return TrainConfig(**{**base, **kw})


def _trajectory(config, model=None):
    model = model or Scalar()
    seen = []
    state = train(model, _linear_loss, _loader(), config, callbacks=[lambda s: seen.append(float(s.model.w.detach()))])
    return model, state, seen


def test_the_cosine_schedule_decays_from_lr_to_zero_after_warmup():
    steps, warmup, lr = 12, 3, 0.1
    _, _, seen = _trajectory(_config(steps, lr=lr, warmup_steps=warmup, lr_schedule="cosine"))
    used = [-(b - a) for a, b in zip([0.0, *seen[:-1]], seen)]
    expected = [lr * (k + 1) / warmup for k in range(warmup)]  # linear warm-up
    expected += [lr * 0.5 * (1 + math.cos(math.pi * (k - warmup) / (steps - warmup))) for k in range(warmup, steps)]
    assert used == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert used[warmup] > used[warmup + 1] > used[-1]  # decays, not rises


@pytest.mark.parametrize("warmup", [False, True])
def test_the_ema_follows_the_weights_with_its_decay(warmup):
    decay = 0.8
    model, state, seen = _trajectory(_config(10, lr_schedule="constant", ema_decay=decay, ema_warmup=warmup))
    ema = seen[0]  # PyTorch's AveragedModel copies the weights at its first update
    for n, w in enumerate(seen[1:], start=1):
        d = min(decay, (1 + n) / (10 + n)) if warmup else decay  # diffusers' EMAModel warm-up
        ema = d * ema + (1 - d) * w
    assert float(state.ema_model.w.detach()) == pytest.approx(ema, rel=1e-9)
    assert float(state.ema_model.w.detach()) != pytest.approx(0.0, abs=1e-3)  # it moved from the initial weights
    assert float(state.ema_model.w.detach()) != pytest.approx(seen[-1], abs=1e-3)  # and lags behind the weights


def test_a_callback_with_every_fires_at_its_multiples_not_only_at_log_steps():
    calls = []

    class Every7:
        every = 7

        def __call__(self, state):
            if state.step % self.every == 0:
                calls.append(state.step)

    train(Scalar(), _linear_loss, _loader(), _config(30, log_every=50), callbacks=[Every7()])
    assert calls == [7, 14, 21, 28]


def test_a_batch_larger_than_the_data_set_is_an_error_not_a_hang():
    with pytest.raises(StorylabError, match=r"training set \(4 examples\) yields no batch of size 8: lower --batch-size"):
        train(Scalar(), _linear_loss, _loader(n=4, batch_size=8), _config(3))


def _saved_run(tmp_path, steps=4, model=None, **kw):
    out = tmp_path / "m.safetensors"
    state_path = state_path_for(out)
    train(model or Scalar(), _linear_loss, _loader(), _config(steps, checkpoint_every=2, **kw), state_path=state_path,
          description="train scalar")
    return state_path


def test_resume_refuses_another_architecture(tmp_path):
    state_path = _saved_run(tmp_path, steps=2)
    other = nn.Linear(1, 1)
    with pytest.raises(StorylabError, match=r"was made by another model .*--no-resume"):
        train(other, lambda m, b: m(b[0]).sum(), _loader(), _config(4), state_path=state_path, description="train scalar")

    class Wider(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3, dtype=torch.float64))

    with pytest.raises(StorylabError, match=r"another architecture \(w: saved \[1\], this run \[3\]\)"):
        train(Wider(), _linear_loss, _loader(), _config(4), state_path=state_path, description="train scalar")


def test_resume_refuses_a_state_of_another_command_or_settings(tmp_path):
    state_path = _saved_run(tmp_path, steps=2)
    with pytest.raises(StorylabError, match=r"resume state of 'train scalar', not of 'train other'"):
        train(Scalar(), _linear_loss, _loader(), _config(4), state_path=state_path, description="train other")
    with pytest.raises(StorylabError, match=r"other settings \(lr 0.1 -> 0.5\)"):
        train(Scalar(), _linear_loss, _loader(), _config(4, lr=0.5), state_path=state_path, description="train scalar")


def test_resume_refuses_a_state_without_the_keys_of_a_state(tmp_path):
    model, config = Scalar(), _config(4)
    for state, needle in (({"step": 3}, "missing model, rng, optimizer, scheduler"), ([1, 2], "is not a resume state"),
                          ({"model": "x", "step": 1, "rng": None, "optimizer": {}, "scheduler": {}}, "no weights")):
        with pytest.raises(StorylabError, match=needle):
            check_resume_state(state, tmp_path / "x.state.pt", model, config, "train scalar")


def test_a_finished_run_says_so_and_a_smaller_step_count_is_refused(tmp_path, capsys):
    state_path = _saved_run(tmp_path, steps=4, lr_schedule="constant")
    capsys.readouterr()
    model = Scalar()
    state = train(model, _linear_loss, _loader(), _config(4, checkpoint_every=2, lr_schedule="constant"),
                  state_path=state_path, description="train scalar")
    out = capsys.readouterr().out
    assert "train scalar is already finished: " in out and "at step 4 of 4" in out
    assert state.history == [] and float(model.w.detach()) == pytest.approx(-0.4)  # the saved weights, no new step
    assert state.losses["loss"] == pytest.approx(-0.3)  # the loss of step 4 (w = -0.3 before it), not nan
    with pytest.raises(StorylabError, match=r"at step 4, past --steps 3; pass --steps 4 or more"):
        train(Scalar(), _linear_loss, _loader(), _config(3, checkpoint_every=2, lr_schedule="constant"),
              state_path=state_path,
              description="train scalar")


def test_resuming_with_more_steps_continues_the_same_trajectory(tmp_path):
    state_path = _saved_run(tmp_path, steps=4, lr_schedule="constant")
    model = Scalar()
    seen = []
    train(model, _linear_loss, _loader(), _config(6, checkpoint_every=2, lr_schedule="constant"), state_path=state_path,
          description="train scalar", callbacks=[lambda s: seen.append(float(s.model.w.detach()))])
    assert seen == pytest.approx([-0.5, -0.6])  # steps 5 and 6 continue from w = -0.4
