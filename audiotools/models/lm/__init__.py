"""The MusicGen-style token LM family's model: codebook interleaving patterns, a causal
transformer with a static KV cache, conditions fused by cross-attention, prepending or sum,
and the `model:` schema with its builder (token sampling: audiotools.sampling.tokens)."""
from .config import (
    FuserConfig,
    LMConfig,
    build_lm,
    build_pattern,
    musicgen_small,
    musicgen_small_conditioners,
    validate_lm_config,
)
from .lm import DecodingState, LMModel
from .patterns import (
    PATTERNS,
    CoarseFirstPattern,
    DelayPattern,
    ParallelPattern,
    Pattern,
    UnrollPattern,
)

__all__ = ["PATTERNS", "CoarseFirstPattern", "DecodingState", "DelayPattern", "FuserConfig",
           "LMConfig", "LMModel", "ParallelPattern", "Pattern", "UnrollPattern", "build_lm",
           "build_pattern", "musicgen_small", "musicgen_small_conditioners",
           "validate_lm_config"]
