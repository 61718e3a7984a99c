"""Benchmarks of the training step, the method's core ops, a real epoch and packed runs (`python -m benchmarks`).

They live beside the package, as tests/ and scripts/ do: they measure rescom and are not part of it,
and a checkout's root must be the working directory (the GPU scripts run them from there).
"""
