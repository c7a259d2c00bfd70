"""Model families; each module builds its model from the `model.*` section of the config."""
from .cnn import AudioCNN

__all__ = ["AudioCNN"]
