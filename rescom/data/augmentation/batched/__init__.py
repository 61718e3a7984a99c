"""Batched per-sample tensor augmentation on the device (CUDA-graph ready): ops, AutoAugment, recipes."""
