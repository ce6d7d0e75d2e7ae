"""Metric-learning trainers: contrastive, triplet with hard-negative mining, SimCLR."""
from retrieval.train.augment import AugmentConfig, TwoViews, metric_transform, simclr_transform
from retrieval.train.data import ImageSet, drop_small_classes, read_images, split
from retrieval.train.losses import (LOSSES, ContrastiveLoss, MetricLoss, NTXentLoss, TripletLoss, create_loss,
                                    register_loss)
from retrieval.train.loop import METHODS, STATE_FILE, TrainConfig, Trainer, TrainResult, train
from retrieval.train.miners import (MINERS, AllTripletsMiner, BatchHardMiner, DistanceWeightedMiner, Miner,
                                    SemiHardMiner, create_miner, register_miner)
from retrieval.train.offline_mining import hard_negatives
from retrieval.train.samplers import PKSampler, RandomBatchSampler, check_pk
from retrieval.train.validation import knn_recall, recall_at_k

__all__ = [
    "AugmentConfig", "TwoViews", "metric_transform", "simclr_transform",
    "ImageSet", "drop_small_classes", "read_images", "split",
    "LOSSES", "ContrastiveLoss", "MetricLoss", "NTXentLoss", "TripletLoss", "create_loss", "register_loss",
    "METHODS", "STATE_FILE", "TrainConfig", "Trainer", "TrainResult", "train",
    "MINERS", "AllTripletsMiner", "BatchHardMiner", "DistanceWeightedMiner", "Miner", "SemiHardMiner",
    "create_miner", "register_miner",
    "hard_negatives", "PKSampler", "RandomBatchSampler", "check_pk", "knn_recall", "recall_at_k",
]
