"""`retr serve`: the FastAPI app (app.py), its micro-batcher (batching.py) and the static web UI (static/)."""
