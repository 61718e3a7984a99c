"""Benchmarks: per-operation costs (core_ops) and the training step (step), with a shared timer."""
