"""One training loop for every storylab model, built on Hugging Face Accelerate.

The same code runs as one CPU process (``storylab train ...``) or data-parallel on N processes
(``accelerate launch --multi_gpu --num_processes N -m storylab.cli train ...``, CPU processes with
``ACCELERATE_USE_CPU=1``): Accelerate shards the data loader and wraps the model in PyTorch's
DistributedDataParallel, which averages gradients across processes (Li et al., "PyTorch Distributed",
VLDB 2020). The loss is computed inside the wrapper's forward (:class:`LossForward`), because DDP arms
its gradient reducer there; each process draws its own noise (seed + process index); only the main
process writes checkpoints and progress. The loop adds what research code usually lacks:
an EMA of the weights, gradient clipping, warm-up + cosine learning rate, a rich progress bar,
atomic checkpoints every ``checkpoint_every`` steps and every ``checkpoint_seconds`` of training,
resume after a kill (on the trajectory of the uninterrupted run: the same batches in the same order,
the same random draws), and a clear stop when the loss stops being finite (the last good
checkpoint is kept).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

from storylab.errors import StorylabError
from storylab.training.checkpoint import load_resume_state, restore_resume_state, save_resume_state
from storylab.training.progress import progress_bar


@dataclass
class TrainConfig:
    """Optimisation settings shared by every model (the CLI fills this dataclass)."""

    steps: int = 2000
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    lr_schedule: str = "cosine"  # "constant", "cosine" (after warm-up) or "multistep" (x lr_gamma at each milestone)
    lr_milestones: tuple[int, ...] = ()  # "multistep": steps at which the rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
    grad_clip: float | None = 1.0
    ema_decay: float | None = 0.999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) at the n-th update, so early weights fade
    checkpoint_every: int = 500  # 0: no periodic checkpoint (only the final one), by step or by time
    checkpoint_seconds: float | None = 300.0  # also checkpoint when this much time has passed since the last one
    log_every: int = 50
    seed: int = 0
    progress: bool = True


@dataclass
class TrainState:
    """What callbacks see: the step, the latest logged losses and the models."""

    step: int
    losses: dict[str, float]
    model: nn.Module
    ema_model: nn.Module | None
    history: list[dict[str, float]] = field(default_factory=list)


def lr_lambda(config: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up followed by constant, cosine decay to 0, or step decay (PyTorch's MultiStepLR rule:
    ``lr_gamma`` to the number of milestones passed) - a multiplier of ``config.lr``."""

    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        if config.lr_schedule == "multistep":
            return config.lr_gamma ** sum(step >= m for m in config.lr_milestones)
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    if config.lr_schedule not in ("constant", "cosine", "multistep"):
        raise StorylabError(f"unknown learning-rate schedule '{config.lr_schedule}' (use constant, cosine or multistep)")
    return factor


