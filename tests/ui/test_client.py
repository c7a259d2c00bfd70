"""The web UI's endpoints called as a program calls them, through gradio_client: every tab of
every family answers with the right audio (what the Python pipeline gives for the same
settings), bad input is a message (never a stack trace), and the server keeps serving."""
from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch

import audiotools
from audiotools.data.audio import audio_write
from tests.ui.conftest import MAX_DURATION, results_folder

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
    with pytest.raises(AppError, match=f"Duration must be at least 0.001 and at most "
                                       f"{MAX_DURATION:g} seconds .*; got {MAX_DURATION + 1:g} s"):
        client.predict(MAX_DURATION + 1, 0, *DIFFUSION, api_name="/diffusion_generate")
    with pytest.raises(AppError, match="Duration must be at least 0.001 .*; got 0 s"):
        client.predict(0, 0, *DIFFUSION, api_name="/diffusion_generate")
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all")
    with pytest.raises(AppError, match="notes.wav: not readable as audio") as error:
        client.predict(gradio_client.handle_file(str(text)), api_name="/classifier_classify")
    assert "Traceback" not in str(error.value) and str(tmp_path) not in str(error.value)
    long = audio_write(tmp_path / "long.wav", torch.zeros(1, int(RATE * (MAX_DURATION + 5))),
                       RATE)
    for endpoint in ("/autoencoder_reconstruct", "/classifier_classify"):
        with pytest.raises(AppError, match=f"long.wav must be at least .* and at most "
                                           f"{MAX_DURATION:g} seconds"):
            client.predict(gradio_client.handle_file(str(long)), api_name=endpoint)
    with pytest.raises(AppError, match="Upload the audio to reconstruct first"):
        client.predict(None, api_name="/autoencoder_reconstruct")
    with pytest.raises(AppError, match="kazoo band is not in the list of choices"):
        client.predict(0.5, 0, 4, "euler", 3.0, "kazoo band", 0.7,
                       api_name="/diffusion_generate")
    path, _, _ = client.predict(0.3, 0, *DIFFUSION, api_name="/diffusion_generate")
    assert _read(path)[0].shape == (1, round(0.3 * RATE))


def test_top_p_is_offered_from_above_0_to_1_which_is_off(client):
    sliders = [component["props"] for component in client.config["components"]
               if component["props"].get("label", "").startswith("Top-p")]
    assert sliders and all(props["label"] == "Top-p (1: off)" and props["minimum"] > 0
                           and props["maximum"] == props["value"] == 1 for props in sliders)
    with pytest.raises(gradio_client.exceptions.AppError,
                       match=r"Top-p must be a number from 0.01 to 1; got 0\."):
        client.predict(0.5, 1, 1.0, 8, 0.0, 3.0, "mallets", 0.5, api_name="/musicgen_generate")


def test_continue_keeps_the_upload_and_the_added_seconds_within_max_duration(client,
                                                                           tmp_path):
    long = audio_write(tmp_path / "long.wav", 0.1 * torch.randn(1, 15 * RATE), RATE)
    for endpoint, settings in (("/diffusion_continue", DIFFUSION),
                               ("/musicgen_continue", MUSICGEN)):
        with pytest.raises(gradio_client.exceptions.AppError,
                           match=f"The upload \\(15 s\\) and Seconds to add \\(10 s\\) make "
                                 f"25 s, more than {MAX_DURATION:g} seconds"):
            client.predict(gradio_client.handle_file(str(long)), 10, 0, *settings,
                           api_name=endpoint)


@pytest.mark.parametrize(("seconds", "controls", "message"), [
    ("ten", (4, "euler", 3.0), "Duration must be at least 0.001 and at most 20 seconds "
                               ".*; got 'ten'"),
    (None, (4, "euler", 3.0), "Duration must be at least 0.001 .*; got nothing"),
    (0.5, (None, "euler", 3.0), "Steps must be a whole number from 1 to 250; got nothing"),
    (0.5, ("many", "euler", 3.0), "Steps must be a whole number from 1 to 250; got 'many'"),
    (0.5, (251, "euler", 3.0), "Steps must be a whole number from 1 to 250; got 251"),
    (0.5, (2.5, "euler", 3.0), "Steps must be a whole number from 1 to 250; got 2.5"),
    (0.5, (4, "euler", 16), "CFG scale must be a number from 0 to 15; got 16"),
])
def test_numbers_out_of_range_or_not_numbers_are_messages_naming_the_field(
        client, seconds, controls, message):
    """Gradio's own range check ("Value 251 is greater than maximum value 250.") named no
    field, and text or null failed inside it with no message at all."""
    with pytest.raises(gradio_client.exceptions.AppError, match=message):
        client.predict(seconds, 0, *controls, "piano", 0.7, api_name="/diffusion_generate")


