"""Kernel specs and their start-up (filled by the notebook issue)."""
