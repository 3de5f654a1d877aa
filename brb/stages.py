"""File-level stages: what each console-script subcommand (and so each workflow rule) reads and writes.

Every output is written atomically (temporary file + rename), ``metrics.json`` last, so a run directory
with a ``metrics.json`` is complete.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from brb.config import Config
from brb.io import atomic_path, write_json

if TYPE_CHECKING:
    from brb.data.prepared import PreparedData


def label_scores(y: np.ndarray, labels: np.ndarray) -> dict:
    """What every run's metrics.json reports of its labels: ACC, NMI (arithmetic and geometric), ARI, purity and
    the number of non-empty clusters."""
    from brb.metrics import clustering_metrics, nmi_geometric

    return {**clustering_metrics(y, labels), "nmi_geometric": nmi_geometric(y, labels),
            "n_nonempty_clusters": int(len(np.unique(labels)))}


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def write_npy(array: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, array)


def _load_device_data(config: Config, data_path: Path):
    """(training data, evaluation data, device) as ``config.data.split`` says (the same object when combined)."""
    from brb.data import load_prepared
    from brb.engine.common import device_splits
    from brb.runtime import setup_run

    prepared = load_prepared(data_path)
    if prepared.name != config.data.dataset:
        # the file decides which dataset this is; keep the config truthful in the outputs
        config.data.dataset = prepared.name
    device = setup_run(config.run)
    train, evaluation = device_splits(config, prepared, device)
    return train, evaluation, device


#: beside a self-supervised pretraining's model.pt: its last E-step's labels of the training rows, and what they are
ESTEP_LABELS, ESTEP_JSON = "estep_labels.npy", "estep.json"


def with_pretrain_extra(config: Config, prepared: PreparedData, extra_paths) -> PreparedData:
    """``prepared`` with the images of ``data.pretrain_extra`` appended (label -1: unscored; marked train), the
    files ``extra_paths`` in that order."""
    from brb.data import DataFileError, load_prepared
    from brb.data.prepared import PreparedData
    from brb.data.registry import TRAIN

    names, paths = list(config.data.pretrain_extra), [Path(p) for p in extra_paths]
    if len(names) != len(paths):
        raise DataFileError(f"data.pretrain_extra names {len(names)} dataset(s) ({', '.join(names) or 'none'}) but "
                            f"{len(paths)} --extra-data file(s) were given")
    if not names:
        return prepared
    if config.data.subset is not None:
        raise DataFileError("data.pretrain_extra cannot be combined with data.subset (the subset would mix the "
                            "unlabelled images into the scored ones)")
    xs, ys, splits = [prepared.x], [prepared.y], [prepared.split]
    for name, path in zip(names, paths):
        extra = load_prepared(path)
        if extra.name != name:
            raise DataFileError(f"{path} holds {extra.name!r}, but data.pretrain_extra names {name!r} in its place")
        if extra.x.shape[1:] != prepared.x.shape[1:] or extra.x.dtype != prepared.x.dtype:
            raise DataFileError(f"{path}: images of shape {extra.x.shape[1:]} ({extra.x.dtype}) cannot join "
                                f"{prepared.name}'s {prepared.x.shape[1:]} ({prepared.x.dtype})")
        xs.append(extra.x)
        ys.append(np.full(len(extra.y), -1, dtype=np.int64))
        splits.append(np.full(len(extra.y), TRAIN, dtype=np.uint8))
    split = None if prepared.split is None else np.concatenate(splits)
    return PreparedData(prepared.name, np.concatenate(xs), np.concatenate(ys), prepared.class_names, split)


def pretrain_stage(config: Config, data_path: Path, out_dir: Path, progress: bool = True,
                   extra_paths=()) -> dict[str, Path]:
    """Pretraining of ``config.pretrain.method`` on the data (plus the images of ``data.pretrain_extra``, read from
    ``extra_paths``); writes model.pt, history.parquet, job_env.json and, for the self-supervised family, the
    last E-step's clustering of the labelled rows (``estep_labels.npy``, ``estep.json``)."""
    from brb.data import load_prepared
    from brb.methods.pretraining import pretrain
    from brb.models.checkpoint import save_checkpoint
    from brb.runtime import job_environment, resolve_device

    out_dir = Path(out_dir)
    prepared = load_prepared(data_path)
    config.data.dataset = prepared.name
    prepared = with_pretrain_extra(config, prepared, extra_paths)
    result = pretrain(config, prepared, progress=progress, checkpoint_dir=out_dir)
    from brb.engine.distributed import is_main_process

    if not is_main_process():  # data-parallel pretraining: rank 0 writes the outputs
        return {}
    env = {**job_environment(resolve_device(config.run.device)), **result.extra}
    write_json(out_dir / "job_env.json", env)
    write_parquet(result.history, out_dir / "history.parquet")
    if result.clustering is not None:  # the method's own clustering (E-step), before model.pt: read by `brb estep`
        clustering = dict(result.clustering)
        write_npy(np.asarray(clustering.pop("labels"), dtype=np.int64), out_dir / ESTEP_LABELS)
        write_json(out_dir / ESTEP_JSON, {"method": config.pretrain.resolved_method(config.model.arch), **clustering})
    save_checkpoint(
        out_dir / "model.pt",
        result.model,
        config.model.arch,
        config=config.to_dict(),
        wall_time_s=result.wall_time_s,
        final_loss=float(result.history["loss"].iloc[-1]) if len(result.history) else None,
        method=config.pretrain.resolved_method(config.model.arch),
        resumed_from_epoch=result.resumed_from,
        **result.extra,
    )
    result.checkpointer.clear()
    return {"checkpoint": out_dir / "model.pt", "history": out_dir / "history.parquet"}


