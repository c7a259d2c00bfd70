"""The diffusion networks (DiT, U-Net), their config and builder, and how conditions reach them."""
from __future__ import annotations

import pytest
import torch

from audiotools.conditioning import ConditionerSet
from audiotools.errors import ConfigError
from audiotools.models.diffusion import build_diffusion_model, preset
from audiotools.models.diffusion.blocks import RotaryEmbedding, apply_rotary, rotary_dim

# stable-audio-tools 0.0.19's own count for the Stable Audio Open / 2.0 DiT: its
# `DiffusionTransformer(io_channels=64, embed_dim=1536, depth=24, num_heads=24,
# cond_token_dim=768, global_cond_dim=1536, project_cond_tokens=False)` built on the meta device
# in a separate venv (scripts/check_sat_dit_parity.py prints it, and checks our outputs
# against SAT's).
SAT_STABLE_AUDIO_DIT_PARAMETERS = 1_056_828_544

TINY_DIT = {"type": "dit", "io_channels": 4, "embed_dim": 32, "depth": 2, "num_heads": 4}
TINY_UNET = {"type": "unet", "io_channels": 4, "channels": 8, "multipliers": [1, 2, 2],
             "factors": [2, 2], "num_blocks": [1, 1], "attentions": [0, 1, 1],
             "attention_heads": 2, "resnet_groups": 4}


def _model(network: dict, **section):
    torch.manual_seed(0)
    return build_diffusion_model({"network": network, **section}).eval()


def _randomised(model):
    """Every weight drawn at random, so that no zero-initialised branch hides an input."""
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


def _inputs(batch: int = 2, length: int = 8, **widths: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    inputs = {}
    if widths.get("cond_token_dim"):
        inputs["cross_attn_cond"] = torch.randn(batch, 5, widths["cond_token_dim"],
                                                generator=generator)
        inputs["cross_attn_mask"] = torch.tensor([[True] * 5, [True, True, True, False, False]])
    if widths.get("global_cond_dim"):
        inputs["global_cond"] = torch.randn(batch, widths["global_cond_dim"], generator=generator)
    if widths.get("prepend_cond_dim"):
        inputs["prepend_cond"] = torch.randn(batch, 3, widths["prepend_cond_dim"],
                                             generator=generator)
        inputs["prepend_cond_mask"] = torch.tensor([[True] * 3, [True, False, False]])
    if widths.get("input_concat_dim"):
        # Half the frames: the network resamples it to the input's length.
        inputs["input_concat_cond"] = torch.randn(batch, widths["input_concat_dim"], length // 2,
                                                  generator=generator)
    return inputs


def test_stable_audio_preset_has_sat_parameter_count():
    with torch.device("meta"):
        model = build_diffusion_model(preset("stable_audio"))
    assert sum(p.numel() for p in model.parameters()) == SAT_STABLE_AUDIO_DIT_PARAMETERS
    network = model.config.network
    assert (network.embed_dim, network.depth, network.num_heads, network.io_channels,
            network.cond_token_dim, network.global_cond_dim, network.global_cond_type,
            network.patch_size) == (1536, 24, 24, 64, 768, 1536, "prepend", 1)
    # SAT's layout: 12 key/value heads of 64 over the 768-wide T5 tokens, shared by 24 queries.
    cross = model.model.transformer.layers[0].cross_attn
    assert (cross.kv_heads, tuple(cross.to_kv.weight.shape)) == (12, (1536, 768))


DIT_MODES = {
    "plain": {},
    "cross_attention": {"cond_token_dim": 12},
    "cross_attention_unprojected": {"cond_token_dim": 16, "project_cond_tokens": False},
    "global_prepend": {"global_cond_dim": 6},
    "global_adaln": {"global_cond_dim": 6, "global_cond_type": "adaLN", "cond_token_dim": 12},
    "prepend_tokens": {"prepend_cond_dim": 5, "global_cond_dim": 6},
    "input_concat": {"input_concat_dim": 3},
    "patch_2_everything": {"patch_size": 2, "cond_token_dim": 12, "global_cond_dim": 6,
                           "prepend_cond_dim": 5, "input_concat_dim": 3},
    "patch_4_adaln": {"patch_size": 4, "global_cond_type": "adaLN", "input_concat_dim": 2},
}


@pytest.mark.parametrize("mode", DIT_MODES)
def test_dit_output_shape_in_every_conditioning_mode(mode):
    settings = DIT_MODES[mode]
    model = _randomised(_model({**TINY_DIT, **settings}))
    x = torch.randn(2, 4, 8)
    out = model(x, torch.rand(2), **_inputs(**settings))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_dit_length_must_be_a_multiple_of_the_patch_size():
    model = _model({**TINY_DIT, "patch_size": 4})
    with pytest.raises(ValueError, match="length 10 is not a multiple of patch_size 4"):
        model(torch.randn(1, 4, 10), torch.rand(1))


def test_dit_refuses_inputs_it_was_not_built_for():
    model = _model(TINY_DIT)
    with pytest.raises(ValueError, match="cross_attn_cond"):
        model(torch.randn(1, 4, 8), torch.rand(1), cross_attn_cond=torch.randn(1, 2, 12))
    with pytest.raises(ValueError, match="needs input_concat_cond"):
        _model({**TINY_DIT, "input_concat_dim": 2})(torch.randn(1, 4, 8), torch.rand(1))


@pytest.mark.parametrize("network", [
    {**TINY_DIT, "cond_token_dim": 12, "global_cond_dim": 6},
    {**TINY_DIT, "global_cond_type": "adaLN", "patch_size": 2},
    {**TINY_UNET, "cond_token_dim": 12, "global_cond_dim": 6, "input_concat_dim": 2},
], ids=["dit", "dit_adaln", "unet"])
def test_untrained_output_is_zero_and_still_trains(network):
    model = _model(network)
    widths = {key: network.get(key, 0) for key in
              ("cond_token_dim", "global_cond_dim", "input_concat_dim")}
    inputs = _inputs(**widths)
    out = model(torch.randn(2, 4, 8), torch.rand(2), **inputs)
    assert torch.equal(out, torch.zeros_like(out))
    (out - torch.randn_like(out)).square().mean().backward()
    assert sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None) > 0


