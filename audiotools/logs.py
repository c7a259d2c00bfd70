"""Console and file logging for runs, and the progress display.

On a terminal the progress is a live bar; log files (and non-terminal stderr, e.g. SLURM
logs) get a line every 1/`log_updates` of the stage instead.
"""
from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

_FILE_ONLY = "file_only"
_OURS = "_audiotools_handler"


class _SkipFileOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, _FILE_ONLY, False)


def setup_logging(folder: Path | None, rank: int, level: str = "INFO") -> None:
    """Root logging: stderr (other ranks: WARNING and above) and, on rank 0 alone,
    `solver.log.0` in the XP. Other ranks' stderr is kept by their launcher (dora -d:
    worker_<rank>.log, submitit: <job>_<rank>_log.out)."""
    root = logging.getLogger()
    root.setLevel(level)
    for handler in list(root.handlers):
        if getattr(handler, _OURS, False):  # from an earlier solver in this process
            root.removeHandler(handler)
            handler.close()
    layout = dict(fmt="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
                  datefmt="%m-%d %H:%M:%S")
    formatter = logging.Formatter(**layout)
    plain = _PlainFormatter(**layout)  # files and pipes get no terminal colour codes
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(formatter if sys.stderr.isatty() else plain)
    console.setLevel(level if rank == 0 else "WARNING")
    if sys.stderr.isatty():
        console.addFilter(_SkipFileOnly())
    handlers: list[logging.Handler] = [console]
    if folder is not None and rank == 0:
        handlers.append(logging.FileHandler(folder / f"solver.log.{rank}"))
        handlers[-1].setFormatter(plain)
    for handler in handlers:
        setattr(handler, _OURS, True)
        root.addHandler(handler)


class _PlainFormatter(logging.Formatter):
    """Without ANSI escape sequences (flashy's summaries are bold): they read as ^[[1m in a
    log file."""

    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Progress:
    """Iterate `iterable`, showing `update(**metrics)` values in a bar (terminal) and in
    `updates` evenly spaced log lines (of an unknown `total`, a stream's: none)."""

    def __init__(self, logger: logging.Logger, name: str, iterable: Iterable,
                 total: int | None, updates: int, formatter: Any):
        self.logger = logger
        self.name = name
        self.iterable = iterable
        self.total = total
        self.updates = updates
        self.formatter = formatter
        self.metrics: dict[str, Any] = {}
        show_bar = sys.stderr.isatty() and logging.getLogger().isEnabledFor(logging.INFO)
        self.bar = tqdm(total=total, desc=name, leave=False, dynamic_ncols=True,
                        disable=not show_bar)

    def _due(self, done: int) -> bool:
        """A line at each of `updates` evenly spaced points, the last at the end (every
        `total // updates` items logged up to twice as many lines)."""
        if not self.updates or not self.total:
            return False
        return done * self.updates // self.total > (done - 1) * self.updates // self.total

    def update(self, **metrics: Any) -> None:
        """Latest metrics; formatted lazily, only when a bar refresh or log line shows them."""
        self.metrics = metrics

    def __iter__(self) -> Iterator[Any]:
        begin = time.time()
        try:
            for index, item in enumerate(self.iterable):
                yield item
                done = index + 1
                if not self.bar.disable:
                    self.bar.update(1)
                    if self.metrics:
                        self.bar.set_postfix(self.formatter(self.metrics), refresh=False)
                if self._due(done):
                    speed = done / max(1e-9, time.time() - begin)
                    fields = [self.name, f"{done}/{self.total}", f"{speed:.2f} it/s"]
                    fields += [f"{key} {value}"
                               for key, value in self.formatter(self.metrics).items()]
                    self.logger.info(" | ".join(fields), extra={_FILE_ONLY: True})
        finally:
            self.bar.close()
