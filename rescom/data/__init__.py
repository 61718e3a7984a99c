"""The data a run trains on, one package per stage of its way in:

sources/       raw data sets (CIFAR archives, IDX files, image folders, split lists)
preparation/   the long-tailed subset, the prepared set on disk, the data of a run
loading/       torch Datasets (PIL path) and the resident tensor set (batched path)
augmentation/  recipes: pil/ per image, batched/ per-sample tensor ops on the device
"""
