"""Diffusion models (the stable-audio-tools family): a DiT or 1-D U-Net trained with the v or
rectified-flow objective on audio or codec latents, conditioned by cross-attention tokens,
global vectors, prepended tokens and input-concat channels."""
from .config import (
    PRESETS,
    STABLE_AUDIO,
    DiffusionModelConfig,
    DiTConfig,
    TimeShiftConfig,
    TimestepsConfig,
    UNetConfig,
    preset,
    validate_diffusion_config,
)
from .dit import DiffusionTransformer
from .model import DiffusionModel, build_diffusion_model
from .objectives import (
    Objective,
    RectifiedFlowObjective,
    VObjective,
    get_objective,
    sample_timesteps,
    time_shift,
)
from .unet import UNet1d

__all__ = ["PRESETS", "STABLE_AUDIO", "DiTConfig", "DiffusionModel", "DiffusionModelConfig",
           "DiffusionTransformer", "Objective", "RectifiedFlowObjective", "TimeShiftConfig",
           "TimestepsConfig", "UNet1d", "UNetConfig", "VObjective", "build_diffusion_model",
           "get_objective", "preset", "sample_timesteps", "time_shift",
           "validate_diffusion_config"]
