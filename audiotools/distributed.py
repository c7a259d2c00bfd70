"""Process-level setup shared by every run: seeding, device choice and torch.distributed.

Dora (or torchrun, or submitit on SLURM) sets RANK/WORLD_SIZE; this module only reads them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import random
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dora import distrib as dora_distrib
from dora.distrib import DistribSpec

from .errors import CheckpointError, ConfigError, XPLockedError

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch. Callers offset the seed by rank (as SLURM_PROCID does in
    stable-audio-tools) so data augmentation differs across ranks while model init is broadcast."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_num_threads(num_threads: int | None, spec: DistribSpec) -> None:
    """`num_threads` when set. Otherwise, unless OMP_NUM_THREADS is set, the CPUs SLURM gave
    this task, or this machine's CPUs split between the ranks sharing it: torch's default of
    every core per process oversubscribes a shared CPU (gloo ranks then spin; on a busy
    2-core node a 1-CPU SLURM job's epoch took 13.6 s with it, 1.8 s with one thread)."""
    if num_threads is None and "OMP_NUM_THREADS" not in os.environ:
        slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if slurm_cpus:
            num_threads = int(slurm_cpus)
        elif spec.world_size > 1:
            local = int(os.environ.get("LOCAL_WORLD_SIZE")
                        or max(1, spec.world_size // spec.num_nodes))
            num_threads = max(1, len(os.sched_getaffinity(0)) // local)
    if num_threads is not None:
        torch.set_num_threads(num_threads)


def _dora_args(argv: Sequence[str], command: str = "run") -> argparse.Namespace | None:
    """The arguments of `dora <command> ...` when `argv` is that command line (for run: the
    parent of the DDP workers, or a single run), else None (another dora command, a SLURM
    task, `audiotools ...`, pytest)."""
    if not argv or not (Path(argv[0]).name == "dora" or argv[0].endswith("dora/__main__.py")):
        return None
    if command not in argv[1:]:  # e.g. inside `dora run`, which leaves only the overrides
        return None
    from dora.__main__ import get_parser
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse would print its usage
            args, _ = get_parser().parse_known_args(list(argv[1:]))
    except SystemExit:  # not a command line dora itself would accept
        return None
    return args if args.command == command else None


def grid_only_looks(argv: Sequence[str] | None = None) -> bool:
    """Whether this `dora grid` only looks at or cancels its XPs (-C, --dry_run, -f, -l, -t),
    submitting nothing: what a job would need need not be there."""
    args = _dora_args(sys.argv if argv is None else argv, "grid")
    return args is not None and bool(args.cancel or args.dry_run or args.folder is not None
                                     or args.log is not None or args.tail is not None)


def check_launch(cfg: Any, argv: Sequence[str] | None = None,
                 folder: Path | None = None) -> None:
    """Refuse, before Dora creates the XP folder, a `dora run` that cannot start here: the
    error is printed once and nothing is left behind. Only `dora run` is checked: `dora grid`
    prepares XPs on a login node for GPU jobs elsewhere. `folder`: the XP's, which `--clear`
    must not delete under a run that holds its lock (both would then write into it)."""
    args = _dora_args(sys.argv if argv is None else argv)
    if args is None:
        return
    from .experiments import is_running
    if folder is not None and is_running(folder):
        if args.clear:
            raise CheckpointError(
                f"`dora run --clear` would delete {folder} under the run that holds its lock, "
                "which would go on writing there. Stop that run first (Ctrl-C, kill, or "
                "scancel for a SLURM job), then clear.")
        # Refused here, before DDP workers meet at the XP's port, which the run holds.
        holder = (folder / "lock").read_text().strip() or "another process"
        raise XPLockedError.held(folder.name, holder, folder / "lock")
    if args.clear and folder is not None and folder.is_symlink():
        target = os.readlink(folder)
        way_out = ("Empty or remove the folder it links to yourself" if folder.exists() else
                   "It links to nothing: remove the link")
        raise ConfigError(  # Dora's rmtree refuses a link, says "should be okay" and resumes
            f"`dora run --clear` cannot delete {folder}: it is a link (to {target}), which "
            f"Dora leaves as it is and the run would resume in. {way_out}, then run without "
            "--clear.")
    if args.ddp_workers is not None and args.ddp_workers < 1:
        raise ConfigError(f"--ddp_workers={args.ddp_workers}: give the number of processes, "
                          "1 or more (with -d).")
    if args.ddp_workers is not None and not args.ddp:
        raise ConfigError(f"--ddp_workers={args.ddp_workers} without -d runs one process; "
                          f"`dora run -d --ddp_workers {args.ddp_workers} ...` runs them.")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible here; use device=cpu, or "
                          "device=auto (cuda when there is one). docs/installation.md says "
                          "which NVIDIA driver the installed torch needs.")
    if args.ddp and not args.ddp_workers and "RANK" not in os.environ \
            and torch.cuda.device_count() == 0:
        raise ConfigError("`dora run -d` starts one process per GPU and this machine has none: "
                          "give the number of CPU processes (gloo), e.g. "
                          "`dora run -d --ddp_workers 2 ...`.")
    if cfg.logging.wandb.mode == "online":
        from .solvers.loggers import check_wandb_login
        check_wandb_login(cfg.logging.wandb.mode)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is visible; use device=cpu or auto.")
    if device == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(device)


def init(device: str) -> None:
    """Initialise torch.distributed when the launcher asked for several processes:
    gloo on CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE") or 1) > 1:
        stop_with_parent()
    backend = "nccl" if resolve_device(device).type == "cuda" else "gloo"
    dora_distrib.init(backend=backend)


def stop_with_parent() -> None:
    """SIGTERM this process when the one that started it dies (Linux): Dora's launcher does not
    stop its DDP workers when it is killed alone, and they trained on as orphans."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() == 1:  # it died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def rank() -> int:
    return dora_distrib.rank()


def world_size() -> int:
    return dora_distrib.world_size()


def is_rank_zero() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        torch.distributed.barrier()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average gradients over ranks (what DDP does, without its wrapper), so that the solver's
    own accumulation and clipping apply unchanged."""
    if world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    for grad in grads:
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        grad.div_(world_size())


def all_gather_object(value: Any) -> list[Any]:
    """`value` from every rank, in rank order (a picklable object, e.g. RNG states)."""
    if world_size() == 1:
        return [value]
    gathered: list[Any] = [None] * world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def broadcast_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Give every rank rank 0's values of `tensors`, in place."""
    if world_size() == 1:
        return
    for tensor in tensors:
        torch.distributed.broadcast(tensor.data, src=0)


def broadcast_module(module: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    broadcast_tensors(list(module.parameters()) + list(module.buffers()))


def average_buffers(module: torch.nn.Module) -> None:
    """Average floating buffers (BatchNorm statistics) across ranks after a training stage."""
    average_tensors(buffer for buffer in module.buffers() if torch.is_floating_point(buffer))


def average_tensors(tensors: Iterable[torch.Tensor]) -> None:
    """Replace each tensor, in place, by its mean over the ranks."""
    if world_size() == 1:
        return
    for tensor in tensors:
        torch.distributed.all_reduce(tensor.data, op=torch.distributed.ReduceOp.SUM)
        tensor.data.div_(world_size())


def average_metrics(metrics: dict[str, float], count: float = 1.0) -> dict[str, float]:
    """Weighted average of a metrics dict across ranks."""
    if world_size() == 1 or not metrics:
        return metrics
    keys = list(metrics)
    tensor = torch.tensor([metrics[k] * count for k in keys] + [count], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        tensor = tensor.cuda()
    torch.distributed.all_reduce(tensor)
    values = (tensor[:-1] / tensor[-1]).cpu().tolist()
    return dict(zip(keys, values, strict=True))


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of `tensor` over every rank (itself with one process)."""
    if world_size() == 1:
        return tensor
    total = tensor.clone().cuda() if torch.distributed.get_backend() == "nccl" else tensor.clone()
    torch.distributed.all_reduce(total)
    return total.to(tensor.device)