def _cross_attention_case(network: dict):
    model = _randomised(_model(network))
    x, t = torch.randn(2, 4, 8), torch.rand(2)
    inputs = _inputs(cond_token_dim=12)
    changed = {**inputs, "cross_attn_cond": inputs["cross_attn_cond"].clone()}
    changed["cross_attn_cond"][1, 4] += 5.0  # a token masked out in item 1
    with torch.no_grad():
        return model(x, t, **inputs), model(x, t, **changed), model, (x, t, inputs)


@pytest.mark.parametrize("network", [{**TINY_DIT, "cond_token_dim": 12},
                                     {**TINY_UNET, "cond_token_dim": 12}], ids=["dit", "unet"])
def test_masked_cross_attention_tokens_do_not_change_the_output(network):
    before, after, model, (x, t, inputs) = _cross_attention_case(network)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)
    real = {**inputs, "cross_attn_cond": inputs["cross_attn_cond"].clone()}
    real["cross_attn_cond"][1, 0] += 5.0  # a real token of item 1
    with torch.no_grad():
        assert not torch.allclose(model(x, t, **real)[1], before[1], atol=1e-4)


def test_dit_without_cross_attention_masks_attends_to_padding_as_sat_does():
    before, after, _, _ = _cross_attention_case(
        {**TINY_DIT, "cond_token_dim": 12, "mask_cross_attention": False})
    torch.testing.assert_close(after[0], before[0])
    assert not torch.allclose(after[1], before[1], atol=1e-4)


def test_masked_prepended_tokens_do_not_change_the_output():
    model = _randomised(_model({**TINY_DIT, "prepend_cond_dim": 5}))
    x, t = torch.randn(2, 4, 8), torch.rand(2)
    inputs = _inputs(prepend_cond_dim=5)
    changed = {**inputs, "prepend_cond": inputs["prepend_cond"].clone()}
    changed["prepend_cond"][1, 2] += 5.0  # masked in item 1
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, **changed), model(x, t, **inputs), rtol=0,
                                   atol=1e-6)


def test_a_fully_masked_condition_acts_as_no_condition():
    model = _randomised(_model({**TINY_DIT, "cond_token_dim": 12}))
    x, t = torch.randn(2, 4, 8), torch.rand(2)
    null = {"cross_attn_cond": torch.randn(2, 5, 12),
            "cross_attn_mask": torch.zeros(2, 5, dtype=torch.bool)}
    with torch.no_grad():
        out = model(x, t, **null)
        torch.testing.assert_close(out, model(x, t))


