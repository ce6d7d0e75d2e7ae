"""Persistence and search: the catalog (SQLAlchemy), faiss vector indexes, the on-disk index directory."""
