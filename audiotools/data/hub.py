"""Hugging Face Hub transfers for the classifier: fetch feature files, upload best models.

`huggingface_hub` is imported only when a transfer is asked for, so training from local files
never needs it. A failed fetch stops the run with the way out (it has no data otherwise); a failed
upload is logged and the run goes on (the model is still on disk).
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from ..errors import ConfigError

logger = logging.getLogger(__name__)


def _import_hub(purpose: str) -> ModuleType:
    try:
        import huggingface_hub
    except ImportError as exc:
        raise ConfigError(f"{purpose} needs the huggingface_hub package: "
                          "pip install huggingface_hub.") from exc
    return huggingface_hub


def fetch_features(repo_id: str, local_dir: str | Path, *, revision: str | None = None,
                   repo_type: str = "dataset") -> Path:
    """Download the files of Hub repo `repo_id` into `local_dir` and return that folder."""
    local_dir = Path(local_dir)
    purpose = f"Fetching features from dataset.hf_repo_id={repo_id!r}"
    hub = _import_hub(purpose)
    try:
        hub.snapshot_download(repo_id, repo_type=repo_type, revision=revision,
                              local_dir=str(local_dir))
    # Network, authentication and missing-repo failures come as many types (httpx, OSError,
    # HfHubHTTPError...); each means the same to the user, so all get the same way out.
    except Exception as exc:
        raise ConfigError(
            f"{purpose} ({repo_type} repo, revision {revision or 'main'}) into {local_dir} "
            f"failed: {type(exc).__name__}: {exc}. Without network access, copy the feature "
            f"files into {local_dir} yourself (or point dataset.features_dir at them).") from exc
    return local_dir


def upload_model(repo_id: str, path: str | Path, *, path_in_repo: str | None = None,
                 repo_type: str = "model", revision: str | None = None,
                 commit_message: str | None = None) -> bool:
    """Upload the file `path` to Hub repo `repo_id` (which must exist); True if it went up.

    Never raises: training must not stop because the network or the Hub is down.
    """
    path = Path(path)
    path_in_repo = path_in_repo or path.name
    try:
        hub = _import_hub(f"Uploading to upload.hf_repo_id={repo_id!r}")
        hub.HfApi().upload_file(
            path_or_fileobj=str(path), path_in_repo=path_in_repo, repo_id=repo_id,
            repo_type=repo_type, revision=revision,
            commit_message=commit_message or f"Upload {path_in_repo}")
    # Same reasoning as in fetch_features, plus: a failed upload only costs the upload.
    except Exception as exc:
        logger.warning("Upload of %s to %s (%s repo) as %s failed, training goes on: %s: %s",
                       path, repo_id, repo_type, path_in_repo, type(exc).__name__, exc)
        return False
    logger.info("Uploaded %s to %s as %s.", path, repo_id, path_in_repo)
    return True
