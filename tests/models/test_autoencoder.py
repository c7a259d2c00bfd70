"""AudioAutoencoder: shapes for every encoder x bottleneck, bottleneck losses and metrics,
tokens, quantizer dropout, chunked agreement, mono and stereo."""
from __future__ import annotations

import math

import pytest
import torch

from audiotools.errors import ConfigError
from audiotools.models.autoencoder import AudioAutoencoder, AutoencoderOutput, build_autoencoder
from audiotools.models.autoencoder.chunking import StreamChunked, run_chunked

from .autoencoder_cases import (  # noqa: F401 (seeded_single_thread: autouse fixture)
    BOTTLENECK_TYPES,
    ENCODER_TYPES,
    model_config,
    seeded_single_thread,
)

EXPECTED_LOSSES = {"vae": {"kl"}, "tanh": set(), "rvq": {"commitment"}, "fsq": set(),
                   "none": set()}
EXPECTED_METRICS = {"vae": set(), "tanh": set(), "rvq": {"codebook_usage", "bandwidth_kbps"},
                    "fsq": {"codebook_usage", "bandwidth_kbps"}, "none": set()}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("bottleneck_type", BOTTLENECK_TYPES)
@pytest.mark.parametrize("encoder", ENCODER_TYPES)
def test_forward_shapes_losses_and_gradients(encoder, bottleneck_type, channels):
    model = build_autoencoder(model_config(encoder, bottleneck_type, channels))
    audio = torch.randn(2, channels, 100)  # not a multiple of the hop (16): padded, cropped
    output = model(audio)
    assert isinstance(output, AutoencoderOutput)
    assert output.audio.shape == audio.shape
    assert output.latents.shape == (2, 6, math.ceil(100 / 16))
    assert set(output.losses) == EXPECTED_LOSSES[bottleneck_type]
    assert set(output.metrics) == EXPECTED_METRICS[bottleneck_type]
    for value in [*output.losses.values(), *output.metrics.values()]:
        assert value.dim() == 0 and torch.isfinite(value)
    (output.audio.square().mean() + sum(output.losses.values())).backward()
    first_weight = next(p for _, p in model.encoder.named_parameters() if p.dim() > 1)
    assert first_weight.grad is not None and first_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("encoder", ENCODER_TYPES)
def test_encode_decode_shapes(encoder):
    model = build_autoencoder(model_config(encoder, "vae", channels=2)).eval()
    latents = model.encode(torch.randn(3, 2, 33))
    assert latents.shape == (3, 6, 3)
    assert model.decode(latents).shape == (3, 2, 3 * 16)


def test_attributes():
    model = build_autoencoder(model_config("seanet", "rvq", channels=2))
    assert (model.sample_rate, model.channels, model.latent_dim) == (16000, 2, 6)
    assert model.hop_length == 16 and model.frame_rate == 1000.0
    assert model.is_quantized and (model.num_codebooks, model.codebook_size) == (3, 16)
    assert model.bitrate == 3 * 4 * 1000.0
    continuous = build_autoencoder(model_config("oobleck", "vae"))
    assert not continuous.is_quantized
    assert (continuous.num_codebooks, continuous.codebook_size, continuous.bitrate) == (
        None, None, None)
    assert continuous.config.bottleneck.type == "vae"


def test_mixed_encoder_and_decoder_types():
    model = build_autoencoder(model_config("oobleck", "tanh", decoder="seanet"))
    assert model(torch.randn(1, 1, 64)).audio.shape == (1, 1, 64)


def test_wrong_audio_shape_is_a_clear_error():
    model = build_autoencoder(model_config("oobleck", "vae", channels=2))
    with pytest.raises(ValueError, match=r"channels=2"):
        model(torch.randn(1, 1, 64))
    with pytest.raises(ValueError, match=r"latent_dim=6"):
        model.decode(torch.randn(1, 5, 4))


# --- VAE and tanh --------------------------------------------------------------------------


