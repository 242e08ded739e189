"""Foundation: one Accelerate training loop, atomic checkpoints with resume, EMA, progress bars."""

from storylab.training.checkpoint import (Checkpoint, load_checkpoint, load_resume_state, read_metadata,
                                          restore_resume_state, save_checkpoint, save_resume_state, state_path_for)
from storylab.training.loop import TrainConfig, TrainState, make_ema, train
from storylab.training.progress import progress_bar

__all__ = ["Checkpoint", "TrainConfig", "TrainState", "load_checkpoint", "load_resume_state", "make_ema",
           "progress_bar", "read_metadata", "restore_resume_state", "save_checkpoint", "save_resume_state", "state_path_for", "train"]