@pytest.mark.parametrize("settings,length", [
    ({"io_channels": 2, "multipliers": [1, 2, 4], "factors": [4, 4], "input_concat_dim": 2,
      "global_cond_dim": 6, "cond_token_dim": 12}, 256),                  # raw stereo audio
    ({"io_channels": 8, "cond_token_dim": 12}, 16),                       # latents
    ({"io_channels": 4, "patch_size": 2, "factors": [3, 2], "use_nearest_upsample": True}, 48),
], ids=["audio", "latents", "patch_odd_factor"])
def test_unet_output_shape(settings, length):
    model = _randomised(_model({**TINY_UNET, **settings}))
    x = torch.randn(2, settings["io_channels"], length)
    out = model(x, torch.rand(2), **_inputs(length=length, **settings))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unet_length_must_fit_its_downsampling():
    model = _model({**TINY_UNET, "patch_size": 2})
    assert model.length_multiple == 8
    with pytest.raises(ValueError, match="length 12 is not a multiple of .* = 8"):
        model(torch.randn(1, 4, 12), torch.rand(1))


@pytest.mark.parametrize("section,message", [
    ({"network": {**TINY_DIT, "num_heads": 5}}, "embed_dim=32 is not a multiple of num_heads=5"),
    ({"network": {**TINY_DIT, "type": "wavenet"}}, "valid types: dit, unet"),
    ({"network": {**TINY_DIT, "cond_token_dim": 12, "project_cond_tokens": False}},
     "cond_token_dim=12 unprojected"),
    ({"network": {**TINY_UNET, "factors": [3, 2]}}, "odd factors"),
    ({"network": {**TINY_UNET, "attentions": [0, 1]}}, "attentions .* needs 3 entries"),
    ({"network": TINY_DIT, "cross_attention_cond_ids": ["prompt"]},
     "set network.cond_token_dim > 0"),
    ({"network": {**TINY_UNET, "cond_token_dim": 4}, "prepend_cond_ids": ["prompt"]},
     "takes no prepended tokens"),
    ({"network": TINY_DIT, "objective": "eps"}, "objective"),
])
def test_invalid_sections_name_the_fault(section, message):
    with pytest.raises(ConfigError, match=message):
        build_diffusion_model(section)


def test_conditions_of_a_conditioner_set_feed_the_network():
    conditioners = ConditionerSet({
        "seconds_start": {"type": "number", "min": 0, "max": 60},
        "seconds_total": {"type": "number", "min": 0, "max": 60},
        "ensemble": {"type": "options", "options": ["piano", "strings"]},
        "bpm": {"type": "int", "min": 40, "max": 240},
    }, dim=8)
    model = _randomised(_model(
        {**TINY_DIT, "cond_token_dim": 8, "global_cond_dim": 16, "prepend_cond_dim": 8},
        cross_attention_cond_ids=["ensemble", "seconds_start", "seconds_total"],
        global_cond_ids=["seconds_start", "seconds_total"], prepend_cond_ids=["bpm"]))
    model.check_conditioner_dim(8)
    with pytest.raises(ConfigError, match="network.cond_token_dim=8 \\(expected 4\\)"):
        model.check_conditioner_dim(4)
    conditions = conditioners.encode([
        {"seconds_start": 0, "seconds_total": 30, "ensemble": "piano", "bpm": 120},
        {"seconds_start": 5, "seconds_total": 10, "ensemble": None, "bpm": 90}])
    inputs = model.condition_inputs(conditions)
    assert inputs["cross_attn_cond"].shape == (2, 3, 8)
    assert inputs["cross_attn_mask"].tolist() == [[True, True, True], [False, True, True]]
    timing = [conditions[name].embeddings[:, 0] for name in ("seconds_start", "seconds_total")]
    torch.testing.assert_close(inputs["global_cond"], torch.cat(timing, dim=-1))
    assert inputs["prepend_cond"].shape == (2, 1, 8)
    with torch.no_grad():
        assert model(torch.randn(2, 4, 8), torch.rand(2), **inputs).shape == (2, 4, 8)
    with pytest.raises(ConfigError, match="'bpm'"):
        model.condition_inputs({name: conditions[name] for name in conditions if name != "bpm"})


