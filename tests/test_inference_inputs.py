"""What a caller hands the pipelines is checked before torch meets it: each bad clip, rate,
length, seed, setting or device is one ConfigError naming it, never NaN audio, unscaled PCM,
a dropped batch item or a deep torch error."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import audiotools
from audiotools.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pipelines(tiny_models):
    return {name: audiotools.load(getattr(tiny_models, name))
            for name in ("diffusion", "musicgen", "classifier")} | {
        "codec": audiotools.load(tiny_models.codec)}


def _clip(seconds=0.25, rate=16000):
    time = torch.arange(round(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * math.pi * 330 * time)[None]


CLIP_CALLS = {
    "codec": lambda p, audio, rate: p.reconstruct(audio, rate),
    "classifier": lambda p, audio, rate: p.classify(audio, rate),
    "diffusion": lambda p, audio, rate: p.continue_(audio, rate, 0.25, steps=1),
    "musicgen": lambda p, audio, rate: p.continue_(audio, rate, 0.1),
}


@pytest.mark.parametrize("name", list(CLIP_CALLS))
def test_every_pipeline_refuses_a_bad_clip_or_rate(pipelines, name):
    call, pipeline, clip = CLIP_CALLS[name], pipelines[name], _clip()
    cases = [
        (clip, 0, "sample_rate=0: give the clip's rate in Hz"),
        (clip, 22050.5, "sample_rate=22050.5"),
        (clip, "16000", "sample_rate='16000'"),
        ((clip * 32767).to(torch.int16), 16000, "torch.int16 samples; give float audio"),
        (torch.full_like(clip, float("nan")), 16000, "NaN or infinite samples"),
        (clip.T.contiguous(), 16000, "4000 channels of 1 samples; give (channels, samples)"),
        (torch.zeros(1, 0), 16000, "holds no samples"),
        (clip[None], 16000, "Expected one clip as (channels, samples)"),
        ([0.0] * 100, 16000, "audio: a list; give a tensor"),
    ]
    for audio, rate, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call(pipeline, audio, rate)
    # A numpy clip and an integral float rate are what a tensor and an int are.
    assert call(pipeline, clip.numpy(), 16000.0) is not None


def test_lengths_seeds_settings_and_conditions(pipelines):
    diffusion, musicgen = pipelines["diffusion"], pipelines["musicgen"]
    piano = None  # every conditioner's null condition
    for pipeline in (diffusion, musicgen):
        for duration in (math.inf, math.nan, -1.0):
            with pytest.raises(ConfigError, match=f"duration={duration}: give a"):
                pipeline.generate(piano, duration)
        for seed, shown in ((1.5, "1.5"), (-1, "-1"), (2 ** 64, str(2 ** 64))):
            with pytest.raises(ConfigError, match=f"seed={shown}: give a whole number"):
                pipeline.generate(piano, 0.1, seed=seed)
        with pytest.raises(ConfigError, match="cfg_scale=nan: give a finite number"):
            pipeline.generate(piano, 0.1, cfg_scale=math.nan)
        for conditions in ([], [5], "piano"):
            with pytest.raises(ConfigError, match="give a mapping of conditioner values"):
                pipeline.generate(conditions, 0.1)
    with pytest.raises(ConfigError, match="steps=2.5: give a whole number"):
        diffusion.generate(piano, 0.1, steps=2.5)
    with pytest.raises(ConfigError, match="top_k=2.7: give a whole number"):
        musicgen.generate(piano, 0.1, top_k=2.7)
    assert diffusion.generate(piano, 0.1, steps=2.0)[0].shape == (1, 1600)
    with pytest.raises(ConfigError, match="inpaint and continue_ make one clip"):
        diffusion.inpaint(_clip(), 16000, 0.05, 0.1, [{}, {}], steps=1)
    with pytest.raises(ConfigError, match="temperature=inf: give a finite number"):
        musicgen.generate(piano, 0.1, temperature=math.inf)
    with pytest.raises(ConfigError, match="duration=nan: give the seconds to add"):
        diffusion.continue_(_clip(), 16000, math.nan)
    with pytest.raises(ConfigError, match="chunk_seconds=inf: give a window in seconds"):
        pipelines["codec"].reconstruct(_clip(), 16000, chunk_seconds=math.inf)
    # MusicGen's encode takes a batch; continuing one dropped every clip but the first.
    assert musicgen.encode(torch.stack([_clip(), _clip()]), 16000).shape[0] == 2
    with pytest.raises(ConfigError, match="Expected one clip"):
        musicgen.continue_(torch.stack([_clip(), _clip()]), 16000, 0.1)


def test_settings_keywords_and_values_a_caller_gets_wrong(pipelines):
    diffusion, musicgen = pipelines["diffusion"], pipelines["musicgen"]
    piano = {"ensemble": "piano", "seconds_total": 1.0}
    # A number given outside the range the conditioner was trained on was clamped unsaid
    # (the command line refused it); metadata beyond it still reads as the nearest end.
    for seconds in (30.0, -5):
        with pytest.raises(ConfigError, match=rf"seconds_total={seconds} is not valid; "
                                              r"seconds_total \(number in \[0, 16\]"):
            diffusion.generate({**piano, "seconds_total": seconds}, 0.1, steps=1)
    assert diffusion.generate({**piano, "seconds_total": 16}, 0.1, steps=1)[0].shape == (1, 1600)
    # A misspelt keyword named a private method (_sample(), generate_tokens()).
    for call, method in ((lambda: diffusion.inpaint(_clip(), 16000, 0, 0.1, cfg_scal=2),
                          "inpaint"),
                         (lambda: diffusion.continue_(_clip(), 16000, 0.1, stepz=2),
                          "continue_"),
                         (lambda: musicgen.continue_(_clip(), 16000, 0.1, temprature=2),
                          "continue_")):
        with pytest.raises(TypeError, match=rf"^{method}\(\) got unexpected keyword argument"):
            call()
    with pytest.raises(TypeError, match="sampling settings are steps, sampler, cfg_scale"):
        diffusion.inpaint(_clip(), 16000, 0, 0.1, cfg_scal=2)
    bad = [({"cfg_interval": 0.5}, "cfg_interval=0.5: give two numbers"),
           ({"cfg_interval": (0, 0.5, 1)}, "give two numbers"),
           ({"cfg_interval": (0.0, "1")}, r"cfg_interval\[1\]='1': give a finite number"),
           ({"cfg_interval": (0.9, 0.1)}, "needs 0 <= t_min <= t_max <= 1"),
           ({"cfg_scale": "2"}, "cfg_scale='2': give a finite number"),
           ({"cfg_rescale": 5}, r"cfg_rescale=5.0: must be in \[0, 1\]"),
           ({"steps": 0}, r"steps=0: give 1 to 10000"),
           # 10**20 steps raised "Overflow when unpacking long long", 10**12 tried to
           # allocate the time grid (8 TB), a scale of 1e39 made inf.
           ({"steps": 10**20}, r"steps=100000000000000000000: give 1 to 10000"),
           ({"cfg_scale": 1e39}, "cfg_scale=1e[+]39 must be from 0 to 1000"),
           ({"sampler": "foo"}, "sampler='foo': known samplers"),
           ({"cfg_scale": 2, "negative": [{}]}, "negative=.*: give a mapping"),
           ({"cfg_scale": 2, "negative": {"ensemble": "kazoo"}},
            "negative: ensemble='kazoo' is not"),
           ({"max_duration": 0.05}, "duration is 0.1 s, longer than max_duration=0.05 s")]
    for settings, message in bad:
        with pytest.raises(ConfigError, match=message):
            diffusion.generate(piano, 0.1, **{"steps": 1, **settings})
    with pytest.raises(ConfigError, match="cfg_scale='x': give a finite number"):
        musicgen.generate(None, 0.1, cfg_scale="x")
    # generate_tokens kept to no limit: 10**7 frames ran until killed.
    with pytest.raises(ConfigError, match=r"frames=10000000 \(.* s\) is more than "
                                          r"max_duration=30 s holds"):
        musicgen.generate_tokens(piano, 10**7)
    for start, shown in (("0", "'0'"), (math.nan, "nan")):
        with pytest.raises(ConfigError, match=f"mask_start={shown}: give a finite number"):
            diffusion.inpaint(_clip(), 16000, start, 0.1, steps=1)


def test_what_a_notebook_hands_the_generative_pipelines(pipelines):
    diffusion, musicgen = pipelines["diffusion"], pipelines["musicgen"]
    piano = {"ensemble": "piano", "seconds_total": 1.0}
    for pipeline in (diffusion, musicgen):
        # A negative prompt only the unguided branch reads was dropped at scale 1, unchecked.
        with pytest.raises(ConfigError, match="negative=.* steers guidance, and cfg_scale is 1"):
            pipeline.generate(piano, 0.1, cfg_scale=1.0, negative={"ensemble": "mallets"})
        with pytest.raises(ConfigError, match="negative: the model has no conditioner "
                                              "'bogus'. Conditioners: ensemble"):
            pipeline.generate(piano, 0.1, cfg_scale=2.0, negative={"bogus": 1})
        # seconds_total (no default) left out: its null condition, as the command line gives
        # it; it was "values[0] lack 'seconds_total'".
        unconditional = {"ensemble": "piano", "seconds_total": None}
        torch.testing.assert_close(pipeline.generate({"ensemble": "piano"}, 0.1, seed=3)[0],
                                   pipeline.generate(unconditional, 0.1, seed=3)[0])
        with pytest.raises(ConfigError, match=r"cfg_scale=1001 must be from 0 to 1000"):
            pipeline.generate(piano, 0.1, cfg_scale=1001)
        with pytest.raises(ConfigError, match=r"longer than max_duration=0.05 s"):
            pipeline.generate(piano, 0.1, max_duration=0.05)
        # Less than a sample gave an empty clip; text was float()'s error, '1' was taken.
        with pytest.raises(ConfigError, match="duration=1e-05: less than one sample at 16000"):
            pipeline.generate(piano, 1e-5)
        for text in ("abc", "1"):
            with pytest.raises(ConfigError, match=f"duration={text}: give a length"):
                pipeline.generate(piano, text)
        with pytest.raises(ConfigError, match="duration=1e-06: less than one sample"):
            pipeline.continue_(_clip(), 16000, 1e-6)
        # A list for one conditioner was joined into one value; a batch is a list of sets.
        with pytest.raises(ConfigError, match=r"ensemble=\['piano', 'mallets'\] is not valid.*"
                                              "a batch is a list of value sets"):
            pipeline.generate({**piano, "ensemble": ["piano", "mallets"]}, 0.1)
        # Options are named as the command line names them, not with training's advice.
        with pytest.raises(ConfigError, match="conditions: ensemble='banjo' is not valid; "
                                              "ensemble \\(options: "):
            pipeline.generate({**piano, "ensemble": "banjo"}, 0.1)
    # numpy's integers are whole numbers (steps and top_k refused them).
    assert diffusion.generate(piano, 0.1, steps=np.int64(1))[0].shape == (1, 1600)
    assert musicgen.generate(piano, 0.1, top_k=np.int64(4))[0].shape == (1, 1600)
    # MusicGen's token call: a frame count that is not whole, and numpy codes.
    with pytest.raises(ConfigError, match="frames=2.5: give a whole number of codec frames"):
        musicgen.generate_tokens(piano, 2.5)
    prompt = musicgen.encode(_clip(0.1)[None], 16000)
    tokens = musicgen.generate_tokens(piano, prompt.shape[-1] + 3, prompt=prompt.numpy())
    assert torch.equal(tokens[..., :prompt.shape[-1]], prompt)
    with pytest.raises(ConfigError, match="prompt: give codes .* not list"):
        musicgen.generate_tokens(piano, 30, prompt=prompt.tolist())
    # A bad mask range is the ConfigError every other refusal is (it was a ValueError).
    with pytest.raises(ConfigError, match="mask_start=0.1, mask_end=2.0: need"):
        diffusion.inpaint(_clip(), 16000, 0.1, 2.0, steps=1)


@pytest.mark.parametrize("samples", [4000, 4001, 2345, 3])
def test_reconstruct_keeps_the_length_of_a_clip_at_another_rate(pipelines, samples):
    """Resampling to the model's rate and back rounded the length up (16001 came back 16003
    at 44.1 kHz), so the file written beside the input was longer than it."""
    audio, rate = pipelines["codec"].reconstruct(torch.full((2, samples), 0.01), 44100)
    assert audio.shape == (2, samples) and rate == 44100


def test_decode_refuses_what_are_not_latents(pipelines):
    codec = pipelines["codec"]
    latents = codec.encode(_clip(), 16000)
    dim = latents.shape[0]
    cases = [(latents.long(), "torch.int64 values; give one clip's latents as a float tensor"),
             (latents[:, :0], rf"shape \({dim}, 0\)"),
             (latents[:2], r"shape \(2, "),
             (latents[None], rf"shape \(1, {dim}, "),
             (latents * math.nan, "hold NaN or infinite values"),
             (latents.tolist(), "latents: a list")]
    for value, message in cases:
        with pytest.raises(ConfigError, match=message):
            codec.decode(value)
    assert torch.equal(codec.decode(latents.numpy()), codec.decode(latents))


@pytest.mark.parametrize("device,message", [
    ("gpu", "device='gpu': use cpu, cuda or cuda:N"),
    ("cuda:x", "device='cuda:x': use cpu, cuda or cuda:N"),
    *([("cuda", "device=cuda: no CUDA device is visible here")]
      if not torch.cuda.is_available() else []),
])
def test_load_refuses_a_device_it_cannot_use(tiny_models, device, message):
    with pytest.raises(ConfigError, match=message):
        audiotools.load(tiny_models.codec, device=device)


def test_a_codec_given_to_a_diffusion_model_must_fit_it(tiny_models):
    """from_model took any codec: audio at another rate came back labelled with the model's,
    other latent widths failed inside torch."""
    from audiotools.inference.diffusion import DiffusionPipeline
    from audiotools.io.codecs import load_codec
    from audiotools.io.loading import load_model
    loaded = load_model(tiny_models.diffusion)
    with pytest.raises(ConfigError, match="was trained on audio, not on a codec's latents"):
        DiffusionPipeline.from_model(loaded.model, loaded.export,
                                     codec=load_codec(tiny_models.codec))


def test_classifying_a_missing_file_says_it_is_missing(pipelines, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        pipelines["classifier"].classify_file(tmp_path / "gone.wav")
    with pytest.raises(ConfigError, match="a folder"):
        pipelines["classifier"].classify_file(tmp_path)
