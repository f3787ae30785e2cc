"""What a training run is: its configuration, the progress a checkpoint carries, its data and
its generator."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from emzoo.data.corpus import SUBSETS, default_corpus
from emzoo.data.simulate import simulated
from emzoo.errors import ConfigError, DataError
from emzoo.hub import create_model, load
from emzoo.tasks import get_task
from emzoo.zoo import RECIPES, ZOO

_log = logging.getLogger("emzoo.train")
LR_SCHEDULES = ("constant", "cosine")
# the shares of the training frames the data pipeline changes
AUGMENTATIONS = ("despike_prob", "detector_noise_prob", "background_prob", "zoom_window_prob")


@dataclass
class TrainConfig:
    """Everything a run depends on; written to ``run.json`` so the run can be reproduced."""

    mode: str  # "pretrain" or "finetune"
    data: str
    output_dir: str
    task: str = "pretext"
    objective: str = "supervised"  # supervised | n2v | n2n (emzoo adapt: no clean targets)
    arch: str | None = None  # pretrain: the generator architecture
    model: str | None = None  # finetune: zoo name, hf-hub:..., folder, or random:ARCH
    recipe: str | None = None
    epochs: int = 60
    max_steps: int | None = None
    max_minutes: float | None = None  # a wall-time budget (summed over resumes); ends at the next step
    batch_size: int = 16
    image_size: int = 256
    lr: float = 2e-4
    lr_schedule: str = "constant"  # constant | cosine (to 0 over the run: how a warm start settles)
    head_lr_scale: float = 1.0  # the learning rate of a newly initialised head, in units of lr
    # weights averaged over steps (timm's ModelEmaV3, this decay per step); validation, the exported
    # best model and the test split use the average, which is steadier than any one step's weights
    ema_decay: float | None = None
    prior_head: bool = True  # segmentation fine-tunes start a new head at the class prior
    remove_outliers: bool | None = None  # spikes replaced before normalisation (None: the data layout's default)
    despike_prob: float = 0.0  # augmentation: the share of training frames with their spikes replaced
    detector_noise_prob: float = 0.0  # denoising: the share of frames recorded again with a detector's noise
    background_prob: float = 0.0  # segmentation: the share of frames given a smooth random background
    zoom_window_prob: float = 0.0  # segmentation: the share of frames replaced by a zoomed window of them
    betas: tuple[float, float] = (0.5, 0.999)
    l1_lambda: float = 100.0
    num_classes: int = 1
    seed: int = 0
    num_workers: int = 0
    checkpointing_steps: int | None = None  # None: at the end of every epoch
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str | None = None
    mixed_precision: str = "auto"  # auto: measured per machine (see emzoo.train.precision)
    gradient_accumulation_steps: int = 1
    compile: str = "auto"  # auto | on | off
    channels_last: bool = True
    report_to: str | None = None
    sim_n: int = 48
    sim_size: int = 256
    # also score the test split at these steps (segmentation: at the threshold calibrated on validation)
    test_at_steps: list[int] = field(default_factory=list)
    keep_checkpoints: bool = True
    ndf: int = 64  # discriminator width (Pix2Pix: 64)
    progress: bool = True
    cpu: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse what cannot train, here in the library, so the API and the CLI refuse alike."""
        if self.mode not in ("pretrain", "finetune"):
            raise ConfigError(f"mode {self.mode!r}: expected 'pretrain' or 'finetune'")
        get_task(self.task)
        whole = ("epochs", "batch_size", "max_steps", "num_classes", "sim_n", "gradient_accumulation_steps")
        for name in whole + ("checkpointing_steps", "checkpoints_total_limit", "ndf"):
            value = getattr(self, name)
            if value is None and name not in ("epochs", "batch_size", "num_classes", "sim_n"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} {value!r}: expected a whole number >= 1")
        for name, low in (("image_size", 16), ("sim_size", 32)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{name} {value!r}: expected a whole number of pixels >= {low}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"num_workers {self.num_workers!r}: expected a whole number >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed {self.seed!r}: expected a whole number from 0 to 2**32 - 1")
        for name in ("lr", "l1_lambda", "head_lr_scale", "max_minutes"):
            value = getattr(self, name)
            if value is None and name == "max_minutes":
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} {value!r}: expected a finite positive number")
        if self.ema_decay is not None and not (isinstance(self.ema_decay, float) and 0.0 < self.ema_decay < 1.0):
            raise ConfigError(f"ema_decay {self.ema_decay!r}: expected a number between 0 and 1, e.g. 0.998")
        for name, share in self.augmentations().items():
            if not (isinstance(share, int | float) and 0.0 <= share <= 1.0):
                raise ConfigError(f"{name} {share!r}: expected a share of the training frames from 0 to 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule {self.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
        if self.report_to not in (None, "none"):
            from accelerate.utils import LoggerType

            if self.report_to not in LoggerType.list():
                raise ConfigError(f"report_to {self.report_to!r}: expected one of Accelerate's {LoggerType.list()}")
        architecture = self.arch if self.mode == "pretrain" else (self.model or "").removeprefix("random:")
        if (architecture or "").startswith("emzoo_patchgan"):
            raise ConfigError(
                f"{'arch' if self.mode == 'pretrain' else 'model'} {self.arch or self.model}: the PatchGAN "
                "discriminator; train a generator (emzoo_unet_*, emzoo_hrnet_*)"
            )

    @classmethod
    def from_recipe(cls, name: str, **overrides: Any) -> TrainConfig:
        """The configuration a zoo entry's recipe prescribes (the one translation of a recipe, used
        by ``pretrain/finetune --recipe``, ``zoo build`` and ``reproduce``); ``overrides`` (not
        None) win. Pretext entries pretrain their architecture; fine-tunes start from their base."""
        entry = ZOO.get(name)
        if entry is None:
            raise ConfigError(f"recipe {name!r}: not a zoo entry (see `emzoo list`)")
        recipe = RECIPES[entry.recipe]
        pretext = get_task(entry.task).pretext
        settings: dict[str, Any] = dict(
            mode="pretrain" if pretext else "finetune",
            task=entry.task,
            arch=entry.arch if pretext else None,
            model=None if pretext else entry.base_model,
            recipe=recipe.name,
            epochs=recipe.epochs,
            max_steps=entry.max_steps or recipe.max_steps,
            batch_size=recipe.batch_size,
            image_size=recipe.image_size,
            lr=recipe.lr,
            betas=recipe.betas,
            l1_lambda=recipe.l1_lambda or 100.0,
            ndf=recipe.ndf,
            prior_head=recipe.prior_head,
            ema_decay=recipe.ema_decay,
            **{name: getattr(recipe, name) for name in AUGMENTATIONS},
            extra={"zoo_name": entry.name},
        )
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    def augmentations(self) -> dict[str, float]:
        """The shares of training frames the data pipeline changes (:data:`AUGMENTATIONS`)."""
        return {name: getattr(self, name) for name in AUGMENTATIONS}

    def card_summary(self, data: Path, train_set, steps: int, threshold: float | None) -> str:
        """How a run's exported model was trained (on ``train_set``, at ``data``), in one paragraph of its card."""
        layout, n_train = train_set.layout, len(train_set)
        what = f"Pix2Pix cGAN pretraining (LSGAN + {self.l1_lambda:g} x L1)" if self.mode == "pretrain" else self.task
        averaged = f", weights averaged over steps (EMA decay {self.ema_decay:g})" if self.ema_decay else ""
        folded = f", validation threshold {threshold:g} folded into the head" if threshold not in (None, 0.5) else ""
        return (
            f"{what} with emzoo on `{data}` ({layout} layout, {n_train} training images), {steps} steps of batch "
            f"{self.batch_size} at {self.image_size}^2, Adam lr {self.lr} ({self.lr_schedule}) betas "
            f"{tuple(self.betas)}, seed {self.seed}{averaged}{folded}. Resolved config and versions: run.json of the "
            "run."
        )

    def identity(self) -> dict:
        """What makes two runs the same run (for refusing unrelated output directories)."""
        keys = ("mode", "task", "arch", "model", "data", "seed", "image_size")
        extra = {"objective": self.objective} if self.objective != "supervised" else {}
        if self.remove_outliers:  # inputs with and without spikes are other runs
            extra["remove_outliers"] = True
        for name in AUGMENTATIONS + ("ema_decay",):
            if getattr(self, name):
                extra[name] = getattr(self, name)
        return {k: getattr(self, k) for k in keys} | extra


@dataclass
class TrainState:
    """Progress that checkpoints carry besides weights and optimiser state."""

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    best: float | None = None
    best_step: int | None = None
    seconds: float = 0.0  # training wall time so far, over every resume
    history: list[dict] = field(default_factory=list)

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def resolve_data(data: str, task: str, sim_n: int = 48, sim_size: int = 256, progress: bool = True) -> Path:
    """A dataset folder: ``simulated`` is a small simulated dataset for the task and
    ``corpus:SUBSET`` a part of the simulated corpus (both built once and cached)."""
    if data == "simulated":
        return simulated(task, n=sim_n, size=sim_size, seed=0, progress=progress)
    if data == "corpus" or data.startswith("corpus:"):
        subset = data.partition(":")[2]
        if subset not in SUBSETS:
            raise DataError(f"data {data!r}: no such corpus part; expected corpus or corpus:{'|'.join(SUBSETS[1:])}")
        return default_corpus(progress=progress) / subset
    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(f"data {data!r}: no such file or folder (or use data='simulated')")
    return path


def build_generator(cfg: TrainConfig) -> nn.Module:
    if cfg.mode == "pretrain":
        if not cfg.arch:
            raise ConfigError("arch is required for pretraining (e.g. emzoo_unet_2_44; see `emzoo list`)")
        model = create_model(cfg.arch)
        model.emzoo_cfg = {"task": "pretext"}
        return model
    if not cfg.model:
        raise ConfigError("model is required for fine-tuning (a zoo name, hf-hub:ORG/NAME, a folder or random:ARCH)")
    if cfg.model.startswith("random:"):
        model = create_model(cfg.model.split(":", 1)[1], num_classes=cfg.num_classes)
        model.emzoo_new_keys = []
        return model
    model = load(cfg.model, num_classes=cfg.num_classes if cfg.num_classes != 1 else None)
    new_keys = getattr(model, "emzoo_new_keys", [])
    _log.info("fine-tuning %s: %s", cfg.model, f"new keys {new_keys}" if new_keys else "all weights kept")
    return model
