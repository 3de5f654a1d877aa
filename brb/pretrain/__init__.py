"""Pretraining of the networks that clustering starts from."""

from brb.pretrain.autoencoder import PretrainResult, pretrain_autoencoder

__all__ = ["PretrainResult", "pretrain_autoencoder"]
