"""`emowatch model` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli.common import console  # noqa: F401
from emowatch.streams.cli.model_finetune import finetune_head
from emowatch.streams.cli.model_quality import evaluate, make_testset

model_app = typer.Typer(no_args_is_help=True, help="Model utilities: the demo checkpoint, evaluation on a "
                                                   "labelled set, a generated test set, fine-tuned heads.")
model_app.command("evaluate")(evaluate)
model_app.command("make-testset")(make_testset)


@model_app.command("train-demo")
def model_train_demo(out_dir: Path = typer.Option(Path("models/demo"), help="Where to write the checkpoint."),
                     seed: int = typer.Option(0)) -> None:
    """Train the small demo checkpoint (a pipeline demo model, NOT an emotion model)."""
    from emowatch.models.train import train_demo

    train_demo(out_dir, seed=seed)


model_app.command("finetune-head")(finetune_head)
