"""VGGish (Hershey et al., ICASSP 2017), the embedding of the Fréchet Audio Distance, built
here and loaded from a local file of the PyTorch port's weights (`vggish-10086976.pth`).

Preprocessing, as the published model defines it: 16 kHz mono; 25 ms frames (400 samples)
every 10 ms, not centred, partial frames dropped; periodic Hann window; magnitude of a
512-point FFT; 64 mel bands from 125 to 7500 Hz (HTK mel scale, triangles of peak 1 placed
on the FFT bin frequencies, the DC bin left out); log(mel + 0.01); patches of 96 frames
(0.96 s) every 96 frames. One 128-d vector per patch.

Network: six 3x3 convolutions (64, 128, 256, 256, 512, 512 channels, ReLU) with 2x2 max
pools after the 1st, 2nd, 4th and 6th; the (512, 6, 4) map flattened in the channels-last
order of the TensorFlow original; Linear 12288 -> 4096 -> 4096 -> 128 (ReLU between). The
state-dict keys are the port's: `features.{0,3,6,8,11,13}.*` and `embeddings.{0,2,4}.*`.
The embedding is the last Linear's output, before the ReLU the port puts after it and before
its PCA/8-bit postprocessing (`pproc.*` keys, ignored): the ReLU zeroes coordinates and the
quantisation rounds them, both throwing away what a distance between distributions uses.
"""
from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..environment import resolve_path
from ..errors import CheckpointError
from .embeddings import AudioEmbedder

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
FFT_SIZE = 512
MEL_BANDS = 64
MEL_RANGE_HZ = (125.0, 7500.0)
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
IGNORED_PREFIX = "pproc."  # the port's PCA postprocessor


@dataclass(frozen=True)
class VGGishConfig:
    """Layer sizes; the defaults are the published model (smaller ones make test weights)."""

    channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)
    hidden: int = 4096
    embedding: int = 128


# After which convolution (by position) a 2x2 max pool follows.
_POOL_AFTER = (0, 1, 3, 5)


class VGGish(nn.Module):
    """(P, 1, 96, 64) log-mel patches (time, mel) -> (P, embedding)."""

    def __init__(self, config: VGGishConfig = VGGishConfig()) -> None:
        super().__init__()
        if len(config.channels) != 6:
            raise ValueError(f"VGGish has 6 convolutions; got channels={config.channels}.")
        layers: list[nn.Module] = []
        previous = 1
        for index, width in enumerate(config.channels):
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.ReLU()]
            if index in _POOL_AFTER:
                layers.append(nn.MaxPool2d(2, 2))
            previous = width
        self.features = nn.Sequential(*layers)
        pooled = (PATCH_FRAMES >> len(_POOL_AFTER)) * (MEL_BANDS >> len(_POOL_AFTER))
        self.embeddings = nn.Sequential(
            nn.Linear(previous * pooled, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.hidden), nn.ReLU(),
            nn.Linear(config.hidden, config.embedding))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        maps = self.features(patches)
        return self.embeddings(maps.permute(0, 2, 3, 1).flatten(1))


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_matrix() -> torch.Tensor:
    """(FFT_SIZE // 2 + 1, MEL_BANDS) float64 weights of VGGish's mel bands."""
    bins_mel = _hz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1,
                                         dtype=torch.float64))
    edges = torch.linspace(*_hz_to_mel(torch.tensor(MEL_RANGE_HZ, dtype=torch.float64)),
                           MEL_BANDS + 2, dtype=torch.float64)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, None]) / (upper - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    weights[0] = 0.0
    return weights


def log_mel_patches(mono: torch.Tensor) -> torch.Tensor:
    """(B, T) float32 mono at 16 kHz -> (B * patches, 1, 96, 64) log-mel patches, each clip's
    patches in time order; a clip shorter than one patch (0.975 s) is an error."""
    frames = 1 + (mono.shape[-1] - WINDOW) // HOP if mono.shape[-1] >= WINDOW else 0
    patches = frames // PATCH_FRAMES
    if patches == 0:
        minimum = ((PATCH_FRAMES - 1) * HOP + WINDOW) / SAMPLE_RATE
        raise ValueError(f"VGGish needs clips of at least {minimum:g} s "
                         f"({(PATCH_FRAMES - 1) * HOP + WINDOW} samples at {SAMPLE_RATE} Hz); "
                         f"got {mono.shape[-1]} samples.")
    window = torch.hann_window(WINDOW, periodic=True, dtype=mono.dtype, device=mono.device)
    framed = mono.unfold(-1, WINDOW, HOP)[:, :patches * PATCH_FRAMES] * window
    magnitude = torch.fft.rfft(framed, n=FFT_SIZE).abs()
    mel = magnitude @ mel_matrix().to(mono)
    log_mel = torch.log(mel + LOG_OFFSET)
    return log_mel.reshape(-1, 1, PATCH_FRAMES, MEL_BANDS)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch state dict ({error}).") from None
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor)
                                                  for value in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (names -> tensors) of VGGish.")
    return dict(state)


def load_vggish(source: str | Path, config: VGGishConfig = VGGishConfig(),
                device: str | torch.device = "cpu") -> VGGish:
    """VGGish with the weights of a local `.pth` (the PyTorch port's state dict) or
    `.safetensors` file; `//reference/...` paths resolve to the team's reference dir. Every
    key must fit: missing, unexpected and mis-shaped keys are listed in the error."""
    path = resolve_path(source)
    if not path.is_file():
        raise CheckpointError(
            f"VGGish weights {source} not found ({path}). Put the PyTorch port's state dict "
            f"(vggish-10086976.pth) there, or name another file as vggish:PATH; nothing is "
            f"downloaded.")
    state = {key: value for key, value in _read_state(path).items()
             if not key.startswith(IGNORED_PREFIX)}
    with torch.device("meta"):
        expected = {key: value.shape for key, value in VGGish(config).state_dict().items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [f"{key} {tuple(state[key].shape)} != {tuple(shape)}"
                 for key, shape in expected.items() if key in state and state[key].shape != shape]
    if missing or unexpected or misshaped:
        raise CheckpointError(
            f"{path} does not fit VGGish{'' if config == VGGishConfig() else f' {config}'}: "
            f"missing {missing}, unexpected {unexpected}, shapes (file != model) {misshaped}.")
    model = VGGish(config)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


class VGGishEmbedder(AudioEmbedder):
    """One embedding per 0.96 s patch of each clip, computed on the model's device."""

    name = "vggish"
    sample_rate = SAMPLE_RATE

    def __init__(self, model: VGGish, batch_patches: int = 64) -> None:
        self.model = model.eval()
        self.dim = model.embeddings[-1].out_features
        self.batch_patches = batch_patches

    def _embed(self, mono: torch.Tensor) -> torch.Tensor:
        patches = log_mel_patches(mono)
        device = next(self.model.parameters()).device
        return torch.cat([self.model(chunk.to(device)).cpu()
                          for chunk in patches.split(self.batch_patches)])
