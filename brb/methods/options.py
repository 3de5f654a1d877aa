"""The typed options of each clustering method: its defaults, ranges and descriptions, one class per method.

Each method class names its options class (``DEC.options = DECOptions``) and its registry entry is built from it
(``brb/registry.py``), so a method's identity and its options are declared once. The classes live in this
torch-free module rather than in the method modules because a configuration is validated while the workflow
plans its jobs, where importing torch would add seconds to every dry run; ``tests/test_registry.py`` checks that
every registered method's class and its entry name the same options class.

The user-facing keys stay flat under ``cluster:`` (``cluster.dec_alpha``, ``cluster.dcn_update``, ...):
:class:`brb.config.ClusterConfig` is generated from the union of these classes. A run validates the keys of its
own method against that method's class (its ranges, its defaults for what is unset) and records the keys of
other methods as null: they did not run. A study may therefore set, say, ``dcn_update`` for all its algorithms.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MethodOptions(BaseModel):
    """Base of every method's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class CentroidOptions(MethodOptions):
    """What every centroid method trained by :class:`brb.methods.centroid.ClusterTrainer` shares."""

    cluster_weight: float = Field(1.0, ge=0, description="weight of the clustering loss")
    reconstruction_weight: float = Field(0.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(
        0.0, ge=0, description="weight of the NT-Xent regulariser for networks with a projector (resnet18)"
    )
    optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="adam | sgd with cluster.momentum / cluster.nesterov"
    )
    lr: float = Field(1e-3, gt=0, description="learning rate for network and centroids")
    final_kmeans: bool = Field(
        False, description="report k-means (cluster.kmeans_n_init restarts) on the final embedding as the run's "
        "labels and scores, the centroid assignment's as centroid_acc / centroid_nmi / centroid_ari "
        "(Aljalbout et al.'s metric)"
    )


class _StudentT(CentroidOptions):
    dec_alpha: float = Field(1.0, gt=0, description="degrees of freedom of DEC's Student-t kernel")
    target: Literal["batch", "dataset"] = Field(
        "batch", description="DEC's target distribution: per mini-batch (BRB reference code) or over the whole "
        "dataset, recomputed every epoch (original DEC; Aljalbout et al.)"
    )
    kl_reduction: Literal["mean", "sum"] = Field(
        "mean", description="KL(P || Q) of a batch: mean over its samples (DEC) or sum (Aljalbout et al.'s code; "
        "its weight against the mean reconstruction then grows with the batch size)"
    )
    target_every: int = Field(
        1, gt=0, description="with target: dataset, recompute the target every this many epochs (DEC, "
        "Aljalbout et al.: 1; tk-uco's DEC family: 140)"
    )


class DECOptions(_StudentT):
    """DEC: the clustering loss alone."""


class IDECOptions(_StudentT):
    """IDEC: DEC's loss at 0.1 + reconstruction (or, with a projector, NT-Xent)."""

    cluster_weight: float = Field(0.1, ge=0, description="weight of the clustering loss")
    reconstruction_weight: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the NT-Xent regulariser (resnet18)")


class DCNOptions(CentroidOptions):
    """DCN: k-means loss at 0.025 + reconstruction; centroids by running means."""

    cluster_weight: float = Field(0.025, ge=0, description="weight of the clustering loss")
    reconstruction_weight: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the NT-Xent regulariser (resnet18)")
    dcn_update: Literal["counts", "reference"] = Field(
        "counts", description="DCN centroid update: 'counts' = running per-cluster counts (step 1/count, as DCN "
        "defines it); 'reference' = the public BRB code's behaviour, a fixed step 1/(count_init+1)"
    )
    dcn_count_init: float = Field(100.0, gt=0, description="initial per-cluster count of DCN")
    dcn_loss_norm: Literal["samples_clusters", "samples"] = Field(
        "samples_clusters", description="DCN k-means term: 'samples_clusters' = sum_i ||z_i - mu_c(i)||^2 / (N K), "
        "the mean over the N x K distance-assignment matrix of the public BRB code (what the paper's weight 0.025 "
        "was tuned for); 'samples' = / N, the per-sample mean of DCN's published objective"
    )
    dcn_update_when: Literal["step", "epoch_end"] = Field(
        "step", description="when DCN moves its centroids: 'step' = after every optimiser step on that batch's "
        "embedding (DCN's published scheme); 'epoch_end' = a no-grad pass over the clean training data in eval "
        "mode after each epoch (public BRB code)"
    )


