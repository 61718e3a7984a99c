"""Raw data sources, one small module each (`cifar`, `idx`, `folder`, `lists`), registered in
`registry` (`SOURCES`; its `load_source(name, root)` reads one); `base` holds the shared types,
`signature` what a prepared set records of a source's files.
"""
