"""The command groups of the one ``storylab`` CLI.

Each wing registers its commands on these groups from its own ``cli.py`` module (for example
``@train_app.command("funnynet")`` in ``storylab/humor/cli.py``), so wings never edit each other's
files and never import each other. Heavy imports (torch, PyAV, transformers) stay inside the command
functions so that ``storylab --help`` answers at once.
"""

from __future__ import annotations

import typer

_settings = dict(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
                 context_settings={"help_option_names": ["-h", "--help"]})

app = typer.Typer(help="storylab: multimodal story-level understanding and generation of visual data.", **_settings)
train_app = typer.Typer(help="Train a model (digits denoiser, classifier, ControlNet, model zoo, DIRECTOR, FunnyNet-W).", **_settings)
sample_app = typer.Typer(help="Sample from a trained generative model.", **_settings)
evaluate_app = typer.Typer(help="Evaluate models with the shared metrics and print a summary table.", **_settings)
guidance_app = typer.Typer(help="Inspect guidance rules and guidance-weight schedules w(t).", **_settings)
control_app = typer.Typer(help="ControlNet condition extractors.", **_settings)
camera_app = typer.Typer(help="Camera wing: E.T. trajectories, motion tagging, captions, DIRECTOR generation.", **_settings)
humor_app = typer.Typer(help="Humor wing: laughter detection, clip labelling, FunnyNet-W funny-moment detection.", **_settings)
videoqa_app = typer.Typer(help="Video QA wing: Short Film Dataset harness (MCQA / OEQA, V / L / VL).", **_settings)

app.add_typer(train_app, name="train")
app.add_typer(sample_app, name="sample")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(guidance_app, name="guidance")
app.add_typer(control_app, name="control")
app.add_typer(camera_app, name="camera")
app.add_typer(humor_app, name="humor")
app.add_typer(videoqa_app, name="videoqa")
