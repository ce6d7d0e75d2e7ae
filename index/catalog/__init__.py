"""The catalog: every table of an index and the queries on it (SQLAlchemy; SQLite by default)."""