class DKMOptions(CentroidOptions):
    """Deep k-Means: soft k-means loss; cluster_weight = the authors' lambda / number of features."""

    cluster_weight: float = Field(0.01, ge=0, description="weight of the clustering loss (lambda / D)")
    reconstruction_weight: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the NT-Xent regulariser (resnet18)")
    dkm_schedule: Literal["pretrained", "annealed"] = Field(
        "pretrained", description="DKM's inverse temperature: constant dkm_alpha (the authors' setting with a "
        "pretrained autoencoder) or annealed from 0.1 over 40 values, 5 epochs each (their setting from scratch)"
    )
    dkm_alpha: float = Field(1000.0, gt=0, description="DKM's constant inverse temperature (pretrained schedule)")


class AEKLOptions(_StudentT):
    """Aljalbout et al.'s AE + KL, with the options their code runs."""

    reconstruction_weight: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the NT-Xent regulariser (resnet18)")
    optimizer: Literal["adam", "sgd"] = Field("sgd", description="their Nesterov momentum SGD")
    lr: float = Field(0.01, gt=0, description="learning rate (theirs: 0.01)")
    target: Literal["batch", "dataset"] = Field("dataset", description="target over the dataset every epoch")
    kl_reduction: Literal["mean", "sum"] = Field("sum", description="KL summed over the batch, as their code")
    final_kmeans: bool = Field(True, description="k-means on the final embedding is the reported assignment")


class AEKMeansOptions(CentroidOptions):
    """Aljalbout et al.'s AE + k-means loss, with the options their code runs."""

    cluster_weight: float = Field(0.1, ge=0, description="weight of the k-means loss (theirs: 0.1)")
    reconstruction_weight: float = Field(1.0, ge=0, description="weight of the reconstruction loss")
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the NT-Xent regulariser (resnet18)")
    optimizer: Literal["adam", "sgd"] = Field("sgd", description="their Nesterov momentum SGD")
    lr: float = Field(0.01, gt=0, description="learning rate (theirs: 0.01)")
    final_kmeans: bool = Field(True, description="k-means on the final embedding is the reported assignment")
    kmeans_loss_centroids: Literal["fixed", "learned"] = Field(
        "fixed", description="centroids fixed at their k-means start (Aljalbout et al.'s code: excluded from the "
        "update) or learned by the optimiser"
    )


class _Companions(MethodOptions):
    """tk-uco's unsupervised companion objectives (UCO): lambda * sum_l w_l d_cs(A, K^(l)) on the backbone's
    marked intermediate outputs (the network's ``companion_outputs``; for the MLP its last two hidden blocks)."""

    uco_weight: float = Field(0.0, ge=0, description="lambda of the UCO terms (tk-uco: 0.01; 0 = no UCO)")
    uco_kernel: Literal["auto", "tensor", "naive"] = Field(
        "auto", description="kernel on each intermediate output: the tensor kernel (per-mode subspaces), the naive "
        "Gaussian kernel on the flattened output, or auto = tensor for feature maps and naive for vectors (tk-uco: "
        "tensor on cnn_small, naive on the MLP)"
    )
    uco_layer_weights: Literal["constant", "linear", "exp"] = Field(
        "constant", description="per-layer weights w_l: constant 1, linear l/L, exp 10^l / 10^(L-1)"
    )
    uco_assignment_gradient: bool = Field(
        True, description="the UCO terms also train the assignments (tk-uco: true); false detaches A in them"
    )
    rel_sigma: float = Field(0.15, gt=0, description="kernel bandwidth: sigma^2 = rel_sigma * median of the batch's "
                             "squared distances (no gradient)")
    tf_gradient: bool = Field(
        True, description="pairwise distances backpropagate as tk-uco's TensorFlow pdist does (its custom "
        "gradient, not the exact one: cosine about 0.67 to it; what produced the paper's numbers); false: the exact "
        "gradient"
    )
    ofm_every: int = Field(
        4, ge=0, description="log the objective-function-mismatch diagnostic (cosine between the backbone "
        "gradients of the clustering terms and of the companion terms) every this many epochs (0: never)"
    )
    ofm_batches: int = Field(4, gt=0, description="evaluation batches the diagnostic averages over")


