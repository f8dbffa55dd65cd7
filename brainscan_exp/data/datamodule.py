"""Lightning data modules over either cached embeddings (frozen backbone) or image files."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset


class LabelledImages(Dataset):
    """Image files with (possibly soft) targets, transformed on the fly by DataLoader workers."""

    def __init__(self, paths: Sequence[str], targets: np.ndarray, transform):
        self.paths, self.targets, self.transform = list(paths), np.asarray(targets, dtype=np.float32), transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(self.paths[i]), torch.tensor(self.targets[i])


def make_dataset(inputs, targets=None, transform=None) -> Dataset:
    """Embeddings (ndarray) become a TensorDataset; paths become :class:`LabelledImages`."""
    n = len(inputs)
    targets = np.zeros(n, dtype=np.float32) if targets is None else np.asarray(targets, dtype=np.float32)
    if isinstance(inputs, np.ndarray):
        return TensorDataset(
            torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32)), torch.from_numpy(targets)
        )
    if transform is None:
        raise ValueError("image inputs need a transform")
    return LabelledImages(inputs, targets, transform)


class TumourDataModule(L.LightningDataModule):
    """One training phase's data: a train set, an optional validation set and a predict set."""

    def __init__(
        self,
        train: Dataset | None = None,
        val: Dataset | None = None,
        predict: Dataset | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
    ):
        super().__init__()
        self.train, self.val, self.predict = train, val, predict
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            generator=generator,
            persistent_workers=False,
        )

    def train_dataloader(self):
        return self._loader(self.train, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val, shuffle=False) if self.val is not None and len(self.val) else []

    def predict_dataloader(self):
        return self._loader(self.predict, shuffle=False)
