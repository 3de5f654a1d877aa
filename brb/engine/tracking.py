"""Optional experiment tracking as an engine hook: every history row's numbers, per epoch, to TensorBoard,
Weights & Biases (offline by default) or MLflow (a local SQLite store by default). Off unless ``run.tracking``
names a backend; each backend is an install extra (``pip install 'brb[tracking]'``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from brb.engine.loop import Engine, Hook


def _numbers(row: dict) -> dict[str, float]:
    out = {}
    for key, value in row.items():
        if isinstance(value, bool) or key == "epoch":
            continue
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            out[key] = float(value)
    return out


class Tracker(Hook):
    """Logs the configuration once and every history row at step = its epoch."""

    def __init__(self, backend: str, directory: Path, name: str, config: dict[str, Any], project: str = "brb"):
        if backend not in ("tensorboard", "wandb", "mlflow"):
            raise ValueError(f"unknown tracking backend {backend!r}; use tensorboard, wandb or mlflow")
        self.backend, self.directory, self.name, self.config, self.project = backend, Path(directory), name, config, project
        self._run = None

    def on_fit_start(self, engine: Engine) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            if self.backend == "tensorboard":
                from torch.utils.tensorboard import SummaryWriter

                self._run = SummaryWriter(log_dir=str(self.directory / "tensorboard" / self.name))
                self._run.add_text("config", f"```\n{self.config}\n```")
            elif self.backend == "wandb":
                import wandb

                mode = os.environ.get("WANDB_MODE", "offline")  # never phones home unless asked to
                self._run = wandb.init(project=self.project, name=self.name, dir=str(self.directory), mode=mode,
                                       config=self.config, reinit="finish_previous")
            else:
                import mlflow

                default = f"sqlite:///{(self.directory / 'mlflow.db').resolve()}"  # MLflow's recommended local store
                mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", default))
                mlflow.set_experiment(self.project)
                self._run = mlflow.start_run(run_name=self.name)
                mlflow.log_params(_flat(self.config))
        except ImportError as err:
            raise ImportError(f"run.tracking: {self.backend} is not installed ({err}); pip install 'brb[tracking]'") from None

    def on_epoch_end(self, engine: Engine, epoch: int, row: dict) -> None:
        values, step = _numbers(row), int(row["epoch"])
        if self.backend == "tensorboard":
            for key, value in values.items():
                self._run.add_scalar(key, value, step)
        elif self.backend == "wandb":
            self._run.log(values, step=step)
        else:
            import mlflow

            mlflow.log_metrics(values, step=step)

    def on_fit_end(self, engine: Engine) -> None:
        if self._run is None:
            return
        if self.backend == "tensorboard":
            self._run.close()
        elif self.backend == "wandb":
            self._run.finish()
        else:
            import mlflow

            mlflow.end_run()
        self._run = None


def _flat(values: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = str(value)[:250]
    return out


def tracking_hooks(config, name: str, out_dir: Optional[Path]) -> list[Hook]:
    """The tracker ``config.run.tracking`` asks for (none by default), writing under ``run.tracking_dir`` or,
    without one, ``<out_dir>/tracking``."""
    run = config.run
    if run.tracking == "none":
        return []
    directory = Path(run.tracking_dir) if run.tracking_dir else Path(out_dir or ".") / "tracking"
    return [Tracker(run.tracking, directory, name, config.to_dict())]


def fit_on_engine(method, config, checkpoint_dir: Optional[Path], progress: bool, hooks=(),
                  fingerprint: Optional[dict] = None):
    """Train ``method`` on one :class:`~brb.engine.loop.Engine` with ``hooks`` and the tracking hooks of
    ``config.run``, checkpointing every ``run.checkpoint_every`` epochs under ``fingerprint`` (default: the
    configuration's); sets ``method.checkpointer`` and returns the engine's ``FitResult``."""
    from brb.engine.loop import Engine

    name = method.label.replace("/", "-").replace(" ", "-")
    engine = Engine(method, hooks=[*hooks, *tracking_hooks(config, name, checkpoint_dir)], checkpoint_dir=checkpoint_dir,
                    checkpoint_every=config.run.checkpoint_every,
                    fingerprint=config.fingerprint() if fingerprint is None else fingerprint, progress=progress)
    method.checkpointer = engine.checkpointer
    return engine.fit()
