"""VGGish: the published architecture (built on the meta device), its preprocessing, and
strict loading of local weights (tiny ones of the same layer structure, saved here)."""
from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import save_file

from audiotools.errors import CheckpointError
from audiotools.metrics.vggish import (
    VGGish,
    VGGishConfig,
    VGGishEmbedder,
    load_vggish,
    log_mel_patches,
    mel_matrix,
)

TINY = VGGishConfig(channels=(2, 3, 4, 4, 5, 5), hidden=16, embedding=8)
CONVOLUTIONS = (0, 3, 6, 8, 11, 13)
LINEARS = (0, 2, 4)


def test_full_model_has_the_published_layers_and_parameter_count():
    with torch.device("meta"):
        model = VGGish()
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    expected_keys = ({f"features.{i}.{p}" for i in CONVOLUTIONS for p in ("weight", "bias")}
                     | {f"embeddings.{i}.{p}" for i in LINEARS for p in ("weight", "bias")})
    assert set(shapes) == expected_keys
    assert shapes["features.0.weight"] == (64, 1, 3, 3)
    assert shapes["features.13.weight"] == (512, 512, 3, 3)
    assert shapes["embeddings.0.weight"] == (4096, 512 * 6 * 4)
    assert shapes["embeddings.4.weight"] == (128, 4096)
    assert sum(p.numel() for p in model.parameters()) == 72_141_184


def test_patches_are_0_96_s_of_64_log_mel_bands():
    assert log_mel_patches(torch.zeros(2, 3 * 16000)).shape == (2 * 3, 1, 96, 64)
    assert log_mel_patches(torch.zeros(1, 15600)).shape == (1, 1, 96, 64)  # exactly one
    silence = log_mel_patches(torch.zeros(1, 15600))
    assert torch.allclose(silence, torch.full_like(silence, math.log(0.01)))
    with pytest.raises(ValueError, match="at least 0.975 s"):
        log_mel_patches(torch.zeros(1, 15599))


def test_mel_bands_span_125_to_7500_hz_without_dc():
    weights = mel_matrix()
    assert weights.shape == (257, 64)
    assert (weights[0] == 0).all() and weights.min() >= 0 and weights.max() <= 1
    bins_hz = torch.linspace(0, 8000, 257, dtype=torch.float64)
    used = bins_hz[weights.sum(dim=1) > 0]
    assert 125 < used.min() < 160 and 7300 < used.max() < 7500
    centres = bins_hz[weights.argmax(dim=0)]
    assert (centres.diff() >= 0).all()
    t = torch.arange(2 * 16000) / 16000
    tone = log_mel_patches(0.5 * torch.sin(2 * math.pi * 1000 * t)[None])
    loudest = int(tone.mean(dim=(0, 1, 2)).argmax())
    assert abs(float(centres[loudest]) - 1000) < 60


def _tiny_weights(seed: int = 0) -> tuple[VGGish, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    model = VGGish(TINY).eval()
    return model, {key: value.clone() for key, value in model.state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_load_from_the_reference_dir(tmp_path, monkeypatch, suffix):
    monkeypatch.setenv("AUDIOTOOLS_REFERENCE_DIR", str(tmp_path))
    model, state = _tiny_weights()
    path = tmp_path / "vggish" / f"tiny{suffix}"
    path.parent.mkdir()
    with_pca = {**state, "pproc._pca_matrix": torch.eye(8), "pproc._pca_means": torch.zeros(8)}
    if suffix == ".pth":
        torch.save(with_pca, path)
    else:
        save_file(with_pca, str(path))
    loaded = load_vggish(f"//reference/vggish/tiny{suffix}", TINY)
    patches = torch.randn(4, 1, 96, 64)
    with torch.no_grad():
        assert torch.equal(loaded(patches), model(patches))
    assert not loaded.training


def test_weights_that_do_not_fit_are_listed(tmp_path):
    _, state = _tiny_weights()
    broken = {key: value for key, value in state.items() if key != "features.3.bias"}
    broken["classifier.weight"] = torch.zeros(2)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(CheckpointError, match=r"missing \['features.3.bias'\], unexpected "
                                              r"\['classifier.weight'\]"):
        load_vggish(tmp_path / "broken.pth", TINY)
    torch.save(state, tmp_path / "tiny.pth")
    with pytest.raises(CheckpointError, match=r"features.0.weight \(2, 1, 3, 3\) != "
                                              r"\(64, 1, 3, 3\)"):
        load_vggish(tmp_path / "tiny.pth")  # the full model
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a state dict"):
        load_vggish(tmp_path / "list.pth", TINY)
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="not a readable PyTorch state dict"):
        load_vggish(tmp_path / "junk.pth", TINY)
    with pytest.raises(CheckpointError, match="nothing is downloaded"):
        load_vggish(tmp_path / "absent.pth", TINY)


def test_embedder_gives_one_vector_per_patch_at_any_rate():
    model, _ = _tiny_weights()
    embedder = VGGishEmbedder(model, batch_patches=3)
    assert embedder.dim == 8 and embedder.sample_rate == 16000
    t = torch.arange(2 * 16000) / 16000
    clip = (0.3 * torch.sin(2 * math.pi * 440 * t))[None, None].repeat(2, 1, 1)
    embeddings = embedder.embed(clip, 16000)
    assert embeddings.shape == (2 * 2, 8) and embeddings.dtype == torch.float64
    with torch.no_grad():
        direct = model(log_mel_patches(clip[:, 0]))
    assert torch.allclose(embeddings, direct.double(), atol=1e-6)
    stereo_32k = clip.repeat_interleave(2, dim=-1).repeat(1, 2, 1)
    assert embedder.embed(stereo_32k, 32000).shape == (4, 8)
