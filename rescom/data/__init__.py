"""Data sources, long-tailed subsampling and augmentation recipes."""
