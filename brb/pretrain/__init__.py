"""Pretraining of the networks that clustering starts from: reconstruction (autoencoders) and SimCLR."""

from brb.pretrain.autoencoder import pretrain_autoencoder
from brb.pretrain.loop import PretrainResult
from brb.pretrain.simclr import pretrain, pretrain_simclr

__all__ = ["PretrainResult", "pretrain", "pretrain_autoencoder", "pretrain_simclr"]
