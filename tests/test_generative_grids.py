"""The shipped grids `diffusion.debug` and `musicgen.debug`: their XPs are the ones they say
(the debug recipe at each learning rate, the signature `dora run` gives the same overrides),
musicgen's codec comes from AUDIOTOOLS_MUSICGEN_CODEC, and the table's columns come from
history.json. (On SLURM: tests/slurm/test_generative_grids.py.)"""
from __future__ import annotations

import pytest

from audiotools.errors import ConfigError
from audiotools.local_grid import available_grids, grid_sheeps, load_explorer
from tests.solvers.helpers import tiny_codec


def _xps(name: str) -> list:
    return [sheep.xp for sheep in grid_sheeps(load_explorer(name))]


def test_diffusion_grid_is_the_debug_recipe_at_two_learning_rates(dora_dir):
    from audiotools.train import main
    assert {"diffusion.debug", "musicgen.debug"} <= set(available_grids())
    xps = _xps("diffusion.debug")
    expected = [["solver=diffusion/debug", f"optim.lr={lr}"] for lr in ("0.001", "0.0003")]
    assert [list(xp.argv) for xp in xps] == expected
    assert [xp.sig for xp in xps] == [main.get_xp(argv).sig for argv in expected]
    assert [xp.cfg.optim.lr for xp in xps] == [1e-3, 3e-4]
    assert {xp.cfg.optim.epochs for xp in xps} == {2}


def test_musicgen_grid_takes_its_codec_from_the_environment(dora_dir, tmp_path, monkeypatch):
    from audiotools.train import main
    monkeypatch.delenv("AUDIOTOOLS_MUSICGEN_CODEC", raising=False)
    with pytest.raises(ConfigError, match=r"grid musicgen.debug needs a discrete codec: set "
                                          r"AUDIOTOOLS_MUSICGEN_CODEC"):
        _xps("musicgen.debug")
    codec = tiny_codec(tmp_path / "rvq.safetensors")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUDIOTOOLS_MUSICGEN_CODEC", "rvq.safetensors")  # relative: made absolute
    xps = _xps("musicgen.debug")
    expected = [["solver=musicgen/debug", f"codec.source={codec}", f"optim.lr={lr}"]
                for lr in ("0.001", "0.0003")]
    assert [list(xp.argv) for xp in xps] == expected
    assert [xp.sig for xp in xps] == [main.get_xp(argv).sig for argv in expected]
    # Refused when the grid is built, not by each job once queued:
    monkeypatch.setenv("AUDIOTOOLS_MUSICGEN_CODEC", "//recipe/autoencoder/rvq_base")
    with pytest.raises(ConfigError, match=r"^AUDIOTOOLS_MUSICGEN_CODEC=//recipe/autoencoder/"
                                          r"rvq_base: .*has not been trained here"):
        _xps("musicgen.debug")
    for missing in ("rvq.ckpt", "gone.safetensors", "codecs/rvq.ckpt"):
        monkeypatch.setenv("AUDIOTOOLS_MUSICGEN_CODEC", missing)
        with pytest.raises(ConfigError, match=rf"^AUDIOTOOLS_MUSICGEN_CODEC={missing}: .*"
                                              r"(no such file|does not exist|no checkpoint)"):
            _xps("musicgen.debug")
    # A grid that only looks at or cancels its XPs needs no codec there.
    for looks in (["-C"], ["--dry_run"], ["-l", "0"]):
        monkeypatch.setattr("sys.argv", ["/venv/bin/dora", "grid", "musicgen.debug", *looks])
        assert [xp.cfg.codec.source for xp in _xps("musicgen.debug")] == ["codecs/rvq.ckpt"] * 2


def test_the_tables_read_the_history():
    history = [{"train": {"loss": 0.9}, "valid": {"loss": 0.6}},
               {"train": {"loss": 0.7}, "valid": {"loss": 0.8},
                "evaluate": {"fd": 120.0, "fd_heldout_real": 30.0}}]
    assert load_explorer("diffusion.debug").process_history(history) == {
        "train": {"epoch": 2, "loss": 0.7}, "valid": {"best": 0.6, "loss": 0.8},
        "evaluate": {"fd": 120.0, "fd_real": 30.0}}
    tokens = [{"train": {"ce": 2.5}, "valid": {"ce": 2.4}}]
    assert load_explorer("diffusion.debug").process_history([]) == {"train": {"epoch": 0}}
    assert load_explorer("musicgen.debug").process_history(tokens) == {
        "train": {"epoch": 1, "ce": 2.5}, "valid": {"best": 2.4, "ce": 2.4}}
