"""Reusable metrics, each unit-tested."""
