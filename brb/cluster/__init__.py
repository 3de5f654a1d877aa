"""k-means on the training device (:mod:`brb.cluster.kmeans_torch`), used by reclustering and evaluation.

The clustering methods themselves live in :mod:`brb.methods`."""
