"""Benchmarks behind `rescom bench`: core ops, the training step, a real epoch, packed runs; a shared timer."""
