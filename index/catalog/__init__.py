"""The catalog: every table of an index and the queries on it (SQLAlchemy; SQLite by default).

- ``schema``: the tables (images, image hashes, regions, cluster runs and members).
- ``database``: ``Catalog``, the connection, its modes and locks, and the image rows and their vectors.
- ``hashes``: perceptual hashes of images (dedupe).
- ``clusters``: k-medoids runs and their members.
- ``regions``: region rows (boxes of a parent image with their vectors) and per-image markers.
- ``vectors``: ``CatalogVectors``, a picklable reader of a table's vectors by id range (on-disk index builds).
"""