def cluster_stage(
    config: Config,
    data_path: Path,
    out_dir: Path,
    pretrained: Optional[Path] = None,
    progress: bool = True,
    name: Optional[str] = None,
) -> dict[str, Path]:
    """Deep clustering run; ``name`` labels the variant in the outputs (default: ``brb.variant``)."""
    from brb.methods.centroid import clustering_trainer
    from brb.models.checkpoint import load_model, save_checkpoint
    from brb.runtime import job_environment

    out_dir = Path(out_dir)
    data, eval_data, device = _load_device_data(config, data_path)
    model, arch, payload = None, config.model.arch, {}
    if pretrained is not None:
        model, payload = load_model(pretrained, input_shape=data.sample_shape)
        arch = payload["arch"]
        config = config.with_network(arch)  # the checkpoint's network decides the defaults; recorded as applied
    env = job_environment(device)
    trainer = clustering_trainer(config.cluster.algorithm)(config, data, model, checkpoint_dir=out_dir,
                                                           eval_data=eval_data)
    result = trainer.fit(progress=progress)
    write_json(out_dir / "job_env.json", env)
    write_parquet(result.history, out_dir / "history.parquet")
    write_npy(result.labels.astype(np.int64), out_dir / "labels.npy")
    save_checkpoint(out_dir / "model.pt", result.model, arch, centroids=result.centroids, config=config.to_dict(),
                    **({"head": result.extra["head"]} if "head" in result.extra else {}))
    metrics = {
        "dataset": config.data.dataset,
        "arch": arch,
        "algorithm": config.cluster.algorithm,
        "variant": name or config.brb.variant,
        "brb_variant": config.brb.variant,
        "seed": config.run.seed,
        "pretrained": str(pretrained) if pretrained else None,
        "pretraining": payload.get("method") if pretrained else "scratch",
        "evaluated_on": "test" if config.data.split == "train_test" else "all",
        **result.metrics,
        "environment": env,
        "config": config.to_dict(),
    }
    write_json(out_dir / "metrics.json", metrics)
    trainer.checkpointer.clear()
    return {"run directory": out_dir, "metrics": out_dir / "metrics.json"}


