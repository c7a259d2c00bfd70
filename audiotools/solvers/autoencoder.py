"""Autoencoder solver: the stable-audio-tools autoencoder family (VAE, tanh, RVQ, FSQ
bottlenecks on Oobleck or SEANet encoders) with spectral, waveform and adversarial losses.

Each training batch first updates the discriminator on (real, detached reconstruction), then
the generator on reconstruction + bottleneck + adversarial + feature-matching losses, so the
two updates alternate. Adversarial terms start after `adversarial.warmup_steps` generator
updates. The best state is the one with the lowest valid mel distance (EMA weights when
`optim.ema.use`); evaluate and generate use it.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch

from .. import distributed
from ..config import keys_but, unread_settings
from ..data.audio import AudioFileError, audio_write
from ..data.builders import build_audio_datasets
from ..data.segments import collate_segments
from ..errors import ConfigError, building
from ..io.atomic import remove_temporaries
from ..losses.adversarial import GANLoss, feature_matching_loss
from ..losses.complex import CompressedSpectrumLoss
from ..losses.spectral import spectral_loss
from ..losses.time import l1_waveform_loss
from ..metrics.audio import frame_buzz, mel_distance, si_snr, stft_distance
from ..metrics.codebooks import code_counts, codebook_statistics
from ..metrics.spectrogram import render_spectrogram
from ..models.autoencoder import build_autoencoder
from ..models.discriminators import MultiScaleSTFTDiscriminator
from .autoencoder_config import AutoencoderSolverConfig
from .base import StandardSolver

logger = logging.getLogger(__name__)


def _real_parts(reconstruction: torch.Tensor, audio: torch.Tensor, padding_mask: torch.Tensor,
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(reconstruction, audio) pairs over real samples only: the batch itself when no item is
    padded, else each item cut to its length (a file's end padded with zeros scored the
    silence it was given back, not the file)."""
    lengths = padding_mask.sum(-1).tolist()
    if all(length == audio.shape[-1] for length in lengths):
        return [(reconstruction, audio)]
    return [(reconstruction[i:i + 1, ..., :length], audio[i:i + 1, ..., :length])
            for i, length in enumerate(lengths)]


