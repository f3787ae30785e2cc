"""The experiment's scales: which generators, how much data, how many steps."""

from __future__ import annotations

from dataclasses import dataclass

PAPER_FRACTIONS = (5 / 60, 30 / 60, 60 / 60)
CHECKPOINT_LABELS = ("5/60", "30/60", "60/60")
DATA_DIRS = {
    "pretext": "cem500k",
    "segment": "au",
    "denoise": "temimagenet",
    "bg-removal": "temimagenet",
    "super-res": "temimagenet",
}


@dataclass(frozen=True)
class Preset:
    name: str
    archs: tuple[str, ...]
    small_arch: str  # the small pretrained model compared with the large random ones
    large_archs: tuple[str, ...]
    sim_n: dict[str, int]
    sim_size: int
    image_size: int
    batch_size: int
    pretrain_steps: int
    finetune_steps: int
    ndf: int = 64
    epochs: int | None = None  # paper: epochs instead of steps
    lr: float = 2e-4
    finetune_lr: float | None = None  # restoration fine-tuning (default: lr, the paper's 2e-4)
    arch_finetune_lr: tuple[tuple[str, float], ...] = ()  # where an architecture's differs
    segment_lr: float | None = None  # segmentation fine-tuning (its head starts new, at the class prior)
    head_lr_scale: float = 1.0  # the new head's learning rate, in units of the fine-tuning lr
    num_workers: int = 0
    notes: str = ""
    pretrained: str = "pretrain"  # pretrain: pretraining stages in the run; shipped: the zoo's emsim checkpoints
    corpus: tuple[tuple[str, int], ...] = ()  # simulated corpus parameters (default_corpus), else small sets
    arch_steps: tuple[tuple[str, int], ...] = ()  # fine-tuning steps where an architecture differs
    default_seeds: tuple[int, ...] = (0,)

    def steps_for(self, arch: str) -> int:
        return dict(self.arch_steps).get(arch, self.finetune_steps)


PRESETS = {
    "smoke": Preset(
        name="smoke",
        archs=("emzoo_unet_2_44", "emzoo_unet_4_424"),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424",),
        sim_n={"pretext": 12, "segment": 14, "tem": 14},
        sim_size=64,
        image_size=48,
        batch_size=4,
        pretrain_steps=6,
        finetune_steps=6,
        ndf=16,
        notes="CI check that every stage runs; its numbers mean nothing.",
    ),
    "cpu-small": Preset(
        name="cpu-small",
        archs=("emzoo_unet_2_44", "emzoo_unet_4_424", "emzoo_hrnet_w18_small"),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424", "emzoo_hrnet_w18_small"),
        sim_n={"pretext": 60, "segment": 60, "tem": 80},
        sim_size=256,
        image_size=80,
        batch_size=8,
        pretrain_steps=1000,
        finetune_steps=200,
        ndf=16,
        pretrained="shipped",
        finetune_lr=1e-3,  # Adam's usual rate: 2e-4 (Pix2Pix's) is slow for a 200-step budget
        arch_finetune_lr=(("emzoo_hrnet_w18_small", 2e-4),),  # its pretext head diverges at 1e-3 (L1 1.9)
        segment_lr=1e-3,
        head_lr_scale=10.0,
        corpus=(("n_train", 192), ("n_val", 24), ("n_test", 48), ("seed", 1), ("size", 256), ("version", 2)),
        arch_steps=(("emzoo_hrnet_w18_small", 60),),
        default_seeds=(0, 1, 2),
        notes=(
            "Sized for a 2-core CPU: fine-tuning from the zoo's shipped pretext checkpoints (the weights "
            "`emzoo.load` gives) against random init, on a corpus drawn with another seed than the one they were "
            "pretrained on (HRTEM nanoparticle segmentation; denoising, background removal and 2x super-resolution "
            "on every modality)."
        ),
    ),
    "paper": Preset(
        name="paper",
        archs=(
            "emzoo_unet_2_44",
            "emzoo_unet_2_84",
            "emzoo_unet_2_116",
            "emzoo_unet_3_96",
            "emzoo_unet_3_176",
            "emzoo_unet_3_240",
            "emzoo_unet_4_200",
            "emzoo_unet_4_360",
            "emzoo_unet_4_424",
            "emzoo_hrnet_w18",
        ),
        small_arch="emzoo_unet_2_44",
        large_archs=("emzoo_unet_4_424", "emzoo_hrnet_w18"),
        sim_n={"pretext": 2000, "segment": 500, "tem": 1000},
        sim_size=256,
        image_size=256,
        batch_size=64,
        pretrain_steps=0,
        finetune_steps=0,
        epochs=60,
        num_workers=8,
        notes="The paper's scale: 60 epochs, batch 128 (pretraining) / 16 (Au) / 64 (TEMImageNet); GPUs.",
    ),
}
