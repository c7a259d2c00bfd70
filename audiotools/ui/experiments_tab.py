"""The experiments tab: the XPs of a dora dir as a table (signature, recipe, overrides, state,
best metrics), their curves compared in one plot (the code of `audiotools plot`), and the
samples they generated, playable with their spectrograms. Everything is read again on
Refresh, so runs going on show their progress."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..data.audio import audio_read
from ..experiments import (
    XPSummary,
    find_xps,
    load_history,
    metric_names,
    resolve_xp,
    samples,
)
from ..plotting import plot_curves
from .components import shows_errors, spectrogram

COLUMNS = ["signature", "recipe", "overrides", "state", "epochs", "best metrics"]
COLUMN_WIDTHS = ["9%", "15%", "26%", "12%", "7%", "31%"]


# Metrics a table row shows: the best valid one, then the first evaluate ones.
SHOWN_METRICS = 5


def _best(xp: XPSummary) -> str:
    shown = [f"{name} {value:.4g}" for name, value in list(xp.best.items())[:SHOWN_METRICS]]
    if xp.best_epoch is not None and shown:
        shown[0] += f" (epoch {xp.best_epoch})"
    return ", ".join(shown)


def xp_rows(xps: list[XPSummary]) -> list[list[Any]]:
    return [[xp.sig, xp.recipe or "", " ".join(xp.overrides), xp.state,
             f"{xp.epochs_done}/{xp.epochs}" if xp.epochs else str(xp.epochs_done), _best(xp)]
            for xp in xps]


def experiments_tab(app: gr.Blocks, dora_dir: Path) -> None:
    gr.Markdown(f"XPs in `{dora_dir / 'xps'}`, most recently updated first.")
    refresh = gr.Button("Refresh", size="sm", elem_id="experiments-refresh")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True,
                         column_widths=COLUMN_WIDTHS, max_height=420, show_search="filter",
                         elem_id="experiments-table")
    with gr.Row():
        chosen = gr.Dropdown([], multiselect=True, label="XPs to compare", scale=2)
        metrics = gr.Dropdown([], multiselect=True, label="Metrics (empty: the shared valid "
                                                          "metrics)", scale=2)
    curves = gr.Plot(label="Training curves", elem_id="experiments-curves")
    with gr.Row():
        sample_xp = gr.Dropdown([], label="Samples of XP")
        sample = gr.Dropdown([], label="Sample")
    with gr.Row():
        player = gr.Audio(type="filepath", label="Sample", interactive=False)
        sample_image = gr.Image(type="pil", show_label=False, interactive=False)

    @shows_errors
    def listing():
        xps = find_xps(dora_dir)
        sigs = [xp.sig for xp in xps]
        plotted = [xp.sig for xp in xps if xp.epochs_done][:3]
        return (xp_rows(xps), gr.update(choices=sigs, value=plotted),
                gr.update(choices=sigs, value=sigs[0] if sigs else None))

    @shows_errors
    def metric_choices(sigs: list[str] | None):
        names: dict[str, None] = {}
        for sig in sigs or []:
            names.update(dict.fromkeys(metric_names(load_history(resolve_xp(sig, dora_dir)))))
        return gr.update(choices=list(names))

    @shows_errors
    def plot(sigs: list[str] | None, names: list[str] | None):
        histories = {sig: load_history(resolve_xp(sig, dora_dir)) for sig in sigs or []}
        histories = {sig: history for sig, history in histories.items() if history}
        if not histories:
            return None
        return plot_curves(histories, names or None)

    @shows_errors
    def sample_choices(sig: str | None):
        if not sig:
            return gr.update(choices=[], value=None)
        folder = resolve_xp(sig, dora_dir)
        files = [str(path.relative_to(folder / "samples")) for path in samples(folder)]
        return gr.update(choices=files, value=files[-1] if files else None)

    @shows_errors
    def show_sample(sig: str | None, name: str | None):
        if not sig or not name:
            return None, None
        path = resolve_xp(sig, dora_dir) / "samples" / name
        audio, rate = audio_read(path)
        return str(path), spectrogram(audio, rate, f"{sig} · {name}")

    refresh.click(listing, None, [table, chosen, sample_xp], api_name="experiments")
    # The page's own wiring, kept out of the API (`experiments` is the one endpoint).
    private = {"api_visibility": "private"}
    chosen.change(metric_choices, [chosen], [metrics], **private)
    gr.on([chosen.change, metrics.change], plot, [chosen, metrics], [curves], **private)
    sample_xp.change(sample_choices, [sample_xp], [sample], **private)
    sample.change(show_sample, [sample_xp, sample], [player, sample_image], **private)
    # Filled when the page opens, as Refresh fills it.
    app.load(listing, None, [table, chosen, sample_xp], **private)
