"""Batches for a run: a seeded per-epoch order that every process and every resumed run agrees on,
and the DataLoader settings."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from emzoo.train.config import TrainConfig


class EpochShuffled(Dataset):
    """A dataset seen in a seeded, per-epoch permutation, so every process and every resumed
    run agrees on the order without relying on sampler internals."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        self.order = np.arange(len(dataset))

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.dataset[int(self.order[index])]


def loader_for(dataset: Dataset, cfg: TrainConfig, train: bool) -> DataLoader:
    return DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        shuffle=False,  # order comes from EpochShuffled
        drop_last=train,
        num_workers=cfg.num_workers,
        pin_memory=torch.cuda.is_available(),
    )


# ------------------------------------------------------------------------------ the run
