"""Dora grids: `dora grid <family>.<name>` (e.g. `dora grid classifier.kfold`)."""
