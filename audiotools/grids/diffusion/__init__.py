"""Diffusion grids."""
