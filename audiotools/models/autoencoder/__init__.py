"""Audio autoencoders (the stable-audio-tools family): Oobleck or SEANet networks around a
VAE, tanh, RVQ, FSQ or no bottleneck, built from a recipe's `model:` section."""
from .autoencoder import AudioAutoencoder, AutoencoderOutput, build_autoencoder
from .config import AutoencoderConfig, validate_autoencoder_config

__all__ = ["AudioAutoencoder", "AutoencoderConfig", "AutoencoderOutput", "build_autoencoder",
           "validate_autoencoder_config"]
