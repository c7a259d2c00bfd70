"""stable-audio-tools' ADP U-Net arguments (`adp_cfg_1d`, `adp_1d`, `adp_uncond_1d`) to our
`network:` of type `adp_unet` (audiotools/models/diffusion/adp.py), whose parameters have SAT's
names, so its weights load one to one.

What SAT's wrappers do with each type decides what converts:
- `adp_cfg_1d` (diffusion_cond): cross-attention tokens (required: SAT's network fails without
  them), a global condition (`context_features`), input-concat channels (`context_channels`),
  and the learned null embedding of `context_embedding_max_length` tokens used for CFG;
- `adp_1d` (diffusion_cond): global condition and input-concat channels; its wrapper never
  hands the network cross-attention tokens, so cross-attention arguments are refused;
- `adp_uncond_1d` (diffusion_uncond): no conditions at all.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

ADP_TYPES = ("adp_cfg_1d", "adp_1d", "adp_uncond_1d")
# SAT UNet1d arguments that our adp_unet takes under the same name.
_SAME = ("channels", "multipliers", "factors", "num_blocks", "attentions", "patch_size",
         "resnet_groups", "use_context_time", "kernel_multiplier_downsample",
         "use_nearest_upsample", "use_skip_scale", "attention_heads", "attention_features",
         "attention_multiplier", "context_features_multiplier")
_RENAMED = {"in_channels": "io_channels", "context_features": "global_cond_dim",
            "context_embedding_features": "cond_token_dim",
            "context_embedding_max_length": "null_embedding_length"}
_REQUIRED = ("in_channels", "channels", "multipliers", "factors", "num_blocks", "attentions")
# Arguments that would change the network in a way audiotools does not build.
_REFUSED = {
    "use_stft": "the STFT mode (the U-Net on spectrogram channels)",
    "use_stft_context": "the STFT mode (the U-Net on spectrogram channels)",
    "use_xattn_time": "the time as an extra cross-attention token",
}
# What each type's SAT wrapper feeds the network (the others' arguments are refused).
_FED = {"adp_cfg_1d": ("cond_token_dim", "null_embedding_length", "global_cond_dim",
                       "input_concat_dim"),
        "adp_1d": ("global_cond_dim", "input_concat_dim"),
        "adp_uncond_1d": ()}
_SAT_NAMES = {ours: sat for sat, ours in _RENAMED.items()} | {"input_concat_dim":
                                                             "context_channels"}


def _input_concat(channels: Any, where: str) -> int:
    """SAT's context_channels (channels joined at each resolution): the first only."""
    channels = list(channels or [])
    if any(channels[1:]):
        raise ConfigError(f"{where}.context_channels={channels}: audiotools joins input-concat "
                          "channels at the input only (context_channels of one entry).")
    return int(channels[0]) if channels else 0


def adp_network(kind: str, config: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Our `network:` (type adp_unet) for the SAT arguments of an ADP network of `kind`."""
    config = dict(config)
    for key in _REQUIRED:
        if key not in config:
            raise ConfigError(f"{where}.{key} is missing (stable-audio-tools requires it).")
    for key, what in _REFUSED.items():
        if config.pop(key, False):
            raise ConfigError(f"{where}.{key}=true is not supported: audiotools' ADP U-Net "
                              f"does not build {what}.")
    stft = sorted(key for key in config if key.startswith("stft_"))
    if stft:
        raise ConfigError(f"{where}: {', '.join(stft)} not supported (audiotools' ADP U-Net "
                          "has no STFT mode).")
    out_channels = config.pop("out_channels", None)
    if out_channels not in (None, config["in_channels"]):
        raise ConfigError(f"{where}.out_channels={out_channels}: a diffusion network outputs "
                          f"its in_channels={config['in_channels']}.")
    network: dict[str, Any] = {"type": "adp_unet"}
    network["input_concat_dim"] = _input_concat(config.pop("context_channels", None), where)
    unknown = sorted(set(config) - set(_SAME) - set(_RENAMED))
    if unknown:
        raise ConfigError(f"{where}: {', '.join(unknown)} not supported by audiotools' ADP "
                          f"U-Net (it maps {', '.join([*_SAME, *_RENAMED, 'context_channels'])};"
                          " see audiotools/models/diffusion/adp.py).")
    for key, value in config.items():
        network[_RENAMED.get(key, key)] = 0 if value is None else value
    levels = len(network["multipliers"]) - 1
    # SAT reads one attention entry per level and the last one for the middle.
    attentions = list(network["attentions"])
    if len(attentions) >= levels >= 1:
        network["attentions"] = attentions[:levels] + attentions[-1:]
    _check_fed(kind, network, where)
    return network


def _check_fed(kind: str, network: Mapping[str, Any], where: str) -> None:
    """Refuse inputs the type's SAT wrapper never feeds, and require what it needs."""
    if kind == "adp_cfg_1d":
        for key in ("cond_token_dim", "null_embedding_length"):
            if not network.get(key):
                raise ConfigError(f"{where}.{_SAT_NAMES[key]} is missing (stable-audio-tools' "
                                  "adp_cfg_1d requires it).")
        return
    unfed = [key for key in ("cond_token_dim", "null_embedding_length", "global_cond_dim",
                             "input_concat_dim")
             if network.get(key) and key not in _FED[kind]]
    if unfed:
        names = ", ".join(f"{_SAT_NAMES[key]}={network[key]}" for key in unfed)
        raise ConfigError(f"{where}: {names}: stable-audio-tools' {kind} wrapper never feeds "
                          "these inputs (its network then fails); remove them"
                          + (" or use adp_cfg_1d" if kind == "adp_1d" else "") + ".")


def check_adp_ids(kind: str, ids: Mapping[str, list[str]], where: str) -> None:
    """The `*_ids` an ADP network of `kind` can take (SAT drops the others silently, or
    fails)."""
    if ids["prepend_cond_ids"]:
        raise ConfigError(f"{where}.prepend_cond_ids: an ADP U-Net takes no prepended tokens "
                          "(stable-audio-tools ignores them).")
    if kind == "adp_cfg_1d" and not ids["cross_attention_cond_ids"]:
        raise ConfigError(f"{where}.cross_attention_cond_ids is empty: stable-audio-tools' "
                          "adp_cfg_1d needs cross-attention tokens (it fails without).")
    if kind == "adp_1d" and ids["cross_attention_cond_ids"]:
        raise ConfigError(f"{where}.cross_attention_cond_ids: stable-audio-tools' adp_1d "
                          "wrapper never passes them to its network; remove them or use "
                          "adp_cfg_1d.")
