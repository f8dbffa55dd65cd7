"""The LightningModule every regime trains: a head on features, optionally with its backbone.

With ``backbone=None`` it reads cached embeddings (frozen mode: fast on CPU); with a backbone it
reads images and fine-tunes end to end. Targets may be soft (pseudo-label confidences).
"""

from __future__ import annotations

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import BinaryAUROC


class TumourClassifier(L.LightningModule):
    def __init__(
        self,
        in_features: int,
        backbone: nn.Module | None = None,
        hidden_dim: int = 0,
        dropout: float = 0.2,
        lr: float = 1e-3,
        backbone_lr: float = 1e-4,
        weight_decay: float = 1e-4,
        input_noise: float = 0.0,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        self.backbone = backbone
        self.norm = nn.LayerNorm(in_features) if backbone is None else nn.Identity()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(in_features, hidden_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 1)]
        else:
            layers += [nn.Linear(in_features, 1)]
        self.head = nn.Sequential(*layers)
        self.phase = "fit"  # the training phase, set by the regime: "pretrain" or "finetune", prefixes the logged keys
        self.val_auroc = BinaryAUROC()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x) if self.backbone is not None else x
        return self.head(self.norm(feats)).squeeze(-1)

    def _loss(self, batch):
        x, y = batch[0], batch[1].float()
        if self.training and self.hparams.input_noise and self.backbone is None:
            x = x + self.hparams.input_noise * torch.randn_like(x)
        logits = self(x)
        return F.binary_cross_entropy_with_logits(logits, y), logits, y

    def training_step(self, batch, batch_idx):
        loss, _, _ = self._loss(batch)
        self.log(f"{self.phase}/train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch[0]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits, y = self._loss(batch)
        self.val_auroc.update(torch.sigmoid(logits), y.round().long())
        self.log(f"{self.phase}/val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        # the unprefixed key is what EarlyStopping/ModelCheckpoint monitor in every stage
        self.log("val_loss", loss, on_epoch=True, logger=False, batch_size=len(batch[0]))

    def on_validation_epoch_end(self):
        if self.val_auroc.update_count:
            self.log(f"{self.phase}/val_auroc", self.val_auroc.compute())
        self.val_auroc.reset()

    def predict_step(self, batch, batch_idx):
        return torch.sigmoid(self(batch[0]))

    def configure_optimizers(self):
        groups = [{"params": [*self.head.parameters(), *self.norm.parameters()], "lr": self.hparams.lr}]
        if self.backbone is not None:
            groups.append({"params": self.backbone.parameters(), "lr": self.hparams.backbone_lr})
        return torch.optim.AdamW(groups, weight_decay=self.hparams.weight_decay)
