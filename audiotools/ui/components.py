"""What the tabs of the web UI share: errors shown as messages in the page, audio in and out
of Gradio's components, spectrogram images, and the form of a model's conditions."""
from __future__ import annotations

import contextlib
import functools
import logging
import math
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
import torch
from PIL import Image

from ..conditioning import ConditionerSet
from ..data.audio import AudioFileError, audio_info, audio_read, audio_write, convert_audio
from ..errors import AudiotoolsError, ConfigError
from ..inference.conditions import ConditionerInfo, checked_values, describe_conditioners
from ..inference.inputs import checked_clip, is_real_number
from ..plotting import figure_image, spectrogram_figure

logger = logging.getLogger(__name__)
C = TypeVar("C", bound=gr.components.Component)

# The fewest samples a spectrogram takes (audiotools.plotting.spectrogram_figure).
SPECTROGRAM_SAMPLES = 16
# The most an upload of the longest audio may weigh per second: 32-bit float at 192 kHz in
# stereo (or 8 channels at 48 kHz), uncompressed.
UPLOAD_RATE, UPLOAD_CHANNELS = 192_000, 2


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


def _number(value: float | int) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _given(value: Any, unit: str = "") -> str:
    """A value as a message quotes it: `nothing` for an empty input."""
    if value is None:
        return "nothing"
    return f"{_number(value)}{unit}" if is_real_number(value) else repr(value)


def field_name(label: str) -> str:
    """An input's name in messages: its label without the hint in parentheses."""
    return label.split(" (")[0]


def checked_field(value: Any, name: str, minimum: float, maximum: float,
                  whole: bool = False) -> float | int:
    """`value` of a number input if a (whole) number in [minimum, maximum]; else a message
    naming the input and its range (a program can send any value, a browser an empty one)."""
    kind = "a whole number" if whole else "a number"
    if not is_real_number(value) or not minimum <= value <= maximum \
            or (whole and not float(value).is_integer()):
        raise ConfigError(f"{name} must be {kind} from {_number(minimum)} to "
                          f"{_number(maximum)}; got {_given(value)}.")
    return int(value) if whole else float(value)


def check_duration(seconds: Any, limit: float, what: str = "Duration",
                   shortest: float = 0.0) -> float:
    """`seconds`, if more than 0, at least `shortest` (what the model or a spectrogram needs)
    and at most `limit`; else a message naming `what` and the page's limits, before any
    work is done."""
    if not is_real_number(seconds) or not (0 < seconds and shortest <= seconds <= limit):
        low = f"at least {shortest:.3g}" if shortest > 0 else "more than 0"
        raise ConfigError(f"{what} must be {low} and at most {limit:g} seconds "
                          f"(audiotools ui --max-duration); got {_given(seconds, ' s')}.")
    return float(seconds)


def check_total(prompt_seconds: float, added: float, limit: float) -> None:
    """A continuation is the upload and the seconds added: together at most `limit`."""
    if prompt_seconds + added > limit + 1e-9:
        raise ConfigError(f"The upload ({prompt_seconds:.3g} s) and Seconds to add "
                          f"({added:g} s) make {prompt_seconds + added:.3g} s, more than "
                          f"{limit:g} seconds (audiotools ui --max-duration); add fewer "
                          "seconds or upload a shorter clip.")


def read_upload(path: str | None, what: str, max_seconds: float,
                min_seconds: float = 0.0) -> tuple[torch.Tensor, int]:
    """(audio (channels, samples), sample rate) of an uploaded file. A missing, unreadable,
    too short or too long (from its header, before decoding it) or unusable (NaN) upload is
    a message naming the file by its uploaded name, never Gradio's temporary path."""
    if not path:
        raise ConfigError(f"Upload {what} first.")
    name = Path(path).name
    try:
        info = audio_info(path)
    except AudioFileError as error:
        raise AudioFileError(str(error).replace(str(path), name)) from None
    shortest = max(min_seconds, SPECTROGRAM_SAMPLES / info.sample_rate)
    check_duration(info.frames / info.sample_rate, max_seconds, name, shortest)
    try:
        return checked_clip(*audio_read(path))
    except AudioFileError as error:
        raise AudioFileError(str(error).replace(str(path), name)) from None
    except ConfigError as error:  # checked_clip calls the clip "audio"
        raise AudioFileError(f"{name}: {str(error).removeprefix('audio: ')}") from None


def upload_limit(max_seconds: float) -> int:
    """The largest upload (bytes) the server takes: `max_seconds` of uncompressed 32-bit
    audio at UPLOAD_RATE in UPLOAD_CHANNELS, and a header; anything bigger is too long
    anyway, and is refused before it fills the disk."""
    return math.ceil(max_seconds * UPLOAD_RATE * UPLOAD_CHANNELS * 4) + (1 << 20)


