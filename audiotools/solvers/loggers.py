"""Experiment loggers: flashy's, with the faults of flashy 0.0.2 fixed by subclassing.

- flashy's LocalFS and TensorBoard `log_audio` take (key, stage) while its ResultLogger passes
  (stage, key); the local one also writes with torchaudio.save, which needs torchcodec (ours
  writes through a temporary file, so a full disk leaves no half file).
- flashy's W&B logger calls `wandb.Api()` (an API key even offline) and passes `log_metrics`
  arguments in the wrong order for audio, images and text.

`check_wandb_login` refuses `logging.wandb.mode=online` without W&B credentials before any work.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import dora
import numpy as np
import torch
from flashy.distrib import rank_zero_only
from flashy.loggers.localfs import LocalFSLogger as _FlashyLocalFS
from flashy.loggers.tensorboard import TensorboardLogger as _FlashyTensorboard
from flashy.loggers.utils import _add_prefix
from flashy.loggers.wandb import WandbLogger as _FlashyWandb

from ..data.audio import audio_write
from ..errors import ConfigError
from ..io.atomic import write_image_atomic


def _image_to_uint8(image: torch.Tensor) -> np.ndarray:
    """[C, H, W] or [H, W] float in [0, 1] (or uint8) -> [H, W, C] uint8."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    array = image.cpu().numpy()
    return array.transpose(1, 2, 0) if array.ndim == 3 else array


class LocalFSLogger(_FlashyLocalFS):
    """Media under <xp>/outputs/<stage>_<epoch>/, written with soundfile and Pillow."""

    @rank_zero_only
    def log_audio(self, prefix: str, key: str, audio: Any, sample_rate: int,
                  step: int | None = None, **kwargs: Any) -> None:
        if not self.with_media_logging:
            return
        audio_write(self._format_path(key, "wav", prefix, step), audio, sample_rate,
                    subtype="PCM_16")

    @rank_zero_only
    def log_image(self, prefix: str, key: str, image: Any, step: int | None = None,
                  **kwargs: Any) -> None:
        from PIL import Image
        if not self.with_media_logging:
            return
        array = _image_to_uint8(image)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        write_image_atomic(Path(self._format_path(key, "png", prefix, step)),
                           Image.fromarray(array))


class TensorboardLogger(_FlashyTensorboard):
    @rank_zero_only
    def log_audio(self, prefix: str, key: str, audio: Any, sample_rate: int,
                  step: int | None = None, **kwargs: Any) -> None:
        super().log_audio(key, prefix, audio.detach().float().cpu(), sample_rate, step, **kwargs)


class WandbLogger(_FlashyWandb):
    """W&B run named by the XP signature; `mode=offline` works with no account or key."""

    @classmethod
    def for_xp(cls, mode: str, project: str, entity: str | None,
               group: str | None) -> WandbLogger:
        xp = dora.get_xp()
        flag = Path(xp.folder) / "wandb_flag"
        resume = flag.exists()
        flag.touch()
        # reinit: wandb's word for flashy's default (False), whose boolean it warns about.
        return cls(str(xp.folder), True, project=project, id=xp.sig, name=xp.sig, group=group,
                   resume="allow" if resume else False, mode=mode, entity=entity,
                   reinit="default")

    @rank_zero_only
    def _log_media(self, prefix: str, media: dict[str, Any], step: int | None) -> None:
        import wandb
        if self.is_disabled() or not self.with_media_logging:
            return
        wandb.log(_add_prefix(media, prefix, self.group_separator), step=step)

    def log_audio(self, prefix: str, key: str, audio: Any, sample_rate: int,
                  step: int | None = None, **kwargs: Any) -> None:
        import wandb
        data = audio.detach().float().cpu().t().clamp(-0.99, 0.99).numpy()
        self._log_media(prefix, {key: wandb.Audio(data, sample_rate=sample_rate)}, step)

    def log_image(self, prefix: str, key: str, image: Any, step: int | None = None,
                  **kwargs: Any) -> None:
        import wandb
        self._log_media(prefix, {key: wandb.Image(_image_to_uint8(image))}, step)

    def log_text(self, prefix: str, key: str, text: str, step: int | None = None,
                 **kwargs: Any) -> None:
        import wandb
        self._log_media(prefix, {key: wandb.Html(f"<pre>{text}</pre>")}, step)


def check_wandb_login(mode: str) -> None:
    """`logging.wandb.mode=online` needs W&B credentials; without them `wandb.init` stops the
    run after start-up (a UsageError traceback, or a prompt on a terminal). Found the way wandb
    finds them (WANDB_API_KEY or WANDB_IDENTITY_TOKEN_FILE, then the netrc entry of its host,
    then its settings), without a network call."""
    if mode != "online":
        return
    from wandb.errors import AuthenticationError
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib import wbauth
    host = wandb_setup.singleton().settings.base_url
    ways_out = ("run `wandb login` once (it saves the key in ~/.netrc), or export "
                "WANDB_API_KEY=<key>; or log without an account: logging.wandb.mode=offline "
                "(the run is kept under <xp>/wandb; `wandb sync` uploads it later) or "
                "logging.wandb.mode=disabled")
    try:
        found = wbauth.authenticate_session(host=host, source="audiotools", prompt=False,
                                            update_session=False)
    except AuthenticationError as error:
        raise ConfigError(f"logging.wandb.mode=online: the W&B credentials for {host} are "
                          f"not usable ({error}); {ways_out}.") from None
    if found is None:
        raise ConfigError(f"logging.wandb.mode=online but there are no W&B credentials for "
                          f"{host} (no WANDB_API_KEY, no entry for it in ~/.netrc): "
                          f"{ways_out}.")
