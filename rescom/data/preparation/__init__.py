"""Preparation: the long-tailed subset (Sec. 4.1 counts), the prepared set on disk and its fingerprint, the data of a run."""
