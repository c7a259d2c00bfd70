"""A progress bar for the generative commands, fed by the pipelines' `callback(step, total)`.

On stderr, and only when stderr is a terminal: logs, pipes and tests stay clean.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Callback = Callable[[int, int], None]


@contextmanager
def progress(label: str) -> Iterator[Callback | None]:
    """A callback to pass as `callback=` (None off a terminal); the bar closes on exit."""
    if not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm
    bar: Any = None

    def callback(step: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=False,
                       dynamic_ncols=True)
        bar.update(step - bar.n)

    try:
        yield callback
    finally:
        if bar is not None:
            bar.close()
