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
    frames = round(chunk_seconds * frame_rate)
    least = 2 * overlap_frames
    if frames < least:
        raise ConfigError(f"chunk_seconds={chunk_seconds:g} is {frames} frames at this model's "
                          f"{frame_rate:g} frames/s; windows need at least {least} frames "
                          f"({least / frame_rate:.3g} s), or none: the whole audio at once.")
    return frames


@torch.no_grad()
def run_chunked(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, chunk_frames: int,
                overlap_frames: int, in_per_frame: int, out_per_frame: int) -> torch.Tensor:
    """fn over windows of `chunk_frames` frames of x's last axis, `overlap_frames` shared.

    x holds frames x in_per_frame steps on its last axis; fn maps a window of n frames to
    n x out_per_frame steps (an encoder: in_per_frame = hop, out_per_frame = 1). Without
    gradients: windows are for long audio at inference, and a graph kept over every window
    would hold memory in proportion to the length after all.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames={chunk_frames} must be >= 1.")
    if not 0 <= overlap_frames < chunk_frames:
        raise ValueError(f"overlap_frames={overlap_frames} must be >= 0 and smaller than "
                         f"chunk_frames={chunk_frames}.")
    total = x.shape[-1] // in_per_frame
    if total <= chunk_frames:
        return fn(x)
    step = chunk_frames - overlap_frames
    starts = [*range(0, total - chunk_frames, step), total - chunk_frames]
    pieces = []
    written = 0
    for index, start in enumerate(starts):
        window = fn(x[..., start * in_per_frame:(start + chunk_frames) * in_per_frame])
        last = index == len(starts) - 1
        end = total if last else start + chunk_frames - overlap_frames // 2
        pieces.append(window[..., (written - start) * out_per_frame:(end - start) * out_per_frame])
        written = end
    return torch.cat(pieces, dim=-1)