def test_seeds_conditions_and_regions_out_of_range_name_their_field(client, tone):
    AppError = gradio_client.exceptions.AppError
    with pytest.raises(AppError, match=f"Seed must be a whole number from 0 to {2**63 - 1}; "
                                       "got -1"):
        client.predict(0.5, -1, *DIFFUSION, api_name="/diffusion_generate")
    with pytest.raises(AppError, match=r"Conditions: seconds_total=99 is not valid; "
                                       r"seconds_total \(number in \[0, 16\]\)"):
        client.predict(0.5, 0, 4, "euler", 3.0, "piano", 99, api_name="/diffusion_generate")
    with pytest.raises(AppError, match="Conditions: seconds_total='x' is not valid"):
        client.predict(0.5, 0, 4, "euler", 3.0, "piano", "x", api_name="/diffusion_generate")
    with pytest.raises(AppError, match="Region start must be a number from 0 to 1; got -1"):
        client.predict(gradio_client.handle_file(tone), -1, 0.5, 0, *DIFFUSION,
                       api_name="/diffusion_inpaint")


def test_nan_and_infinity_sent_raw_are_messages_naming_the_field(ui_url):
    """gradio_client cannot send NaN (JSON has none), a browser or a script can."""
    call = f"{ui_url}gradio_api/call/diffusion_generate"
    for data, message in (("NaN, 0, 4, \"euler\", 3.0", "Duration must be at least"),
                          ("0.5, NaN, 4, \"euler\", 3.0", "Seed must be a whole number"),
                          ("0.5, 0, 4, \"euler\", Infinity", "CFG scale must be a number")):
        event = httpx.post(call, content=f'{{"data": [{data}, "piano", 0.7]}}',
                           headers={"Content-Type": "application/json"}).json()["event_id"]
        answer = httpx.get(f"{call}/{event}", timeout=60).text
        assert "event: error" in answer and message in answer, answer


def test_too_short_is_refused_before_any_work(client, ui_server, tmp_path):
    AppError = gradio_client.exceptions.AppError
    results = results_folder(ui_server.log)
    written = set(results.iterdir())
    with pytest.raises(AppError, match=r"Duration must be at least 0.001 .*; got 1e-09 s"):
        client.predict(1e-9, 0, *DIFFUSION, api_name="/diffusion_generate")
    with pytest.raises(AppError, match=r"Duration must be at least 0.004 .*; got 1e-09 s"):
        client.predict(1e-9, 0, *MUSICGEN, api_name="/musicgen_generate")
    tiny = gradio_client.handle_file(str(audio_write(tmp_path / "tiny.wav",
                                                     0.1 * torch.randn(1, 10), RATE)))
    for args, endpoint in (((tiny,), "/autoencoder_reconstruct"), ((tiny,), "/classifier_classify"),
                           ((tiny, 0.5, 0, *DIFFUSION), "/diffusion_continue"),
                           ((tiny, 0, 0.0005, 0, *DIFFUSION), "/diffusion_inpaint")):
        with pytest.raises(AppError, match=r"tiny.wav must be at least 0.001 and at most "
                                           r"20 seconds .*; got 0.000625 s"):
            client.predict(*args, api_name=endpoint)
    assert set(results.iterdir()) == written  # nothing made, nothing left behind


def test_unusable_uploads_are_named_by_their_file(client, tmp_path):
    nan = tmp_path / "holes.wav"
    sf.write(nan, np.full(RATE, np.nan, dtype="float32"), RATE, subtype="FLOAT")
    with pytest.raises(gradio_client.exceptions.AppError,
                       match=r"^holes.wav: holds NaN or infinite samples\.$"):
        client.predict(gradio_client.handle_file(str(nan)), api_name="/autoencoder_reconstruct")


def test_an_upload_bigger_than_the_longest_audio_is_refused_as_it_comes(ui_url):
    """A 33 MiB upload: more than 20 s of 32-bit stereo at 192 kHz (the client refuses it
    too, from the page's config; the server must, whatever sends it)."""
    answer = httpx.post(f"{ui_url}gradio_api/upload",
                        files={"files": ("big.wav", bytes(33 << 20), "audio/wav")})
    assert answer.status_code == 413 and "maximum allowed size" in answer.text


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