def test_vae_samples_in_training_and_uses_the_mean_in_eval():
    model = build_autoencoder(model_config("oobleck", "vae"))
    audio = torch.randn(1, 1, 64)
    model.train()
    assert not torch.equal(model(audio).latents, model(audio).latents)
    model.eval()
    assert torch.equal(model(audio).latents, model(audio).latents)
    assert torch.equal(model(audio).latents, model.encode(audio))
    assert not torch.equal(model.encode(audio, sample=True), model.encode(audio))


def test_vae_kl_value():
    model = build_autoencoder(model_config("oobleck", "vae"))
    unit_std = math.log(math.e ** (1 - 1e-4) - 1)  # softplus(.) + 1e-4 = 1
    features = torch.cat([torch.zeros(2, 6, 5), torch.full((2, 6, 5), unit_std)], dim=1)
    assert model.bottleneck(features).losses["kl"].item() == pytest.approx(0.0, abs=1e-5)
    features[:, :6] = 2.0  # mean 2 on each of 6 channels: sum of mean^2 = 24
    assert model.bottleneck(features).losses["kl"].item() == pytest.approx(24.0, rel=1e-4)


def test_tanh_bounds_latents_by_scale():
    model = build_autoencoder(model_config("oobleck", "tanh"))
    latents = model.bottleneck.encode(torch.linspace(-50, 50, 60).reshape(1, 6, 10))
    assert latents.abs().max() <= 2.0 and latents.abs().max() > 1.9


# --- quantized bottlenecks -----------------------------------------------------------------


@pytest.mark.parametrize("bottleneck_type", ["rvq", "fsq"])
@pytest.mark.parametrize("encoder", ENCODER_TYPES)
def test_tokens_round_trip(encoder, bottleneck_type):
    model = build_autoencoder(model_config(encoder, bottleneck_type))
    audio = torch.randn(2, 1, 160)
    model(audio)  # a training forward initialises the RVQ codebooks (k-means)
    model.eval()
    tokens = model.encode_to_tokens(audio)
    assert tokens.dtype == torch.int64 and tokens.shape == (2, model.num_codebooks, 10)
    assert 0 <= tokens.min() and tokens.max() < model.codebook_size
    decoded = model.decode_tokens(tokens)
    assert decoded.shape == (2, 1, 160)
    torch.testing.assert_close(decoded, model.decode(model.encode(audio)))
    torch.testing.assert_close(model.bottleneck.decode_tokens(tokens), model(audio).latents)


def test_rvq_decodes_fewer_codebooks_coarsely():
    model = build_autoencoder(model_config("oobleck", "rvq"))
    audio = torch.randn(4, 1, 320)
    model(audio)
    model.eval()
    features = model.encoder(audio)
    tokens = model.encode_to_tokens(audio)
    errors = [(model.bottleneck.decode_tokens(tokens[:, :k]) - features).square().mean()
              for k in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]


def test_rvq_factorised_codes_decode_what_the_forward_quantizes():
    model = build_autoencoder(model_config("oobleck", "rvq", codebook_dim=2, decay=0.999999,
                                           threshold_ema_dead_code=0))
    assert model.bottleneck.quantizer.codebooks.shape[-1] == 2  # matched in 2 of 6 dims
    audio = torch.randn(4, 1, 320)
    model(audio)
    train_commitment = model(audio).losses["commitment"]
    model.eval()
    output = model.bottleneck(model.encoder(audio))
    tokens = model.encode_to_tokens(audio)
    assert torch.allclose(model.bottleneck.decode_tokens(tokens), output.latents, atol=1e-6)
    assert output.losses["commitment"].item() == pytest.approx(train_commitment.item(),
                                                               rel=1e-3)


