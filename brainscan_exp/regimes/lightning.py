"""The design card's regimes as Lightning training phases.

- ``sup``: fine-tune on the labelled training split only.
- ``semi``: pretrain on pseudo-labels of the unlabelled pool, then fine-tune on the same labelled
  split with the same budget as ``sup``. Controls: permuted pseudo-labels, and ``sup`` with extra
  steps matching the pretraining budget.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from brainscan_exp.data.datamodule import TumourDataModule, make_dataset
from brainscan_exp.regimes.base import FoldData, Regime, TrainContext

log = logging.getLogger(__name__)


def _inputs(data_X, paths, ctx: TrainContext):
    return data_X if ctx.finetune == "frozen" else paths


def best_checkpoint_callbacks(ctx: TrainContext, phase: str, patience: int | None):
    """Keep the weights of the best validation loss (and stop early with ``patience``)."""
    checkpoint = ModelCheckpoint(
        dirpath=ctx.out_dir / "checkpoints" / phase,
        monitor="val_loss",
        save_top_k=1,
        save_weights_only=True,
        filename="best",
    )
    callbacks = [checkpoint] + ([EarlyStopping(monitor="val_loss", patience=patience)] if patience else [])
    return callbacks, checkpoint


def restore_best(module, checkpoint: ModelCheckpoint | None, **submodules):
    """The module at its best validation loss (``load_from_checkpoint``), or ``module`` as trained.

    ``submodules`` are the constructor's non-hyperparameter networks (a backbone): their
    architecture is passed in, their weights come from the checkpoint."""
    if checkpoint is None or not checkpoint.best_model_path:
        return module
    best = type(module).load_from_checkpoint(checkpoint.best_model_path, map_location="cpu", **submodules)
    best.phase = getattr(module, "phase", None)
    return best


class _LightningRegime(Regime):
    uses_validation = True

    def __init__(self, finetune_epochs: int = 60, patience: int | None = 10):
        self.finetune_epochs = finetune_epochs
        self.patience = patience

    def _fit_phase(self, module, phase: str, train_set, val_set, ctx: TrainContext, max_epochs: int, patience):
        module.phase = phase
        callbacks, checkpoint = (
            best_checkpoint_callbacks(ctx, phase, patience) if val_set is not None and len(val_set) else ([], None)
        )
        trainer = ctx.make_trainer(max_epochs=max_epochs, callbacks=callbacks)
        dm = TumourDataModule(train_set, val_set, batch_size=ctx.batch_size, num_workers=ctx.num_workers, seed=ctx.seed)
        trainer.fit(module, datamodule=dm)
        self.steps_ = getattr(self, "steps_", 0) + trainer.global_step
        return restore_best(module, checkpoint, backbone=module.backbone)

    @staticmethod
    def _val_set(data: FoldData, ctx: TrainContext):
        if not len(data.y_val):
            return None
        return make_dataset(_inputs(data.X_val, data.paths_val, ctx), data.y_val, ctx.eval_transform)

    def _finetune(self, module, data: FoldData, ctx: TrainContext, extra_epochs: int = 0, patience="default"):
        train = make_dataset(_inputs(data.X_train, data.paths_train, ctx), data.y_train, ctx.train_transform)
        return self._fit_phase(
            module,
            "finetune",
            train,
            self._val_set(data, ctx),
            ctx,
            self.finetune_epochs + extra_epochs,
            self.patience if patience == "default" else patience,
        )

    def predict_proba(self, X: np.ndarray, paths=None) -> np.ndarray:
        inputs = X if self.finetune_mode_ == "frozen" else paths
        dataset = make_dataset(inputs, None, self.eval_transform_)
        if not len(dataset):
            return np.zeros(0)
        dm = TumourDataModule(predict=dataset, batch_size=64, num_workers=self.num_workers_)
        trainer = self.make_trainer_(logger=False, callbacks=[], max_epochs=1)
        out = trainer.predict(self.module_, datamodule=dm)  # the module's predict_step
        return torch.cat(out).float().numpy()

    def _remember(self, module, ctx: TrainContext):
        self.module_, self.finetune_mode_ = module, ctx.finetune
        self.eval_transform_, self.num_workers_ = ctx.eval_transform, ctx.num_workers
        self.make_trainer_ = ctx.make_trainer


class SupervisedRegime(_LightningRegime):
    """Strong labels only. ``match_pretrain_epochs`` > 0 makes the budget-matched control: as many
    extra gradient steps as ``semi`` spends pretraining on the pool, with no early stop."""

    name = "sup"

    def __init__(self, finetune_epochs: int = 60, patience: int | None = 10, match_pretrain_epochs: int = 0):
        super().__init__(finetune_epochs, patience)
        self.match_pretrain_epochs = match_pretrain_epochs

    def fit(self, data: FoldData, ctx: TrainContext) -> SupervisedRegime:
        module = ctx.make_module()
        extra = 0
        if self.match_pretrain_epochs:
            pool_steps = self.match_pretrain_epochs * math.ceil(len(data.X_pool) / ctx.batch_size)
            extra = math.ceil(pool_steps / math.ceil(len(data.y_train) / ctx.batch_size))
        module = self._finetune(module, data, ctx, extra, patience=None if extra else "default")
        self._remember(module, ctx)
        ctx.log({"train/steps": float(self.steps_)})
        return self


class PseudoLabelRegime(_LightningRegime):
    """Pseudo-label pretraining on the pool, then fine-tuning on the true labels."""

    name = "semi"

    def __init__(
        self,
        pseudo_labeler,
        pretrain_epochs: int = 10,
        finetune_epochs: int = 60,
        patience: int | None = 10,
        min_confidence: float = 0.0,
        permute_pseudo_labels: bool = False,
        seed: int = 0,
    ):
        super().__init__(finetune_epochs, patience)
        self.pseudo_labeler = pseudo_labeler
        self.pretrain_epochs = pretrain_epochs
        self.min_confidence = min_confidence
        self.permute_pseudo_labels = permute_pseudo_labels
        self.seed = seed

    def pseudo_labels(self, data: FoldData) -> tuple[np.ndarray, np.ndarray]:
        """(pool indices, pseudo-labels) decided inside the training fold only."""
        X, y = data.semi_supervised_view()
        self.labeler_ = self.pseudo_labeler.fit(X, y)
        pool_labels = np.asarray(self.labeler_.transduction_)[len(data.X_train) :]
        confidence = np.asarray(self.labeler_.confidence_)[len(data.X_train) :]
        keep = np.flatnonzero((pool_labels >= 0) & (confidence >= self.min_confidence))
        labels = pool_labels[keep].astype(np.float32)
        if self.permute_pseudo_labels:  # control: same label counts, no information
            labels = np.random.default_rng(self.seed).permutation(labels)
        return keep, labels

    def fit(self, data: FoldData, ctx: TrainContext) -> PseudoLabelRegime:
        keep, labels = self.pseudo_labels(data)
        ctx.log(
            {
                "pseudo/n_pool": float(len(data.X_pool)),
                "pseudo/n_labelled_pool": float(len(keep)),
                "pseudo/cancer_share": float(labels.mean()) if len(labels) else float("nan"),
            }
        )
        module = ctx.make_module()
        if len(keep) and self.pretrain_epochs:
            pool_inputs = data.X_pool[keep] if ctx.finetune == "frozen" else [data.paths_pool[i] for i in keep]
            train = make_dataset(pool_inputs, labels, ctx.train_transform)
            module = self._fit_phase(
                module, "pretrain", train, self._val_set(data, ctx), ctx, self.pretrain_epochs, patience=None
            )
        else:
            log.warning("no pseudo-label kept: semi falls back to fine-tuning only")
        module = self._finetune(module, data, ctx)
        self._remember(module, ctx)
        ctx.log({"train/steps": float(self.steps_)})
        return self
