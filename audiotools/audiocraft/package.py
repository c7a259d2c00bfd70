"""AudioCraft's exported model files: `state_dict.bin` (an LM) and `compression_state_dict.bin`
(a compression model), each a torch-saved dict holding the Hydra config the model was trained
with (`xp.cfg`, YAML text) and its weights (`best_state`), as AudioCraft's `utils/export.py`
writes them and its `models/loaders.py` reads them (MusicGen's released folders hold both).

Options are read as AudioCraft's builders read them: a key the config lacks takes the default
of the AudioCraft constructor it feeds, so a converted model is the one AudioCraft would build.
"""
from __future__ import annotations

import functools
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ValidationError

from ..errors import CheckpointError

logger = logging.getLogger(__name__)

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
Kind = Literal["lm", "compression"]
_FILES: dict[Kind, str] = {"lm": LM_FILE, "compression": COMPRESSION_FILE}
_REQUIRED = object()
T = TypeVar("T")


def reads_xp_cfg(convert: Callable[[Package], T]) -> Callable[[Package], T]:
    """`convert(package)`, with a value of its xp.cfg that is not what the model takes (text
    where a number goes, a list where a section goes, a size the model's schema refuses)
    raised as one CheckpointError naming the package, not from deep in the conversion."""
    @functools.wraps(convert)
    def checked(package: Package) -> T:
        try:
            return convert(package)
        except ValidationError as error:
            found = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}"
                              for item in error.errors())
            raise CheckpointError(f"{package.path}: its xp.cfg describes a model audiotools "
                                  f"refuses ({found}).") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{package.path}: its xp.cfg holds a value of another type "
                                  f"than the model takes ({error}).") from None
    return checked


@dataclass
class Package:
    """One exported AudioCraft model: its config and weights, and what kind of model it is."""

    path: Path
    config: DictConfig
    weights: dict[str, torch.Tensor]
    kind: Kind

    def option(self, key: str, default: Any = _REQUIRED) -> Any:
        """The resolved value at dotted `key` (a mapping as a plain dict); `default` when the
        config lacks it."""
        try:
            value = OmegaConf.select(self.config, key, default=_REQUIRED,
                                     throw_on_resolution_failure=True)
            if OmegaConf.is_config(value):
                value = OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException as error:
            raise CheckpointError(f"{self.path}: xp.cfg key {key!r} does not resolve "
                                  f"({error}).") from None
        if value is _REQUIRED:
            if default is _REQUIRED:
                raise CheckpointError(f"{self.path}: xp.cfg has no {key!r}, which the "
                                      f"{self.kind} model needs.")
            return default
        return value

    def unsupported(self, key: str, value: Any, supported: str) -> CheckpointError:
        """The error for an option audiotools cannot reproduce."""
        return CheckpointError(f"{self.path}: xp.cfg {key}={value!r} is not supported by "
                               f"audiotools' conversion ({supported}).")

    def require(self, key: str, default: Any, allowed: tuple[Any, ...], supported: str) -> Any:
        """The option at `key`, which must be one of `allowed`."""
        value = self.option(key, default)
        if value not in allowed:
            raise self.unsupported(key, value, supported)
        return value

    def training_only(self, key: str, default: Any, neutral: Any, what: str) -> None:
        """Warn about a training option audiotools does not reproduce (inference is the same)."""
        value = self.option(key, default)
        if value != neutral:
            logger.warning("%s: xp.cfg %s=%r (%s) has no audiotools equivalent; the model "
                           "gives the same outputs, but fine-tuning runs without it.",
                           self.path, key, value, what)


def package_file(folder: Path, kind: Kind | None = None) -> Path:
    """The file of `kind` in a folder of AudioCraft files (no kind: the LM's if it is there,
    else the compression model's)."""
    if kind is None:
        kind = "lm" if (folder / LM_FILE).is_file() else "compression"
    return folder / _FILES[kind]


def _kind(weights: dict[str, torch.Tensor]) -> Kind | None:
    if any(key.startswith("emb.") for key in weights) and any(
            key.startswith("transformer.") for key in weights):
        return "lm"
    if any(key.startswith("encoder.") for key in weights) and any(
            key.startswith("decoder.") for key in weights):
        return "compression"
    return None


def read_package(path: str | Path, kind: Kind | None = None) -> Package:
    """The AudioCraft model of a file, or of a folder (see `package_file`); `kind` refuses
    the other kind of model."""
    path = Path(path)
    if path.is_dir():
        path = package_file(path, kind)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign or unsafe files
        refused = isinstance(error, pickle.UnpicklingError) and "weights_only" in str(error)
        why = ("An AudioCraft training checkpoint holds Python objects: export it first with "
               "audiocraft.utils.export.export_lm or export_encodec." if refused else
               "It is damaged or cut short (a download or copy that did not finish?), or not "
               "a torch file.")
        raise CheckpointError(f"Cannot read {path} as a file of tensors and text "
                              f"({type(error).__name__}: {str(error).splitlines()[0]}). "
                              f"{why}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not an AudioCraft "
                              "package (a dict with 'xp.cfg' and 'best_state').")
    if "pretrained" in state:
        raise CheckpointError(
            f"{path} names AudioCraft's pretrained compression model {state['pretrained']!r} "
            "instead of holding one (a Hugging Face or DAC model AudioCraft downloads); "
            "audiotools reads compression packages that hold their 'xp.cfg' and 'best_state'.")
    missing = [key for key in ("xp.cfg", "best_state") if key not in state]
    if missing:
        raise CheckpointError(f"{path} is not an AudioCraft package: it has no "
                              f"{' and no '.join(repr(key) for key in missing)} (keys: "
                              f"{sorted(map(str, state))[:8]}).")
    weights = state["best_state"]
    if not isinstance(weights, dict) or not all(
            isinstance(value, torch.Tensor) for value in weights.values()):
        raise CheckpointError(f"{path}: 'best_state' is not a state dict of tensors.")
    try:
        config = OmegaConf.create(state["xp.cfg"])
    except (OmegaConfBaseException, ValueError, TypeError) as error:
        raise CheckpointError(f"{path}: 'xp.cfg' is not a config ({error}).") from None
    if not isinstance(config, DictConfig):
        raise CheckpointError(f"{path}: 'xp.cfg' is not a mapping of options.")
    found = _kind(weights)
    if found is None:
        raise CheckpointError(f"{path}: 'best_state' holds neither an AudioCraft LM (emb.*, "
                              "transformer.*) nor a compression model (encoder.*, decoder.*).")
    if kind is not None and found != kind:
        raise CheckpointError(f"{path} holds an AudioCraft {found} model; this needs its "
                              f"{kind} model ({_FILES[kind]}).")
    return Package(path, config, dict(weights), found)
