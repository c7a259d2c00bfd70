"""StandardSolver: everything generic about training, so a family solver only says what its
model, data and step are.

A family implements `build_model`, `build_dataloaders`, `run_step`, and optionally `evaluate`
and `generate`; it names its best metric (`best_metric`, `best_mode`). The base runs the stages
(train -> valid -> evaluate/generate, gated by `<stage>.every`), the EMA, exact resume,
atomic checkpoints and `continue_from`, and composes the parts with a life of their own: one
OptimizerUnit per optimizer (schedule, scaler, accumulation, clipping), the BestState (best
weights, early stopping), the XPLock, the ResultLogger over our loggers, and the precision.
"""
from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import flashy
import torch
from omegaconf import DictConfig, OmegaConf

from .. import distributed, logs, xp_config
from ..config import SolverConfig, unread_settings
from ..data.builders import AudioDataConfig, shadowed_defaults
from ..errors import CheckpointError, NonFiniteLossError
from ..families import validate_config
from ..io import checkpoint
from ..models.codec import FrozenCodec
from .best_state import BestState
from .continuation import continue_from
from .ema import ModelEMA
from .loading import EpochLoader
from .lock import XPLock
from .optim import SCHEDULE_KEYS, build_optimizer
from .optimizer_unit import OptimizerUnit
from .precision import autocast, resolve_precision
from .results import ResultLogger

logger = logging.getLogger(__name__)