def test_token_errors_are_clear():
    rvq = build_autoencoder(model_config("oobleck", "rvq"))
    with pytest.raises(ValueError, match=r"1 to 3 codebooks"):
        rvq.decode_tokens(torch.zeros(1, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        rvq.decode_tokens(torch.full((1, 3, 5), 16))
    with pytest.raises(ValueError, match=r"integers"):
        rvq.decode_tokens(torch.zeros(1, 3, 5))
    fsq = build_autoencoder(model_config("oobleck", "fsq"))
    with pytest.raises(ValueError, match=r"with 2 codebooks"):
        fsq.decode_tokens(torch.zeros(1, 1, 5, dtype=torch.long))
    vae = build_autoencoder(model_config("oobleck", "vae"))
    for method, argument in [("encode_to_tokens", torch.randn(1, 1, 32)),
                             ("decode_tokens", torch.zeros(1, 1, 2, dtype=torch.long))]:
        with pytest.raises(ConfigError, match=rf"{method} needs a quantized bottleneck.*'vae'"):
            getattr(vae, method)(argument)


def test_fsq_codebook_size_and_bandwidth():
    model = build_autoencoder(model_config("oobleck", "fsq"))
    assert (model.num_codebooks, model.codebook_size) == (2, 15)
    output = model(torch.randn(1, 1, 64))
    assert output.metrics["bandwidth_kbps"].item() == pytest.approx(2 * math.log2(15))


def test_rvq_kmeans_init_and_ema_updates_only_in_training():
    model = build_autoencoder(model_config("oobleck", "rvq"))
    codebook = model.bottleneck.quantizer.layers[0]._codebook
    assert not codebook.initted and codebook.embed.abs().sum() == 0
    audio = torch.randn(4, 1, 320)
    model(audio)
    assert codebook.initted and codebook.embed.abs().sum() > 0
    after_init = codebook.embed.clone()
    model(audio)
    assert not torch.equal(codebook.embed, after_init)  # EMA update in training
    model.eval()
    trained = codebook.embed.clone()
    model(audio)
    model.encode_to_tokens(audio)
    assert torch.equal(codebook.embed, trained)


def test_rvq_commitment_is_the_same_in_train_and_eval():
    # decay ~1 and no dead-code replacement: the training step hardly moves the codebooks
    model = build_autoencoder(model_config("oobleck", "rvq", decay=0.999999,
                                           threshold_ema_dead_code=0))
    audio = torch.randn(4, 1, 320)
    model(audio)
    train_commitment = model(audio).losses["commitment"]
    assert train_commitment > 0
    eval_commitment = model.eval()(audio).losses["commitment"]
    assert eval_commitment.item() == pytest.approx(train_commitment.item(), rel=1e-3)


def test_rvq_rotation_trick_changes_the_encoder_gradient_not_the_output():
    audio = torch.randn(2, 1, 320)
    grads, outputs, tokens = [], [], []
    for rotation in (False, True):
        torch.manual_seed(0)
        model = build_autoencoder(model_config("oobleck", "rvq", rotation_trick=rotation))
        assert all(layer.rotation_trick is rotation
                   for layer in model.bottleneck.quantizer.layers)
        model(audio)  # k-means init
        with torch.no_grad():
            tokens.append(model.encode_to_tokens(audio))
        output = model(audio)
        outputs.append(output.audio.detach())
        output.audio.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.encoder.parameters()
                                if p.grad is not None]))
    # The rotated vector equals the first code up to float32 rounding; that rounding moves
    # the residuals, so a later codebook may pick the other of two nearly equidistant codes
    # (seen on an AMD Zen 3 CPU) and the outputs agree to about 1e-3 of their scale, not 1e-6.
    assert torch.equal(tokens[0][:, 0], tokens[1][:, 0])
    assert torch.allclose(outputs[0], outputs[1], atol=1e-2)
    assert not torch.allclose(grads[0], grads[1])


def test_quantizer_dropout_only_in_training():
    model = build_autoencoder(model_config("oobleck", "rvq", num_quantizers=4,
                                           quantizer_dropout=True, min_quantizers=2))
    audio = torch.randn(2, 1, 160)
    full = 4 * math.log2(16) * 1000 / 1000
    kbps = {model(audio).metrics["bandwidth_kbps"].item() for _ in range(30)}
    assert min(kbps) >= 2 * 4 * 1000 / 1000 and len(kbps) > 1  # at least 2 of 4 kept
    tokens = model.encode_to_tokens(audio)  # tokens always use every codebook, even in train
    assert tokens.shape[1] == 4 and tokens.min() >= 0
    model.eval()
    assert {model(audio).metrics["bandwidth_kbps"].item() for _ in range(10)} == {full}


