"""Centroid-based deep clustering (DEC, IDEC, DCN) sharing one training loop, with BRB."""

from brb.cluster.losses import DCN, DEC, IDEC, CentroidObjective
from brb.cluster.trainer import ClusterResult, ClusterTrainer, TrainingError, embed, run_clustering
from brb.interventions.brb_ops import recluster, soft_reset, subsample_indices

__all__ = [
    "CentroidObjective",
    "ClusterResult",
    "ClusterTrainer",
    "DCN",
    "DEC",
    "IDEC",
    "TrainingError",
    "embed",
    "recluster",
    "run_clustering",
    "soft_reset",
    "subsample_indices",
]
