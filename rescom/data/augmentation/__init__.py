"""Augmentation recipes: PIL transforms (pil/) and their batched tensor forms (batched/); normalisation statistics."""