def test_no_dropout_configured_keeps_every_codebook_in_training():
    model = build_autoencoder(model_config("oobleck", "rvq"))
    audio = torch.randn(2, 1, 160)
    assert {model(audio).metrics["bandwidth_kbps"].item() for _ in range(5)} == {12.0}



@pytest.mark.parametrize("channels", [1, 2])
def test_patch_size_folds_samples_into_channels(channels):
    model = build_autoencoder({**model_config("oobleck", "vae", channels), "patch_size": 4})
    assert model.hop_length == 4 * 16 and model.frame_rate == 16000 / 64
    assert model.encoder.layers[0].in_channels == 4 * channels
    audio = torch.randn(2, channels, 200)
    assert model(audio).audio.shape == audio.shape
    assert model.encode(audio).shape == (2, 6, math.ceil(200 / 64))
    # With identity networks, folding then unfolding gives the audio back, and the folded
    # channel c * P + p at frame t holds sample t * P + p of audio channel c.
    model.encoder = model.decoder = torch.nn.Identity()
    audio = torch.randn(2, channels, 12)
    folded = model._encode_features(audio)
    assert folded.shape == (2, channels * 4, 3)
    assert folded[1, channels * 4 - 1, 2] == audio[1, channels - 1, 2 * 4 + 3]
    torch.testing.assert_close(model._decode_features(folded), audio, rtol=0, atol=0)

# --- chunked encode / decode ---------------------------------------------------------------


@pytest.mark.parametrize(("encoder", "bottleneck_type"), [("oobleck", "vae"), ("oobleck", "rvq"),
                                                          ("seanet", "fsq"), ("stft", "vae")])
def test_chunked_matches_unchunked(encoder, bottleneck_type):
    # Half the overlap covers the receptive field (tiny Oobleck: ~15 frames encoding, ~17
    # decoding); an LSTM would see the whole signal, so the SEANet here has none.
    config = model_config(encoder, bottleneck_type)
    if encoder == "seanet":
        config["encoder"]["lstm"] = config["decoder"]["lstm"] = 0
    model = build_autoencoder(config)
    audio = torch.randn(1, 1, 16 * 203 + 5)
    model(audio)
    model.eval()
    with torch.no_grad():
        latents = model.encode(audio)
        chunked = model.encode(audio, chunk_frames=64, overlap_frames=32)
        torch.testing.assert_close(chunked, latents, atol=1e-5, rtol=1e-4)
        decoded = model.decode(latents)
        torch.testing.assert_close(model.decode(latents, chunk_frames=80, overlap_frames=40),
                                   decoded, atol=1e-5, rtol=1e-4)
        if model.is_quantized:
            torch.testing.assert_close(
                model.encode_to_tokens(audio, chunk_frames=64, overlap_frames=32),
                model.encode_to_tokens(audio))
        reconstruction = model.reconstruct(audio, chunk_seconds=80 / model.frame_rate)
        assert reconstruction.shape == audio.shape
        for piece in (1000, 16 * 80, 10**6):  # the same windows, the audio piece by piece
            stream = model.streamed_reconstruction(80 / model.frame_rate)
            pieces = [stream.push(audio[..., i:i + piece])
                      for i in range(0, audio.shape[-1], piece)]
            torch.testing.assert_close(torch.cat([*pieces, stream.finish()], dim=-1),
                                       reconstruction, atol=1e-6, rtol=0)
    # Outside no_grad too, long audio keeps no graph over its windows (it held memory in
    # proportion to the length): the inference methods carry no gradient.
    assert not model.reconstruct(audio, chunk_seconds=80 / model.frame_rate).requires_grad
    assert not model.decode(latents, chunk_frames=80, overlap_frames=40).requires_grad
    assert model.decode(latents).requires_grad  # what training calls keeps it


