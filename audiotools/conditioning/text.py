"""`text`: a prompt through a frozen T5 encoder (transformers), projected to dim.

The encoder and its tokenizer load with `from_pretrained` from a Hugging Face name (found in
the local cache: nothing is downloaded, so an offline machine does not spend minutes on the
Hub's retries first) or a folder; `//reference/...` and other audiotools paths resolve first.
transformers is imported here only, when a text conditioner is built. The encoder is frozen:
eval mode, no gradients, and kept out of the module's parameters and state dict (a checkpoint
does not copy it; `model` names it). Only the projection to dim is trained.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..environment import resolve_path
from ..errors import ConfigError
from .base import Conditioner, Conditioning, masked
from .config import TextConditionerConfig
from .values import MissingValue, as_text, fill_template, missing_error


def pretrained_source(model: str) -> str:
    """A folder (an audiotools path that exists) or a Hugging Face name, as given."""
    looks_like_path = model.startswith(("/", "./", "../", "~", "//")) or Path(model).exists()
    if not looks_like_path:
        return model
    folder = resolve_path(model)
    if not folder.is_dir():
        raise ConfigError(f"text conditioner model={model!r}: no folder at {folder}; give a "
                          "folder holding a T5 encoder and its tokenizer (save_pretrained), or "
                          "a Hugging Face name that is in the local cache.")
    return str(folder)


def _not_loaded(model: str, source: str, error: OSError) -> ConfigError:
    """Why `model` did not load, and where it was looked for (transformers' reason on one
    line)."""
    reason = " ".join(str(error).split())
    if Path(source).is_dir():
        return ConfigError(f"text conditioner model={model!r}: cannot load a T5 encoder and "
                           f"tokenizer from the folder {source} ({reason}); give a folder that "
                           "save_pretrained wrote.")
    from huggingface_hub import constants
    return ConfigError(f"text conditioner model={model!r}: not in the Hugging Face cache at "
                       f"{constants.HF_HUB_CACHE} ({reason}). Nothing is downloaded at run "
                       f"time: download it once where there is internet (`hf download "
                       f"{model}`) and copy the cache there (HF_HUB_CACHE or HF_HOME moves "
                       "it), or give a folder that save_pretrained wrote.")


def load_t5(model: str) -> tuple[Any, nn.Module]:
    """(tokenizer, frozen T5 encoder) of `model`, from local files only."""
    from transformers import AutoTokenizer, T5EncoderModel
    source = pretrained_source(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        encoder = T5EncoderModel.from_pretrained(source, local_files_only=True)
    except OSError as error:
        raise _not_loaded(model, source, error) from None
    return tokenizer, encoder.eval().requires_grad_(False)


class TextConditioner(Conditioner):
    """Tokens padded to `max_length` (mask False on padding), T5's last hidden states,
    a trained projection; identical texts reuse cached encoder outputs when `cache_size`."""

    config: TextConditionerConfig

    def __init__(self, name: str, config: TextConditionerConfig, dim: int):
        super().__init__(name, config, dim)
        tokenizer, encoder = load_t5(config.model)
        # Plain attributes, not submodules: never trained, saved or moved by the model.
        self.__dict__["tokenizer"] = tokenizer
        self.__dict__["encoder"] = encoder
        self.length = config.max_length
        self.proj = nn.Linear(encoder.config.d_model, dim)
        self.cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def item_value(self, info: Mapping[str, Any]) -> Any:
        if self.config.template is None:
            return super().item_value(info)
        try:
            return fill_template(self.config.template, info, self.name)
        except MissingValue as missing:
            if self.config.default is None:
                raise missing_error(self.name, info, missing.key) from None
            return self.config.default

    def prepare(self, value: Any, where: str) -> str:
        if isinstance(value, dict):
            raise ConfigError(f"conditioner {self.name!r}: {where} holds {value!r}, not text.")
        return as_text(value)

    @torch.no_grad()
    def _encode(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """T5 states (B, max_length, d_model) and the padding mask, on this device."""
        device = self.device
        if next(self.encoder.parameters()).device != device:
            self.encoder.to(device)
        tokens = self.tokenizer(list(texts), max_length=self.config.max_length,
                                padding="max_length", truncation=True, return_tensors="pt")
        ids = tokens["input_ids"].to(device)
        mask = tokens["attention_mask"].to(device).bool()
        states = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return states.float(), mask

    def _encode_cached(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs, the texts not in the cache encoded in one batch."""
        new = [text for text in dict.fromkeys(texts) if text not in self.cache]
        if new:
            states, mask = self._encode(new)
            for text, state, row in zip(new, states, mask, strict=True):
                self.cache[text] = (state, row)
        for text in texts:
            self.cache.move_to_end(text)
        found = [self.cache[text] for text in texts]
        while len(self.cache) > self.config.cache_size:
            self.cache.popitem(last=False)
        return (torch.stack([state for state, _ in found]).to(self.device),
                torch.stack([row for _, row in found]).to(self.device))

    def embed(self, values: Sequence[str]) -> Conditioning:
        if self.config.cache_size:
            states, mask = self._encode_cached(values)
        else:
            states, mask = self._encode(values)
        return masked(self.proj(states), mask)
