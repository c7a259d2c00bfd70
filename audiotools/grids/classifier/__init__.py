"""Classifier grids."""