@pytest.mark.parametrize(("frames", "chunk", "overlap"), [(37, 10, 4), (10, 10, 4), (3, 16, 0),
                                                        (1000, 64, 32), (50, 7, 6)])
def test_windows_over_pieces_are_the_windows_over_the_whole(frames, chunk, overlap):
    """Each window runs once more input shows it is not the last (whose start, total -
    chunk, may come before the next regular one's: 27 < 30 for 37 frames of 10 every 6)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(2, 3, 9, padding=4)

    def encode(x):
        return torch.nn.functional.avg_pool1d(conv(x), 4)

    signal = torch.randn(1, 2, frames * 4)
    whole = run_chunked(encode, signal, chunk, overlap, in_per_frame=4, out_per_frame=1)
    for piece in (1, 3, 50, 10**6):
        stream = StreamChunked(encode, chunk, overlap, in_per_frame=4, out_per_frame=1)
        outputs = []
        for i in range(0, signal.shape[-1], piece):
            outputs += stream.push(signal[..., i:i + piece])
            # At most two windows' input (from the last window run to the end of the next,
            # and a frame to show it is not the last) and the piece that came is kept.
            assert stream._kept.shape[-1] <= (2 * chunk - overlap + 1) * 4 + piece
        left = stream.finish()
        assert len(left) <= 2  # the windows the end decides: the last regular one, the last
        assert torch.equal(torch.cat([*outputs, *left], dim=-1), whole)


def test_chunked_with_lstm_is_close():
    model = build_autoencoder(model_config("seanet", "none")).eval()
    audio = torch.randn(1, 1, 16 * 200)
    with torch.no_grad():
        latents = model.encode(audio)
        chunked = model.encode(audio, chunk_frames=64, overlap_frames=32)
    assert (chunked - latents).abs().max() < 0.05 * latents.abs().max()


def test_forward_and_reconstruct_agree_in_eval():
    model = build_autoencoder(model_config("oobleck", "vae", channels=2)).eval()
    audio = torch.randn(2, 2, 90)
    with torch.no_grad():
        torch.testing.assert_close(model.reconstruct(audio), model(audio).audio)


def test_bf16_autocast_forward_runs():
    for bottleneck_type in BOTTLENECK_TYPES:
        model = build_autoencoder(model_config("oobleck", bottleneck_type))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            output = model(torch.randn(1, 1, 64))
        assert torch.isfinite(output.audio).all(), bottleneck_type


def test_built_from_a_validated_section_keeps_it():
    from audiotools.models.autoencoder import validate_autoencoder_config
    section = validate_autoencoder_config(model_config("seanet", "fsq"))
    model = build_autoencoder(section)
    assert isinstance(model, AudioAutoencoder) and model.config is section


def test_causal_seanet_never_looks_ahead():
    config = model_config("seanet", "none")
    for section in ("encoder", "decoder"):
        config[section].update(causal=True, pad_mode="constant")
    model = build_autoencoder(config).eval()
    audio = torch.randn(1, 1, 320)
    later = audio.clone()
    later[..., 200:] += 1.0
    with torch.no_grad():
        features, changed = model.encode(audio), model.encode(later)
        # frame i reads samples < 16 (i + 1): frames 0..11 end before sample 200
        torch.testing.assert_close(features[..., :12], changed[..., :12])
        assert not torch.allclose(features[..., 12], changed[..., 12])
        latents = features.clone()
        latents[..., 10:] += 1.0
        decoded, redecoded = model.decode(features), model.decode(latents)
        torch.testing.assert_close(decoded[..., :160], redecoded[..., :160])
        assert not torch.allclose(decoded[..., 160:176], redecoded[..., 160:176])


@pytest.mark.parametrize("pad_mode", ["reflect", "constant", "replicate"])
def test_seanet_pad_modes_handle_short_inputs(pad_mode):
    config = model_config("seanet", "vae")
    for section in ("encoder", "decoder"):
        config[section].update(pad_mode=pad_mode, true_skip=False)
    model = build_autoencoder(config)
    assert model(torch.randn(1, 1, 3)).audio.shape == (1, 1, 3)
