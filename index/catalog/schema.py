"""The catalog's tables. One declarative base; every table of the project is declared here.

The catalog is the source of truth: image vectors are stored with their rows (float32 bytes), so a
faiss file can always be rebuilt from it.
"""
from __future__ import annotations

import builtins

from sqlalchemy import (BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String,
                        Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Image.status values
STATUS_OK = "ok"  # decoded and embedded; ``vector`` holds its float32 vector
STATUS_ERROR = "error"  # could not be read or decoded; ``error`` says why


class Base(DeclarativeBase):
    pass


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    path: Mapped[str] = mapped_column(String(4096), unique=True, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mtime: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    vector: Mapped["builtins.bytes | None"] = mapped_column(LargeBinary, nullable=True)
    # manifest.model_key of the model that made ``vector``; NULL: the model in the manifest (rows written
    # before this column existed)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)


# Quarantined.state values: a move or an undo in flight, or done (see index/catalog/quarantine.py)
MOVING, MOVED, RESTORING = "moving", "moved", "restoring"


class Quarantined(Base):
    """An image row taken out of ``images`` by a quarantine move, whole (its id kept, vector included), with
    where its file went: the catalog's own record of the move, the only thing an undo trusts."""

    __tablename__ = "quarantined"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # the image's own id
    path: Mapped[str] = mapped_column(String(4096), nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mtime: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    vector: Mapped["builtins.bytes | None"] = mapped_column(LargeBinary, nullable=True)
    model: Mapped[str | None] = mapped_column(String(64), nullable=True)
    dest: Mapped[str] = mapped_column(String(4096), nullable=False)  # where retr moved the file
    manifest: Mapped[str] = mapped_column(String(4096), nullable=False, index=True)  # the undo manifest's path
    state: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    moved_at: Mapped[float] = mapped_column(Float, nullable=False)


class ImageHash(Base):
    """A perceptual hash of an image (dedupe). ``bits`` is the packed hash, ``kind`` names the hasher."""

    __tablename__ = "image_hashes"
    __table_args__ = (UniqueConstraint("image_id", "kind", "hash_size"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    hash_size: Mapped[int] = mapped_column(Integer, nullable=False)
    bits: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))  # the file content the hash was made from


class ImageFeature(Base):
    """Per-image dedupe features (keypoints, thumbnails, small grey image) in one blob, made by ``recipe``
    from the file content ``sha256``: computed once, reused by every later dedupe run."""

    __tablename__ = "image_features"
    __table_args__ = (UniqueConstraint("image_id", "recipe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    recipe: Mapped[str] = mapped_column(String(32), nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class DedupeCache(Base):
    """What a dedupe run can reuse next time, as one compressed blob per ``key``: the verdicts of pairs of
    file contents already verified, and the result of a run over an unchanged catalog."""

    __tablename__ = "dedupe_cache"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    data: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class Region(Base):
    """A region of an image (detector/segmenter crop, annotation, grid window) with its vector."""

    __tablename__ = "regions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(256), nullable=False)
    x0: Mapped[float] = mapped_column(Float, nullable=False)
    y0: Mapped[float] = mapped_column(Float, nullable=False)
    x1: Mapped[float] = mapped_column(Float, nullable=False)
    y1: Mapped[float] = mapped_column(Float, nullable=False)
    label: Mapped[str | None] = mapped_column(String(256))
    score: Mapped[float | None] = mapped_column(Float)
    mask_area: Mapped[float | None] = mapped_column(Float)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary)


class ClusterRun(Base):
    __tablename__ = "cluster_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    k: Mapped[int] = mapped_column(Integer, nullable=False)
    method: Mapped[str] = mapped_column(String(32), nullable=False)
    loss: Mapped[float] = mapped_column(Float, nullable=False)
    silhouette: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float] = mapped_column(Float, nullable=False)
    created: Mapped[float] = mapped_column(Float, nullable=False)  # unix time
    n: Mapped[int] = mapped_column(Integer, nullable=False)
    sampled: Mapped[bool] = mapped_column(Boolean, default=False)


class ClusterMember(Base):
    __tablename__ = "cluster_members"
    __table_args__ = (Index("ix_cluster_members_run_cluster", "run_id", "cluster"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("cluster_runs.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer, nullable=False)
    is_medoid: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
