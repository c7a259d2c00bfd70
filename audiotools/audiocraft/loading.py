"""AudioCraft packages as a foreign format of audiotools' loading (`audiotools.load`,
`load_codec`, `continue_from`): registered in `audiotools.families.FOREIGN_FORMATS`.

A compression package loads as an `autoencoder` model (a discrete codec). An LM package loads
into the LM family `LM_FAMILY` once that family is registered; until then `load_lm` reads it.
An LM's codec is the compression package beside it, as MusicGen's folders ship them and
AudioCraft's loaders find them: its export records that file, so the LM's pipeline loads it.
A folder holding both files is therefore its LM; give `compression_state_dict.bin` itself for
the codec alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..families import FAMILIES
from ..io.export import Export
from .package import COMPRESSION_FILE, LM_FILE, package_file, read_package

# The family an AudioCraft LM converts into (the MusicGen solver's).
LM_FAMILY = "musicgen"


def _shipped_codec(lm_file: Path) -> dict[str, Any]:
    """The codec record (`trained_codec`'s) of an LM package: the compression package in its
    folder, there or not (its pipeline names it if not). No identity: the package records
    none to compare it with."""
    return {"source": str(package_file(lm_file.parent, "compression")), "scale": 1.0}


class AudioCraftFormat:
    """An AudioCraft `*.bin` package, or a folder holding `state_dict.bin` or
    `compression_state_dict.bin`."""

    name = "AudioCraft (state_dict.bin, compression_state_dict.bin, or their folder)"

    def accepts(self, path: Path) -> bool:
        if path.is_dir():
            return (path / LM_FILE).is_file() or (path / COMPRESSION_FILE).is_file()
        return path.is_file() and path.suffix == ".bin"

    def load(self, path: Path, **options: Any) -> tuple[Export, torch.nn.Module]:
        """The model for inference. An LM's export carries its conditioners' section and
        guidance settings in `info` and their weights as `weights["conditioners"]`."""
        if options:
            raise CheckpointError(f"{path}: an AudioCraft package takes no "
                                  f"{', '.join(sorted(options))}.")
        package = read_package(path)
        if package.kind == "compression":
            from .encodec import convert_compression
            model = convert_compression(package)
            return Export("autoencoder", model.config.model_dump(mode="json"), {},
                          label=str(package.path)), model
        if LM_FAMILY not in FAMILIES:
            raise CheckpointError(
                f"{package.path} is an AudioCraft LM, and this audiotools has no {LM_FAMILY!r} "
                f"family to load it into; read it with "
                f"audiotools.audiocraft.load_lm({str(package.path)!r}).")
        from .lm import convert_lm
        converted = convert_lm(package)
        info = {"conditioners": converted.conditioners,
                "joint_dropout": converted.joint_dropout, "cfg_scale": converted.cfg_scale,
                "codec": _shipped_codec(package.path), **converted.info}
        return Export(LM_FAMILY, converted.config.model_dump(mode="json"),
                      {"conditioners": converted.conditioner_weights}, info,
                      label=str(package.path)), converted.model

    def weights_for(self, path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The package's weights in `model`'s layout: an autoencoder's, or, for an LM, those
        of every `LMModel` and `ConditionerSet` inside `model` (under their prefixes)."""
        from ..models.autoencoder import AudioAutoencoder
        if isinstance(model, AudioAutoencoder):
            from .encodec import compression_weights
            return compression_weights(read_package(path, "compression"), model, strict=False)
        from ..conditioning import ConditionerSet
        from ..models.lm import LMModel
        from .lm import lm_settings, lm_weights
        package = read_package(path, "lm")
        _, conditioners, _, _ = lm_settings(package)
        lm, conditioning = lm_weights(package, set(conditioners))
        weights: dict[str, torch.Tensor] = {}
        for prefix, module in model.named_modules():
            part = (lm if isinstance(module, LMModel) else
                    conditioning if isinstance(module, ConditionerSet) else None)
            if part is not None:
                weights.update({f"{prefix}.{key}" if prefix else key: value
                                for key, value in part.items()})
        if not weights:
            raise CheckpointError(f"continue_from={path}: an AudioCraft LM loads into an "
                                  f"LMModel, and this {type(model).__name__} holds none.")
        return weights


AUDIOCRAFT_FORMAT = AudioCraftFormat()
