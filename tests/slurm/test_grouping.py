"""The tests in this folder share one cluster: under pytest-xdist they must all be kept on one
worker, which xdist shows by appending their group to their ids."""
from __future__ import annotations

import pytest

from tests.slurm.conftest import GROUP, _check_one_worker, loadgroup_on


def test_slurm_tests_are_kept_on_one_worker(request: pytest.FixtureRequest):
    if not loadgroup_on(request.config):
        pytest.skip("not run under pytest-xdist's loadgroup distribution (pytest -n 0)")
    assert request.node.nodeid.endswith(f"@{GROUP}"), (
        f"{request.node.nodeid}: no '@{GROUP}' group, so xdist may split the SLURM tests")
    _check_one_worker(request.session)  # every test of the folder, not only this one
