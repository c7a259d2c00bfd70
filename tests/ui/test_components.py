"""What the tabs share, called as the handlers call it: uploads are read as their uploaded
files (measured before decoding, named in every message) and audio conditions too."""
from __future__ import annotations

import pytest
import torch

from audiotools.data.audio import AudioFileError, audio_write
from audiotools.errors import ConfigError
from audiotools.inference.conditions import ConditionerInfo
from audiotools.ui import components
from audiotools.ui.components import ConditionForm, read_upload

RATE = 16000


def test_a_long_upload_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    long = audio_write(tmp_path / "long.wav", torch.zeros(1, 30 * RATE), RATE)

    def decode(*args, **kwargs):
        raise AssertionError("decoded a file its header shows too long")
    monkeypatch.setattr(components, "audio_read", decode)
    with pytest.raises(ConfigError, match=r"^long.wav must be at least 0.001 and at most 20 "
                                          r"seconds \(audiotools ui --max-duration\); got 30 s"):
        read_upload(str(long), "the audio to classify", 20.0)


def test_an_upload_shorter_than_the_panel_takes_is_named(tmp_path):
    short = audio_write(tmp_path / "short.wav", 0.1 * torch.randn(1, 100), RATE)
    assert read_upload(str(short), "the audio", 20.0)[0].shape == (1, 100)
    with pytest.raises(ConfigError, match=r"^short.wav must be at least 0.01 and at most 20 "):
        read_upload(str(short), "the audio", 20.0, min_seconds=0.01)


def _melody_form(max_seconds: float = 20.0) -> ConditionForm:
    info = ConditionerInfo("melody", "audio", seconds=2.0)
    return ConditionForm([info], [components._condition_input(info)], {"melody": (RATE, 1)},
                         max_seconds)


def test_an_audio_condition_is_read_as_an_upload_named_by_field_and_file(tmp_path):
    upload = tmp_path / "gradio" / "0f3a9c" / "tune.wav"  # as Gradio keeps an upload
    upload.parent.mkdir(parents=True)
    upload.write_text("not audio")
    with pytest.raises(AudioFileError, match=r"^Conditions: melody: tune.wav: not readable "
                                             r"as audio") as error:
        _melody_form().values([str(upload)])
    assert str(upload.parent) not in str(error.value)
    long = audio_write(tmp_path / "long.wav", torch.zeros(1, 3 * RATE), RATE)
    with pytest.raises(ConfigError, match=r"^Conditions: melody: long.wav must be at least "
                                          r".* and at most 2 seconds"):
        _melody_form(max_seconds=2.0).values([str(long)])


def test_an_audio_condition_reaches_the_pipeline_in_its_codec_format(tmp_path):
    stereo = audio_write(tmp_path / "tune.wav", 0.1 * torch.randn(2, 22050), 22050)
    values = _melody_form().values([str(stereo)])
    assert values["melody"].shape == (1, RATE)  # mono at the codec's 16 kHz
    assert _melody_form().values([None]) == {"melody": None}  # empty: the null condition
