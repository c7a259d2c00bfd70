"""The tabs of the generative families: generate from conditions, continue an uploaded clip,
inpaint a region of one (diffusion), and decode a diffusion autoencoder's reconstruction.
Diffusion and the token LM share every panel; only their sampling settings differ."""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr
import torch

from ..errors import ConfigError
from ..inference.diffusion import DiffusionPipeline
from ..inference.inputs import SEED_LIMIT
from ..inference.musicgen import MusicGenPipeline
from ..sampling.diffusion import SAMPLERS
from .components import (
    SPECTROGRAM_SAMPLES,
    ConditionForm,
    check_duration,
    check_total,
    checked_field,
    condition_form,
    describe_audio,
    field_name,
    number_input,
    read_upload,
    shows_errors,
    slider_input,
    spectrogram,
)
from .context import UIContext

Pipeline = DiffusionPipeline | MusicGenPipeline
# The smallest top-p the slider offers: the sampler takes (0, 1].
TOP_P_MIN = 0.01


@dataclass
class Control:
    """One sampling setting: the keyword the pipeline takes and its input (a slider's value
    is checked against its range here, as the browser keeps it, with its name)."""

    key: str
    component: gr.components.Component
    whole: bool = False

    def checked(self, value: Any) -> Any:
        component = self.component
        if not isinstance(component, gr.Slider):
            return value  # a dropdown: Gradio checks its choices, naming the value
        return checked_field(value, field_name(component.label), component.minimum,
                             component.maximum, self.whole)


def diffusion_controls(pipeline: DiffusionPipeline) -> list[Control]:
    defaults = pipeline.defaults
    guided = bool(pipeline.conditioners.names())
    return [
        Control("steps", slider_input(1, 250, value=defaults.get("steps", 50), step=1,
                                      label="Steps"), whole=True),
        Control("sampler", gr.Dropdown(list(SAMPLERS), value=defaults.get("sampler",
                                                                           "dpmpp_2m"),
                                       label="Sampler")),
        cfg_control(defaults, guided),
    ]


def cfg_control(defaults: dict[str, Any], guided: bool) -> Control:
    return Control("cfg_scale", slider_input(0, 15, value=defaults.get("cfg_scale", 1.0)
                                             if guided else 1.0, step=0.1, interactive=guided,
                                             label="CFG scale" if guided
                                             else "CFG scale (no conditioners)"))


def musicgen_controls(pipeline: MusicGenPipeline) -> list[Control]:
    defaults = pipeline.defaults
    guided = bool(pipeline.conditioners.names())
    return [
        Control("temperature", slider_input(0.05, 2.0, value=defaults.get("temperature", 1.0),
                                            step=0.05, label="Temperature")),
        Control("top_k", slider_input(0, pipeline.model.cardinality,
                                      value=min(defaults.get("top_k", 250),
                                                pipeline.model.cardinality),
                                      step=1, label="Top-k (0: off)"), whole=True),
        # The sampler takes top_p in (0, 1], 1 keeping every token: 0 is no setting.
        Control("top_p", slider_input(TOP_P_MIN, 1.0, value=defaults.get("top_p", 1.0),
                                      step=TOP_P_MIN, label="Top-p (1: off)")),
        cfg_control(defaults, guided),
    ]


CONTROLS: dict[type, Callable[[Any], list[Control]]] = {
    DiffusionPipeline: diffusion_controls, MusicGenPipeline: musicgen_controls}


def shortest(pipeline: Pipeline) -> float:
    """The shortest audio (seconds) a panel makes: a model frame, and enough samples for its
    spectrogram; shorter requests are refused before sampling."""
    frame_rate = (pipeline.frame_rate if isinstance(pipeline, DiffusionPipeline)
                  else pipeline.codec.frame_rate)
    return max(1 / frame_rate, SPECTROGRAM_SAMPLES / pipeline.sample_rate)


def duration_limit(pipeline: Pipeline, context: UIContext) -> float:
    return min(context.max_duration, float(pipeline.setting("max_duration")))