def _as_sent(payload: Any) -> Any:
    return payload


def unchecked(component: C) -> C:
    """`component` (a gr.Number or gr.Slider) with its range binding the browser only: what
    a request sends reaches the handler as sent, whose checks name the field and its range
    (Gradio's own check names neither, and fails with no message on text or None). An
    instance attribute, not a subclass: Gradio writes a .pyi next to every subclass."""
    component.preprocess = _as_sent
    return component


def number_input(*args: Any, **kwargs: Any) -> gr.Number:
    """A gr.Number the handler checks (`unchecked`)."""
    return unchecked(gr.Number(*args, **kwargs))


def slider_input(*args: Any, **kwargs: Any) -> gr.Slider:
    """A gr.Slider the handler checks (`unchecked`)."""
    return unchecked(gr.Slider(*args, **kwargs))


class OutputFolder:
    """Where the page's results are written before Gradio serves them: one new folder per
    server, each result under a new name (nothing is overwritten). The results are the
    user's: the folder stays when the server stops, unless nothing was written to it."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="audiotools-ui-"))

    def write(self, audio: torch.Tensor, sample_rate: int, stem: str) -> str:
        path = self.path / f"{stem}-{uuid.uuid4().hex[:8]}.wav"
        audio_write(path, audio, sample_rate)
        return str(path)

    def remove_if_empty(self) -> None:
        with contextlib.suppress(OSError):  # not empty (or already gone): kept
            self.path.rmdir()


def spectrogram(audio: torch.Tensor, sample_rate: int, title: str) -> Image.Image:
    """The spectrogram image shown under each audio player."""
    return figure_image(spectrogram_figure(audio, sample_rate, title))


def describe_audio(audio: torch.Tensor, sample_rate: int) -> str:
    channels = "mono" if audio.shape[0] == 1 else f"{audio.shape[0]} channels"
    return f"{audio.shape[-1] / sample_rate:.2f} s, {sample_rate} Hz, {channels}"


@dataclass
class ConditionForm:
    """One input per conditioner of a model; `values` turns what they hold into the checked
    `{conditioner: value}` mapping the pipelines take (empty: the null condition). An audio
    condition's upload is read here, as every upload is (`formats`: its codec's rate and
    channels), so its messages name the field and the file."""

    infos: list[ConditionerInfo]
    components: list[gr.components.Component]
    formats: dict[str, tuple[int, int]] = field(default_factory=dict)
    max_seconds: float = 60.0

    def values(self, raw: Sequence[Any]) -> dict[str, Any]:
        given = {info.name: None if value is None or value == "" else value
                 for info, value in zip(self.infos, raw, strict=True)}
        typed = checked_values({name: value for name, value in given.items()
                                if name not in self.formats}, self.infos, "Conditions")
        clips = {name: self._clip(name, path) for name, path in given.items()
                 if name in self.formats and path is not None}
        return {name: typed.get(name, clips.get(name)) for name in given}

    def _clip(self, name: str, path: str) -> torch.Tensor:
        rate, channels = self.formats[name]
        try:
            audio, sample_rate = read_upload(path, name, self.max_seconds)
        except AudiotoolsError as error:
            raise type(error)(f"Conditions: {name}: {error}") from None
        return convert_audio(audio, sample_rate, rate, channels)


def _condition_input(info: ConditionerInfo) -> gr.components.Component:
    if info.type == "options":
        return gr.Dropdown(list(info.options or ()), value=info.default or info.options[0],
                           label=info.name)
    if info.type in ("number", "int"):
        default = info.default if info.default is not None else (info.min + info.max) / 2
        integral = info.type == "int"
        return number_input(round(default) if integral else default, minimum=info.min,
                            maximum=info.max, precision=0 if integral else None,
                            label=f"{info.name} ({info.min:g} to {info.max:g})")
    if info.type == "text":
        return gr.Textbox(info.default or "", label=info.name, lines=2,
                          placeholder="Describe the audio; empty: no condition")
    if info.type == "audio":
        return gr.Audio(sources=["upload"], type="filepath",
                        label=f"{info.name} (first {info.seconds:g} s)")
    # A conditioner type of the user's own: its value as text, which it checks itself.
    return gr.Textbox("" if info.default is None else str(info.default), lines=1,
                      label=f"{info.name} ({info.type})")


def condition_form(conditioners: ConditionerSet, max_seconds: float) -> ConditionForm:
    """Inputs for a model's conditioners, each showing what its type accepts; an audio
    upload longer than `max_seconds` is refused."""
    infos = describe_conditioners(conditioners)
    formats = {info.name: (conditioners[info.name].codec.sample_rate,
                           conditioners[info.name].codec.channels)
               for info in infos if info.type == "audio"}
    return ConditionForm(infos, [_condition_input(info) for info in infos], formats,
                         max_seconds)