def _rotary_written_out(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """stable-audio-tools' formulation: halves layout, duplicated angles, rotate_half."""
    dim = 2 * cos.shape[-1]
    cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)
    rotated, rest = x[..., :dim], x[..., dim:]
    first, second = rotated.chunk(2, dim=-1)
    return torch.cat([rotated * cos + torch.cat([-second, first], dim=-1) * sin, rest], dim=-1)


@pytest.mark.parametrize("head_dim", [64, 32, 6])
def test_rotary_positions_match_the_written_out_rotation_and_its_gradient(head_dim):
    torch.manual_seed(0)
    cos, sin = RotaryEmbedding(rotary_dim(head_dim))(9)
    cos, sin = cos.double(), sin.double()
    # A non-contiguous (B, H, N, D) view, as attention hands it over.
    x = torch.randn(2, 9, 3, head_dim, dtype=torch.double).transpose(1, 2).requires_grad_()
    torch.testing.assert_close(apply_rotary(x, cos, sin), _rotary_written_out(x, cos, sin))
    assert torch.autograd.gradcheck(lambda x: apply_rotary(x, cos, sin), (x,))
    grad = torch.randn(2, 3, 9, head_dim, dtype=torch.double)
    ours, = torch.autograd.grad(apply_rotary(x, cos, sin), x, grad)
    theirs, = torch.autograd.grad(_rotary_written_out(x, cos, sin), x, grad)
    torch.testing.assert_close(ours, theirs)


def test_rotary_of_bf16_heads_is_turned_in_float32_and_rounded_once():
    """q and k under CPU autocast are bf16, the angles float32: the result is the exact
    rotation of the bf16 input rounded to bf16 once, and the unrotated dimensions untouched."""
    cos, sin = RotaryEmbedding(rotary_dim(64))(9)
    x = torch.randn(2, 9, 3, 64, generator=torch.Generator().manual_seed(0)).bfloat16()
    x = x.transpose(1, 2)
    out = apply_rotary(x, cos, sin)
    exact = _rotary_written_out(x.double(), cos.double(), sin.double())
    assert out.dtype == torch.bfloat16 and out.is_contiguous()
    assert torch.equal(out, exact.bfloat16())
    assert torch.equal(out[..., 32:], x[..., 32:])


def _autoencoder(strides: list[int], patch_size: int = 1, init_scale: float = 1.0):
    encoder = {"latent_dim": 2, "init_scale": init_scale, "bottleneck": {"type": "vae"},
               "encoder": {"type": "oobleck", "channels": 2, "c_mults": [1], "strides": strides}}
    return _model({**TINY_DIT, "patch_size": patch_size, "input_concat_dim": 2},
                  encoder=encoder, input_concat_ids=["encoder_latents"])


def test_a_diffusion_autoencoder_takes_whole_latent_frames_and_scales_its_encoder_init():
    """Data lengths are multiples of the encoder's hop (and the network's), so each latent
    frame stretches over the frames it encodes; init_scale multiplies the encoder's initial
    parameters (stable-audio-tools halves them)."""
    assert _autoencoder([6], patch_size=4).length_multiple == 12
    assert _autoencoder([4], patch_size=2).length_multiple == 4
    plain, halved = _autoencoder([4]), _autoencoder([4], init_scale=0.5)
    for (name, value), other in zip(plain.named_parameters(), halved.parameters(), strict=True):
        expected = value * 0.5 if name.startswith("encoder.") else value
        torch.testing.assert_close(other, expected, msg=name)


def test_a_diffusion_autoencoder_encoder_of_the_wrong_width_names_the_key_and_the_fix():
    encoder = {"latent_dim": 2, "bottleneck": {"type": "vae"},
               "encoder": {"type": "oobleck", "channels": 2, "c_mults": [1], "strides": [4],
                           "latent_dim": 2}}
    section = {"network": {**TINY_DIT, "input_concat_dim": 2}, "encoder": encoder,
               "input_concat_ids": ["encoder_latents"]}
    with pytest.raises(ConfigError, match="encoder.latent_dim=2 does not fit: the vae bottleneck "
                       "takes 4 channels for latent_dim=2; set encoder.latent_dim to 4 or null"):
        build_diffusion_model(section)
