"""Per-image PIL augmentation: the recipes and the released AutoAugment / RandAugment policies."""
