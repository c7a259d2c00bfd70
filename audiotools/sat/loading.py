"""stable-audio-tools checkpoints as a foreign format of audiotools' loading
(`audiotools.load`, `reconstruct`, `continue_from`): registered in
`audiotools.families.FOREIGN_FORMATS`."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..families import family_for_sat_model_type
from ..io.export import Export, is_export
from ..models.diffusion import DiffusionModel
from .checkpoints import load_with_architecture, match_weights, read_checkpoint
from .diffusion_checkpoints import read_diffusion_checkpoint

logger = logging.getLogger(__name__)


class SATFormat:
    """A SAT autoencoder checkpoint: a `.ckpt` (unwrapped or a Lightning training
    checkpoint) or a `.safetensors` state dict that is not an audiotools export. A diffusion
    checkpoint with its diffusion config loads as its pretransform (what a latent diffusion
    recipe's codec needs), and continues a diffusion XP with its network's weights."""

    name = "stable-audio-tools (.ckpt, or .safetensors with --sat-model-config)"

    def accepts(self, path: Path) -> bool:
        return path.is_file() and (path.suffix == ".ckpt" or (
            path.suffix == ".safetensors" and not is_export(path)))

    def load(self, path: Path, sat_model_config: Any = None, **options: Any,
             ) -> tuple[Export, torch.nn.Module]:
        """The EMA weights for inference (a training checkpoint's live ones if it has none);
        `remove_norm` and `prefer_ema` as in `load_autoencoder`."""
        architecture, model = load_with_architecture(path, sat_model_config, **options)
        family = family_for_sat_model_type("autoencoder")  # what load_architecture reads
        export = Export(family.name, architecture.model_dump(mode="json"), {}, label=str(path))
        return export, model

    def weights_for(self, path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The live weights (a training checkpoint's non-EMA ones), renamed and converted to
        `model`'s weight-norm form; for a diffusion model, its network's (and a diffusion
        autoencoder's encoder)."""
        if isinstance(model, DiffusionModel):
            diffusion = read_diffusion_checkpoint(path, prefer_ema=False)
            logger.info("continue_from %s (conditioners are not loaded: start them from "
                        "audiotools.sat.load_diffusion)", diffusion.describe())
            weights = diffusion.model_weights()
        else:
            found = read_checkpoint(path, prefer_ema=False)
            logger.info("continue_from %s", found.describe())
            weights = found.weights
        converted, _ = match_weights(weights, model)
        return converted


SAT_FORMAT = SATFormat()
