"""Schema of the classifier solver's config: data source, folds, features and model.

Kept apart from the solver so a config is checked (and a finished XP recognised) without
importing the training stack."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import Section, SolverConfig
from ..data.audio_folder import MelSettings
from ..models.cnn import CNNConfig


class ClassifierDataConfig(Section):
    source: Literal["features", "audio_folder"] = "audio_folder"
    # features source
    features_dir: str | None = None
    hf_repo_id: str | None = None
    hf_revision: str | None = None
    # audio_folder source
    root: str | None = None
    # Class folder names in label order; null = sorted folder names.
    classes: list[str] | None = None
    folds_file: str | None = None
    group_pattern: str | None = None
    num_folds: int = Field(5, ge=2)
    cache_dir: str | None = None
    sample_rate: int = Field(16000, ge=1000)
    n_fft: int = Field(512, ge=16)
    hop_length: int = Field(160, ge=1)
    n_mels: int = Field(64, ge=1)
    num_frames: int = Field(101, ge=1)
    # both
    fold: int = Field(0, ge=0)
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _source_has_its_path(self) -> ClassifierDataConfig:
        if self.source == "features" and not self.features_dir:
            raise ValueError("dataset.source=features needs dataset.features_dir=PATH")
        if self.source == "audio_folder" and not self.root:
            raise ValueError("dataset.source=audio_folder needs dataset.root=PATH")
        return self

    def mel(self) -> MelSettings:
        return MelSettings(self.sample_rate, self.n_fft, self.hop_length, self.n_mels,
                           self.num_frames)


class UploadConfig(Section):
    # Hub model repo that receives each fold's best model (exported) after training.
    hf_repo_id: str | None = None


class ClassifierConfig(SolverConfig):
    model: CNNConfig = CNNConfig()
    dataset: ClassifierDataConfig
    upload: UploadConfig = UploadConfig()

    def work_after_training(self) -> bool:
        return self.upload.hf_repo_id is not None  # a rerun retries the upload
