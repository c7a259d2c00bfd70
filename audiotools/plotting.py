"""Figures of XPs for people: training curves side by side, spectrograms of audio, and the
helpers that turn a figure into a PNG file or a PIL image (what a web UI shows).

matplotlib is an optional dependency (the `ui` extra) and is imported only when a figure is
made. Figures are built on matplotlib's Agg canvas directly, never through pyplot: no global
backend is switched, no figure is left registered anywhere, and a server can make figures from
several threads.
"""
from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .experiments import metric_names, metric_values
from .io.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from PIL import Image

# Subplots per row of a curves figure, and each subplot's size in inches.
COLUMNS = 3
PANEL_SIZE = (4.2, 3.0)
# Inches above the subplots for the legend of the XPs (four to a row).
LEGEND_HEIGHT = 0.35
# A subplot's y axis is logarithmic when its positive values span more decades than this.
LOG_DECADES = 2.0
# Dynamic range of a spectrogram below its loudest bin.
SPECTROGRAM_RANGE_DB = 80.0
DPI = 110


def _new_figure(size: tuple[float, float]) -> Figure:
    """An empty figure on an Agg canvas; a ConfigError saying how to install matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError('Plots need matplotlib, which is not installed: '
                          'pip install -e ".[ui]"') from None
    figure = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def default_metrics(histories: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """The valid metrics every XP has; else every metric they all have."""
    shared: list[str] | None = None
    for history in histories.values():
        names = metric_names(history)
        shared = names if shared is None else [name for name in shared if name in names]
    shared = shared or []
    return [name for name in shared if name.startswith("valid.")] or shared


def plot_curves(histories: Mapping[str, Sequence[Mapping[str, Any]]],
                metrics: Sequence[str] | None = None) -> Figure:
    """One subplot per "stage.metric", one line per XP (labelled by its key in `histories`),
    against the epoch. Default metrics: the valid metrics all XPs share."""
    if not histories:
        raise ConfigError("No XP to plot: give at least one.")
    empty = [name for name, history in histories.items() if not history]
    if empty:
        raise ConfigError(f"No finished epoch to plot yet in {', '.join(empty)} "
                          "(its history.json is missing or empty).")
    available: dict[str, None] = {}
    for history in histories.values():
        available.update(dict.fromkeys(metric_names(history, durations=True)))
    if metrics:
        unknown = [name for name in metrics if name not in available]
        if unknown:
            raise ConfigError(f"Unknown metric {', '.join(map(repr, unknown))}; these XPs have: "
                              f"{', '.join(available)}.")
        chosen = list(dict.fromkeys(metrics))
    else:
        chosen = default_metrics(histories)
        if not chosen:
            raise ConfigError(f"These XPs share no metric; choose some with --metric among: "
                              f"{', '.join(available)}.")
    columns = min(COLUMNS, len(chosen))
    rows = math.ceil(len(chosen) / columns)
    legend_rows = math.ceil(len(histories) / 4)
    figure = _new_figure((PANEL_SIZE[0] * columns,
                          PANEL_SIZE[1] * rows + LEGEND_HEIGHT * legend_rows))
    from matplotlib.lines import Line2D
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for extra in axes[len(chosen):]:
        figure.delaxes(extra)
    # One colour per XP in every subplot, and one legend: a subplot's own colour cycle gave
    # an XP another colour wherever an XP before it had no value of that metric.
    colours = {name: f"C{index % 10}" for index, name in enumerate(histories)}
    for ax, metric in zip(axes[:len(chosen)], chosen, strict=True):
        plotted: list[float] = []
        steps: set[float] = set()
        for name, history in histories.items():
            epochs, values = metric_values(history, metric)
            if not values:
                continue
            steps.update(epochs)
            ax.plot(epochs, values, label=name, color=colours[name], linewidth=1.6,
                    marker="o" if len(values) <= 12 else None, markersize=3.5)
            plotted.extend(values)
        finite = [value for value in plotted if math.isfinite(value)]
        if finite and min(finite) > 0 and math.log10(max(finite) / min(finite)) > LOG_DECADES:
            ax.set_yscale("log")
        ax.set_title(metric, fontsize=11)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3, linewidth=0.6)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if len(steps) == 1:  # one epoch: its tick alone, not 1.90 ... 2.10
            [epoch] = steps
            ax.set_xlim(epoch - 0.5, epoch + 0.5)
            ax.set_xticks([epoch])
        ax.spines[["top", "right"]].set_visible(False)
    handles = [Line2D([], [], color=colours[name], linewidth=1.6, label=name)
               for name in histories]
    figure.tight_layout(rect=(0, 0, 1, 1 - LEGEND_HEIGHT * legend_rows / figure.get_figheight()))
    figure.legend(handles=handles, loc="upper center", ncol=min(len(handles), 4), fontsize=8,
                  frameon=False)
    return figure


def _as_mono(audio: Any) -> Any:
    """A 1-D float tensor: `audio` (torch or numpy; (samples,), (channels, samples) or
    (1, channels, samples)) averaged over channels."""
    import torch
    tensor = torch.as_tensor(audio).detach().to("cpu", torch.float32)
    if tensor.dim() == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() == 2:
        tensor = tensor.mean(dim=0)
    if tensor.dim() != 1:
        raise ConfigError(f"Audio of shape {tuple(tensor.shape)}: expected (samples,) or "
                          "(channels, samples).")
    return tensor


def spectrogram_figure(audio: Any, sample_rate: int, title: str | None = None) -> Figure:
    """A log-magnitude (dB) STFT spectrogram of `audio` mixed to mono: time in seconds,
    frequency up to Nyquist (ticks in kHz), 80 dB below the loudest bin."""
    import torch
    if sample_rate <= 0:
        raise ConfigError(f"sample_rate={sample_rate}: must be positive.")
    mono = _as_mono(audio)
    length = mono.shape[-1]
    if length < 16:
        raise ConfigError(f"Audio of {length} samples is too short for a spectrogram "
                          "(16 at least).")
    # About 46 ms windows (1024 at 22.05 kHz, 2048 at 44.1 kHz), shorter for short audio.
    n_fft = 2 ** max(4, round(math.log2(sample_rate * 0.046)))
    while n_fft > length:
        n_fft //= 2
    window = torch.hann_window(n_fft)
    spectrum = torch.stft(mono, n_fft, hop_length=n_fft // 4, window=window, center=True,
                          pad_mode="constant", return_complex=True).abs()
    decibels = 20 * torch.log10(spectrum.clamp_min(1e-8))
    decibels = decibels.clamp_min(decibels.max() - SPECTROGRAM_RANGE_DB)
    duration = length / sample_rate
    nyquist = sample_rate / 2
    figure = _new_figure((8.0, 2.5))
    ax = figure.subplots()
    image = ax.imshow(decibels.numpy(), origin="lower", aspect="auto", cmap="magma",
                      extent=(0.0, duration, 0.0, nyquist), interpolation="nearest")
    ax.set_xlim(0.0, duration)
    ax.set_ylim(0.0, nyquist)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (kHz)")
    ax.yaxis.set_major_formatter(lambda value, _: f"{value / 1000:g}")
    if title:
        ax.set_title(title, fontsize=10)
    colorbar = figure.colorbar(image, ax=ax, pad=0.01)
    colorbar.set_label("dB")
    figure.tight_layout()
    return figure


def figure_png(figure: Figure, path: Path) -> Path:
    """Write `figure` to `path` (format from its suffix: .png, .pdf, .svg...)."""
    path = Path(path)
    supported = figure.canvas.get_supported_filetypes()
    suffix = path.suffix.lstrip(".").lower()
    if suffix not in supported:
        raise ConfigError(f"{path}: cannot write a figure as {path.suffix or 'no suffix'!r}; "
                          f"use one of {', '.join('.' + kind for kind in sorted(supported))}.")
    with atomic_path(path) as tmp:  # a failed render leaves the earlier file whole
        figure.savefig(tmp, dpi=DPI, bbox_inches="tight")
    return path


def figure_image(figure: Figure) -> Image.Image:
    """`figure` rendered as an RGB PIL image (as figure_png would write it)."""
    from PIL import Image
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    buffer.seek(0)
    image = Image.open(buffer)
    return image.convert("RGB")