def shuffle_generator(loader: Any) -> torch.Generator | None:
    """The torch.Generator that draws a DataLoader's shuffling order (its sampler's, or its batch sampler's sampler's)."""
    for owner in (loader, getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            return generator
    return None


def _infinite(loader: Iterable, epoch: int = 0, skip: int = 0,
              on_epoch: Callable[[], None] | None = None) -> Iterator:
    """Endless batches; every pass first tells the loader's sampler (or batch sampler) its epoch, so a
    run resumed in epoch e draws epoch e's order, not epoch 0's again, and the first pass leaves out
    its first ``skip`` batches (those a run resumed in the middle of an epoch has already seen).
    ``on_epoch()`` is called before each pass draws its order (the loop records the shuffling
    generator's state there, so that a resume state can draw the same order again).

    A pass that yields no batch at all (a batch size larger than the data set with ``drop_last``)
    is a clear error instead of an endless loop."""
    while True:
        if hasattr(loader, "set_epoch"):  # Accelerate's prepared loader forwards it to its samplers
            loader.set_epoch(epoch)
        else:
            for name in ("sampler", "batch_sampler"):
                if hasattr(getattr(loader, name, None), "set_epoch"):
                    getattr(loader, name).set_epoch(epoch)
        if on_epoch is not None:
            on_epoch()
        empty = True
        for index, batch in enumerate(loader):
            empty = False
            if index < skip:
                continue
            yield batch
        skip = 0
        if empty:
            size = len(loader.dataset) if hasattr(getattr(loader, "dataset", None), "__len__") else None
            batch_size = getattr(loader, "batch_size", None) or getattr(getattr(loader, "batch_sampler", None), "batch_size", None)
            have = f" ({size} examples)" if size is not None else ""
            raise StorylabError(f"the training set{have} yields no batch of size {batch_size}: lower --batch-size")
        epoch += 1


# settings that change what a resumed run computes; steps, logging and checkpoint cadence may change
RESUME_KEYS = ("lr", "weight_decay", "betas", "warmup_steps", "lr_schedule", "grad_clip", "ema_decay", "ema_warmup", "seed")
REQUIRED_STATE_KEYS = ("model", "step", "rng")


def check_resume_state(state: Any, path: str | Path, model: nn.Module, config: TrainConfig, description: str,
                       stateful: Iterable[str] = ("optimizer", "scheduler"), num_processes: int = 1) -> int:
    """Check that a resume state belongs to this run before anything is loaded; return its step.

    Refused with one line naming the state file and the fix: a file without the keys a state has
    (another tool's file), a state of another command, a state whose weights have other names or
    shapes (another architecture), a state made with other optimisation settings (the stored
    config is compared), a state written by a run on another number of processes (its data shards
    and per-process noise streams would differ), a state already past ``config.steps``.
    """
    fix = f"delete {path} or pass --no-resume to start over"
    if not isinstance(state, dict):
        raise StorylabError(f"{path} is not a resume state; {fix}")
    missing = [k for k in (*REQUIRED_STATE_KEYS, *stateful) if k not in state]
    if missing:
        raise StorylabError(f"{path} is not a resume state of {description} (missing {', '.join(missing)}); {fix}")
    saved_by = state.get("description")
    if saved_by is not None and saved_by != description:
        raise StorylabError(f"{path} is a resume state of '{saved_by}', not of '{description}'; {fix}")
    saved, now = state["model"], model.state_dict()
    if not isinstance(saved, dict):
        raise StorylabError(f"{path} is not a resume state (no weights); {fix}")
    extra, absent = sorted(set(saved) - set(now)), sorted(set(now) - set(saved))
    if extra or absent:
        names = ", ".join((absent or extra)[:3])
        raise StorylabError(f"{path} was made by another model ({len(absent)} weights missing, {len(extra)} unexpected: "
                            f"{names}); {fix}")
    for key, value in now.items():
        shape = tuple(getattr(saved[key], "shape", ()))
        if shape != tuple(value.shape):
            raise StorylabError(f"{path} was made by another architecture ({key}: saved {list(shape)}, "
                                f"this run {list(value.shape)}); {fix}")
    saved_config = state.get("config") or {}
    current = asdict(config)
    changed = [k for k in RESUME_KEYS if k in saved_config and _normal(saved_config[k]) != _normal(current[k])]
    if changed:
        diff = ", ".join(f"{k} {saved_config[k]} -> {current[k]}" for k in changed)
        raise StorylabError(f"{path} was made with other settings ({diff}); rerun with the saved settings, or {fix}")
    saved_processes = int(state.get("num_processes", 1))
    if saved_processes != num_processes:
        raise StorylabError(f"{path} was written by a run on {saved_processes} process{'es' if saved_processes > 1 else ''}, "
                            f"this run has {num_processes}; relaunch with --num_processes {saved_processes}, or {fix}")
    step = int(state["step"])
    if step > config.steps:
        raise StorylabError(f"{path} is at step {step}, past --steps {config.steps}; pass --steps {step} or more "
                            f"to continue, or {fix}")
    return step


def _normal(value: Any) -> Any:
    """Config values as JSON would store them (tuples become lists), for comparison."""
    return list(value) if isinstance(value, tuple) else value


ESTIMATE_AFTER_STEPS = 5
ESTIMATE_AFTER_SECONDS = 1.0
_clock = time.monotonic  # the clock of the time-based checkpoints (a test may replace it)


def _every(callback: Any) -> int:
    every = getattr(callback, "every", 0)
    return every if isinstance(every, int) and every > 0 else 0


def _duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# variables that only a multi-process launcher sets (torchrun, mpirun, accelerate's debug launcher)
_WORLD_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE")


def check_launcher(env: dict[str, str] | None = None) -> None:
    """Refuse a run that asked for several processes but got one.

    ``accelerate launch --num_processes N`` without ``--multi_gpu`` (or a config that selects a
    multi-process type) goes through accelerate's simple launcher, which starts one worker and sets
    ``MASTER_PORT`` for it; a multi-process launcher also sets ``WORLD_SIZE`` in every worker.
    """
    env = os.environ if env is None else env
    launched = "ACCELERATE_MIXED_PRECISION" in env or "ACCELERATE_DYNAMO_BACKEND" in env
    if launched and "MASTER_PORT" in env and not any(k in env for k in _WORLD_VARS):
        raise StorylabError("accelerate launch started one process although more were asked for (its simple launcher "
                            "runs one worker); add --multi_gpu (with ACCELERATE_USE_CPU=1 for CPU processes), "
                            "or drop --num_processes")


def make_accelerator() -> Any:
    """The Accelerator every trainer uses: CPU without CUDA; DDP finds parameters a step leaves unused
    (a modality or a frozen branch), so such a step does not hang the gradient reduction."""
    from accelerate import Accelerator, DistributedDataParallelKwargs

    check_launcher()
    return Accelerator(cpu=not torch.cuda.is_available(),
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def process_count() -> int:
    """How many processes this run trains on (1 without a multi-process launcher). A trainer that
    counts epochs needs it: each step then takes one batch per process."""
    from accelerate import PartialState

    check_launcher()
    return PartialState(cpu=not torch.cuda.is_available()).num_processes


def is_main_process() -> bool:
    """True in the process that writes files (the only one without a multi-process launcher)."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available()).is_main_process


def check_shardable(loader: Iterable, num_processes: int) -> None:
    """A training set must give every process at least one batch of its own (before sharding)."""
    if num_processes <= 1 or not hasattr(loader, "__len__"):
        return
    batches = len(loader)  # type: ignore[arg-type]
    if batches < num_processes:
        size = len(loader.dataset) if hasattr(getattr(loader, "dataset", None), "__len__") else None  # type: ignore[attr-defined]
        have = f" ({size} examples)" if size is not None else ""
        raise StorylabError(f"the training set{have} makes {batches} batch{'es' if batches != 1 else ''}, fewer than the "
                            f"{num_processes} processes: lower --batch-size or launch fewer processes")


def process_rng_states(accelerator: Any) -> list[torch.Tensor]:
    """Every process's torch RNG state, in process order (a collective call: every process must make it)."""
    if accelerator.num_processes <= 1:
        return [torch.get_rng_state()]
    from accelerate.utils import gather_object

    return [torch.as_tensor(s) for s in gather_object([torch.get_rng_state()])]


def restore_process_rng(state: dict[str, Any], accelerator: Any) -> None:
    """Give this process the RNG state it had when ``state`` was saved (the main one's for 1 process)."""
    ranks = state.get("rng_processes")
    if isinstance(ranks, (list, tuple)) and len(ranks) > accelerator.process_index:
        torch.set_rng_state(ranks[accelerator.process_index])
    else:
        torch.set_rng_state(state["rng"])


def average_gradients(parameters: Iterable[nn.Parameter], accelerator: Any) -> None:
    """Replace each gradient by its mean over processes (what DDP's backward hooks do), for a loop
    that steps two opposed optimisers on one batch (a GAN) and so cannot run one DDP forward per step.
    A parameter without a gradient counts as zero, so every process takes part in the same reduction."""
    if accelerator.num_processes <= 1:
        return
    params = list(parameters)
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    flat = accelerator.reduce(flat, reduction="mean")
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def broadcast_module(module: nn.Module, accelerator: Any) -> None:
    """Give every process the main process's parameters and buffers (what DDP does when it wraps a model)."""
    if accelerator.num_processes <= 1:
        return
    from accelerate.utils import broadcast

    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            t.copy_(broadcast(t.detach().clone()))


def _norm_statistics(module: nn.Module) -> list[torch.Tensor]:
    """The running statistics of the BatchNorm-like layers of ``module``."""
    return [b for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats
            for b in (m.running_mean, m.running_var) if b is not None]


def average_buffers(module: nn.Module, accelerator: Any) -> None:
    """BatchNorm running statistics, which each process updates on its own batch, become their mean over
    processes, so the replicas stay identical (DDP only copies the main process's at the next forward)."""
    stats = _norm_statistics(module) if accelerator.num_processes > 1 else []
    if not stats:
        return
    with torch.no_grad():
        flat = accelerator.reduce(torch.cat([b.reshape(-1) for b in stats]), reduction="mean")
        offset = 0
        for b in stats:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


class LossForward(nn.Module):
    """``loss_fn(model, batch)`` as a module's forward.

    DistributedDataParallel prepares its gradient reducer in ``forward``; a loss method called on the
    unwrapped model would skip the gradient averaging, and one called on the wrapper would not find
    the model's methods. Wrapping the loss makes the whole step go through DDP's forward, while
    ``loss_fn`` still sees the plain model (its methods, its config).
    """

    def __init__(self, model: nn.Module, loss_fn: Callable[[nn.Module, Any], Any]) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> Any:
        return self.loss_fn(self.model, batch)


def mean_over_processes(values: dict[str, float], accelerator: Any) -> dict[str, float]:
    """The logged means averaged over processes (a collective call), so every process reports the
    loss of the whole global batch, as one process with that batch would."""
    if accelerator.num_processes <= 1 or not values:
        return values
    keys = sorted(values)
    local = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    return dict(zip(keys, accelerator.reduce(local, reduction="mean").tolist()))


def ema_decay_at(update: int, decay: float, warmup: bool = True) -> float:
    """The EMA decay of the ``update``-th average (1 = the first after the copy of the initial weights).

    With ``warmup``, min(decay, (1 + n) / (10 + n)) (the warm-up of diffusers' ``EMAModel``): a run of N
    steps then carries a vanishing share of its initial weights, where a fixed decay keeps decay^N of
    them (55 % after 120 steps at 0.995).
    """
    return min(decay, (1 + update) / (10 + update)) if warmup else decay


def make_ema(model: nn.Module, decay: float, warmup: bool = True) -> torch.optim.swa_utils.AveragedModel:
    """Exponential moving average of the weights (PyTorch's AveragedModel), decay from :func:`ema_decay_at`."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], averaged: torch.Tensor) -> None:
        weight = 1.0 - ema_decay_at(int(averaged), decay, warmup)
        if torch.is_floating_point(ema_params[0]) or torch.is_complex(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, weight)
        else:
            for ema_p, p in zip(ema_params, params):
                ema_p.copy_(ema_p * (1 - weight) + p * weight)

    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def train(model: nn.Module,
          loss_fn: Callable[[nn.Module, Any], torch.Tensor | tuple[torch.Tensor, dict[str, float]]],
          loader: Iterable,
          config: TrainConfig,
          save_fn: Callable[[nn.Module, nn.Module | None, int], None] | None = None,
          state_path: str | Path | None = None,
          callbacks: list[Callable[[TrainState], None]] | None = None,
          parameters: Iterable[nn.Parameter] | None = None,
          description: str = "training",
          accelerator: Any | None = None,
          resume_state: dict[str, Any] | None = None) -> TrainState:
    """Optimise ``loss_fn(model, batch)`` for ``config.steps`` steps and return the final state.

    ``save_fn(model, ema_model, step)`` writes the user-facing checkpoint (safetensors); the loop
    writes the resume state to ``state_path`` right after it, so both always describe the same step.
    ``parameters`` restricts optimisation (e.g. a ControlNet's trainable copy); by default all
    parameters that require gradients are trained. A run whose ``state_path`` exists resumes;
    ``resume_state`` is that file as the caller already read it with :func:`load_resume_state` (to refuse
    a foreign state before a costly set-up), so it is not read twice.
    """
    from accelerate.utils import set_seed

    accelerator = accelerator or make_accelerator()
    set_seed(config.seed + accelerator.process_index)  # each process draws its own noise; one process: config.seed
    params = list(parameters) if parameters is not None else [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise StorylabError("nothing to train: the model has no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))

    start = 0
    resume = resume_state if resume_state is not None else load_resume_state(state_path) if state_path else None
    if resume is not None:
        saved_step = check_resume_state(resume, state_path, model, config, description,
                                        num_processes=accelerator.num_processes)
        start = restore_resume_state(resume, model, {"optimizer": optimizer, "scheduler": scheduler})
        restore_process_rng(resume, accelerator)
        # the rate of step start + 1 under this run's schedule (a longer --steps stretches the cosine)
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs):
            group["lr"] = base * lr_lambda(config)(start)
        if accelerator.is_main_process:
            print(f"{description} is already finished: {state_path} is at step {start} of {config.steps} "
                  "(pass a larger --steps to continue, or --no-resume to start over)" if saved_step == config.steps
                  else f"resuming {description} from step {start} ({state_path})")

    check_shardable(loader, accelerator.num_processes)
    shuffle = shuffle_generator(loader)
    # the step runs inside the (DDP-)wrapper's forward; ``model`` stays the plain module (same parameters)
    step_module, optimizer, loader = accelerator.prepare(LossForward(model, loss_fn), optimizer, loader)
    # the EMA starts from the weights every process holds after DDP's broadcast from the main process
    ema = make_ema(model, config.ema_decay, config.ema_warmup) if config.ema_decay else None
    if ema is not None and resume is not None and resume.get("ema") is not None:
        ema.load_state_dict(resume["ema"])
    # a resumed run starts at the epoch its step falls in, with that epoch's order (the shuffling
    # generator's state at the epoch's start is in the resume state) and after the batches it had seen
    per_epoch = len(loader) if hasattr(loader, "__len__") else 0
    if shuffle is not None and resume is not None and resume.get("data_rng") is not None:
        shuffle.set_state(resume["data_rng"])
    epoch_rng: list[torch.Tensor | None] = [None]

    def remember_order() -> None:
        epoch_rng[0] = shuffle.get_state() if shuffle is not None else None

    def data_order(step: int) -> torch.Tensor | None:
        """The shuffling state that draws the order of the epoch ``step + 1`` falls in."""
        if shuffle is None:
            return None
        return shuffle.get_state() if per_epoch and step % per_epoch == 0 else epoch_rng[0]

    batches = _infinite(loader, start // per_epoch if start and per_epoch else 0,
                        start % per_epoch if start and per_epoch else 0, remember_order)
    # a finished run reports the losses it ended with, not nan
    state = TrainState(step=start, losses=dict(resume.get("losses") or {}) if resume is not None else {},
                       model=model, ema_model=ema.module if ema is not None else None)
    running: dict[str, float] = {}
    count = 0
    saved = [start, _clock()]  # the step and time of the last checkpoint
    norm_stats = accelerator.num_processes > 1 and bool(_norm_statistics(model))

    def time_for_checkpoint() -> bool:
        """Whether checkpoint_seconds have passed since the last checkpoint (rank 0's clock decides for all)."""
        if not config.checkpoint_seconds:
            return False
        due = _clock() - saved[1] >= config.checkpoint_seconds
        if accelerator.num_processes > 1:
            from accelerate.utils import broadcast

            due = bool(broadcast(torch.tensor([float(due)], device=accelerator.device)).item())
        return due

    def checkpoint(step: int) -> None:
        saved[:] = [step, _clock()]
        rngs = process_rng_states(accelerator)  # collective: before the main-process-only part
        if accelerator.is_main_process:
            if save_fn is not None:
                save_fn(model, ema.module if ema is not None else None, step)
            if state_path is not None:
                save_resume_state(state_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "ema": ema.state_dict() if ema is not None else None,
                    "rng": rngs[0], "rng_processes": rngs, "num_processes": accelerator.num_processes,
                    "data_rng": data_order(step), "step": step, "config": asdict(config), "description": description,
                    "losses": {k: float(v) for k, v in state.losses.items()}})
        accelerator.wait_for_everyone()  # no process reads the checkpoint before the main one has written it

    step_module.train()
    t0 = time.perf_counter()
    show = config.progress and accelerator.is_main_process
    estimated = False
    with progress_bar(description, total=config.steps, completed=start, enabled=show) as bar:
        for step in range(start, config.steps):
            batch = next(batches)
            out = step_module(batch)
            loss, logs = (out if isinstance(out, tuple) else (out, {}))
            if not torch.isfinite(loss.detach()).all():
                raise StorylabError(
                    f"{description}: loss became {loss.item()} at step {step + 1}; stopped, the last good "
                    f"checkpoint (step {saved[0]}) is kept. "
                    "Lower the learning rate or check the data.")
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            if config.grad_clip:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            if norm_stats:
                average_buffers(model, accelerator)
            if ema is not None:
                ema.update_parameters(model)
            running["loss"] = running.get("loss", 0.0) + float(loss.detach())
            for key, value in logs.items():
                running[key] = running.get(key, 0.0) + float(value)
            count += 1
            done = step + 1
            elapsed = time.perf_counter() - t0
            if show and not estimated and done - start >= ESTIMATE_AFTER_STEPS and elapsed >= ESTIMATE_AFTER_SECONDS:
                estimated = True
                total = elapsed / (done - start) * (config.steps - start)
                bar.note(f"{description}: about {_duration(total)} for {config.steps - start} steps "
                         f"({elapsed / (done - start) * 1000:.0f} ms a step)")
            # the periodic checkpoint comes before the callbacks, so a callback that ends the run
            # (an early stop, a time budget) never loses the step it saw
            if config.checkpoint_every and done != config.steps and (done % config.checkpoint_every == 0
                                                                      or time_for_checkpoint()):
                checkpoint(done)
            logged = done % config.log_every == 0 or done == config.steps
            # a callback with an ``every`` attribute (an evaluation every N steps) is also called at
            # the multiples of N, not only at the multiples of the log interval
            due = [cb for cb in callbacks or [] if logged or _every(cb) and done % _every(cb) == 0]
            if logged:
                state.losses = mean_over_processes({k: v / count for k, v in running.items()}, accelerator)
                state.history.append({"step": done, **state.losses})
                running, count = {}, 0
                bar.update(done, **state.losses)
            if due:
                state.step = done
                for callback in due:
                    callback(state)
        checkpoint(config.steps)
    state.step = config.steps
    state.losses["seconds"] = time.perf_counter() - t0
    return state
