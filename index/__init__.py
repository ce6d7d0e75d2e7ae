"""Persistence and search: the catalog (``catalog/``), faiss indexes (``ann/``), packed-code range search
(``hamming``), and the on-disk index directory (``directory``, with ``synced_file`` and ``regions`` for its
faiss files)."""