class DECUCOOptions(_StudentT, _Companions):
    """tk-uco's DEC-UCO / CDEC-UCO: DEC's KL + lambda * UCO, no reconstruction, Adam 1e-4."""

    lr: float = Field(1e-4, gt=0, description="learning rate (tk-uco with UCO: 1e-4)")
    uco_weight: float = Field(0.01, ge=0, description="lambda of the UCO terms (tk-uco: 0.01)")


class DDCOptions(_Companions):
    """DDC (Kampffmeyer et al.) as tk-uco's TensorFlow code trains it: the three Cauchy-Schwarz terms on the
    clustering head's softmax A and its hidden layer h; Adam, per-variable clipping at norm 10."""

    lr: float = Field(1e-3, gt=0, description="Adam's learning rate (tk-uco: DDC 1e-3, DDC-UCO 1e-4)")
    reconstruction_weight: float = Field(
        0.0, ge=0, description="weight of the reconstruction MSE through the transposed decoder (DDC-AE: 0.1)"
    )
    ddc_hidden: int = Field(100, gt=0, description="width of the clustering head's hidden layer h")
    clipnorm: Optional[float] = Field(
        10.0, gt=0, description="clip each parameter's gradient to this L2 norm (Keras clipnorm, per variable; "
        "None: no clipping)"
    )
    select: Literal["lowest_loss", "last"] = Field(
        "lowest_loss", description="the reported state: the evaluation with the lowest total loss (tk-uco restores "
        "that checkpoint) or the last epoch's"
    )
    eval_every: int = Field(4, gt=0, description="evaluate (loss on the evaluation data, labels) every this many "
                            "epochs (tk-uco: 4); the last epoch is always evaluated")


class DDCUCOOptions(DDCOptions):
    """DDC-UCO: DDC + 0.01 * tensor-kernel UCO on out1 and out2, Adam 1e-4."""

    lr: float = Field(1e-4, gt=0, description="Adam's learning rate (tk-uco with UCO: 1e-4)")
    uco_weight: float = Field(0.01, ge=0, description="lambda of the UCO terms (tk-uco: 0.01)")


class DDCAEOptions(DDCOptions):
    """DDC-AE: DDC + 0.1 * reconstruction MSE through the transposed decoder."""

    reconstruction_weight: float = Field(0.1, ge=0, description="weight of the reconstruction MSE (tk-uco: 0.1)")


class DeepClusterOptions(MethodOptions):
    """DeepCluster (Caron et al. 2018) as its code (main.sh): every epoch the features of the whole dataset,
    PCA-whitened to 256 dimensions and L2-normalised, k-means into dc_k clusters (20 iterations, faiss's
    empty-cluster split), a sampler uniform over the non-empty clusters, a new top layer with its own SGD, one
    pass of cross-entropy on the pseudo-labels; SGD lr 0.05, momentum 0.9 without Nesterov, weight decay 1e-5
    (``cluster.momentum`` / ``cluster.nesterov`` do not apply)."""

    dc_k: int = Field(10000, gt=1, description="k of the per-epoch k-means (pseudo-classes; theirs: 10,000 on "
                      "ImageNet; small data needs over-clustering, e.g. 100)")
    lr: float = Field(0.05, gt=0, description="SGD learning rate of the network (theirs: 0.05, constant)")
    dc_momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum of the network (theirs: 0.9, no Nesterov)")
    weight_decay: float = Field(1e-5, ge=0, description="weight decay of network and top layer (theirs: 10^-5)")
    top_lr: float = Field(0.05, gt=0, description="SGD learning rate of the top layer, no momentum (theirs: 0.05)")
    pca_dim: int = Field(256, gt=0, description="PCA whitening dimensions before k-means (theirs: 256; capped at the "
                         "feature width and the sample count - 1)")
    kmeans_niter: int = Field(20, gt=0, description="k-means iterations (theirs: faiss niter 20)")
    kmeans_backend: Literal["auto", "torch", "faiss"] = Field(
        "auto", description="faiss when installed (the optional extra), else our torch k-means with faiss's split rule"
    )
    sobel: bool = Field(True, description="the fixed grey + Sobel input filter (theirs: on)")
    reassign_size: float = Field(1.0, gt=0, description="samples drawn per epoch by the uniform sampler, as a "
                                 "multiple of the dataset size (theirs: --reassign 1)")
    eval_every: int = Field(1, gt=0, description="score k-means to cluster.n_clusters on the features every this many "
                            "epochs (the last is always scored)")


