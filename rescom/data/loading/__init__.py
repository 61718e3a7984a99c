"""Loading: torch Datasets over a prepared split (PIL path) and the resident tensor set (batched path)."""
