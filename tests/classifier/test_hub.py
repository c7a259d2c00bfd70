"""Hub transfers with a fake `huggingface_hub` (no network here): errors, never-raising upload."""
from __future__ import annotations

import logging
import sys

import pytest

from audiotools.data.hub import fetch_features, upload_model
from audiotools.errors import ConfigError


@pytest.fixture
def fake_hub(monkeypatch):
    module = type(sys)("huggingface_hub")
    monkeypatch.setitem(sys.modules, "huggingface_hub", module)
    return module


def test_fetch_passes_the_repo_and_returns_the_folder(tmp_path, fake_hub):
    calls = []
    fake_hub.snapshot_download = lambda repo_id, **kwargs: calls.append((repo_id, kwargs))
    assert fetch_features("me/feats", tmp_path, revision="v2") == tmp_path
    assert calls == [("me/feats", {"repo_type": "dataset", "revision": "v2",
                                   "local_dir": str(tmp_path)})]


def test_fetch_without_network_says_what_to_do(tmp_path, fake_hub):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    fake_hub.snapshot_download = offline
    with pytest.raises(ConfigError, match=r"dataset.hf_repo_id='me/feats'.*failed: OSError: Name "
                                          r"or service not known. Without network access, copy"):
        fetch_features("me/feats", tmp_path)


def test_fetch_without_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ConfigError, match="'me/feats'.*needs the huggingface_hub package: pip"):
        fetch_features("me/feats", tmp_path)


def test_upload(tmp_path, fake_hub, caplog):
    calls = []

    class HfApi:
        def upload_file(self, **kwargs):
            calls.append(kwargs)

    fake_hub.HfApi = HfApi
    model = tmp_path / "best.safetensors"
    model.write_bytes(b"weights")
    with caplog.at_level(logging.INFO):
        assert upload_model("me/cnn", model, path_in_repo="fold3/best.safetensors")
    assert calls == [{"path_or_fileobj": str(model), "path_in_repo": "fold3/best.safetensors",
                      "repo_id": "me/cnn", "repo_type": "model", "revision": None,
                      "commit_message": "Upload fold3/best.safetensors"}]
    assert "Uploaded" in caplog.text


def test_upload_failure_is_logged_not_raised(tmp_path, fake_hub, caplog):
    class HfApi:
        def upload_file(self, **kwargs):
            raise RuntimeError("401 Unauthorized")

    fake_hub.HfApi = HfApi
    with caplog.at_level(logging.WARNING):
        assert upload_model("me/cnn", tmp_path / "best.safetensors") is False
    assert "me/cnn" in caplog.text and "401 Unauthorized" in caplog.text
    assert "training goes on" in caplog.text


def test_upload_without_the_package_is_logged(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with caplog.at_level(logging.WARNING):
        assert upload_model("me/cnn", tmp_path / "best.safetensors") is False
    assert "pip install huggingface_hub" in caplog.text
