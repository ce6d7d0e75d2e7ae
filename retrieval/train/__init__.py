"""Metric-learning trainers: contrastive, triplet with hard-negative mining, SimCLR.

The names below are imported from their modules on first use (see retrieval._lazy): the package itself
imports no torch.
"""
from retrieval._lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["AugmentConfig", "TwoViews", "metric_transform", "simclr_transform"], "retrieval.train.augment"),
    **dict.fromkeys(["METHODS", "Method", "TrainConfig", "TwoViewMethod"],
                    "retrieval.train.config"),
    **dict.fromkeys(["ImageSet", "drop_small_classes", "read_images", "split"], "retrieval.train.data"),
    **dict.fromkeys(["LOSSES", "ContrastiveLoss", "MetricLoss", "NTXentLoss", "TripletLoss", "create_loss"],
                    "retrieval.train.losses"),
    **dict.fromkeys(["STATE_FILE", "Trainer", "TrainResult", "train"],
                    "retrieval.train.loop"),
    **dict.fromkeys(["MINERS", "AllTripletsMiner", "BatchHardMiner", "DistanceWeightedMiner", "Miner",
                     "SemiHardMiner", "create_miner"], "retrieval.train.miners"),
    "hard_negatives": "retrieval.train.offline_mining",
    **dict.fromkeys(["PKSampler", "RandomBatchSampler", "check_pk"], "retrieval.train.samplers"),
    "knn_recall": "retrieval.train.validation",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