def selflabel_stage(
    config: Config, data_path: Path, run_dir: Path, out_dir: Path, progress: bool = True, name: Optional[str] = None
) -> dict[str, Path]:
    """SCAN self-labeling of a finished clustering run (``run_dir`` holds its model.pt with centroids); writes a
    run directory of its own (metrics.json, labels.npy, history.parquet, model.pt with the cluster head)."""
    import json

    from brb.methods.selflabel import self_label
    from brb.models.checkpoint import CheckpointError, load_model, save_checkpoint
    from brb.runtime import job_environment

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    data, eval_data, device = _load_device_data(config, data_path)
    model, payload = load_model(run_dir / "model.pt", input_shape=data.sample_shape)
    if payload.get("centroids") is None:
        raise CheckpointError(f"{run_dir / 'model.pt'} holds no centroids (expected the output of `brb cluster`)")
    try:
        source = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{run_dir / 'metrics.json'} cannot be read: {err}") from None
    env = job_environment(device)
    result = self_label(config, model.to(device), payload["centroids"], data, eval_data, progress, out_dir)
    write_json(out_dir / "job_env.json", env)
    write_parquet(result.history, out_dir / "history.parquet")
    write_npy(result.labels.astype(np.int64), out_dir / "labels.npy")
    save_checkpoint(out_dir / "model.pt", result.model, payload["arch"], head=result.head.state_dict(),
                    config=config.to_dict())
    metrics = {
        key: source.get(key) for key in ("dataset", "arch", "algorithm", "brb_variant", "seed", "pretrained")
    }
    metrics.update(
        variant=name or f"{source.get('variant')}-selflabel",
        selflabel_of=str(run_dir),
        evaluated_on="test" if config.data.split == "train_test" else "all",
        clustering_acc=source.get("acc"),
        **result.metrics,
        environment=env,
        config=config.to_dict(),
    )
    write_json(out_dir / "metrics.json", metrics)
    if result.checkpointer is not None:
        result.checkpointer.clear()
    return {"run directory": out_dir, "metrics": out_dir / "metrics.json"}


def kmeans_stage(config: Config, data_path: Path, out_dir: Path, pretrained: Optional[Path] = None) -> dict[str, Path]:
    """k-means on raw (normalised) inputs or on a pretrained embedding: the baselines of the tables.
    With ``data.split: train_test`` it is fitted on the train split and labels the test split."""
    from sklearn.cluster import KMeans

    from brb.engine.common import embed
    from brb.models.checkpoint import load_model

    out_dir = Path(out_dir)
    start = time.perf_counter()
    data, eval_data, device = _load_device_data(config, data_path)
    arch = "pixels"
    if pretrained is not None:
        model, payload = load_model(pretrained, input_shape=data.sample_shape)
        arch = payload["arch"]
        model = model.to(device)

        def features(d):
            return embed(model, d, config.cluster.eval_batch_size, config.run.precision).cpu().numpy()
    else:

        def features(d):
            return np.concatenate([b.reshape(len(b), -1).cpu().numpy() for b in d.iter_batches(8192)])

    k = config.cluster.n_clusters or data.n_classes
    km = KMeans(n_clusters=k, n_init=config.cluster.kmeans_n_init, random_state=config.run.seed).fit(features(data))
    labels = (km.labels_ if eval_data is data else km.predict(features(eval_data))).astype(np.int64)
    data = eval_data
    write_npy(labels, out_dir / "labels.npy")
    metrics = {
        "dataset": config.data.dataset,
        "arch": arch,
        "algorithm": "kmeans",
        "variant": "pretrained" if pretrained is not None else "pixels",
        "seed": config.run.seed,
        "pretrained": str(pretrained) if pretrained else None,
        "pretraining": payload.get("method") if pretrained else "none",
        "evaluated_on": "test" if config.data.split == "train_test" else "all",
        **label_scores(data.y, labels),
        "n_clusters": k,
        "epochs": 0,
        "wall_time_s": time.perf_counter() - start,
        "config": config.to_dict(),
    }
    write_json(out_dir / "metrics.json", metrics)
    return {"run directory": out_dir, "metrics": out_dir / "metrics.json"}


