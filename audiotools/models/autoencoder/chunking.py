"""Run a network over long signals in overlapping windows and stitch the outputs.

A window's edges see zero padding where the whole signal would have real neighbours, so each
window's output is trusted only away from its inner edges: half the overlap is dropped on
each side. With half the overlap at least the network's receptive field (in frames), the
stitched output equals the unchunked one up to float rounding; memory stays bounded by the
window length.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from ...errors import ConfigError

# Frames shared by neighbouring windows in chunked encode/decode (as stable-audio-tools).
DEFAULT_OVERLAP_FRAMES = 32


def window_frames(chunk_seconds: float, frame_rate: float,
                  overlap_frames: int = DEFAULT_OVERLAP_FRAMES) -> int:
    """Frames of a `chunk_seconds` window, refused below twice the overlap its neighbours
    share: such windows are mostly overlap, slower than none and saving no memory."""
    frames = round(min(chunk_seconds * frame_rate, 2.0 ** 62))  # past any audio's length
    least = 2 * overlap_frames
    if frames < least:
        raise ConfigError(f"chunk_seconds={chunk_seconds:g} is {frames} frames at this model's "
                          f"{frame_rate:g} frames/s; windows need at least {least} frames "
                          f"({least / frame_rate:.3g} s), or none: the whole audio at once.")
    return frames


def _check_window(chunk_frames: int, overlap_frames: int) -> None:
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames} must be >= 1.")
    if not 0 <= overlap_frames < chunk_frames:
        raise ValueError(f"overlap_frames={overlap_frames} must be >= 0 and smaller than "
                         f"chunk_frames={chunk_frames}.")


def window_plan(total: int, chunk_frames: int, overlap_frames: int) -> list[tuple[int, int, int]]:
    """(start, first kept frame, end kept) of each window over `total` frames: windows of
    `chunk_frames` every `chunk_frames - overlap_frames`, the last one ending at `total`; each
    keeps its output from where the previous one's ends to half the overlap before its own
    end (one window: the whole signal)."""
    _check_window(chunk_frames, overlap_frames)
    if total <= chunk_frames:
        return [(0, 0, total)]
    starts = [*range(0, total - chunk_frames, chunk_frames - overlap_frames),
              total - chunk_frames]
    plan, written = [], 0
    for index, start in enumerate(starts):
        end = total if index == len(starts) - 1 else start + chunk_frames - overlap_frames // 2
        plan.append((start, written, end))
        written = end
    return plan


@torch.no_grad()
def run_chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk_frames: int,
                overlap_frames: int, in_per_frame: int, out_per_frame: int) -> torch.Tensor:
    """fn over windows of `chunk_frames` frames of x's last axis, `overlap_frames` shared.

    x holds frames x in_per_frame steps on its last axis; fn maps a window of n frames to
    n x out_per_frame steps (an encoder: in_per_frame = hop, out_per_frame = 1). Without
    gradients: windows are for long audio at inference, and a graph kept over every window
    would hold memory in proportion to the length after all.
    """
    plan = window_plan(x.shape[-1] // in_per_frame, chunk_frames, overlap_frames)
    if len(plan) == 1:
        return fn(x)
    pieces = []
    for start, kept, end in plan:
        window = fn(x[..., start * in_per_frame:(start + chunk_frames) * in_per_frame])
        pieces.append(window[..., (kept - start) * out_per_frame:(end - start) * out_per_frame])
    return torch.cat(pieces, dim=-1)


class StreamChunked:
    """`run_chunked` over a signal given in consecutive pieces, whose length is known only
    at its end: each window runs once its input has come and it is known not to be the last
    (more input follows it), the rest at `finish`; at most two windows' input is kept
    between pieces. The outputs joined equal run_chunked's over the whole signal."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], chunk_frames: int,
                 overlap_frames: int, in_per_frame: int, out_per_frame: int):
        _check_window(chunk_frames, overlap_frames)
        self._fn, self._chunk, self._overlap = fn, chunk_frames, overlap_frames
        self._in, self._out = in_per_frame, out_per_frame
        self._kept: torch.Tensor | None = None  # the input from frame `_offset` on
        self._offset = 0
        self._next = 0  # the next window's start
        self._written = 0  # the frames output so far

    def push(self, x: torch.Tensor) -> list[torch.Tensor]:
        """More input (..., steps) -> the outputs of the windows it completes."""
        self._kept = x if self._kept is None else torch.cat([self._kept, x], dim=-1)
        outputs = []
        # A window is not the last while input follows its end.
        while self._offset + self._kept.shape[-1] // self._in > self._next + self._chunk:
            end = self._next + self._chunk - self._overlap // 2
            outputs.append(self._run((self._next, self._written, end)))
        return outputs

    def finish(self) -> list[torch.Tensor]:
        """The outputs of the windows left once the input has ended."""
        if self._kept is None:
            return []
        total = self._offset + self._kept.shape[-1] // self._in
        left = [window for window in window_plan(total, self._chunk, self._overlap)
                if window[2] > self._written]
        return [self._run(window) for window in left]

    def _run(self, window: tuple[int, int, int]) -> torch.Tensor:
        start, kept, end = window
        assert self._kept is not None
        begin = (start - self._offset) * self._in
        with torch.no_grad():
            output = self._fn(self._kept[..., begin:begin + self._chunk * self._in])
        self._written = end
        self._next = start + self._chunk - self._overlap
        # The last window starts after this one (total - chunk > start), maybe before _next.
        drop = max(0, start + 1 - self._offset)
        self._kept, self._offset = self._kept[..., drop * self._in:], self._offset + drop
        return output[..., (kept - start) * self._out:(end - start) * self._out]