class AutoencoderSolver(StandardSolver):
    config_schema = AutoencoderSolverConfig
    best_metric = "mel_distance"
    best_mode = "min"

    # ------------------------------------------------------------------ building
    def build_model(self) -> None:
        settings = self.settings
        with building("model"):
            self.model = build_autoencoder(settings.model).to(self.device)
        self.optimizer = self.build_optimizer(self.model.parameters())
        self.register_stateful("model", "optimizer")
        self.register_best_state("model")
        self.register_ema("model")
        weights = settings.losses.weights
        self.discriminator: MultiScaleSTFTDiscriminator | None = None
        if weights.adversarial > 0 or weights.feature_matching > 0:
            adversarial = settings.adversarial
            self.discriminator = MultiScaleSTFTDiscriminator(
                in_channels=self.model.channels, filters=adversarial.filters,
                n_ffts=adversarial.n_ffts, hop_lengths=adversarial.hop_lengths,
                win_lengths=adversarial.win_lengths, stride=adversarial.stride).to(self.device)
            self.disc_optimizer = self.build_optimizer(self.discriminator.parameters(),
                                                       lr=adversarial.lr)
            self.register_stateful("discriminator", "disc_optimizer")
            self.register_optimizer("disc_optimizer")
        self.gan_loss = GANLoss(settings.adversarial.loss)
        # Weight of each named loss term; terms the schema does not list weigh 1.
        self.loss_weights = settings.losses.weights.model_dump()
        spectral = settings.losses.spectral
        self.spectral_loss = spectral_loss(
            self.model.channels, fft_sizes=spectral.fft_sizes, hop_sizes=spectral.hop_sizes,
            win_lengths=spectral.win_lengths, scale=spectral.scale, n_bins=spectral.n_bins,
            sample_rate=self.model.sample_rate,
            perceptual_weighting=spectral.perceptual_weighting, window=spectral.window,
            w_sc=spectral.w_sc, w_log_mag=spectral.w_log_mag,
            w_lin_mag=spectral.w_lin_mag).to(self.device)
        complex_loss = settings.losses.complex
        self.complex_loss = CompressedSpectrumLoss(
            complex_loss.fft_sizes, complex_loss.hop_sizes, complex_loss.power).to(self.device)

    def check_settings(self) -> None:
        """Also: the discriminator's scales fit a training segment and it trains at all; the
        settings of a term the run leaves out (weight 0, no discriminator, another
        bottleneck) are said."""
        super().check_settings()
        settings = self.settings
        losses, model = settings.losses, settings.model
        if self.discriminator is not None:
            self._check_discriminator()
        else:
            self.say_unread(unread_settings(settings.adversarial, (), "adversarial"),
                            "losses.weights.adversarial and feature_matching are 0: no "
                            "discriminator")
        if losses.weights.complex == 0:
            self.say_unread(unread_settings(losses.complex, (), "losses.complex"),
                            "losses.weights.complex=0")
        if losses.spectral.scale is None:
            self.say_unread(unread_settings(losses.spectral, keys_but(losses.spectral, "n_bins"),
                                            "losses.spectral"),
                            "losses.spectral.scale=null reads linear STFT bins")
        absent = {"vae": ("commitment",), "rvq": ("kl",)}.get(model.bottleneck.type,
                                                              ("kl", "commitment"))
        self.say_unread(unread_settings(losses.weights, keys_but(losses.weights, *absent),
                                        "losses.weights"),
                        f"a {model.bottleneck.type} bottleneck gives no such term")
        encoder = model.encoder
        if encoder.type == "stft" and encoder.features == "magnitude" \
                and encoder.phase != "frame":
            self.say_unread([f"model.encoder.phase={encoder.phase}"],
                            "model.encoder.features=magnitude reads no phase")

    def _check_discriminator(self) -> None:
        adversarial, data = self.settings.adversarial, self.settings.dataset
        if adversarial.warmup_steps >= self.total_updates:
            logger.warning("adversarial.warmup_steps=%d: the run has %d updates, so the "
                           "discriminator never trains.", adversarial.warmup_steps,
                           self.total_updates)
        own = data.train.segment_duration if data.train is not None else None
        samples = round((own or data.segment_duration or 0) * self.model.sample_rate)
        if samples and max(adversarial.n_ffts) > samples:
            raise ConfigError(f"adversarial.n_ffts={adversarial.n_ffts}: the discriminator's "
                              f"largest STFT needs {max(adversarial.n_ffts)} samples, a "
                              f"training segment holds {samples}; use n_ffts up to {samples} "
                              "(with hop_lengths and win_lengths to match) or longer "
                              "segments.")

    def build_dataloaders(self) -> None:
        data = self.settings.dataset
        datasets = build_audio_datasets(data, self.settings.seed)
        for split, dataset in datasets.items():
            self.loaders[split] = self.make_loader(
                dataset, data.batch_size, shuffle=split == "train",
                num_workers=data.num_workers, collate_fn=collate_segments,
                drop_last=split == "train")
        if "train" not in self.loaders:
            raise ConfigError("dataset.train is not defined: the autoencoder needs a training "
                              "split (see config/dset/music_small.yaml).")

    def export_info(self) -> dict[str, Any]:
        return {"model": self.settings.model.model_dump(mode="json")}

    # ------------------------------------------------------------------ steps
    @property
    def _adversarial_active(self) -> bool:
        return (self.discriminator is not None
                and self._updates_done >= self.settings.adversarial.warmup_steps)

    def run_step(self, idx: int, batch: Any, metrics: dict[str, Any]) -> dict[str, Any]:
        audio = batch["audio"].to(self.device)
        if audio.shape[0] == 0:
            raise AudioFileError("Every file of a batch failed to read (their paths are in the "
                                 "log above); fix or remove them and rebuild the manifest.")
        output = self.model(audio)
        reconstruction = output.audio
        if self.is_training and self._adversarial_active:
            metrics["d_loss"] = self._update_discriminator(audio, reconstruction.detach())
        terms = self._reconstruction_terms(audio, reconstruction)
        terms.update(output.losses)
        if self.is_training and self._adversarial_active:
            terms.update(self._adversarial_terms(audio, reconstruction))
        weights = self.loss_weights
        unweighted = sorted(set(terms) - set(weights))
        if unweighted:  # a term a researcher added: weighted 1 in silence, it was
            raise ConfigError(
                f"loss term(s) {', '.join(unweighted)} have no weight: add each to LossWeights "
                "(audiotools/solvers/autoencoder_config.py) and to losses.weights of the "
                f"recipe's YAML. Weights: {', '.join(weights)}.")
        loss = sum(weights[name] * value for name, value in terms.items() if weights[name] > 0)
        metrics.update(terms)
        metrics.update(output.metrics)
        metrics["loss"] = loss
        if not self.is_training:
            parts = _real_parts(reconstruction.float(), audio.float(), batch["padding_mask"])
            metrics["mel_distance"] = sum(
                mel_distance(fake, real, self.model.sample_rate).sum()
                for fake, real in parts) / audio.shape[0]
        return metrics

    def _reconstruction_terms(self, audio: torch.Tensor, reconstruction: torch.Tensor,
                              ) -> dict[str, torch.Tensor]:
        weights = self.settings.losses.weights
        terms = {}
        if weights.spectral > 0 or not self.is_training:
            terms["spectral"] = self.spectral_loss(reconstruction, audio)
        if weights.l1 > 0 or not self.is_training:
            terms["l1"] = l1_waveform_loss(reconstruction, audio)
        if weights.complex > 0:
            terms["complex"] = self.complex_loss(reconstruction, audio)
        return terms

    def _update_discriminator(self, audio: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        assert self.discriminator is not None
        real_logits, _ = self.discriminator(audio)
        fake_logits, _ = self.discriminator(fake)
        loss = self.gan_loss.discriminator(real_logits, fake_logits)
        self.optimize("disc_optimizer", loss)
        return loss.detach()

    def _adversarial_terms(self, audio: torch.Tensor, reconstruction: torch.Tensor,
                           ) -> dict[str, torch.Tensor]:
        """Generator terms; the discriminator takes no gradient from them."""
        assert self.discriminator is not None
        with _frozen(self.discriminator):
            fake_logits, fake_features = self.discriminator(reconstruction)
            with torch.no_grad():
                real_logits, real_features = self.discriminator(audio)
        relative = self.settings.adversarial.relative_feature_matching
        return {"adversarial": self.gan_loss.generator(real_logits, fake_logits),
                "feature_matching": feature_matching_loss(real_features, fake_features,
                                                          relative=relative)}

    # ------------------------------------------------------------------ evaluate, generate
    def evaluate(self) -> dict[str, Any]:
        """SI-SNR, mel distance, multi-resolution STFT distance and frame-rate buzz per item,
        averaged over the evaluate split (valid when there is no evaluate split); a quantized
        model adds each codebook's perplexity and unused codes over the whole split. Under DDP
        the copies that pad a rank's share are left out, so the figures are one process's."""
        loader = self.loaders["evaluate" if "evaluate" in self.loaders else "valid"]
        loader.set_epoch(0)
        totals = torch.zeros(5, dtype=torch.float64)  # the four metrics' sums, the items
        counts = None
        if self.model.is_quantized:
            assert self.model.num_codebooks and self.model.codebook_size
            counts = torch.zeros(self.model.num_codebooks, self.model.codebook_size,
                                 dtype=torch.float64)
        for idx, batch in enumerate(self.log_progress("evaluate", loader)):
            keep = ~loader.padding_rows(idx, batch["rows"])
            audio = batch["audio"][keep].to(self.device)
            if audio.shape[0] == 0:
                continue
            with self.autocast:
                reconstruction = self.model(audio).audio.float()
            sample_rate = self.model.sample_rate
            mask = batch["padding_mask"][keep]
            for fake, real in _real_parts(reconstruction, audio, mask):
                totals[:4] += torch.stack([
                    si_snr(fake, real).sum(), mel_distance(fake, real, sample_rate).sum(),
                    stft_distance(fake, real).sum(),
                    frame_buzz(fake, real, sample_rate, self.model.hop_length).sum(),
                ]).double().cpu()
            totals[4] += audio.shape[0]
            if counts is not None:
                with self.autocast:
                    tokens = self.model.encode_to_tokens(audio)
                frames = torch.ceil(mask.sum(-1) / self.model.hop_length).long().tolist()
                for item, length in zip(tokens, frames, strict=True):  # real frames only
                    counts += code_counts(item[None, :, :length], counts.shape[1])
        totals = distributed.sum_across_ranks(totals)
        if totals[4] == 0:
            raise AudioFileError("No file of the evaluate split could be read (their paths are "
                                 "in the log above).")
        mean = (totals[:4] / totals[4]).tolist()
        metrics = {"si_snr": mean[0], "mel_distance": mean[1], "stft_distance": mean[2],
                   "frame_buzz": mean[3]}
        if counts is not None:
            metrics.update(codebook_statistics(distributed.sum_across_ranks(counts)))
            dead = self.model.bottleneck.dead_codes()
            metrics.update({f"dead_codes_q{k}": float(n) for k, n in enumerate(dead or [])})
        return metrics

    def generate(self) -> dict[str, Any]:
        """Reconstructions and references under <xp>/samples/<epoch>/, also logged as audio
        and spectrogram images."""
        if "generate" not in self.loaders or not distributed.is_rank_zero():
            return {}
        out_dir = self.folder / "samples" / str(self.epoch)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_temporaries(out_dir)
        sample_rate = self.model.sample_rate
        suffix = self.settings.generate.format
        written = 0
        for batch in self.loaders["generate"].whole_pass(self.settings.dataset.batch_size):
            audio = batch["audio"].to(self.device)
            with self.autocast:
                reconstruction = self.model(audio).audio.float().clamp(-1, 1)
            for reference, estimate in zip(audio.cpu(), reconstruction.cpu(), strict=True):
                name = f"{written:03d}"
                audio_write(out_dir / f"{name}_reference.{suffix}", reference, sample_rate)
                audio_write(out_dir / f"{name}_reconstruction.{suffix}", estimate, sample_rate)
                self.log_audio("generate", f"{name}_reconstruction", estimate, sample_rate)
                self.log_audio("generate", f"{name}_reference", reference, sample_rate)
                self._log_spectrograms(name, reference, estimate)
                written += 1
        return {"samples": written}

    def _log_spectrograms(self, name: str, reference: torch.Tensor,
                          estimate: torch.Tensor) -> None:
        import numpy as np
        for kind, audio in (("reference", reference), ("reconstruction", estimate)):
            image = render_spectrogram(audio, self.model.sample_rate)
            pixels = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
            self.log_image("generate", f"{name}_{kind}_spectrogram", pixels)


@contextlib.contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """No parameter of `module` accumulates gradient inside the block."""
    flags = [p.requires_grad for p in module.parameters()]
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags, strict=True):
            parameter.requires_grad_(flag)