# Draws of the training loader within one epoch when updates_per_epoch outlasts one pass.
_PASSES_PER_EPOCH = 10_000
# The main optimizer's attribute; its scaler and scheduler are saved without a name suffix.
_MAIN = "optimizer"


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
        self.precision = resolve_precision(self.settings.precision, self.device)
        self.lock = XPLock(self.folder, self.xp.sig)
        if self.lock.held:  # by the run that holds the XP: a refused one would rewrite it
            xp_config.record(self.folder, OmegaConf.to_container(cfg, resolve=True))
        self.result_logger = ResultLogger.for_xp(self.logger, self.folder, self.settings.logging)
        logger.info("XP %s in %s", self.xp.sig, self.folder)

        self.loaders: dict[str, EpochLoader] = {}
        self.optimizer: torch.optim.Optimizer | None = None
        # Every optimizer by attribute name, built once the data sets the schedule's length.
        self.optimizer_units: dict[str, OptimizerUnit] = {}
        self._extra_optimizer_names: list[str] = []
        self.ema: dict[str, ModelEMA] = {}
        # Frozen modules (codecs) by attribute name: what identifies each in checkpoints.
        self.frozen: dict[str, dict[str, Any]] = {}
        early_stop = self.settings.early_stop
        self.best = BestState(self.best_metric, self.best_mode, early_stop.patience,
                              early_stop.min_delta)
        self.stateful.register("best_state", self.best)
        self._updates_done = 0
        self._batch_index = 0

        self.build_model()
        self.build_dataloaders()
        self._build_optimizer_units()
        self._log_parameter_counts()
        self.check_settings()

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
        self._extra_optimizer_names.append(name)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backward `loss` into the extra optimizer `name` from `run_step` (training only) and
        update it at the end of each accumulation window."""
        self._check_finite(float(loss.detach()), self._batch_index, what=f"{name} loss")
        self.optimizer_units[name].backward(loss, self._batch_index)

    def register_best_state(self, *names: str) -> None:
        """Modules whose weights are kept at the best valid metric, used by evaluate/generate,
        export and `continue_from`."""
        self.best.names.extend(names)

    @property
    def best_state(self) -> dict[str, dict[str, torch.Tensor]]:
        """The best weights per module; empty before the first valid stage."""
        return self.best.weights

    def register_frozen(self, name: str, module: FrozenCodec) -> None:
        """Use `module` (a codec) as `self.<name>` without ever training it: eval mode in
        every stage, no gradients, outside the optimizer, EMA and best state, and not copied
        into checkpoints, which record where it came from and its weights' hash instead; a
        resume refuses a codec whose weights changed."""
        setattr(self, name, module.requires_grad_(False).eval().to(self.device))
        self.frozen[name] = module.describe()
        logger.info("Frozen %s: %s (sha256 %s...)", name, module.source, module.identity[:12])

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
        return autocast(self.precision, self.device)

    # ------------------------------------------------------------------ setup
    def check_settings(self) -> None:
        """Before training: settings the run will not read, or that cannot act, are said (a
        family adds its own checks; one that would fail later is an error now)."""
        settings = self.settings
        schedule, total = settings.schedule, self.total_updates
        self.say_unread(unread_settings(schedule, ("name", *SCHEDULE_KEYS[schedule.name]),
                                        "schedule"),
                        f"schedule.name={schedule.name} does not use them")
        if schedule.warmup_steps >= total:
            logger.warning("schedule.warmup_steps=%d: the run has %d updates, so the rate "
                           "never leaves its warm-up.", schedule.warmup_steps, total)
        dataset = getattr(settings, "dataset", None)
        if isinstance(dataset, AudioDataConfig):
            self.say_unread(shadowed_defaults(dataset), "every split sets its own")
        if not settings.optim.ema.use:
            self.say_unread(unread_settings(settings.optim.ema, ("use",), "optim.ema"),
                            "optim.ema.use=false")
        if not settings.valid.every:
            waiting = [what for what, on in (
                ("schedule.name=plateau", schedule.name == "plateau"),
                (f"early_stop.patience={settings.early_stop.patience}",
                 settings.early_stop.patience is not None)) if on]
            logger.warning("valid.every=0: no valid stage runs, so no best state is kept "
                           "(`audiotools export` needs one)%s.",
                           f" and {', '.join(waiting)} never act" if waiting else "")

    @staticmethod
    def say_unread(settings: Sequence[str], why: str) -> None:
        """Settings the run will not read (they still name another XP): said once, at start."""
        if settings:
            logger.warning("%s: not read, %s.", ", ".join(settings), why)

    def _build_optimizer_units(self) -> None:
        """One unit per optimizer. Their scalers and schedules are saved as 'scaler' and
        'scheduler' for the main optimizer, 'scaler.<name>', 'scheduler.<name>' for others."""
        total = self.total_updates
        main = [_MAIN] if self.optimizer is not None else []
        for name in [*main, *self._extra_optimizer_names]:
            unit = OptimizerUnit(getattr(self, name), self.settings.optim, self.settings.schedule,
                                 total, self.device.type, self.precision == "16-mixed")
            self.optimizer_units[name] = unit
            for kind, source in unit.states().items():
                self.stateful.register(kind if name == _MAIN else f"{kind}.{name}", source)

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

    @property
    def total_updates(self) -> int:
        """The run's updates, all epochs: what schedules and warm-ups are measured against."""
        return self.settings.optim.epochs * self.updates_per_epoch

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
        """`idx`: the batch's index in the stage; said from 1, as the progress lines count."""
        if not math.isfinite(value):
            kept = self.checkpoint_path if self.checkpoint_path.exists() else "none yet"
            raise NonFiniteLossError(
                f"Non-finite {what} ({value}) in stage '{self.current_stage}', epoch {self.epoch}, "
                f"step {idx + 1}. Training stopped; the last good checkpoint ({kept}) is "
                "untouched. Try a lower optim.lr, optim.max_norm > 0, or precision=32.")

    def _after_update(self) -> None:
        """Count the main optimizer's update, then move the EMA."""
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

    def batch_weight(self, batch: Any) -> float:
        """What one batch's metrics count for in a valid or evaluate average: its items, so
        that the stage reports the mean over the split's items (a short last batch counted as
        much as a full one). A family whose metrics are means over other units (tokens)
        weights by those. Training weights every update alike."""
        if isinstance(batch, torch.Tensor):
            return float(batch.shape[0])
        values = list(batch.values()) if isinstance(batch, dict) else list(batch)
        tensors = [value for value in values if isinstance(value, torch.Tensor)]
        return float(tensors[0].shape[0] if tensors else len(values))

    def summarise(self, metrics: dict[str, float]) -> dict[str, float]:
        """A stage's averaged metrics, with what derives from the averages (a perplexity is
        exp of the mean cross-entropy, not the mean of exps)."""
        return metrics

    def _run_batches(self, batches: Any, total: int | None) -> dict[str, float]:
        """Run a stage's steps; the metrics are averaged over its batches and then over the
        ranks, each weighted by what it ran (`batch_weight` outside training; `total` may be
        None: a stream)."""
        average = flashy.averager()
        metrics: dict[str, float] = {}
        progress = self.log_progress(self.current_stage, batches, total=total)
        ran = 0.0
        for idx, batch in enumerate(progress):
            weight = 1.0 if self.is_training else self.batch_weight(batch)
            ran += weight
            self._batch_index = idx
            with self.autocast:
                step_metrics = self.run_step(idx, batch, {})
            values = {key: float(value.detach()) if isinstance(value, torch.Tensor)
                      else float(value) for key, value in step_metrics.items()}
            if "loss" in values:
                self._check_finite(values["loss"], idx)
            loss = step_metrics.get("loss")
            if self.is_training and isinstance(loss, torch.Tensor):
                if self.optimizer_units[_MAIN].backward(loss, idx):
                    self._after_update()
            metrics = average(values, weight)
            progress.update(**metrics)
        return self.summarise(distributed.average_metrics(metrics, ran))

    def train_stage(self) -> dict[str, float]:
        for module in self._registered_modules():
            module.train()
        for unit in self.optimizer_units.values():
            unit.optimizer.zero_grad(set_to_none=True)
        total = self.updates_per_epoch * self.settings.optim.accumulation
        metrics = self._run_batches(self._train_batches(), total)
        for module in self._registered_modules():
            distributed.average_buffers(module)
        for ema in self.ema.values():  # else valid scores another EMA on each rank
            distributed.average_tensors(ema.buffer_shadows())
        if self.optimizer is not None:
            metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        return metrics

    def valid_stage(self) -> dict[str, float]:
        loader = self.loaders["valid"]
        loader.set_epoch(0)
        with self._eval_mode(), self._swap_weights(self._ema_weights()):
            return self._run_batches(loader, loader.batches())

    def evaluate_stage(self) -> dict[str, Any]:
        with self._eval_mode(), self._swap_weights(self._best_weights()):
            return self.evaluate()

    def generate_stage(self) -> dict[str, Any]:
        with self._eval_mode(), self._swap_weights(self._best_weights()):
            return self.generate()

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
        return self.best.weights or self._ema_weights()

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
    def _update_best_state(self, value: float) -> None:
        if not self.best.improves(value, self.best.values(self.history)):
            return
        logger.info("New best valid %s: %.5g", self.best_metric, value)
        current = self._ema_weights()
        self.best.snapshot({name: current.get(name) or getattr(self, name).state_dict()
                            for name in self.best.names})

    def _should_stop_early(self, *pending: float) -> bool:
        """From the committed valid history (plus this epoch's `pending` value), so a resumed
        run stops exactly where the original would."""
        return self.best.should_stop([*self.best.values(self.history), *pending])

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
        if self.frozen:
            state["frozen"] = self.frozen
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        rng = state.pop("rng", None)
        by_rank = state.pop("rng_by_rank", None) or [rng]
        # Each rank its own RNG (DDP ranks draw different dropout); a rank the checkpoint has
        # no state for keeps its own seed's stream rather than copying rank 0's.
        rng = by_rank[distributed.rank()] if distributed.rank() < len(by_rank) else None
        state.pop("export_info", None)
        self._check_frozen(state.pop("frozen", {}))
        self._updates_done = int(state.pop("updates_done", 0))
        unknown = sorted(set(state) - set(self.stateful.sources))
        if unknown:
            raise CheckpointError(
                f"{self.checkpoint_path} holds states this solver does not have: {unknown}. "
                "Was it written by another solver or version?")
        try:
            super().load_state_dict(state)
        except (RuntimeError, ValueError) as error:  # torch's key / size / param-group checks
            detail = " ".join(str(error).split())
            raise CheckpointError(
                f"{self.checkpoint_path} does not load into this XP's model or optimizer: "
                f"{detail[:600]}{'...' if len(detail) > 600 else ''}. The model's code changed "
                "since it was written (a layer added, renamed or resized): put the code back to "
                "resume this XP, or train the change as a new XP (another signature, or "
                "`dora run --clear ...`, which deletes this XP's folder: keep a copy of what you "
                "need).") from None
        if rng is not None:
            checkpoint.restore_rng(rng)

    def _check_frozen(self, saved: dict[str, dict[str, Any]]) -> None:
        """The frozen modules are the ones this XP trained with (same weights' hash)."""
        for name, now in self.frozen.items():
            before = saved.get(name)
            if before is not None and before["identity"] != now["identity"]:
                raise CheckpointError(
                    f"{self.checkpoint_path} was trained with {name}={before['source']} (sha256 "
                    f"{before['identity'][:12]}...), but {now['source']} now holds other weights "
                    f"(sha256 {now['identity'][:12]}...). Put the original back, or train a new "
                    "XP on this one (another signature, or `dora run --clear ...`).")
            if before is not None and not _same_stats(before.get("stats"), now.get("stats")):
                raise CheckpointError(
                    f"{self.checkpoint_path} was trained with {name}'s latents normalised by "
                    f"mean[0]={before['stats']['mean'][0]:.6g}, and its data now gives "
                    f"{now['stats']['mean'][0]:.6g}: the data (pre-encoded statistics, or the "
                    "train split) changed. Put it back as it was, or train a new XP on it "
                    "(another signature, or `dora run --clear ...`).")

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
            on_disk = len(self.history)
            self.load_state_dict(checkpoint.load(self.checkpoint_path))
            logger.info("Resuming from %s after epoch %d.", self.checkpoint_path,
                        len(self.history))
            if len(self.history) != on_disk and distributed.is_rank_zero():
                # Killed between the checkpoint and history.json: the checkpoint's is whole.
                self.xp.link.update_history(self.history)
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

    def check_continued_from(self, info: dict[str, Any]) -> None:
        """Refuse a `continue_from` source whose recorded model (`info`: its export_info)
        would be misread by this run, before its weights load; a family overrides it (the
        base takes any)."""

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        try:
            self._run_epochs()
        finally:
            self.close()

    def close(self) -> None:
        """Close the experiment loggers and release the XP lock: the solver is done writing."""
        self.result_logger.close()
        self.lock.release()

    def _run_epochs(self) -> None:
        self.restore()
        for module in self._registered_modules():
            distributed.broadcast_module(module)
        # Each rank's EMA started from its own initial weights (seeds differ by rank): give
        # them rank 0's, as the modules just got, or rank 1's valid would score other weights.
        for ema in self.ema.values():
            distributed.broadcast_tensors(ema.state_dict().values())
        epochs = self.settings.optim.epochs
        if self.epoch > epochs:
            logger.info("All %d epochs are done; nothing to run.", epochs)
        while self.epoch <= epochs and not self._should_stop_early():
            self.run_epoch()
        if self._should_stop_early():
            logger.info("Early stop: valid %s has not improved by %g for %d epochs.",
                        self.best_metric, self.best.min_delta, self.best.patience)

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
            for unit in self.optimizer_units.values():
                unit.step_plateau(metrics)
            final = final or self._should_stop_early(float(value))
        if self._stage_due(self.settings.evaluate.every, final):
            self.run_stage("evaluate", self.evaluate_stage)
        if self._stage_due(self.settings.generate.every, final):
            self.run_stage("generate", self.generate_stage)
        self.commit()

    def log_progress(self, stage_name: str, iterable: Any, total: int | None = None,
                     updates: int | None = None) -> logs.Progress:
        """A stage's progress over `iterable`, of `total` items (by default a loader's
        batches: None for a stream, which is counted as it is read)."""
        name = f"{stage_name.capitalize()} | Epoch {self.epoch}"
        if total is not None:
            count = total
        else:
            count = iterable.batches() if isinstance(iterable, EpochLoader) else len(iterable)
        return logs.Progress(logger, name, iterable, count,
                             self.settings.logging.log_updates if updates is None else updates,
                             self.formatter)

    def get_formatter(self, stage_name: str) -> flashy.Formatter:
        return flashy.Formatter(default_format=".4g")

    @property
    def checkpoint_path(self) -> Path:
        return self.folder / checkpoint.LATEST


def _same_stats(before: dict[str, list[float]] | None,
                now: dict[str, list[float]] | None) -> bool:
    """Latent statistics that normalise alike (to float rounding: a resume on other hardware
    measures them again); unknown on either side counts as the same."""
    if before is None or now is None:
        return True
    return all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)
               for key in ("mean", "std") for a, b in zip(before[key], now[key], strict=True))
