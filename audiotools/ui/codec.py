"""The autoencoder tab: an upload and its reconstruction side by side, each with its
spectrogram, and how close they are (SI-SNR, mel distance)."""
from __future__ import annotations

import time

import gradio as gr

from ..inference.autoencoder import AutoencoderPipeline
from ..metrics.audio import mel_distance, si_snr
from .components import describe_audio, read_upload, shows_errors, spectrogram
from .context import UIContext


def autoencoder_tab(pipeline: AutoencoderPipeline, context: UIContext, name: str) -> None:
    with gr.Row():
        clip = gr.Audio(sources=["upload"], type="filepath", label="Audio to reconstruct",
                        elem_id=f"{name}-reconstruct-input")
        output = gr.Audio(type="filepath", label="Reconstruction", interactive=False,
                          buttons=["download"], elem_id=f"{name}-reconstruct-audio")
    with gr.Row():
        input_image = gr.Image(type="pil", show_label=False, interactive=False)
        output_image = gr.Image(type="pil", show_label=False, interactive=False)
    info = gr.Markdown(elem_classes=["result-info"], elem_id=f"{name}-reconstruct-info")
    button = gr.Button("Reconstruct", variant="primary", elem_id=f"{name}-reconstruct-button")

    @shows_errors
    def reconstruct(path: str | None):
        audio, rate = read_upload(path, "the audio to reconstruct", context.max_duration)
        started = time.perf_counter()
        output_audio, out_rate = pipeline.reconstruct(audio, rate)
        took = time.perf_counter() - started
        # The reconstruction comes back in the upload's rate and channels.
        length = min(audio.shape[-1], output_audio.shape[-1])
        reference, estimate = audio[None, :, :length], output_audio[None, :, :length]
        closeness = (f"SI-SNR {float(si_snr(estimate, reference).mean()):.2f} dB · mel "
                     f"distance {float(mel_distance(estimate, reference, out_rate)):.3f}")
        return (context.outputs.write(output_audio, out_rate, "reconstructed"),
                spectrogram(audio, rate, "input"),
                spectrogram(output_audio, out_rate, "reconstruction"),
                f"{describe_audio(output_audio, out_rate)} · {closeness} · {took:.1f} s")

    button.click(reconstruct, [clip], [output, input_image, output_image, info],
                 api_name=f"{name}_reconstruct")
