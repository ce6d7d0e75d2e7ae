"""Approximate nearest-neighbour search with faiss: ``factory`` (which index to build, and building it),
``tune`` (nprobe / efSearch for a target recall), ``searcher`` (search on CPU or GPUs, faiss files)."""
