"""Measurements behind `python -m medivision.benchmark`: the machine, training, inference and data."""
