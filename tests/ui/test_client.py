"""The web UI's endpoints called as a program calls them, through gradio_client: every tab of
every family answers with the right audio (what the Python pipeline gives for the same
settings), bad input is a message (never a stack trace), and the server keeps serving."""
from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch

import audiotools
from audiotools.data.audio import audio_write
from tests.ui.conftest import MAX_DURATION

gradio_client = pytest.importorskip("gradio_client")

RATE = 16000
# diffusion/debug_cond's sampling controls (steps, sampler, CFG) and conditions.
DIFFUSION = (4, "euler", 3.0, "piano", 0.7)
# musicgen/debug's (temperature, top-k, top-p, CFG) and conditions.
MUSICGEN = (1.0, 8, 1.0, 3.0, "mallets", 0.5)


@pytest.fixture(scope="module")
def client(ui_url):
    return gradio_client.Client(ui_url, verbose=False)


@pytest.fixture(scope="module")
def tone(tmp_path_factory):
    """One second of a 330 Hz tone at 22.05 kHz stereo: not the models' format."""
    time = torch.arange(22050) / 22050
    wave = 0.3 * torch.sin(2 * math.pi * 330 * time)
    return str(audio_write(tmp_path_factory.mktemp("in") / "tone.wav",
                           torch.stack([wave, wave]), 22050))


def _read(path):
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(audio.T), rate


def test_the_api_has_one_endpoint_per_panel(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {
        "/diffusion_generate", "/diffusion_continue", "/diffusion_inpaint",
        "/musicgen_generate", "/musicgen_continue", "/autoencoder_reconstruct",
        "/classifier_classify", "/experiments"}


def test_generate_gives_what_the_pipeline_gives_and_a_seed_reproduces_it(client,
                                                                        tiny_models):
    path, image, info = client.predict(0.7, 3, *DIFFUSION, api_name="/diffusion_generate")
    audio, rate = _read(path)
    assert rate == RATE and audio.shape == (1, round(0.7 * RATE))
    assert audio.abs().max() > 0
    assert "0.70 s, 16000 Hz, mono" in info and "seed 3" in info
    expected, _ = audiotools.load(tiny_models.diffusion).generate(
        {"ensemble": "piano", "seconds_total": 0.7}, 0.7, seed=3, steps=4, sampler="euler",
        cfg_scale=3.0)
    # The page writes 16-bit WAV: clipped to [-1, 1], quantized.
    assert torch.allclose(audio, expected.clamp(-1, 1), atol=1e-4)
    again, _ = _read(client.predict(0.7, 3, *DIFFUSION, api_name="/diffusion_generate")[0])
    other, _ = _read(client.predict(0.7, 4, *DIFFUSION, api_name="/diffusion_generate")[0])
    assert torch.equal(audio, again) and not torch.equal(audio, other)
    with open(image, "rb") as file:
        assert len(file.read()) > 1000  # the spectrogram

    path, _, _ = client.predict(0.5, 1, *MUSICGEN, api_name="/musicgen_generate")
    audio, rate = _read(path)
    assert rate == RATE and audio.shape == (1, RATE // 2) and audio.abs().max() > 0


def test_continue_and_inpaint_take_an_upload_of_any_format(client, tone):
    upload = gradio_client.handle_file(tone)
    path, _, info = client.predict(upload, 0.5, 0, *DIFFUSION, api_name="/diffusion_continue")
    audio, rate = _read(path)
    assert rate == RATE and audio.shape == (1, RATE + RATE // 2) and "1.50 s" in info
    path, _, _ = client.predict(upload, 0.5, 0, *MUSICGEN, api_name="/musicgen_continue")
    assert _read(path)[0].shape[-1] >= RATE + RATE // 2 - 1

    path, _, _ = client.predict(upload, 0.25, 0.5, 2, *DIFFUSION, api_name="/diffusion_inpaint")
    inpainted, rate = _read(path)
    original, _ = _read(client.predict(upload, api_name="/autoencoder_reconstruct")[0])
    assert inpainted.shape == (1, RATE)
    region = slice(RATE // 4, RATE // 2)
    # Outside the region the model's (16 kHz mono) version of the upload is kept as given.
    converted = audiotools.data.audio.convert_audio(_read(tone)[0], 22050, RATE, 1)
    assert torch.allclose(inpainted[:, :RATE // 4], converted[:, :RATE // 4], atol=1e-4)
    assert not torch.allclose(inpainted[:, region], converted[:, region], atol=1e-2)
    assert original.shape == (2, 22050)  # reconstruct answers in the upload's format


def test_reconstruct_shows_both_spectrograms_and_classify_gives_probabilities(client, tone):
    upload = gradio_client.handle_file(tone)
    path, before, after, info = client.predict(upload, api_name="/autoencoder_reconstruct")
    assert _read(path)[1] == 22050 and "SI-SNR" in info and "mel distance" in info
    assert before != after
    result = client.predict(upload, api_name="/classifier_classify")
    confidences = {item["label"]: item["confidence"] for item in result["confidences"]}
    assert set(confidences) == {"zero", "one", "two", "three", "four", "five", "six", "seven",
                                "eight", "nine"}
    assert sum(confidences.values()) == pytest.approx(1.0, abs=1e-4)
    assert result["label"] == max(confidences, key=confidences.get)


def test_bad_input_is_a_message_and_the_server_keeps_serving(client, tmp_path):
    AppError = gradio_client.exceptions.AppError
    with pytest.raises(AppError, match=f"greater than maximum value {MAX_DURATION}"):
        client.predict(MAX_DURATION + 1, 0, *DIFFUSION, api_name="/diffusion_generate")
    with pytest.raises(AppError, match="Duration must be more than 0"):
        client.predict(0, 0, *DIFFUSION, api_name="/diffusion_generate")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(AppError, match="notes.wav: not readable as audio") as error:
        client.predict(gradio_client.handle_file(str(text)), api_name="/classifier_classify")
    assert "Traceback" not in str(error.value) and str(tmp_path) not in str(error.value)
    long = audio_write(tmp_path / "long.wav", torch.zeros(1, int(RATE * (MAX_DURATION + 5))),
                       RATE)
    with pytest.raises(AppError, match=f"long.wav must be more than 0 and at most "
                                       f"{MAX_DURATION:g} seconds"):
        client.predict(gradio_client.handle_file(str(long)), api_name="/autoencoder_reconstruct")
    with pytest.raises(AppError, match="Upload the audio to reconstruct first"):
        client.predict(None, api_name="/autoencoder_reconstruct")
    with pytest.raises(AppError, match="kazoo band is not in the list of choices"):
        client.predict(0.5, 0, 4, "euler", 3.0, "kazoo band", 0.7,
                       api_name="/diffusion_generate")
    path, _, _ = client.predict(0.3, 0, *DIFFUSION, api_name="/diffusion_generate")
    assert _read(path)[0].shape == (1, round(0.3 * RATE))


def test_experiments_lists_the_dora_dir(client, tiny_models):
    table, compared, samples = client.predict(api_name="/experiments")
    rows = {row[0]: row for row in table["data"]}
    assert set(rows) == {folder.name for folder in (tiny_models.dora_dir / "xps").iterdir()}
    recipes = {row[1] for row in rows.values()}
    assert {"diffusion/debug_cond", "musicgen/debug", "autoencoder/debug",
            "classifier/debug"} <= recipes
    assert {row[3] for row in rows.values()} == {"done"}
    classifier = next(row for row in rows.values() if row[1] == "classifier/debug")
    assert classifier[4] == "2/2" and "valid.accuracy" in classifier[5]
    assert set(compared["value"]) <= set(rows)
