"""The classifier tab: an upload's class probabilities as a bar chart."""
from __future__ import annotations

import gradio as gr

from ..inference.classifier import ClassifierPipeline
from .components import read_upload, shows_errors
from .context import UIContext


def classifier_tab(pipeline: ClassifierPipeline, context: UIContext, name: str) -> None:
    with gr.Row():
        clip = gr.Audio(sources=["upload"], type="filepath", label="Audio to classify",
                        elem_id=f"{name}-classify-input")
        probabilities = gr.Label(num_top_classes=min(10, len(pipeline.class_names)),
                                 label="Class probabilities",
                                 elem_id=f"{name}-classify-probabilities")
    button = gr.Button("Classify", variant="primary", elem_id=f"{name}-classify-button")

    @shows_errors
    def classify(path: str | None) -> dict[str, float]:
        audio, rate = read_upload(path, "the audio to classify", context.max_duration)
        return dict(pipeline.classify(audio, rate))

    button.click(classify, [clip], probabilities, api_name=f"{name}_classify")
