"""Classifier solver: AudioCNN on log-mel features, one XP per cross-validation fold.

Data comes from precomputed feature files (the original trainer's format, optionally fetched
from the Hugging Face Hub) or from a folder of audio files with one subfolder per class.
`dataset.fold` is held out for validation and evaluation; the other folds train.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import distributed
from ..config import keys_but, unread_settings
from ..data import hub
from ..data.audio_folder import load_audio_folder
from ..data.features import FeatureArrays, load_features, split_by_fold
from ..errors import ConfigError, building
from ..io.atomic import write_image_atomic
from ..metrics.classification import (
    accuracy,
    confusion_matrix,
    macro_f1,
    render_confusion_matrix,
)
from ..models.cnn import build_cnn
from .base import StandardSolver
from .classifier_config import ClassifierConfig

logger = logging.getLogger(__name__)
# The dataset keys both sources read.
_EITHER = ("source", "fold", "batch_size", "num_workers")


def load_arrays(settings: ClassifierConfig) -> FeatureArrays:
    """Features, labels and folds from the configured source."""
    data, model = settings.dataset, settings.model
    if data.source == "features":
        assert data.features_dir is not None
        return load_features(data.features_dir, num_classes=model.num_classes,
                             hf_repo_id=data.hf_repo_id, hf_revision=data.hf_revision)
    assert data.root is not None
    return load_audio_folder(data.root, data.mel(), classes=data.classes,
                             folds_file=data.folds_file,
                             group_pattern=data.group_pattern, num_folds=data.num_folds,
                             cache_dir=data.cache_dir)


class ClassifierSolver(StandardSolver):
    config_schema = ClassifierConfig
    best_metric = "accuracy"
    best_mode = "max"

    def build_dataloaders(self) -> None:
        data = self.settings.dataset
        train, valid = split_by_fold(self.arrays, data.fold)
        logger.info("Fold %d: %d training and %d held-out samples, %d classes.", data.fold,
                    len(train), len(valid), self.arrays.num_classes)
        self.loaders["train"] = self.make_loader(train, data.batch_size, shuffle=True,
                                                 num_workers=data.num_workers)
        self.loaders["valid"] = self.make_loader(valid, data.batch_size, shuffle=False,
                                                 num_workers=data.num_workers)

    def build_model(self) -> None:
        # The data decides n_mels and num_classes, so it is read before the model is built.
        self.arrays = load_arrays(self.settings)
        model = self.settings.model
        for key, from_data in (("n_mels", self.arrays.n_mels),
                               ("num_classes", self.arrays.num_classes)):
            configured = getattr(model, key)
            if configured is not None and configured != from_data:
                raise ConfigError(f"model.{key}={configured} but the data has {from_data}; "
                                  f"set model.{key}=null to take it from the data.")
        with building("model"):  # pools the data's mel bands cannot take
            self.model = build_cnn(self.model_section()).to(self.device)
        frames = self.arrays.features.shape[-1]
        if frames < self.model.min_frames:
            raise ConfigError(f"model.pools: their time pools need {self.model.min_frames} "
                              f"frames, the features have {frames} (dataset.num_frames); give "
                              "more frames or smaller time pools.")
        self.optimizer = self.build_optimizer(self.model.parameters())
        self.register_stateful("model", "optimizer")
        self.register_best_state("model")
        self.register_ema("model")

    def model_section(self) -> dict[str, Any]:
        """The `model:` section with the sizes the data decides filled in."""
        section = self.settings.model.model_dump(mode="json")
        section.update(n_mels=self.arrays.n_mels, num_classes=self.arrays.num_classes)
        return section

    def check_settings(self) -> None:
        """Also: the dataset keys the other source reads are said when set (a features run
        read no dataset.classes, sample_rate, ... and said nothing)."""
        super().check_settings()
        data = self.settings.dataset
        features = ("features_dir", "hf_repo_id", "hf_revision")
        read = (*features, *_EITHER) if data.source == "features" else keys_but(data, *features)
        self.say_unread(unread_settings(data, read, "dataset"),
                        f"dataset.source={data.source} does not use them")

    def check_continued_from(self, info: dict[str, Any]) -> None:
        """The source's classes in another order than this run's would load its head with
        each row under another class's name (an accuracy of 0.11 where it had 0.90), and
        nothing said: refused, naming the order that keeps them. Other names (fine-tuning to
        new classes) are said."""
        given = info.get("class_names")
        names = list(self.arrays.class_names)
        if not given or list(given) == names:
            return
        if sorted(given) == sorted(names):
            raise ConfigError(
                f"continue_from={self.settings.continue_from} was trained on the classes "
                f"{list(given)} in this order, and this run's data gives {names}: its outputs "
                f"would be read as other classes. {self._class_order_fix(given)}")
        logger.warning("continue_from=%s was trained on the classes %s; this run's are %s "
                       "(its output layer starts from theirs where the sizes fit).",
                       self.settings.continue_from, list(given), names)

    def _class_order_fix(self, names: list[str]) -> str:
        if self.settings.dataset.source == "audio_folder":
            return f"Set dataset.classes=[{', '.join(names)}] to keep its order."
        return "Give the features' class_mapping.json (and labels) in its order."

    def export_info(self) -> dict[str, Any]:
        data = self.settings.dataset
        info: dict[str, Any] = {"model": self.model_section(),
                                "class_names": self.arrays.class_names}
        if data.source == "audio_folder":
            info["mel"] = data.mel().__dict__
        return info

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        features, labels = (tensor.to(self.device) for tensor in batch)
        logits = self.model(features).float()
        loss = F.cross_entropy(logits, labels)
        if self.is_training:
            predictions = logits.argmax(dim=1)
            return {"loss": loss, "accuracy": (predictions == labels).float().mean()}
        real = ~self.loaders["valid"].padding_rows(idx, len(labels)).to(labels.device)
        self._matrix += confusion_matrix(labels[real], logits.argmax(dim=1)[real],
                                         self.arrays.num_classes)
        return {"loss": loss}

    def valid_stage(self) -> dict[str, float]:
        """Loss averaged per batch by the base; accuracy and macro-F1 exact over the split."""
        self._matrix = torch.zeros(self.arrays.num_classes, self.arrays.num_classes,
                                   dtype=torch.int64)
        metrics = super().valid_stage()
        matrix = self._gathered_matrix()
        metrics.update(accuracy=accuracy(matrix), macro_f1=macro_f1(matrix))
        return metrics

    def _gathered_matrix(self) -> torch.Tensor:
        matrix = self._matrix.clone()
        if distributed.world_size() > 1:
            torch.distributed.all_reduce(matrix)
        return matrix

    def evaluate(self) -> dict[str, Any]:
        """Best weights on the held-out fold; the confusion matrix goes to a PNG and loggers."""
        self._matrix = torch.zeros(self.arrays.num_classes, self.arrays.num_classes,
                                   dtype=torch.int64)
        # Under the configured precision, as in valid: the two accuracies are of one model.
        with self.autocast:
            for idx, batch in enumerate(self.loaders["valid"]):
                self.run_step(idx, batch, {})
        matrix = self._gathered_matrix()
        if distributed.is_rank_zero():
            image = render_confusion_matrix(matrix, self.arrays.class_names)
            write_image_atomic(self.folder / "confusion_matrix.png", image)
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)
            self.log_image("evaluate", "confusion_matrix", pixels)
        return {"accuracy": accuracy(matrix), "macro_f1": macro_f1(matrix)}

    def run(self) -> None:
        super().run()
        repo = self.settings.upload.hf_repo_id
        if repo and distributed.is_rank_zero():
            self._upload_best(repo)

    def _upload_best(self, repo: str) -> None:
        """The best weights exported to a temporary folder (an export inside the XP folder
        is refused: `dora run --clear` would delete it), then uploaded."""
        import tempfile

        from ..io.export import export_checkpoint
        name = f"fold{self.settings.dataset.fold}_best.safetensors"
        with tempfile.TemporaryDirectory(prefix="audiotools-upload-") as folder:
            out, _ = export_checkpoint(str(self.folder), Path(folder) / name)
            hub.upload_model(repo, out, path_in_repo=f"{self.xp.sig}/{name}")
