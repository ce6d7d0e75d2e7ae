"""Embedding models: timm backbones with an optional head, their weights, retr checkpoints."""
