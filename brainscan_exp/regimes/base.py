"""What every regime receives: one fold's data and the factories for modules and trainers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np


@dataclass
class FoldData:
    """One fold. ``X_*`` are cached embeddings (always present: clustering and pseudo-labelling use
    them); ``paths_*`` are the image files, read only when the backbone is fine-tuned end to end."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_pool: np.ndarray
    paths_train: list[str] = field(default_factory=list)
    paths_val: list[str] = field(default_factory=list)
    paths_pool: list[str] = field(default_factory=list)

    def semi_supervised_view(self) -> tuple[np.ndarray, np.ndarray]:
        """Training fold plus pool, ``y = -1`` on the pool (sklearn's convention). The evaluation
        images are not part of a FoldData at all, so no decision can see them."""
        X = np.concatenate([self.X_train, self.X_pool])
        y = np.concatenate([self.y_train, np.full(len(self.X_pool), -1)])
        return X, y

    def with_val_in_train(self) -> FoldData:
        """Validation images join the training set (for regimes that do not early-stop)."""
        return FoldData(
            np.concatenate([self.X_train, self.X_val]),
            np.concatenate([self.y_train, self.y_val]),
            self.X_val[:0],
            self.y_val[:0],
            self.X_pool,
            list(self.paths_train) + list(self.paths_val),
            [],
            self.paths_pool,
        )


@dataclass
class TrainContext:
    """Factories bound to the run's config (trainer, module, transforms) and its output folder."""

    make_trainer: Callable[..., L.Trainer]
    make_module: Callable[[], L.LightningModule]
    finetune: str = "frozen"  # frozen: head on embeddings; full: backbone and head on images
    batch_size: int = 32
    num_workers: int = 0
    seed: int = 0
    out_dir: Path = Path(".")
    train_transform: Callable | None = None
    eval_transform: Callable | None = None
    log: Callable[[dict], None] = lambda metrics: None


class Regime:
    """fit on a fold, then give P(cancer) for embeddings (frozen) or image paths (full)."""

    name = "regime"
    uses_validation = False  # early-stops or checkpoints on the validation split

    def fit(self, data: FoldData, ctx: TrainContext) -> Regime:
        raise NotImplementedError

    def predict_proba(self, X: np.ndarray, paths: list[str] | None = None) -> np.ndarray:
        raise NotImplementedError
