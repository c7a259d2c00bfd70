"""What the tabs of the web UI share: errors shown as messages in the page, audio in and out
of Gradio's components, spectrogram images, and the form of a model's conditions."""
from __future__ import annotations

import functools
import logging
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from PIL import Image

from ..conditioning import ConditionerSet
from ..data.audio import AudioFileError, audio_read, audio_write
from ..errors import AudiotoolsError, ConfigError
from ..inference.conditions import ConditionerInfo, checked_values, describe_conditioners
from ..plotting import figure_image, spectrogram_figure

logger = logging.getLogger(__name__)


def shows_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """`handler` with the errors a person can cause (a bad value, an unreadable file) shown
    as a message in the page instead of a stack trace; anything else is logged here with its
    traceback and reported in one line. Either way the server keeps serving."""
    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except (AudiotoolsError, ValueError) as error:
            raise gr.Error(str(error), print_exception=False) from None
        except Exception as error:
            logger.exception("a UI request failed")
            raise gr.Error(f"{type(error).__name__}: {error} (details in the server's log).",
                           print_exception=False) from None
    return guarded


def check_duration(seconds: float | None, limit: float, what: str = "Duration") -> float:
    """`seconds`, if in (0, limit]; else a message naming `what` and the page's limit."""
    if seconds is None or not 0 < seconds <= limit:
        given = "nothing" if seconds is None else f"{seconds:g} s"
        raise ConfigError(f"{what} must be more than 0 and at most {limit:g} seconds "
                          f"(audiotools ui --max-duration); got {given}.")
    return float(seconds)


def read_upload(path: str | None, what: str,
                max_seconds: float | None = None) -> tuple[torch.Tensor, int]:
    """(audio (channels, samples), sample rate) of an uploaded file; a missing, unreadable or
    (over `max_seconds`) too long upload is a message naming the file by its uploaded name."""
    if not path:
        raise gr.Error(f"Upload {what} first.", print_exception=False)
    name = Path(path).name
    try:
        audio, rate = audio_read(path)
    except AudioFileError as error:
        raise gr.Error(str(error).replace(str(path), name), print_exception=False) from None
    if max_seconds is not None:
        check_duration(audio.shape[-1] / rate, max_seconds, name)
    return audio, rate


class OutputFolder:
    """Where the page's results are written before Gradio serves them: one temporary
    folder per server, each result under a new name (nothing is overwritten)."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="audiotools-ui-"))

    def write(self, audio: torch.Tensor, sample_rate: int, stem: str) -> str:
        path = self.path / f"{stem}-{uuid.uuid4().hex[:8]}.wav"
        audio_write(path, audio, sample_rate)
        return str(path)


def spectrogram(audio: torch.Tensor, sample_rate: int, title: str) -> Image.Image:
    """The spectrogram image shown under each audio player."""
    return figure_image(spectrogram_figure(audio, sample_rate, title))


def describe_audio(audio: torch.Tensor, sample_rate: int) -> str:
    channels = "mono" if audio.shape[0] == 1 else f"{audio.shape[0]} channels"
    return f"{audio.shape[-1] / sample_rate:.2f} s, {sample_rate} Hz, {channels}"


@dataclass
class ConditionForm:
    """One input per conditioner of a model; `values` turns what they hold into the checked
    `{conditioner: value}` mapping the pipelines take (empty: the null condition)."""

    infos: list[ConditionerInfo]
    components: list[gr.components.Component]

    def values(self, raw: Sequence[Any]) -> dict[str, Any]:
        given = {info.name: None if value is None or value == "" else value
                 for info, value in zip(self.infos, raw, strict=True)}
        return checked_values(given, self.infos, "Conditions")


def _condition_input(info: ConditionerInfo) -> gr.components.Component:
    if info.type == "options":
        return gr.Dropdown(list(info.options or ()), value=info.default or info.options[0],
                           label=info.name)
    if info.type in ("number", "int"):
        default = info.default if info.default is not None else (info.min + info.max) / 2
        integral = info.type == "int"
        return gr.Number(round(default) if integral else default, minimum=info.min,
                         maximum=info.max, precision=0 if integral else None,
                         label=f"{info.name} ({info.min:g} to {info.max:g})")
    if info.type == "text":
        return gr.Textbox(info.default or "", label=info.name, lines=2,
                          placeholder="Describe the audio; empty: no condition")
    return gr.Audio(sources=["upload"], type="filepath",
                    label=f"{info.name} (first {info.seconds:g} s)")


def condition_form(conditioners: ConditionerSet) -> ConditionForm:
    """Inputs for a model's conditioners, each showing what its type accepts."""
    infos = describe_conditioners(conditioners)
    return ConditionForm(infos, [_condition_input(info) for info in infos])
