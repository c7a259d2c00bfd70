"""Where a solver's results go: a summary line per stage in the log, and metrics and media to
the experiment loggers (local files, TensorBoard, W&B).

flashy's ResultLogger builds flashy's own loggers (with the faults loggers.py fixes) and keeps
them in a private dict; this one is handed ours, and closes them when the run is done.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import flashy
from flashy.loggers.base import ExperimentLogger

from .. import distributed
from ..config import LoggingConfig
from ..experiments import load_history
from ..io.atomic import remove_temporaries
from .loggers import LocalFSLogger, TensorboardLogger, WandbLogger


class ResultLogger:
    """The interface of flashy's ResultLogger that flashy.BaseSolver calls, over `loggers`."""

    def __init__(self, console: logging.Logger, loggers: Mapping[str, ExperimentLogger]):
        self.console = console
        self.loggers = dict(loggers)

    @classmethod
    def for_xp(cls, console: logging.Logger, folder: Path,
               settings: LoggingConfig) -> ResultLogger:
        """Our loggers for the XP in `folder`: rank 0 alone writes files, TensorBoard, W&B."""
        if not distributed.is_rank_zero():
            return cls(console, {})
        outputs = folder / "outputs"
        outputs.mkdir(exist_ok=True)
        for stage_folder in (path for path in outputs.iterdir() if path.is_dir()):
            remove_temporaries(stage_folder)  # media a killed run was writing (the lock is ours)
        loggers: dict[str, ExperimentLogger] = {
            "local": LocalFSLogger(outputs, with_media_logging=True)}
        if settings.tensorboard:
            tensorboard_dir = folder / "tensorboard"
            tensorboard_dir.mkdir(exist_ok=True)
            # A resumed run drops what an interrupted epoch logged after the last commit, which
            # it logs again (TensorBoard showed such an epoch twice).
            committed = len(load_history(folder))
            loggers["tensorboard"] = TensorboardLogger(tensorboard_dir, True,
                                                       purge_step=committed + 1)
        if settings.wandb.mode != "disabled":
            loggers["wandb"] = WandbLogger.for_xp(settings.wandb.mode, settings.wandb.project,
                                                  settings.wandb.entity, settings.wandb.group)
        return cls(console, loggers)

    def log_hyperparams(self, params: dict[str, Any], metrics: dict | None = None) -> None:
        for experiment_logger in self.loggers.values():
            experiment_logger.log_hyperparams(params, metrics)

    def log_metrics(self, stage: str, metrics: dict[str, Any], step: int | None = None,
                    step_name: str = "epoch",
                    formatter: flashy.Formatter | None = None) -> None:
        """'<Stage> Summary | Epoch N | key=value ...' in the log, the raw values to the
        loggers."""
        parts = [f"{stage.capitalize()} Summary"]
        if step is not None:
            parts.append(f"{step_name.capitalize()} {step}")
        shown = (formatter or flashy.Formatter())(metrics)
        parts.extend(f"{key}={value}".strip() for key, value in shown.items())
        self.console.info(flashy.bold(" | ".join(parts)))
        for experiment_logger in self.loggers.values():
            experiment_logger.log_metrics(stage, metrics, step)

    def log_audio(self, stage: str, key: str, audio: Any, sample_rate: int,
                  step: int | None = None, **kwargs: Any) -> None:
        for experiment_logger in self.loggers.values():
            experiment_logger.log_audio(stage, key, audio, sample_rate, step, **kwargs)

    def log_image(self, stage: str, key: str, image: Any, step: int | None = None,
                  **kwargs: Any) -> None:
        for experiment_logger in self.loggers.values():
            experiment_logger.log_image(stage, key, image, step, **kwargs)

    def log_text(self, stage: str, key: str, text: str, step: int | None = None,
                 **kwargs: Any) -> None:
        for experiment_logger in self.loggers.values():
            experiment_logger.log_text(stage, key, text, step, **kwargs)

    def close(self) -> None:
        """Flush and close what the loggers hold open (a TensorBoard writer, a W&B run)."""
        for experiment_logger in self.loggers.values():
            writer = getattr(experiment_logger, "writer", None)
            for method in ("close", "finish"):
                if callable(getattr(writer, method, None)):
                    getattr(writer, method)()
