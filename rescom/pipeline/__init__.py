"""The reproduction pipeline: profile params -> runs of each table -> DVC stages."""
