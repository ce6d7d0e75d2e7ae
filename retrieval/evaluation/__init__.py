"""Evaluation: retrieval metrics, recall@K of a model or index, the served index against exact search."""
