"""stable-audio-tools (SAT) compatibility: its training options, model and dataset configs, and
checkpoints, converted to audiotools recipes and models (docs/stable_audio_tools.md)."""
from .checkpoints import load_autoencoder, read_checkpoint, remove_weight_norm
from .model import load_architecture

__all__ = ["load_architecture", "load_autoencoder", "read_checkpoint", "remove_weight_norm"]
