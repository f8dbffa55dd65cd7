"""``consistency``: FixMatch (Sohn et al., 2020) on MRI slices, end to end on images.

Each step sees a labelled batch (weak view, true labels) and an unlabelled batch in two views:
the model's prediction on the weak view becomes a pseudo-label when its confidence passes
``threshold``, and trains the strong view (RandAugment + erasing). Meant for a GPU
(``trainer=gpu``); ``debug=fast`` with ``backbone=simple_cnn`` is the CPU path.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from brainscan_exp.data.datamodule import make_dataset
from brainscan_exp.preprocessing import ImageTransform
from brainscan_exp.regimes.base import FoldData, TrainContext
from brainscan_exp.regimes.lightning import _LightningRegime, best_checkpoint_callbacks, restore_best


class TwoViews(Dataset):
    def __init__(self, paths, weak, strong):
        self.paths, self.weak, self.strong = list(paths), weak, strong

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.weak(self.paths[i]), self.strong(self.paths[i])


class FixMatchModule(L.LightningModule):
    """Wraps the regime's classifier; only the training step differs."""

    def __init__(self, net: L.LightningModule, threshold: float = 0.95, lambda_u: float = 1.0):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net, self.threshold, self.lambda_u = net, threshold, lambda_u

    def forward(self, x):
        return self.net(x)

    def predict_step(self, batch, batch_idx):
        return torch.sigmoid(self(batch[0]))

    def training_step(self, batch, batch_idx):
        x, y = batch["labelled"]
        weak, strong = batch["unlabelled"]
        logits = self(torch.cat([x, weak, strong]))
        sup_logits, weak_logits, strong_logits = logits.split([len(x), len(weak), len(strong)])
        loss_sup = F.binary_cross_entropy_with_logits(sup_logits, y.float())
        with torch.no_grad():
            p = torch.sigmoid(weak_logits)
            pseudo = (p >= 0.5).float()
            mask = (torch.maximum(p, 1 - p) >= self.threshold).float()
        loss_unsup = (F.binary_cross_entropy_with_logits(strong_logits, pseudo, reduction="none") * mask).mean()
        loss = loss_sup + self.lambda_u * loss_unsup
        self.log_dict(
            {
                "consistency/loss_sup": loss_sup,
                "consistency/loss_unsup": loss_unsup,
                "consistency/mask_rate": mask.mean(),
            },
            on_step=False,
            on_epoch=True,
            batch_size=len(x),
        )
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y.float())
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(x))

    def configure_optimizers(self):
        return self.net.configure_optimizers()


class ConsistencyRegime(_LightningRegime):
    name = "consistency"

    def __init__(
        self,
        finetune_epochs: int = 60,
        patience: int | None = 10,
        threshold: float = 0.95,
        lambda_u: float = 1.0,
        unlabelled_ratio: int = 3,
    ):
        super().__init__(finetune_epochs, patience)
        self.threshold, self.lambda_u, self.unlabelled_ratio = threshold, lambda_u, unlabelled_ratio

    def fit(self, data: FoldData, ctx: TrainContext) -> ConsistencyRegime:
        if ctx.finetune != "full":
            raise ValueError("regime=consistency trains on images: set regime.finetune=full")
        config = ctx.eval_transform.data_config
        mri = ctx.eval_transform.mri
        weak, strong = ImageTransform(config, mri, train="weak"), ImageTransform(config, mri, train="strong")
        labelled = make_dataset(data.paths_train, data.y_train, weak)
        unlabelled = TwoViews(data.paths_pool, weak, strong)
        val = make_dataset(data.paths_val, data.y_val, ctx.eval_transform)
        generator = torch.Generator().manual_seed(ctx.seed)
        loaders = {
            "labelled": DataLoader(
                labelled, ctx.batch_size, shuffle=True, num_workers=ctx.num_workers, generator=generator
            ),
            "unlabelled": DataLoader(
                unlabelled,
                ctx.batch_size * self.unlabelled_ratio,
                shuffle=True,
                num_workers=ctx.num_workers,
                generator=generator,
            ),
        }
        module = FixMatchModule(ctx.make_module(), self.threshold, self.lambda_u)
        callbacks, checkpoint = best_checkpoint_callbacks(ctx, "consistency", self.patience) if len(val) else ([], None)
        trainer = ctx.make_trainer(max_epochs=self.finetune_epochs, callbacks=callbacks)
        trainer.fit(module, train_dataloaders=loaders, val_dataloaders=DataLoader(val, 64) if len(val) else None)
        self.steps_ = trainer.global_step
        module = restore_best(module, checkpoint, net=module.net)
        self._remember(module, ctx)
        return self
