"""StandardSolver: everything generic about training, so a family solver only says what its
model, data and step are.

A family implements `build_model`, `build_dataloaders`, `run_step`, and optionally `evaluate`
and `generate`; it names its best metric (`best_metric`, `best_mode`). The base runs the stages
(train -> valid -> evaluate/generate, gated by `<stage>.every`), owns the optimizer update
(precision, accumulation, clipping, schedule, EMA), best state, early stopping, exact resume,
atomic checkpoints, `continue_from`, the XP lock and the loggers.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import flashy
import torch
from omegaconf import DictConfig, OmegaConf

from .. import distributed, logs
from ..config import SolverConfig
from ..errors import CheckpointError, NonFiniteLossError, XPLockedError
from . import checkpoint
from .builders import validate_config
from .continuation import continue_from
from .ema import ModelEMA
from .loading import EpochLoader
from .loggers import LocalFSLogger, TensorboardLogger, WandbLogger
from .optim import Scheduler, build_optimizer, build_scheduler

logger = logging.getLogger(__name__)

# Draws of the training loader within one epoch when updates_per_epoch outlasts one pass.
_PASSES_PER_EPOCH = 10_000


def computes_in_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 arithmetic (a CPU: AVX-512 BF16 or AMX)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class StandardSolver(flashy.BaseSolver):
    config_schema: ClassVar[type[SolverConfig]] = SolverConfig
    # Name of the valid metric that decides the best state, and whether lower is better.
    best_metric: ClassVar[str] = "loss"
    best_mode: ClassVar[Literal["min", "max"]] = "min"

    def __init__(self, cfg: DictConfig):
        super().__init__()
        self.cfg = cfg
        self.settings = validate_config(cfg)
        self.device = distributed.resolve_device(self.settings.device)
        logs.setup_logging(self.folder, distributed.rank(), self.settings.logging.level)
        self.precision = self._resolve_precision()
        self._lock_handle = self._acquire_lock()
        self._init_loggers()
        logger.info("XP %s in %s", self.xp.sig, self.folder)

        self.loaders: dict[str, EpochLoader] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Scheduler | None = None
        self.ema: dict[str, ModelEMA] = {}
        self.best_state: dict[str, dict[str, torch.Tensor]] = {}
        self._best_names: list[str] = []
        self._updates_done = 0
        # Extra optimizers (a discriminator's, say): name -> (scaler, scheduler).
        self._extra_optimizers: dict[str, tuple[torch.amp.GradScaler, Scheduler | None]] = {}
        self._batch_index = 0
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.precision == "16-mixed")
        self.register_stateful("best_state", "scaler")

        self.build_model()
        self.build_dataloaders()
        self._build_scheduler()
        self._log_parameter_counts()

    # ------------------------------------------------------------------ to implement
    def build_model(self) -> None:
        """Create the model(s) and optimizer(s); register them with `register_stateful`,
        `register_best_state` and `register_ema`. Set `self.optimizer` for the main update."""
        raise NotImplementedError

    def build_dataloaders(self) -> None:
        """Fill `self.loaders` ('train', 'valid', optionally 'evaluate', 'generate'), usually
        with `self.make_loader`."""
        raise NotImplementedError

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        """One batch of the current stage. In training, return the metrics with a 'loss'
        tensor: the base does backward and the optimizer update."""
        raise NotImplementedError

    def export_info(self) -> dict[str, Any]:
        """What an exported model needs besides its config (class names, feature settings...);
        saved in each checkpoint and embedded by `audiotools export`."""
        return {}

    def evaluate(self) -> dict[str, Any]:
        """Metrics on the evaluate split, with the best weights loaded. Default: none."""
        return {}

    def generate(self) -> dict[str, Any]:
        """Samples written under the XP folder, with the best weights loaded. Default: none."""
        return {}

    # ------------------------------------------------------------------ registration helpers
    def build_optimizer(self, params: Any, lr: float | None = None) -> torch.optim.Optimizer:
        return build_optimizer(params, self.settings.optim, lr)

    def register_optimizer(self, name: str) -> None:
        """Declare the optimizer attribute `name` (besides `self.optimizer`) as one that
        `self.optimize(name, loss)` updates: same precision, accumulation, clipping, gradient
        averaging across ranks and LR schedule as the main optimizer. Register the optimizer
        itself with `register_stateful`; its scaler and scheduler are saved by the base."""
        scaler = torch.amp.GradScaler(self.device.type,
                                      enabled=self.precision == "16-mixed")
        self._extra_optimizers[name] = (scaler, None)
        self.stateful.register(f"scaler.{name}", scaler)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backward `loss` into the extra optimizer `name` from `run_step` (training only) and
        update it at the end of each accumulation window."""
        self._check_finite(float(loss.detach()), self._batch_index, what=f"{name} loss")
        scaler, scheduler = self._extra_optimizers[name]
        accumulation = self.settings.optim.accumulation
        scaler.scale(loss / accumulation if accumulation > 1 else loss).backward()
        if (self._batch_index + 1) % accumulation == 0:
            self._step_optimizer(getattr(self, name), scaler, scheduler)

    def register_best_state(self, *names: str) -> None:
        """Modules whose weights are kept at the best valid metric, used by evaluate/generate,
        export and `continue_from`."""
        self._best_names.extend(names)

    def register_ema(self, *names: str) -> None:
        """Keep an EMA of these modules when optim.ema.use; valid/best use the EMA weights."""
        if not self.settings.optim.ema.use:
            return
        for name in names:
            self.ema[name] = ModelEMA(getattr(self, name), self.settings.optim.ema.decay,
                                      self.settings.optim.ema.buffers)
            self.stateful.register(f"ema.{name}", self.ema[name])

    def make_loader(self, dataset: Any, batch_size: int, shuffle: bool, num_workers: int = 0,
                    **kwargs: Any) -> EpochLoader:
        """A loader whose order depends only on (seed, epoch); batch_size is the global batch."""
        return EpochLoader(dataset, batch_size, shuffle, num_workers, self.settings.seed,
                           pin_memory=self.device.type == "cuda", **kwargs)

    @property
    def is_training(self) -> bool:
        return self.current_stage == "train"

    @property
    def autocast(self) -> contextlib.AbstractContextManager:
        precision = self.precision
        if precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    # ------------------------------------------------------------------ setup
    def _resolve_precision(self) -> str:
        """The precision this run computes in: `auto` resolved for this device, and a warning
        for bf16 on a CPU without bf16 instructions (AVX-512 BF16 / AMX), which runs through
        slow fallback kernels: 4-7x slower than float32 for convolutions
        (benchmarks/README.md)."""
        precision = self.settings.precision
        bf16_hardware = computes_in_bf16(self.device)
        if precision == "auto":
            precision = "bf16-mixed" if bf16_hardware else "32"
            logger.info("precision=auto: %s on this %s.", precision, self.device.type)
        elif precision == "bf16-mixed" and self.device.type == "cpu" and not bf16_hardware:
            logger.warning("precision=bf16-mixed on a CPU without bf16 instructions (%s): "
                           "expect it to be slower than precision=32.",
                           torch.backends.cpu.get_cpu_capability())
        return precision

    def _acquire_lock(self) -> Any:
        """Refuse a second process on the same XP (rank 0 holds the lock; the OS drops it
        when the process dies, even by kill -9)."""
        if not distributed.is_rank_zero():
            return None
        path = self.folder / "lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise XPLockedError(
                f"XP {self.xp.sig} is already running (pid {holder} holds {path}). Wait for it "
                "to finish or stop it; two runs of one XP would overwrite each other.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _init_loggers(self) -> None:
        if not distributed.is_rank_zero():
            return  # rank 0 alone writes TensorBoard, W&B and media
        # flashy's ResultLogger keeps its loggers in a private dict; ours replace its faulty ones.
        experiment_loggers = self.result_logger._experiment_loggers
        outputs = self.folder / "outputs"
        outputs.mkdir(exist_ok=True)
        experiment_loggers["local"] = LocalFSLogger(outputs, with_media_logging=True)
        settings = self.settings.logging
        if settings.tensorboard:
            tensorboard_dir = self.folder / "tensorboard"
            tensorboard_dir.mkdir(exist_ok=True)
            experiment_loggers["tensorboard"] = TensorboardLogger(tensorboard_dir, True)
        if settings.wandb.mode != "disabled":
            experiment_loggers["wandb"] = WandbLogger.for_xp(
                settings.wandb.mode, settings.wandb.project, settings.wandb.entity,
                settings.wandb.group)

    def _build_scheduler(self) -> None:
        total = self.settings.optim.epochs * self.updates_per_epoch
        if self.optimizer is not None:
            self.scheduler = build_scheduler(self.optimizer, self.settings.schedule, total)
            if self.scheduler is not None:
                self.register_stateful("scheduler")
        for name, (scaler, _) in self._extra_optimizers.items():
            scheduler = build_scheduler(getattr(self, name), self.settings.schedule, total)
            self._extra_optimizers[name] = (scaler, scheduler)
            if scheduler is not None:
                self.stateful.register(f"scheduler.{name}", scheduler)

    def _log_parameter_counts(self) -> None:
        for name in self.stateful.sources:
            module = getattr(self, name, None)
            if not isinstance(module, torch.nn.Module):
                continue
            total = sum(p.numel() for p in module.parameters())
            logger.info("Model %s: %s parameters (%.2f M)", name, f"{total:,}", total / 1e6)
            for child_name, child in module.named_children():
                count = sum(p.numel() for p in child.parameters())
                if count:
                    logger.info("  %s.%s: %s", name, child_name, f"{count:,}")

    # ------------------------------------------------------------------ epochs and updates
    @property
    def updates_per_epoch(self) -> int:
        configured = self.settings.optim.updates_per_epoch
        if configured is not None:
            return configured
        return max(1, len(self.loaders["train"]) // self.settings.optim.accumulation)

    def _train_batches(self) -> Iterator[Any]:
        """Exactly updates_per_epoch * accumulation batches, cycling the train loader with a
        new deterministic draw when one pass is not enough."""
        loader = self.loaders["train"]
        needed = self.updates_per_epoch * self.settings.optim.accumulation
        draw = 0
        while needed > 0:
            loader.set_epoch(self.epoch * _PASSES_PER_EPOCH + draw)
            for batch in loader:
                yield batch
                needed -= 1
                if needed == 0:
                    return
            draw += 1

    def _check_finite(self, value: float, idx: int, what: str = "loss") -> None:
        if not math.isfinite(value):
            kept = self.checkpoint_path if self.checkpoint_path.exists() else "none yet"
            raise NonFiniteLossError(
                f"Non-finite {what} ({value}) in stage '{self.current_stage}', epoch {self.epoch}, "
                f"step {idx}. Training stopped; the last good checkpoint ({kept}) is untouched. "
                "Try a lower optim.lr, optim.max_norm > 0, or precision=32.")

    def _step_optimizer(self, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                        scheduler: Scheduler | None) -> None:
        """One update after `accumulation` backward passes: average across ranks, clip, step,
        schedule."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        distributed.average_gradients(params)
        if self.settings.optim.max_norm > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, self.settings.optim.max_norm)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        if scheduler is not None and not isinstance(
                scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()

    def _update(self) -> None:
        """The main optimizer's update, then the EMA."""
        assert self.optimizer is not None
        self._step_optimizer(self.optimizer, self.scaler, self.scheduler)
        self._updates_done += 1
        if self.ema and self._updates_done % self.settings.optim.ema.every == 0:
            decay = self._ema_decay()
            for ema in self.ema.values():
                ema.update(decay)

    def _ema_decay(self) -> float:
        """optim.ema.decay, or its warm-up min(decay, 1 - t^-warmup_power) at update t."""
        settings = self.settings.optim.ema
        if settings.warmup_power is None:
            return settings.decay
        return min(settings.decay, 1 - self._updates_done ** -settings.warmup_power)

    def _run_batches(self, batches: Any, total: int) -> dict[str, float]:
        average = flashy.averager()
        metrics: dict[str, float] = {}
        progress = self.log_progress(self.current_stage, batches, total=total)
        accumulation = self.settings.optim.accumulation
        for idx, batch in enumerate(progress):
            self._batch_index = idx
            with self.autocast:
                step_metrics = self.run_step(idx, batch, {})
            values = {key: float(value.detach()) if isinstance(value, torch.Tensor)
                      else float(value) for key, value in step_metrics.items()}
            if "loss" in values:
                self._check_finite(values["loss"], idx)
            loss = step_metrics.get("loss")
            if self.is_training and isinstance(loss, torch.Tensor):
                self.scaler.scale(loss / accumulation if accumulation > 1 else loss).backward()
                if (idx + 1) % accumulation == 0:
                    self._update()
            metrics = average(values)
            progress.update(**metrics)
        return distributed.average_metrics(metrics, total)

    def train_stage(self) -> dict[str, float]:
        for module in self._registered_modules():
            module.train()
        for optimizer in self._optimizers():
            optimizer.zero_grad(set_to_none=True)
        total = self.updates_per_epoch * self.settings.optim.accumulation
        metrics = self._run_batches(self._train_batches(), total)
        for module in self._registered_modules():
            distributed.average_buffers(module)
        if self.optimizer is not None:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def valid_stage(self) -> dict[str, float]:
        loader = self.loaders["valid"]
        loader.set_epoch(0)
        with self._eval_mode(), self._swap_weights(self._ema_weights()):
            return self._run_batches(loader, len(loader))

    def evaluate_stage(self) -> dict[str, Any]:
        with self._eval_mode(), self._swap_weights(self._best_weights()):
            return self.evaluate()

    def generate_stage(self) -> dict[str, Any]:
        with self._eval_mode(), self._swap_weights(self._best_weights()):
            return self.generate()

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        main = [self.optimizer] if self.optimizer is not None else []
        return main + [getattr(self, name) for name in self._extra_optimizers]

    def _registered_modules(self) -> list[torch.nn.Module]:
        return [getattr(self, name) for name in self.stateful.sources
                if isinstance(getattr(self, name, None), torch.nn.Module)]

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        modules = self._registered_modules()
        for module in modules:
            module.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for module in modules:
                module.train()

    def _ema_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {name: ema.weights() for name, ema in self.ema.items()}

    def _best_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.best_state or self._ema_weights()

    @contextlib.contextmanager
    def _swap_weights(self, weights: dict[str, dict[str, torch.Tensor]]) -> Iterator[None]:
        """Temporarily load `weights` (per module name) and put the live ones back after."""
        saved = {}
        for name, state in weights.items():
            module = getattr(self, name)
            saved[name] = {k: v.detach().clone() for k, v in module.state_dict().items()}
            module.load_state_dict(state)
        try:
            yield
        finally:
            for name, state in saved.items():
                getattr(self, name).load_state_dict(state)

    # ------------------------------------------------------------------ best state, stopping
    def _valid_values(self) -> list[float]:
        return [float(epoch["valid"][self.best_metric]) for epoch in self.history
                if "valid" in epoch and self.best_metric in epoch["valid"]]

    def _is_better(self, value: float, reference: float, margin: float = 0.0) -> bool:
        if self.best_mode == "min":
            return value < reference - margin
        return value > reference + margin

    def _update_best_state(self, value: float) -> None:
        previous = self._valid_values()
        if previous and not self._is_better(value, min(previous) if self.best_mode == "min"
                                            else max(previous)):
            return
        logger.info("New best valid %s: %.5g", self.best_metric, value)
        current = self._ema_weights()
        for name in self._best_names:
            state = current.get(name) or getattr(self, name).state_dict()
            self.best_state[name] = {k: v.detach().cpu().clone() for k, v in state.items()}

    def _should_stop_early(self, values: list[float] | None = None) -> bool:
        """Derived from the valid history (committed epochs unless `values` is given), so a
        resumed run stops exactly where the original would."""
        patience = self.settings.early_stop.patience
        values = self._valid_values() if values is None else values
        if patience is None or len(values) <= patience:
            return False
        best_index = 0
        for index, value in enumerate(values):
            if self._is_better(value, values[best_index], self.settings.early_stop.min_delta):
                best_index = index
        return len(values) - 1 - best_index >= patience

    def _stage_due(self, every: int, final: bool) -> bool:
        """Every `every` epochs, and always on the final one (last epoch or early stop)."""
        if every == 0:
            return False
        return self.epoch % every == 0 or final

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        # flashy stores the DictConfig itself, which torch.load(weights_only=True) refuses.
        state["xp.cfg"] = OmegaConf.to_container(self.cfg, resolve=True)
        state["rng"] = checkpoint.capture_rng()
        state["updates_done"] = self._updates_done
        state["export_info"] = self.export_info()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        rng = state.pop("rng", None)
        by_rank = state.pop("rng_by_rank", None) or [rng]
        # Each rank its own RNG (DDP ranks draw different dropout); a rank the checkpoint has
        # no state for keeps its own seed's stream rather than copying rank 0's.
        rng = by_rank[distributed.rank()] if distributed.rank() < len(by_rank) else None
        state.pop("export_info", None)
        self._updates_done = int(state.pop("updates_done", 0))
        unknown = sorted(set(state) - set(self.stateful.sources))
        if unknown:
            raise CheckpointError(
                f"{self.checkpoint_path} holds states this solver does not have: {unknown}. "
                "Was it written by another solver or version?")
        super().load_state_dict(state)
        if rng is not None:
            checkpoint.restore_rng(rng)

    def commit(self, save_checkpoint: bool = True) -> None:
        """Checkpoint first, then history.json: the history never runs ahead of the weights."""
        self.history.append(self._pending_metrics)
        self._start_epoch()
        rngs = distributed.all_gather_object(checkpoint.capture_rng()) if save_checkpoint else []
        if distributed.is_rank_zero():
            if save_checkpoint:
                state = self.state_dict()
                if len(rngs) > 1:
                    state["rng_by_rank"] = rngs
                checkpoint.save(state, self.folder, len(self.history),
                                self.settings.checkpoint.keep_last)
            self.xp.link.update_history(self.history)
        distributed.barrier()

    def restore(self) -> bool:
        self.xp.link.load()
        if self.checkpoint_path.exists():
            self.load_state_dict(checkpoint.load(self.checkpoint_path))
            logger.info("Resuming from %s after epoch %d.", self.checkpoint_path,
                        len(self.history))
            if self.settings.continue_from:
                logger.info("continue_from=%s ignored: this XP's own checkpoint wins.",
                            self.settings.continue_from)
            return True
        if self.history:
            raise CheckpointError(
                f"{self.folder / 'history.json'} records {len(self.history)} epochs but "
                f"{self.checkpoint_path} is missing. Put the checkpoint back (an earlier "
                "checkpoint_<epoch>.th works), or start over with `dora run --clear ...`.")
        if self.settings.continue_from:
            continue_from(self, self.settings.continue_from)
        return False

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        try:
            self._run_epochs()
        finally:
            self.close()

    def close(self) -> None:
        """Close the experiment loggers and release the XP lock: the solver is done writing."""
        for experiment_logger in self.result_logger._experiment_loggers.values():
            writer = getattr(experiment_logger, "writer", None)
            for method in ("close", "finish"):  # TensorBoard writer, W&B run
                if callable(getattr(writer, method, None)):
                    getattr(writer, method)()
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def _run_epochs(self) -> None:
        self.restore()
        for module in self._registered_modules():
            distributed.broadcast_module(module)
        epochs = self.settings.optim.epochs
        if self.epoch > epochs:
            logger.info("All %d epochs are done; nothing to run.", epochs)
        while self.epoch <= epochs and not self._should_stop_early():
            self.run_epoch()
        if self._should_stop_early():
            logger.info("Early stop: valid %s has not improved by %g for %d epochs.",
                        self.best_metric, self.settings.early_stop.min_delta,
                        self.settings.early_stop.patience)

    def run_epoch(self) -> None:
        self.run_stage("train", self.train_stage)
        final = self.epoch == self.settings.optim.epochs
        if "valid" in self.loaders and self._stage_due(self.settings.valid.every, final):
            metrics = self.run_stage("valid", self.valid_stage)
            value = metrics.get(self.best_metric)
            if value is None:
                raise KeyError(f"valid stage returned no '{self.best_metric}' metric "
                               f"(best_metric of {type(self).__name__}).")
            self._update_best_state(float(value))
            self._step_plateau(metrics)
            final = final or self._should_stop_early([*self._valid_values(), float(value)])
        if self._stage_due(self.settings.evaluate.every, final):
            self.run_stage("evaluate", self.evaluate_stage)
        if self._stage_due(self.settings.generate.every, final):
            self.run_stage("generate", self.generate_stage)
        self.commit()

    def _step_plateau(self, metrics: dict[str, Any]) -> None:
        schedulers = [self.scheduler, *(s for _, s in self._extra_optimizers.values())]
        plateaus = [s for s in schedulers
                    if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau)]
        if not plateaus:
            return
        key = self.settings.schedule.plateau.metric
        if key not in metrics:
            raise KeyError(f"schedule.plateau.metric={key!r} is not a valid metric; "
                           f"valid metrics are {sorted(metrics)}.")
        for scheduler in plateaus:
            scheduler.step(metrics[key])

    def log_progress(self, stage_name: str, iterable: Any, total: int | None = None,
                     updates: int | None = None) -> logs.Progress:
        name = f"{stage_name.capitalize()} | Epoch {self.epoch}"
        count = len(iterable) if total is None else total
        return logs.Progress(logger, name, iterable, count,
                             self.settings.logging.log_updates if updates is None else updates,
                             self.formatter)

    def get_formatter(self, stage_name: str) -> flashy.Formatter:
        return flashy.Formatter(default_format=".4g")

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / checkpoint.LATEST