@dataclass
class Settings:
    """The inputs every generation panel has: seed, sampling controls and conditions, in the
    order a handler receives their values."""

    seed: gr.Number
    controls: list[Control]
    conditions: ConditionForm

    @property
    def components(self) -> list[gr.components.Component]:
        return [self.seed, *(c.component for c in self.controls), *self.conditions.components]

    def parse(self, values: Sequence[Any]) -> tuple[int, dict[str, Any], dict[str, Any]]:
        """(seed, sampling keywords, conditions) from the values of `components`."""
        seed = checked_field(values[0], "Seed", 0, SEED_LIMIT - 1, whole=True)
        count = len(self.controls)
        sampling = {control.key: control.checked(value)
                    for control, value in zip(self.controls, values[1:count + 1], strict=True)}
        return int(seed), sampling, self.conditions.values(values[count + 1:])

    def sample(self, context: UIContext, stem: str, method: Callable[..., Any],
               values: Sequence[Any], progress: gr.Progress, *args: Any) -> tuple[Any, ...]:
        """What a panel shows for `method(*args, conditions, seed=, callback=, **sampling)`
        of the pipeline, with this form's `values`."""
        seed, sampling, conditions = self.parse(values)
        started = time.perf_counter()
        audio, rate = method(*args, conditions, seed=seed,
                             callback=lambda step, total: progress((step, total),
                                                                   desc="Sampling"),
                             **sampling)
        return result(context, audio, rate, stem, started, seed)


def settings(pipeline: Pipeline, context: UIContext) -> Settings:
    with gr.Accordion("Conditions", open=True, visible=bool(pipeline.conditioners.names())):
        form = condition_form(pipeline.conditioners, context.max_duration)
    with gr.Accordion("Sampling", open=False):
        seed = number_input(0, precision=0, minimum=0, label="Seed")
        controls = CONTROLS[type(pipeline)](pipeline)
    return Settings(seed, controls, form)


def outputs(label: str, prefix: str) -> list[gr.components.Component]:
    """The result's player (with a download button), spectrogram and one line about it;
    `prefix` starts their element ids (`<prefix>-audio`, ...), which the browser tests use."""
    audio = gr.Audio(type="filepath", label=label, interactive=False, buttons=["download"],
                     elem_id=f"{prefix}-audio")
    image = gr.Image(type="pil", label="Spectrogram", interactive=False, show_label=False,
                     elem_id=f"{prefix}-spectrogram")
    info = gr.Markdown(elem_classes=["result-info"], elem_id=f"{prefix}-info")
    return [audio, image, info]


def result(context: UIContext, audio: torch.Tensor, sample_rate: int, stem: str,
           started: float, seed: int) -> tuple[str, Any, str]:
    path = context.outputs.write(audio, sample_rate, stem)
    took = time.perf_counter() - started
    info = f"{describe_audio(audio, sample_rate)} · seed {seed} · {took:.1f} s to make"
    return path, spectrogram(audio, sample_rate, stem), info


def generate_panel(pipeline: Pipeline, context: UIContext, name: str) -> None:
    limit = duration_limit(pipeline, context)
    with gr.Row():
        with gr.Column():
            duration = number_input(pipeline.setting("duration") or min(limit, 5.0),
                                    minimum=0, maximum=limit,
                                    label=f"Duration (s, up to {limit:g})",
                                    elem_id=f"{name}-generate-duration")
            inputs = settings(pipeline, context)
            button = gr.Button("Generate", variant="primary", elem_id=f"{name}-generate-button")
        with gr.Column():
            results = outputs("Generated", f"{name}-generate")

    @shows_errors
    def generate(seconds: float | None, *values: Any, progress: gr.Progress = gr.Progress()):
        seconds = check_duration(seconds, limit, shortest=shortest(pipeline))
        return inputs.sample(context, "generated", _generate, values, progress, seconds)

    def _generate(seconds: float, conditions: Any, **settings: Any):
        return pipeline.generate(conditions, seconds, **settings)

    button.click(generate, [duration, *inputs.components], results,
                 api_name=f"{name}_generate")


