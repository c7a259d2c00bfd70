"""Diffusion models (the stable-audio-tools family): a DiT or 1-D U-Net trained with the v or
rectified-flow objective on audio or codec latents, conditioned by cross-attention tokens,
global vectors, prepended tokens and input-concat channels (inpainting masks, a diffusion
autoencoder's latents)."""
from .adp import ADPUNet
from .config import (
    ENCODER_LATENTS,
    INPAINT_MASK,
    INPAINT_MASKED_INPUT,
    OWN_CONDITIONS,
    PRESETS,
    STABLE_AUDIO,
    ADPUNetConfig,
    DiffusionEncoderConfig,
    DiffusionModelConfig,
    DiTConfig,
    TimeShiftConfig,
    TimestepsConfig,
    UNetConfig,
    preset,
    validate_diffusion_config,
)
from .dit import DiffusionTransformer
from .inpainting import InpaintMaskConfig, inpaint_conditions, keep_mask, random_keep_masks
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

__all__ = ["ADPUNet", "ADPUNetConfig", "ENCODER_LATENTS", "INPAINT_MASK", "INPAINT_MASKED_INPUT",
           "OWN_CONDITIONS", "PRESETS", "STABLE_AUDIO", "DiTConfig", "DiffusionEncoderConfig",
           "DiffusionModel", "DiffusionModelConfig", "DiffusionTransformer", "InpaintMaskConfig",
           "Objective", "RectifiedFlowObjective", "TimeShiftConfig", "TimestepsConfig", "UNet1d",
           "UNetConfig", "VObjective", "build_diffusion_model", "get_objective",
           "inpaint_conditions", "keep_mask", "preset", "random_keep_masks", "sample_timesteps",
           "time_shift", "validate_diffusion_config"]
