"""Near-duplicate detection: exact copies, edited copies and other shots of one scene (sha256, perceptual
hashes, keypoints verified geometrically, embeddings).

The names below are imported from their modules on first use (see retrieval._lazy), so importing one
light module of this package (hashers, keep, options) does not import faiss, imagehash or the catalog.
"""
from retrieval._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ActionReport", "CatalogLink", "delete_duplicates", "move_duplicates", "undo"],
                    "retrieval.dedupe.actions"),
    **dict.fromkeys(["DedupeResult", "Duplicate", "Group", "Item", "find_duplicates"], "retrieval.dedupe.finder"),
    **dict.fromkeys(["DedupeOptions", "DEFAULT_SIMILARITY"], "retrieval.dedupe.options"),
    **dict.fromkeys(["DEFAULT_HASH", "HASHERS", "Hasher", "get_hasher"], "retrieval.dedupe.hashers"),
    **dict.fromkeys(["HashJob", "HashResult", "hash_file", "hash_files"], "retrieval.dedupe.parallel_hashing"),
    **dict.fromkeys(["DEFAULT_KEEP", "KEEP_POLICIES", "choose_keep"], "retrieval.dedupe.keep"),
    **dict.fromkeys(["Kind", "Reason"], "retrieval.dedupe.reasons"),
    **dict.fromkeys(["Action", "check_image", "dedupe_index", "dedupe_paths", "undo_manifest"],
                    "retrieval.dedupe.run"),
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