# --- pretraining methods (`pretrain` section) ------------------------------------------------------------


class PretrainOptions(MethodOptions):
    """What every pretraining method has; each method's class sets its defaults (the paper's values)."""

    epochs: int = Field(250, ge=0, description="pretraining epochs")
    batch_size: int = Field(256, gt=0, description="mini-batch size")
    lr: float = Field(1e-3, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (never on biases and norms with adamw / sgd)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field(
        "adam", description="adam | adamw | sgd (with pretrain.momentum and pretrain.nesterov)"
    )
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    nesterov: bool = Field(True, description="sgd: Nesterov momentum (Aljalbout et al.)")


class ReconstructionOptions(PretrainOptions):
    """Reconstruction (MSE) of an autoencoder: the paper's 250 epochs, batch 256, Adam 1e-3."""


class SimCLROptions(PretrainOptions):
    """SimCLR: the paper's 1,000 epochs, batch 512, AdamW 3e-3, weight decay 1e-4."""

    epochs: int = Field(1000, ge=0, description="pretraining epochs")
    batch_size: int = Field(512, gt=0, description="mini-batch size")
    lr: float = Field(3e-3, gt=0, description="learning rate")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (not on biases and norms)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adamw", description="adam | adamw | sgd")


class SSLOptions(PretrainOptions):
    """What the self-supervised family of ProPos's repository shares (brb/methods/selfsup.py): SGD with the lr
    scaled by batch / 256, a linear warm-up then ProPos's cosine per iteration, k-means of the method's features
    every ``reassign`` epochs (the evaluation ProPos reports), heads of width hidden_dim -> feature_dim or from a
    block spec (projector_spec; brb/models/heads.py)."""

    epochs: int = Field(1000, ge=0, description="pretraining epochs (theirs: 1000)")
    batch_size: int = Field(512, gt=0, description="global mini-batch size, split among the processes (theirs: 128 "
                            "per GPU x 4)")
    lr: float = Field(0.05, gt=0, description="base learning rate, scaled by batch_size / 256 (lr_scaling)")
    weight_decay: float = Field(5e-4, ge=0, description="weight decay (theirs: on all parameters)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("sgd", description="theirs: SGD, momentum 0.9")
    nesterov: bool = Field(False, description="sgd: Nesterov momentum (theirs: no)")
    lr_scaling: Literal["linear", "none"] = Field("linear", description="lr x batch_size / 256 (theirs) or as given")
    lr_schedule: Literal["propos", "cosine", "constant"] = Field(
        "propos", description="after the linear warm-up: ProPos's cosine (divided by epochs, not epochs - warmup: "
        "it ends near 0.006 x lr), the standard cosine to 0, or constant"
    )
    warmup_epochs: int = Field(50, ge=0, description="linear learning-rate warm-up epochs; PSL, PSA and ProtoNCE "
                               "start after")
    hidden_dim: int = Field(4096, gt=0, description="hidden width of the projection (and prediction) heads")
    feature_dim: int = Field(256, gt=0, description="output width of the projection (and prediction) heads")
    reassign: int = Field(10, gt=0, description="k-means on the method's features every this many epochs "
                          "(pseudo-labels for PSL / ProtoNCE, and the evaluation ProPos reports)")
    kmeans_n_init: int = Field(10, gt=0, description="k-means restarts (spherical, k-means++)")
    kmeans_per_process: bool = Field(
        True, description="with several processes: each runs kmeans_n_init restarts from its own seeds and all take "
        "the clustering of the lowest inertia (torch_clustering's distributed k-means); off: every process uses rank "
        "0's"
    )
    sync_bn: bool = Field(True, description="with several processes (brb pretrain --nproc-per-node): BatchNorm "
                          "statistics of the global batch (our SyncBatchNorm, CPU and GPU; the substitute for "
                          "ProPos's shuffle-BN); off: each process normalises its share")
    projector_spec: Optional[list[str]] = Field(
        None, description="the projection head as a block spec (brb/models/heads.py), e.g. [linear:4096, bn, relu, "
        "linear:256]; null: the method's own head from hidden_dim / feature_dim (its authors' shape)"
    )

    @field_validator("projector_spec", "predictor_spec", "cluster_head_spec", check_fields=False)
    @classmethod
    def _head_spec(cls, value):
        if value is not None:
            from brb.models.heads import parse_head_spec  # torch-free (imported here: brb.models reads the registry)

            parse_head_spec(value)
        return value


class BYOLOptions(SSLOptions):
    """BYOL as ProPos's repository runs it (its BYOL baseline: ProPos without PSL and PSA, k-means every 10
    epochs, increasing EMA): SGD 0.05 x batch / 256, weight decay 5e-4, 50 warm-up epochs then ProPos's cosine,
    predictor at 10 x the learning rate; projector and predictor d -> 4096 -> BN -> ReLU -> 256."""

    predictor_lr_mult: float = Field(10.0, gt=0, description="the predictor's learning rate multiplier (theirs: 10)")
    predictor_spec: Optional[list[str]] = Field(
        None, description="the prediction head as a block spec (its Linear weights N(0, 0.01), biases 0, as theirs); "
        "its output width must be the projector's; null: projector-out -> hidden_dim -> BN -> ReLU -> projector-out"
    )
    ema_momentum: float = Field(0.996, ge=0, le=1, description="EMA momentum of the target network")
    ema_schedule: Literal["fixed", "cosine"] = Field(
        "cosine", description="fixed, or increased to 1 by a cosine over the iterations (their BYOL configs)"
    )
    psl_weight: float = Field(0.0, ge=0, description="lambda of the prototype scattering loss (BYOL: 0)")
    psl_temperature: float = Field(0.5, gt=0, description="tau of the prototype scattering loss")
    latent_std: float = Field(0.0, ge=0, description="sigma of positive sampling alignment's Gaussian (BYOL: 0)")
    forward: Literal["v1", "v2"] = Field(
        "v1", description="v1: one pass per view, loss -2 cos, EMA after the loss; v2: both views in one pass, "
        "loss 2 - 2 cos, EMA before the forward pass (their CIFAR-20 / ImageNet-Dogs configs)"
    )
    data_resample: bool = Field(
        False, description="class-balanced resampling: each epoch's samples drawn with replacement, weight 1 / size "
        "of the sample's pseudo-cluster (their CIFAR-20 / ImageNet-Dogs configs); off: a shuffled pass"
    )


class ProPosOptions(BYOLOptions):
    """ProPos (Huang et al.): BYOL + prototype scattering loss (lambda 0.1 after warm-up) on k-means pseudo-labels
    of the target features every epoch + positive sampling alignment (sigma 0.001); fixed EMA 0.996 (CIFAR-10)."""

    ema_schedule: Literal["fixed", "cosine"] = Field("fixed", description="their CIFAR-10 config: fixed 0.996")
    reassign: int = Field(1, gt=0, description="k-means on the target features every this many epochs (ProPos: 1)")
    psl_weight: float = Field(0.1, ge=0, description="lambda of the prototype scattering loss (ProPos: 0.1)")
    latent_std: float = Field(0.001, ge=0, description="sigma of positive sampling alignment (ProPos: 0.001)")


class SimSiamOptions(SSLOptions):
    """SimSiam as ProPos's repository (its logged CIFAR-10 config): projector d -> 2048 (no bias) -> BN -> ReLU ->
    2048 -> BN (2 layers for CIFAR), predictor 2048 -> 512 -> BN -> ReLU -> 2048, lr 0.06 x batch / 256, the
    predictor at the constant, un-annealed lr (fix_predictor_lr), k-means on the projector output every 50 epochs."""

    lr: float = Field(0.06, gt=0, description="base learning rate, scaled by batch_size / 256 (theirs: 0.06)")
    hidden_dim: int = Field(2048, gt=0, description="projector width (theirs: 2048)")
    feature_dim: int = Field(2048, gt=0, description="projector / predictor output width (theirs: 2048)")
    predictor_hidden_dim: int = Field(512, gt=0, description="the predictor's bottleneck width (theirs: 512)")
    projector_layers: Literal[2, 3] = Field(2, description="projector depth (theirs: 2 for CIFAR, 3 for ImageNet)")
    fix_predictor_lr: bool = Field(True, description="the predictor keeps the constant scaled lr (theirs: yes)")
    predictor_spec: Optional[list[str]] = Field(
        None, description="the prediction head as a block spec, output width = the projector's; null: theirs, "
        "-> predictor_hidden_dim (no bias) -> BN -> ReLU -> projector-out"
    )
    reassign: int = Field(50, gt=0, description="k-means on the projector features every this many epochs")


class MoCoOptions(SSLOptions):
    """MoCo v2 as ProPos's repository: query encoder + MLP head (d -> d -> ReLU -> 128), key encoder by EMA
    (updated before the forward pass), a queue of normalised keys, symmetric InfoNCE (the sum of both
    directions); k-means on the key features."""

    feature_dim: int = Field(128, gt=0, description="head output width (theirs: 128)")
    ema_momentum: float = Field(0.99, ge=0, le=1, description="key encoder EMA momentum (their logged config: 0.99; "
                                "MoCo's default 0.999)")
    ema_schedule: Literal["fixed", "cosine"] = Field("fixed", description="fixed, or increased to 1 by a cosine")
    queue_size: int = Field(4096, gt=0, description="keys in the queue (their logged config: 4096; a multiple of "
                            "2 x batch_size with the symmetric loss)")
    moco_temperature: float = Field(0.07, gt=0, description="InfoNCE temperature (MoCo's default 0.07)")
    symmetric: bool = Field(True, description="both directions of the loss, 2 x batch keys enqueued (theirs: yes)")


class PCLOptions(MoCoOptions):
    """PCL as ProPos's repository (its logged CIFAR-20 config): MoCo + ProtoNCE (weight 0.01 after warm-up) over
    k-means of the key features at several granularities every epoch, concentration-scaled prototypes,
    negatives drawn with replacement from the prototypes not in the batch; lr 0.1, wd 1e-4."""

    lr: float = Field(0.1, gt=0, description="base learning rate (their logged config: 0.1)")
    weight_decay: float = Field(1e-4, ge=0, description="weight decay (their logged config: 1e-4)")
    moco_temperature: float = Field(1.0, gt=0, description="InfoNCE temperature and the mean concentration (their "
                                    "logged config: 1, as logged; PCL's paper 0.2)")
    reassign: int = Field(1, gt=0, description="k-means at every granularity every this many epochs (theirs: 1)")
    proto_weight: float = Field(0.01, ge=0, description="weight of ProtoNCE after warm-up (cls_loss_weight: 0.01)")
    num_clusters: list[int] = Field([250, 500, 1000], min_length=1, description="k-means granularities of ProtoNCE "
                                    "(theirs: 250, 500, 1000 on CIFAR-20)")


class CCOptions(SSLOptions):
    """Contrastive Clustering (Li et al. 2021) as its code: instance head d -> 512 -> ReLU -> 128 (NT-Xent, tau 0.5),
    cluster head d -> 512 -> ReLU -> K -> softmax (column NT-Xent, tau 1.0, + the entropy term), Adam 3e-4, batch
    256; the prediction is the cluster head's argmax (CC) or k-means on the instance features (ProPos's wrapper)."""

    batch_size: int = Field(256, gt=0, description="mini-batch size (theirs: 256)")
    lr: float = Field(3e-4, gt=0, description="Adam's learning rate (theirs: 3e-4)")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (theirs: 0)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field("adam", description="theirs: Adam")
    lr_scaling: Literal["linear", "none"] = Field("none", description="theirs: the lr as given")
    lr_schedule: Literal["propos", "cosine", "constant"] = Field("constant", description="theirs: constant")
    warmup_epochs: int = Field(0, ge=0, description="theirs: none")
    hidden_dim: int = Field(512, gt=0, description="hidden width of both heads (theirs: 512)")
    feature_dim: int = Field(128, gt=0, description="instance feature width (theirs: 128)")
    instance_temperature: float = Field(0.5, gt=0, description="tau_I of the instance NT-Xent (theirs: 0.5)")
    cluster_temperature: float = Field(1.0, gt=0, description="tau_C of the cluster-column NT-Xent (theirs: 1.0)")
    entropy_weight: float = Field(1.0, ge=0, description="weight of the entropy term H (theirs: 1)")
    cluster_head_spec: Optional[list[str]] = Field(
        None, description="the cluster head as a block spec ending in linear:K (softmax is applied after it); null: "
        "theirs, -> hidden_dim -> ReLU -> K"
    )
    cc_predict: Literal["head", "kmeans"] = Field(
        "head", description="the clustering reported: the cluster head's argmax (CC's paper) or k-means on the "
        "instance features (ProPos's wrapper); both are logged"
    )
