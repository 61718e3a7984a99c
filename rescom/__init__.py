"""rescom: a reproduction suite for ResCom (Rebalanced Siamese Contrastive Mining, arXiv 2203.11506)."""

__version__ = "0.1.0"