def estep_stage(pretrained: Path, data_path: Path, out_dir: Path) -> dict[str, Path]:
    """The clustering a self-supervised pretraining reports itself (ProPos's Table 2: the last E-step, k-means of the
    method's features over the training rows; CC: its cluster head) as a run directory of its own: algorithm = the
    pretraining method, variant ``estep``, so the tables and the paper-versus-ours comparison treat it as any run.
    Reads ``estep_labels.npy`` / ``estep.json`` that ``brb pretrain`` wrote beside ``model.pt``."""
    import json

    from brb.data import DataFileError, load_prepared
    from brb.models.checkpoint import read_checkpoint

    pretrained, out_dir = Path(pretrained), Path(out_dir)
    payload = read_checkpoint(pretrained)
    source = pretrained.parent
    if not (source / ESTEP_JSON).is_file() or not (source / ESTEP_LABELS).is_file():
        from brb.registry import REGISTRY

        with_estep = ", ".join(REGISTRY.names("pretraining", tag="self-supervised"))
        raise DataFileError(f"{pretrained}: no {ESTEP_LABELS} / {ESTEP_JSON} beside it; its pretraining "
                            f"({payload.get('method')}) reports no clustering of its own (those that do: {with_estep})")
    try:
        info = json.loads((source / ESTEP_JSON).read_text())
        labels = np.load(source / ESTEP_LABELS, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFileError(f"{source}: {ESTEP_JSON} / {ESTEP_LABELS} corrupt or truncated: {err}") from None
    config = payload.get("config") or {}
    prepared = load_prepared(data_path)
    from brb.data.prepared import subset_of

    part = info.get("evaluated_on", "all")
    rows = prepared.part(part)
    subset = (config.get("data") or {}).get("subset")
    if subset is not None:
        rows = subset_of(rows, subset)
    if labels.shape != rows.y.shape:
        raise DataFileError(f"{source / ESTEP_LABELS} has {labels.shape} labels but the {part} rows of {data_path} "
                            f"are {rows.y.shape}: not the data this checkpoint was pretrained on")
    write_npy(labels.astype(np.int64), out_dir / "labels.npy")
    history = source / "history.parquet"
    if history.is_file():  # the E-step scores over the pretraining epochs: this run's learning curve
        hist = pd.read_parquet(history)
        write_parquet(hist[hist["acc"].notna()].reset_index(drop=True) if "acc" in hist else hist,
                      out_dir / "history.parquet")
    metrics = {
        "dataset": prepared.name,
        "arch": payload.get("arch"),
        "algorithm": info["method"],
        "variant": "estep",
        "seed": (config.get("run") or {}).get("seed"),
        "pretrained": str(pretrained),
        "pretraining": info["method"],
        "evaluated_on": part,
        "how": info.get("how"),
        **label_scores(rows.y, labels),
        "logged": info.get("scores"),
        "n_clusters": int(labels.max()) + 1 if len(labels) else 0,
        "epochs": info.get("epoch"),
        "wall_time_s": payload.get("wall_time_s"),
        "config": config,
    }
    write_json(out_dir / "metrics.json", metrics)
    return {"run directory": out_dir, "metrics": out_dir / "metrics.json"}


#: beside a run's labels.npy when they belong to a drawn part of the data (the linear probe's hold-out rows)
ROWS_FILE = "rows.npy"


def linear_eval_stage(config: Config, data_path: Path, pretrained: Path, out_dir: Path, c: float = 1.0,
                      max_iter: int = 1000, holdout: float = 0.2) -> dict[str, Path]:
    """The linear evaluation protocol: the pretrained network frozen, its embedding (eval mode, no augmentation)
    standardised, a multinomial logistic regression (scikit-learn's, L2 with inverse strength ``c``) fitted on
    the train split and scored on the test split; a dataset without an official split (digits) is split once,
    stratified, ``holdout`` of it held out (seed ``run.seed``; the rows are kept in ``rows.npy``). A run directory
    of its own, algorithm ``linear``, variant ``probe``: its labels are the predicted classes of the evaluated rows
    (``top1`` = plain accuracy; ``acc`` the tables' Hungarian-matched one, equal unless classes are confused
    wholesale)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from brb.data import DataFileError, load_prepared
    from brb.data.prepared import PreparedData, subset_of
    from brb.data.stream import device_data
    from brb.engine.common import embed
    from brb.models.checkpoint import load_model
    from brb.runtime import setup_run

    if not 0 < holdout < 1:
        raise ValueError(f"holdout must be in (0, 1), got {holdout}")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    prepared = load_prepared(data_path)
    config.data.dataset = prepared.name
    device = setup_run(config.run)
    d = config.data

    def part(data):  # the run's fixed subset draw, as brb.engine.common.device_splits takes it
        return data if d.subset is None else subset_of(data, d.subset)

    rows = None
    if prepared.split is not None:
        train, test = part(prepared.part("train")), part(prepared.part("test"))
        protocol = "official train / test split"
    else:
        prepared = part(prepared)
        idx = np.arange(len(prepared))
        fit_idx, rows = train_test_split(idx, test_size=holdout, stratify=prepared.y, random_state=config.run.seed)
        fit_idx, rows = np.sort(fit_idx), np.sort(rows)

        def take(i):
            return PreparedData(prepared.name, prepared.x[i], prepared.y[i], prepared.class_names)

        train, test = take(fit_idx), take(rows)
        protocol = f"stratified hold-out of {holdout:g} (no official split)"
    dtrain = device_data(train, device, d.normalize, d.resize)
    model, payload = load_model(pretrained, input_shape=dtrain.sample_shape)
    model = model.to(device)
    dtest = device_data(test, device, d.normalize, d.resize, statistics=(dtrain.mean, dtrain.std))
    batch = config.cluster.eval_batch_size
    f_train = embed(model, dtrain, batch, config.run.precision).cpu().numpy()
    f_test = embed(model, dtest, batch, config.run.precision).cpu().numpy()
    if not (np.isfinite(f_train).all() and np.isfinite(f_test).all()):
        raise DataFileError(f"{pretrained}: the embedding has NaN or inf values; nothing to evaluate")
    scaler = StandardScaler().fit(f_train)
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=config.run.seed)
    clf.fit(scaler.transform(f_train), train.y)
    predicted = clf.predict(scaler.transform(f_test)).astype(np.int64)
    if rows is not None:
        write_npy(rows.astype(np.int64), out_dir / ROWS_FILE)
    write_npy(predicted, out_dir / "labels.npy")
    metrics = {
        "dataset": prepared.name,
        "arch": payload["arch"],
        "algorithm": "linear",
        "variant": "probe",
        "seed": config.run.seed,
        "pretrained": str(pretrained),
        "pretraining": payload.get("method"),
        "evaluated_on": "test" if rows is None else "holdout",
        "protocol": protocol,
        "top1": float((predicted == test.y).mean()),
        "train_top1": float(clf.score(scaler.transform(f_train), train.y)),
        "n_train": int(len(train)),
        "n_evaluated": int(len(test)),
        "feature_dim": int(f_train.shape[1]),
        "C": c,
        "max_iter": max_iter,
        "converged": bool(clf.n_iter_.max() < max_iter),
        **label_scores(test.y, predicted),
        "n_clusters": prepared.n_classes,
        "epochs": 0,
        "wall_time_s": time.perf_counter() - start,
        "config": config.to_dict(),
    }
    write_json(out_dir / "metrics.json", metrics)
    return {"run directory": out_dir, "metrics": out_dir / "metrics.json"}


def _evaluated_rows(run_dir: Path, prepared):
    """The samples a run's labels belong to, from its metrics.json: the ``test`` part for train/test runs, and the
    run's fixed ``data.subset`` draw (as :func:`brb.engine.common.device_splits` took it)."""
    import json

    from brb.data.prepared import subset_of

    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    part = metrics.get("evaluated_on", "all")
    subset = ((metrics.get("config") or {}).get("data") or {}).get("subset")
    if (run_dir / ROWS_FILE).is_file():  # drawn rows (the linear probe's hold-out) of the (subset of the) data
        from brb.data.prepared import PreparedData

        base = prepared if subset is None else subset_of(prepared, subset)
        rows = np.load(run_dir / ROWS_FILE, allow_pickle=False)
        return PreparedData(base.name, base.x[rows], base.y[rows], base.class_names)
    if subset is None:
        return prepared.part(part)
    return subset_of(prepared, subset) if part == "all" else subset_of(prepared.part(part), subset)


def evaluate_stage(run_dir: Path, data_path: Path, silhouette: bool = False) -> dict[str, Path]:
    """Metrics recomputed from ``labels.npy`` against the data's labels (cheap; silhouette opt-in)."""
    from brb.data import DataFileError, load_prepared
    from brb.metrics import clustering_metrics, nmi_geometric

    run_dir = Path(run_dir)
    labels_path = run_dir / "labels.npy"
    if not labels_path.is_file():
        raise DataFileError(f"labels not found: {labels_path} (expected the output of `brb cluster`)")
    try:
        labels = np.load(labels_path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataFileError(f"labels file {labels_path} is corrupt or truncated: {err}") from None
    data = _evaluated_rows(run_dir, load_prepared(data_path))
    if labels.shape != data.y.shape:
        raise DataFileError(f"{labels_path} has {labels.shape} labels but {data_path} has {data.y.shape} samples")
    start = time.perf_counter()
    result = {**clustering_metrics(data.y, labels), "nmi_geometric": nmi_geometric(data.y, labels)}
    sizes = np.bincount(labels)
    result.update(cluster_sizes=sizes.tolist(), n_nonempty_clusters=int((sizes > 0).sum()))
    if silhouette:
        from sklearn.metrics import silhouette_score

        # subsample before converting (a 10k sample, as sklearn would draw it, costs a fraction of the whole)
        idx = np.random.default_rng(0).permutation(len(labels))[:10000]
        if data.x.ndim == 1:  # an image index (ImageNet): the sample decoded at 32 px
            from brb.data.stream import FolderData

            folder = FolderData(data, "cpu", "none", 32)
            x = folder.decode(idx).numpy().reshape(len(idx), -1).astype(np.float32)
            folder.close()
        else:
            x = data.x[idx].reshape(len(idx), -1).astype(np.float32)
        result["silhouette"] = float(silhouette_score(x, labels[idx])) if len(np.unique(labels[idx])) > 1 else None
    result["evaluation_time_s"] = time.perf_counter() - start
    write_json(run_dir / "evaluation.json", result)
    return {"evaluation": run_dir / "evaluation.json"}


def _reference_file(reference: Path) -> Path:
    """A path, or the name of a CSV shipped in brb/report/reference/ (published.csv)."""
    from brb.data.registry import DataFileError
    from brb.report import REFERENCE_FILES, reference_path

    if Path(reference).is_file():
        return Path(reference)
    if str(reference) in REFERENCE_FILES:
        return reference_path(str(reference))
    raise DataFileError(f"reference table not found: {reference} (nor a packaged one: {', '.join(REFERENCE_FILES)})")


def tables_stage(metrics: Path, out_dir: Path, reference: Optional[Path] = None, block: str = "main") -> dict:
    """summary and paper_style tables (md, csv, tex); paper_vs_ours when a reference CSV of published numbers is
    given (long format, e.g. the packaged published.csv): every metric of ``block``, with the distance in the
    paper's std where one is published."""
    from brb.report import tables

    df = pd.read_parquet(metrics)
    out_dir = Path(out_dir)
    written = {}
    for stem, table in (("summary", tables.summary_table(df)), ("paper_style", tables.paper_style_table(df))):
        written.update({f"{stem}.{ext}": p for ext, p in tables.write_tables(table, out_dir, stem).items()})
    if "selected_loss" in df.columns and df["selected_loss"].notna().any():  # tk-uco's lowest-loss run
        paths = tables.write_tables(tables.lowest_loss_table(df), out_dir, "lowest_loss")
        written.update({f"lowest_loss.{ext}": p for ext, p in paths.items()})
    if reference is not None:
        reference = _reference_file(reference)
        comparison = tables.paper_vs_ours(df, reference, block=block)
        paths = tables.write_tables(comparison, out_dir, "paper_vs_ours")
        written.update({f"paper_vs_ours.{ext}": p for ext, p in paths.items()})
    return written


def plots_stage(metrics: Path, out_dir: Path) -> dict:
    from brb.report import plots

    df = pd.read_parquet(metrics)
    out_dir = Path(out_dir)
    return plots.write_standard_plots(df, out_dir)
