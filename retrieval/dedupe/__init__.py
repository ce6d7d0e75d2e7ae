"""Near-duplicate detection: exact (sha256), perceptual hashes (imagehash), embedding similarity."""
from retrieval.dedupe.actions import ActionReport, CatalogLink, delete_duplicates, move_duplicates, undo
from retrieval.dedupe.finder import DedupeOptions, DedupeResult, Duplicate, Group, Item, find_duplicates
from retrieval.dedupe.hashers import DEFAULT_HASH, HASHERS, Hasher, get_hasher
from retrieval.dedupe.hashing import HashJob, HashResult, hash_file, hash_files
from retrieval.dedupe.keep import DEFAULT_KEEP, KEEP_POLICIES, choose_keep
from retrieval.dedupe.run import Action, Match, check_image, dedupe_index, dedupe_paths, undo_manifest

__all__ = ["Action", "ActionReport", "CatalogLink", "DEFAULT_HASH", "DEFAULT_KEEP", "DedupeOptions", "DedupeResult",
           "Duplicate", "Group", "HASHERS", "HashJob", "HashResult", "Hasher", "Item", "KEEP_POLICIES", "Match",
           "check_image", "choose_keep", "dedupe_index", "dedupe_paths", "delete_duplicates", "find_duplicates",
           "get_hasher", "hash_file", "hash_files", "move_duplicates", "undo", "undo_manifest"]