def continue_panel(pipeline: Pipeline, context: UIContext, name: str) -> None:
    limit = duration_limit(pipeline, context)
    with gr.Row():
        with gr.Column():
            prompt = gr.Audio(sources=["upload"], type="filepath", label="Audio to continue",
                              elem_id=f"{name}-continue-input")
            duration = number_input(min(limit, 2.0), minimum=0, maximum=limit,
                                    label=f"Seconds to add (up to {limit:g} with the upload)")
            inputs = settings(pipeline, context)
            button = gr.Button("Continue", variant="primary", elem_id=f"{name}-continue-button")
        with gr.Column():
            results = outputs("Continued", f"{name}-continue")

    @shows_errors
    def continue_(path: str | None, seconds: float | None, *values: Any,
                  progress: gr.Progress = gr.Progress()):
        seconds = check_duration(seconds, limit, "Seconds to add", shortest(pipeline))
        audio, rate = read_upload(path, "the audio to continue", limit)
        check_total(audio.shape[-1] / rate, seconds, limit)
        return inputs.sample(context, "continued", pipeline.continue_, values, progress, audio,
                             rate, seconds)

    button.click(continue_, [prompt, duration, *inputs.components], results,
                 api_name=f"{name}_continue")


def inpaint_panel(pipeline: DiffusionPipeline, context: UIContext, name: str) -> None:
    with gr.Row():
        with gr.Column():
            clip = gr.Audio(sources=["upload"], type="filepath", label="Audio to inpaint",
                            elem_id=f"{name}-inpaint-input")
            with gr.Row():
                start = number_input(0.0, minimum=0, label="Region start (s)")
                end = number_input(1.0, minimum=0, label="Region end (s)")
            inputs = settings(pipeline, context)
            button = gr.Button("Inpaint", variant="primary", elem_id=f"{name}-inpaint-button")
        with gr.Column():
            results = outputs("Inpainted", f"{name}-inpaint")

    @shows_errors
    def inpaint(path: str | None, mask_start: float | None, mask_end: float | None,
                *values: Any, progress: gr.Progress = gr.Progress()):
        if mask_start is None or mask_end is None:
            raise ConfigError("Give the region's start and end in seconds.")
        audio, rate = read_upload(path, "the audio to inpaint", context.max_duration,
                                  shortest(pipeline))
        mask_start, mask_end = region(mask_start, mask_end, audio.shape[-1] / rate)
        return inputs.sample(context, "inpainted", pipeline.inpaint, values, progress, audio,
                             rate, mask_start, mask_end)

    button.click(inpaint, [clip, start, end, *inputs.components], results,
                 api_name=f"{name}_inpaint")


def region(start: Any, end: Any, seconds: float) -> tuple[float, float]:
    """The region to inpaint, within the upload's `seconds` and not empty."""
    start = checked_field(start, "Region start", 0, seconds)
    end = checked_field(end, "Region end", 0, seconds)
    if end <= start:
        raise ConfigError(f"Region end ({end:g} s) must be after Region start ({start:g} s).")
    return start, end


def reconstruct_panel(pipeline: DiffusionPipeline, context: UIContext, name: str) -> None:
    """A diffusion autoencoder's encode, then decode by sampling."""
    with gr.Row():
        with gr.Column():
            clip = gr.Audio(sources=["upload"], type="filepath", label="Audio to reconstruct",
                            elem_id=f"{name}-reconstruct-input")
            inputs = settings(pipeline, context)
            button = gr.Button("Reconstruct", variant="primary",
                               elem_id=f"{name}-reconstruct-button")
        with gr.Column():
            results = outputs("Reconstruction", f"{name}-reconstruct")

    @shows_errors
    def reconstruct(path: str | None, *values: Any, progress: gr.Progress = gr.Progress()):
        audio, rate = read_upload(path, "the audio to reconstruct", context.max_duration,
                                  shortest(pipeline))
        return inputs.sample(context, "reconstructed", pipeline.reconstruct, values, progress,
                             audio, rate)

    button.click(reconstruct, [clip, *inputs.components], results,
                 api_name=f"{name}_reconstruct")


def diffusion_tab(pipeline: DiffusionPipeline, context: UIContext, name: str) -> None:
    with gr.Tabs():
        if pipeline.model.config.encoder is not None:
            with gr.Tab("Reconstruct"):
                reconstruct_panel(pipeline, context, name)
            return
        with gr.Tab("Generate"):
            generate_panel(pipeline, context, name)
        with gr.Tab("Continue"):
            continue_panel(pipeline, context, name)
        with gr.Tab("Inpaint"):
            inpaint_panel(pipeline, context, name)


def musicgen_tab(pipeline: MusicGenPipeline, context: UIContext, name: str) -> None:
    with gr.Tabs():
        with gr.Tab("Generate"):
            generate_panel(pipeline, context, name)
        with gr.Tab("Continue"):
            continue_panel(pipeline, context, name)
