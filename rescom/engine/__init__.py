"""Training and evaluation: model building, the training step, the epoch loop, checkpoints."""
