"""Codebook interleaving patterns: how K parallel streams of codes become one sequence.

A codec gives K codes per frame (`DiscreteCodec.encode_to_tokens`: (B, K, T)). A token LM
predicts one sequence step at a time, every codebook of a step in parallel, so a pattern decides
at which step each code (codebook q, frame t) sits: codes of the same step are predicted from
the steps before it only. The sequence is (B, K, S); positions that hold no code carry a special
token (the LM's `cardinality`, an extra embedding row). Every pattern starts with one step that
holds no code, so that the first codes are predicted from something (the model's output at step
s predicts step s + 1).

    delay         codebook q sits `delays[q]` steps after codebook 0 (MusicGen: 0, 1, 2, 3)
    parallel      every codebook of a frame in the same step (delays all 0)
    unroll        one code per step, the codebooks of a frame one after another (K T steps)
    coarse_first  codebook 0 of every frame first, then the others with their own delays

A pattern is described by `positions(frames)`: the (K, T) sequence step of every code. Building
the sequence is a scatter of the codes at those steps, its inverse a gather.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch


class Pattern:
    """An interleaving of `num_codebooks` streams; subclasses place the codes (`_steps_of`)."""

    name: str

    def __init__(self, num_codebooks: int):
        if num_codebooks < 1:
            raise ValueError(f"num_codebooks={num_codebooks} must be >= 1")
        self.num_codebooks = num_codebooks
        self._positions = lru_cache(maxsize=16)(self._cpu_positions)

    def steps(self, frames: int) -> int:
        """Sequence steps S of T frames."""
        raise NotImplementedError

    def frames(self, steps: int) -> int:
        """The number of frames T whose sequence has `steps` steps."""
        raise NotImplementedError

    def _steps_of(self, frames: int) -> torch.Tensor:
        """(K, T) int64: the step of each code."""
        raise NotImplementedError

    def _cpu_positions(self, frames: int) -> torch.Tensor:
        if frames < 0:
            raise ValueError(f"frames={frames} must be >= 0")
        return self._steps_of(frames)

    def positions(self, frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(K, T) int64: the sequence step that holds code (q, t)."""
        return self._positions(frames).to(device)

    def first_step(self, frame: int, frames: int) -> int:
        """The first step that holds a code of frame `frame` or later: where generating after
        a prompt of `frame` frames starts (every step before it holds only prompt codes)."""
        return int(self._positions(frames)[:, frame:].min())

    def mask(self, frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(K, S) bool: True where the sequence holds a code, False on special tokens."""
        positions = self.positions(frames, device)
        mask = torch.zeros(self.num_codebooks, self.steps(frames), dtype=torch.bool,
                           device=device)
        return mask.scatter_(1, positions, True)

    def _check_codebooks(self, tensor: torch.Tensor, what: str) -> None:
        if tensor.dim() < 3 or tensor.shape[1] != self.num_codebooks:
            raise ValueError(f"{what} of shape {tuple(tensor.shape)}: expected (B, "
                             f"{self.num_codebooks}, ...) for {self.num_codebooks} codebooks")

    def build(self, codes: torch.Tensor, special: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes (B, K, T) -> the interleaved sequence (B, K, S), `special` where no code
        sits, and the validity mask (K, S)."""
        self._check_codebooks(codes, "codes")
        batch, _, frames = codes.shape
        positions = self.positions(frames, codes.device)
        sequence = codes.new_full((batch, self.num_codebooks, self.steps(frames)), special)
        sequence.scatter_(2, positions.expand(batch, -1, -1), codes)
        return sequence, self.mask(frames, codes.device)

    def revert(self, sequence: torch.Tensor) -> torch.Tensor:
        """The interleaved sequence (B, K, S) -> codes (B, K, T)."""
        self._check_codebooks(sequence, "sequence")
        frames = self.frames(sequence.shape[-1])
        positions = self.positions(frames, sequence.device)
        return sequence.gather(2, positions.expand(sequence.shape[0], -1, -1))

    def revert_logits(self, logits: torch.Tensor, frames: int) -> torch.Tensor:
        """Logits (B, K, S', card) of the sequence's first S' >= S - 1 steps -> (B, K, T, card)
        aligned with the codes: the output at step s predicts step s + 1, so the logits of
        code (q, t) are those of step positions[q, t] - 1."""
        self._check_codebooks(logits, "logits")
        needed = self.steps(frames) - 1
        if logits.shape[2] < needed:
            raise ValueError(f"logits cover {logits.shape[2]} steps; {frames} frames need the "
                             f"first {needed} of the {self.steps(frames)}-step sequence")
        source = self.positions(frames, logits.device) - 1
        codebook = torch.arange(self.num_codebooks, device=logits.device).unsqueeze(1)
        return logits[:, codebook, source]


def _check_delays(delays: Sequence[int], count: int, what: str) -> list[int]:
    delays = [int(delay) for delay in delays]
    if len(delays) != count or any(delay < 0 for delay in delays):
        raise ValueError(f"delays={delays}: expected {count} non-negative delays ({what})")
    return delays


class DelayPattern(Pattern):
    """Codebook q at step 1 + t + delays[q]: S = 1 + T + max(delays). With MusicGen's
    delays 0..K-1 the first codebook of a frame is predicted first and each finer one a step
    later, knowing the coarser ones of that frame."""

    name = "delay"

    def __init__(self, num_codebooks: int, delays: Sequence[int] | None = None):
        super().__init__(num_codebooks)
        self.delays = _check_delays(range(num_codebooks) if delays is None else delays,
                                    num_codebooks, "one per codebook")

    def steps(self, frames: int) -> int:
        return 1 + frames + max(self.delays)

    def frames(self, steps: int) -> int:
        frames = steps - 1 - max(self.delays)
        if frames < 0:
            raise ValueError(f"a {self.name} sequence of {steps} steps is too short: it has "
                             f"at least {1 + max(self.delays)}")
        return frames

    def _steps_of(self, frames: int) -> torch.Tensor:
        delays = torch.tensor(self.delays).unsqueeze(1)
        return 1 + torch.arange(frames).unsqueeze(0) + delays


class ParallelPattern(DelayPattern):
    """Every codebook of frame t at step 1 + t: S = 1 + T."""

    name = "parallel"

    def __init__(self, num_codebooks: int):
        super().__init__(num_codebooks, [0] * num_codebooks)


class UnrollPattern(Pattern):
    """Fully flattened: code (q, t) at step 1 + t K + q, S = 1 + K T."""

    name = "unroll"

    def steps(self, frames: int) -> int:
        return 1 + frames * self.num_codebooks

    def frames(self, steps: int) -> int:
        frames, rest = divmod(steps - 1, self.num_codebooks)
        if steps < 1 or rest:
            raise ValueError(f"an unroll sequence has 1 + {self.num_codebooks} T steps, not "
                             f"{steps}")
        return frames

    def _steps_of(self, frames: int) -> torch.Tensor:
        codebooks = torch.arange(self.num_codebooks).unsqueeze(1)
        return 1 + torch.arange(frames).unsqueeze(0) * self.num_codebooks + codebooks


class CoarseFirstPattern(Pattern):
    """Codebook 0 of every frame first (steps 1..T), then codebooks q >= 1 of frame t at step
    1 + T + t + delays[q - 1]. The fine codebooks depend on the coarse ones of every frame,
    so a model of this pattern generates the length it was trained on."""

    name = "coarse_first"

    def __init__(self, num_codebooks: int, delays: Sequence[int] | None = None):
        super().__init__(num_codebooks)
        self.delays = _check_delays([0] * (num_codebooks - 1) if delays is None else delays,
                                    num_codebooks - 1, "one per codebook after the first")

    def _tail(self) -> int:
        return max(self.delays) if self.delays else 0

    def steps(self, frames: int) -> int:
        fine = frames + self._tail() if self.num_codebooks > 1 else 0
        return 1 + frames + fine

    def frames(self, steps: int) -> int:
        if self.num_codebooks == 1:
            return steps - 1
        frames, rest = divmod(steps - 1 - self._tail(), 2)
        if frames < 0 or rest:
            raise ValueError(f"a coarse_first sequence has 1 + 2 T + {self._tail()} steps, "
                             f"not {steps}")
        return frames

    def _steps_of(self, frames: int) -> torch.Tensor:
        time = torch.arange(frames).unsqueeze(0)
        delays = torch.tensor(self.delays, dtype=torch.long).unsqueeze(1)
        fine = 1 + frames + time + delays
        return torch.cat([1 + time, fine])


PATTERNS: dict[str, type[Pattern]] = {pattern.name: pattern for pattern in (
    DelayPattern, ParallelPattern, UnrollPattern, CoarseFirstPattern)}
