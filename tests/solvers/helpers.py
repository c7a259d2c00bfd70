"""Run a recipe in-process, the way `dora run` does, for fast tests of the solver base."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audiotools.data.audio import audio_write
from audiotools.data.manifest import write_manifest
from audiotools.distributed import seed_everything
from audiotools.environment import CONFIG_DIR
from audiotools.families import FAMILIES, build_solver
from audiotools.io import export
from audiotools.solvers.base import StandardSolver

AUTOENCODER = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "model/autoencoder/debug.yaml"))
# The debug Oobleck with a 2 x 16 RVQ bottleneck: the tokens of musicgen/debug (250 frames/s).
RVQ = {**AUTOENCODER, "bottleneck": {"type": "rvq", "num_quantizers": 2, "codebook_size": 16,
                                     "kmeans_init": False}}


def tiny_codec(path: Path, config: dict = RVQ) -> Path:
    """An untrained debug autoencoder (seed 0) exported to `path`: codec.source of
    musicgen/debug (the RVQ default) or of a latent model."""
    torch.manual_seed(0)
    model = FAMILIES["autoencoder"].new_model(config, "test")
    return export.write(path, export.Export("autoencoder", config, {"model": model.state_dict()}))


def make_xp(*overrides: str):
    from audiotools.train import main
    xp = main.get_xp(["solver=toy/debug", *overrides])
    main.init_xp(xp)
    return xp


def build(xp) -> StandardSolver:
    """What audiotools.train.main does before `solver.run()`: seed, then build."""
    seed_everything(xp.cfg.seed)
    with xp.enter():
        return build_solver(xp.cfg)


def train(*overrides: str) -> StandardSolver:
    """Build and run a solver; the returned solver is closed (lock released)."""
    xp = make_xp(*overrides)
    solver = build(xp)
    with xp.enter():
        solver.run()
    return solver


def model_state(xp) -> dict[str, torch.Tensor]:
    state = torch.load(xp.folder / "checkpoint.th", weights_only=True)
    return state["model"]


def assert_same_state(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        assert torch.equal(left[key], right[key]), f"{key} differs"


def crash_then_resume(monkeypatch, *overrides: str, epoch: int, step: int) -> StandardSolver:
    """Run the XP until training step `step` of `epoch`, interrupt it there (as Ctrl-C does),
    check that only the epochs before were committed, then resume it to the end."""
    xp = make_xp(*overrides)
    solver = build(xp)
    original = type(solver).run_step

    def interrupted(self, idx, batch, metrics):
        if self.is_training and self.epoch == epoch and idx == step:
            raise KeyboardInterrupt
        return original(self, idx, batch, metrics)

    monkeypatch.setattr(type(solver), "run_step", interrupted)
    with xp.enter(), pytest.raises(KeyboardInterrupt):
        solver.run()
    assert len(solver.history) == epoch - 1
    monkeypatch.setattr(type(solver), "run_step", original)
    return train(*overrides)


def assert_resume_matches_uninterrupted(monkeypatch, dora_dir, *overrides: str,
                                        names: tuple[str, ...]) -> None:
    """An XP interrupted at step 1 of epoch 2 and resumed ends with the same `names` states
    and the same history (durations aside) as the same XP run without interruption."""
    reference = train(*overrides)
    expected = torch.load(reference.folder / "checkpoint.th", weights_only=True)
    reference.folder.rename(dora_dir / "reference")
    resumed = crash_then_resume(monkeypatch, *overrides, epoch=2, step=1)
    state = torch.load(resumed.folder / "checkpoint.th", weights_only=True)
    for name in names:
        assert_same_state(state[name], expected[name])

    def without_durations(history):
        return [{stage: {key: value for key, value in metrics.items() if key != "duration"}
                 for stage, metrics in epoch.items()} for epoch in history]

    assert without_durations(state["history"]) == without_durations(expected["history"])


# The shipped ensembles' names, as the generative debug recipes' `ensemble` conditioner lists
# them.
ENSEMBLES = ["brass quartet", "church organ", "mallets", "piano", "string quartet",
             "synthesizers"]


def write_tones_dset(folder: Path) -> list[dict]:
    """Six labelled 1.5 s tones (one per ensemble, 16 kHz mono) under `folder/audio`, their
    train/valid/evaluate/generate manifests, and a dset `tones` naming them in the config tree
    `folder/config` (put it on AUDIOTOOLS_CONFIG_PATH); returns the manifest entries."""
    entries = []
    (folder / "audio").mkdir()
    time = torch.arange(24000) / 16000
    for number, ensemble in enumerate(ENSEMBLES):
        wave = 0.3 * torch.sin(2 * math.pi * 110 * (number + 1) * time)[None]
        path = audio_write(folder / f"audio/{number}.wav", wave, 16000)
        entries.append({"path": str(path), "duration": 1.5, "sample_rate": 16000,
                        "channels": 1, "meta": {"ensemble": ensemble}})
    splits = {"train": entries, "valid": entries[:2], "evaluate": entries[2:4],
              "generate": entries[4:]}
    for split, chosen in splits.items():
        write_manifest(chosen, folder / f"{split}.jsonl")
    dset = folder / "config/dset/tones.yaml"
    dset.parent.mkdir(parents=True)
    dset.write_text("".join(f"{split}:\n  manifest: {folder / f'{split}.jsonl'}\n"
                            for split in splits))
    return entries
