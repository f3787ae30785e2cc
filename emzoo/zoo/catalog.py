"""The zoo's checkpoint table: the single source of truth for names, architectures, tasks,
recipes and Hub ids. Model files build their timm ``default_cfgs`` from it; the CLI, the cards
and the Space read it.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from emzoo.tasks import RESTORATION_TASKS, get_task

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "checkpoints"  # trained folders that ship with emzoo
PINS_FILE = Path(__file__).resolve().with_name("shipped.json")  # name -> sha256 of model.safetensors
HUB_ORG = "emzoo"
HUB_REVISION = "v1.0"
LICENSE = "mit"
PAPER_ID = "arXiv:2402.18286"

# The paper's nine residual U-Nets: (blocks, receptive field) -> max-pool factor per level.
# RF = 8 * sum(j_0..j_{B-1}) + 5 * j_B with j_i the product of the first i pool factors
# (see emzoo.models.resunet.receptive_field); these factors reproduce the paper's fields.
UNET_POOLS: dict[tuple[int, int], tuple[int, ...]] = {
    (2, 44): (2, 2),
    (2, 84): (2, 6),
    (2, 116): (6, 2),
    (3, 96): (2, 2, 2),
    (3, 176): (2, 2, 6),
    (3, 240): (2, 6, 2),
    (4, 200): (2, 2, 2, 2),
    (4, 360): (2, 2, 2, 6),
    (4, 424): (2, 2, 4, 3),
}


@dataclass(frozen=True)
class Recipe:
    """How a checkpoint is trained: data, corruption or task, loss and optimiser settings."""

    name: str
    task: str
    data: str
    loss: str
    epochs: int
    batch_size: int
    image_size: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    l1_lambda: float | None = None
    corruption: dict = field(default_factory=dict)
    augmentation: tuple[str, ...] = ()
    notes: str = ""
    max_steps: int | None = None  # a step budget instead of epochs (the shipped CPU builds)
    ndf: int = 64  # PatchGAN width
    prior_head: bool = True  # segmentation: a new head at the class prior (False: keep the pretext head)
    ema_decay: float | None = None  # weights averaged over steps with this decay (None: the last step's)
    subset: str | None = None  # the corpus folder it trains on (emzoo data corpus)
    corpus: tuple[tuple[str, object], ...] = (("version", 1),)  # default_corpus parameters
    modality: str = "EM"
    # the share of training frames whose x-ray hits and hot pixels are replaced first (segmentation):
    # a spike inflates the frame's std, a user's software may have removed them or not, and a model
    # trained on one kind called up to 3.9% of the other kind's bare lattices particle
    # (scripts/bench_segment.py, spike-free rows)
    despike_prob: float = 0.0
    # the share of training frames (denoising) whose input is recorded again from the noise-free
    # target with a real detector's noise (emzoo.data.noise: the noise `emzoo adapt` is measured
    # on): neighbour-correlated counts and scan-line offsets, which the corpus' recordings lack
    detector_noise_prob: float = 0.0
    # the share of training frames (segmentation) given a smooth random background (uneven
    # illumination, support thickness: emzoo.data.transforms.smooth_background); without it the
    # shipped models called 25-57% of an empty support with a gentle ramp particle
    background_prob: float = 0.0
    # the share of training frames (segmentation) replaced by a random window of 40-75% of them
    # enlarged to the frame's size and normalised on its own (emzoo.data.transforms.zoomed_window):
    # a user's crop of bare support, stretched to full contrast, was called 10-60% particle
    # (scripts/bench_empty_support.py), and the corpus' frames never hold its largest particles whole
    zoom_window_prob: float = 0.0
    # segmentation: how particles look in its images ("bright", "dark"); predict's polarity="auto"
    # inverts an image of the other polarity (emzoo.inference.polarity)
    particle_contrast: str | None = None


# Default corruption strengths (the paper names the corruptions but not their strengths).
DEFAULT_CORRUPTION = {
    "noise_std": (0.0, 0.3),  # Gaussian noise, std drawn uniformly, in units of image std
    "blur_sigma": (0.0, 2.0),  # Gaussian blur sigma in pixels, drawn uniformly
    "p_noise": 0.8,
    "p_blur": 0.5,
    "flips": True,
    "rot90": True,
}

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="pix2pix-cem500k",
            task="pretext",
            data="CEM500K (EMPIAR-10592), 200K-image subset, 5,000 val, 5,000 test",
            loss="LSGAN + 100 * L1 (conditional PatchGAN discriminator)",
            epochs=60,
            batch_size=128,
            image_size=224,
            l1_lambda=100.0,
            corruption=DEFAULT_CORRUPTION,
            augmentation=("flip", "rot90"),
        ),
        Recipe(
            name="au-seg",
            task="segment",
            data="Au nanoparticles in HRTEM (Sytwu et al. 2022, Zenodo 10.5281/zenodo.6419024)",
            loss="binary cross-entropy",
            epochs=60,
            batch_size=16,
            image_size=448,
            augmentation=("random-crop-512-to-448", "noise", "flip", "rot90", "resize"),
            particle_contrast="dark",
        ),
        *(
            Recipe(
                name=f"temimagenet-{task}",
                task=task,
                data="TEMImageNet (Lin et al. 2021), split 10,377 / 1,832 / 2,155",
                loss="L1 + L2",
                epochs=60,
                batch_size=64,
                image_size=256,
            )
            for task in RESTORATION_TASKS
        ),
    )
}

# The shipped checkpoints: trained by `emzoo zoo build` on emzoo's simulated corpus on a 2-core CPU, in
# step budgets sized so the whole build takes about an hour and a quarter there (README, "The zoo"): an
# HRNet-W18-small step costs ~10 U-Net steps, and the seven U-Nets no fine-tune starts from get 600 pretext steps.
CPU_STEPS = {("hrnet", "pretext"): 400, ("hrnet", "finetune"): 300, ("unet-other", "pretext"): 600}
FINETUNED_UNETS = ("emzoo_unet_2_44", "emzoo_unet_4_424")
EMSIM_DATA = "emzoo's simulated materials-EM corpus (`emzoo data corpus`: HRTEM, HAADF/ADF/ABF/BF-STEM)"
SEG_AUGMENTATION = ("random-crop", "noise", "flip", "rot90", "resize")
# one corpus for both groups; validation 5x the default: on 96 frames its Dice rose where the test split fell
SEGMENT_CORPUS = (("version", 3), ("modalities", ("adf", "haadf", "hrtem")), ("n_val", 480))
WARM_STEPS = {"hrnet": 600, "unet": 2000}  # a warm start's budget per run when none is asked for
# restoration trains and is judged on whole 256^2 frames, as segmentation: warm starts on 128^2 crops raised
# the crops' PSNR and lowered the whole frames' (U-Net 4/424 denoise 24.17 -> 24.12 dB; whole frames: 24.75),
# with weights averaged over steps: its first six warm starts with EMA 0.998 were all kept (+0.08-0.14 dB)
WHOLE_FRAME_RESTORATION = {
    "denoise": dict(image_size=256, batch_size=4, ema_decay=0.998),
    "bg-removal": dict(image_size=256, batch_size=4, ema_decay=0.998),
    "super-res": dict(image_size=512, batch_size=2, ema_decay=0.998),  # 512^2 targets of 256^2 frames
}
# denoisers also learn the correlated noise real detectors make (half the frames recorded again,
# Recipe.detector_noise_prob): trained on the corpus' recordings only, the shipped U-Net lost to a
# tuned Gaussian by 0.4-1.5 dB on it (scripts/bench_adapt.py) and barely denoised resampled frames
DETECTOR_NOISE = {"denoise": dict(detector_noise_prob=0.5)}


def _emsim(name: str, task: str, data: str, subset: str, modality: str, **kwargs) -> Recipe:
    """A recipe of the shipped CPU build: batch 8 of 128^2 crops, a step budget. Segmentation trains
    on whole 256^2 frames (batch 4): warm starts on 128^2 crops, where a 424 px receptive field
    sees mostly zero padding, scored better on 128^2 tiles and worse on whole frames (val Dice
    0.659 vs 0.625 tiled, 0.597 vs 0.620 whole, U-Net 4/424 HRTEM against its shipped weights)."""
    settings = dict(epochs=1, batch_size=8, image_size=128, max_steps=2000, loss="L1 + L2")
    if get_task(task).segmentation:  # built before the prior head existed: they kept the pretext head
        settings.update(
            loss="binary cross-entropy",
            augmentation=SEG_AUGMENTATION,
            prior_head=False,
            despike_prob=0.5,
            background_prob=0.3,
            zoom_window_prob=0.3,
            batch_size=4,
            image_size=256,
        )
    settings.update(kwargs)
    return Recipe(name=name, task=task, data=EMSIM_DATA + data, subset=subset, modality=modality, **settings)


EMSIM_RECIPES = (
    _emsim(
        "pix2pix-emsim",
        "pretext",
        ", every modality, unlabeled",
        "pretext",
        "HRTEM, HAADF/ADF/ABF/BF-STEM",
        loss="LSGAN + 100 * L1 (conditional PatchGAN discriminator, 16 base channels)",
        l1_lambda=100.0,
        corruption=DEFAULT_CORRUPTION,
        augmentation=("flip", "rot90"),
        max_steps=1000,
        ndf=16,
    ),
    # corpus 3: particles of 1-60 nm (from ~6 px to larger than the crop), on amorphous and
    # crystalline supports, agglomerated and cut by the border; particle-free crystals and supports.
    # Built by warm starts from the checkpoints trained on corpus 1 (STEM) and 2 (HRTEM: corpus 2
    # added the absorption contrast without which HRTEM segmentation did not train at all).
    _emsim(
        "emsim-hrtem-seg",
        "segment",
        ": HRTEM of Au/Pt/Pd/Ag/Cu nanoparticles of 1-60 nm on amorphous and crystalline supports, crystals",
        "segment/tem",
        "HRTEM",
        corpus=SEGMENT_CORPUS,
        particle_contrast="dark",  # mass-thickness and absorption: heavier than the support
    ),
    _emsim(
        "emsim-haadf-seg",
        "segment",
        ": HAADF/ADF-STEM of nanoparticles of 1-60 nm (bright) on amorphous and crystalline supports, crystals",
        "segment/stem",
        "HAADF/ADF-STEM",
        corpus=SEGMENT_CORPUS,
        particle_contrast="bright",  # Z-contrast
    ),
    *(
        _emsim(
            f"emsim-{task}",
            task,
            ", every modality, noisy input and clean targets",
            "restore",
            "HRTEM, HAADF/ADF/ABF/BF-STEM",
            augmentation=("random-crop", "flip", "rot90"),
            **WHOLE_FRAME_RESTORATION.get(task, {}),
            **DETECTOR_NOISE.get(task, {}),
        )
        for task in RESTORATION_TASKS
    ),
)
RECIPES.update({r.name: r for r in EMSIM_RECIPES})
SEG_RECIPES = {"hrtem-seg": "emsim-hrtem-seg", "haadf-seg": "emsim-haadf-seg"}


@dataclass(frozen=True)
class ZooEntry:
    """One checkpoint of the zoo."""

    name: str
    arch: str
    tag: str
    task: str
    recipe: str
    base_model: str | None = None
    out_chans: int = 1
    in_chans: int = 1
    normalization: str = "standardize"
    pixel_size_nm: tuple[float, float] | None = None
    modality: str = "EM"
    license: str = LICENSE
    published: bool = False
    sha256: str | None = None  # of model.safetensors, for the checkpoints that ship with emzoo
    max_steps: int | None = None  # this checkpoint's step budget, when it differs from its recipe's

    @property
    def built_by_zoo(self) -> bool:
        """Whether `emzoo zoo build` makes this checkpoint (trained on the simulated corpus)."""
        return self.tag.startswith("emsim")

    @property
    def shipped_folder(self) -> Path | None:
        """The trained folder in this installation, if the entry ships with emzoo."""
        folder = SHIPPED_DIR / self.name
        return folder if self.sha256 and (folder / "model.safetensors").is_file() else None

    @property
    def hub_id(self) -> str:
        return f"{HUB_ORG}/{self.name}"

    @property
    def revision(self) -> str:
        return HUB_REVISION

    @property
    def timm_name(self) -> str:
        return f"{self.arch}.{self.tag}"

    def to_dict(self) -> dict:
        info = asdict(self)
        info.update(hub_id=self.hub_id, revision=self.revision, timm_name=self.timm_name)
        info["recipe"] = asdict(RECIPES[self.recipe])
        info["shipped"] = self.shipped_folder is not None
        return info


def _build_entries() -> dict[str, ZooEntry]:
    pretrained = [
        ZooEntry(
            name=f"unet-{b}-{rf}-cem500k",
            arch=f"emzoo_unet_{b}_{rf}",
            tag="cem500k",
            task="pretext",
            recipe="pix2pix-cem500k",
            pixel_size_nm=(1.0, 30.0),
            modality="cellular SEM/TEM",
        )
        for b, rf in UNET_POOLS
    ]
    pretrained.append(
        ZooEntry(
            name="hrnet-cem500k",
            arch="emzoo_hrnet_w18",
            tag="cem500k",
            task="pretext",
            recipe="pix2pix-cem500k",
            pixel_size_nm=(1.0, 30.0),
            modality="cellular SEM/TEM",
        )
    )
    finetuned = [
        ZooEntry(
            name=f"{p.name}-au-seg",
            arch=p.arch,
            tag="cem500k-au-seg",
            task="segment",
            recipe="au-seg",
            base_model=p.name,
            pixel_size_nm=(0.01, 0.1),
            modality="HRTEM",
        )
        for p in pretrained
    ]
    finetuned += [
        ZooEntry(
            name=f"hrnet-cem500k-temimagenet-{task}",
            arch="emzoo_hrnet_w18",
            tag=f"cem500k-temimagenet-{task}",
            task=task,
            recipe=f"temimagenet-{task}",
            base_model="hrnet-cem500k",
            pixel_size_nm=(0.005, 0.05),
            modality="atomic-resolution ADF-STEM",
        )
        for task in RESTORATION_TASKS
    ]
    return {e.name: e for e in pretrained + finetuned + _emsim_entries()}


def pinned_sha256() -> dict[str, str]:
    """The registry's pins: shipped name -> sha256 of its model.safetensors."""
    return json.loads(PINS_FILE.read_text()) if PINS_FILE.is_file() else {}


def _emsim_entries() -> list[ZooEntry]:
    """The checkpoints trained on the simulated corpus: what `emzoo zoo build` makes and ships."""
    pins = pinned_sha256()
    pretext_recipe = RECIPES["pix2pix-emsim"]
    bases = [(f"unet-{b}-{rf}", f"emzoo_unet_{b}_{rf}") for b, rf in UNET_POOLS] + [
        ("hrnet-w18-small", "emzoo_hrnet_w18_small")
    ]

    def budget(arch: str, kind: str) -> int | None:
        family = "hrnet" if arch.startswith("emzoo_hrnet") else "unet" if arch in FINETUNED_UNETS else "unet-other"
        return CPU_STEPS.get((family, kind))

    entries = [
        ZooEntry(
            name=f"{label}-emsim",
            arch=arch,
            tag="emsim",
            task="pretext",
            recipe=pretext_recipe.name,
            modality=pretext_recipe.modality,
            max_steps=budget(arch, "pretext"),
        )
        for label, arch in bases
    ]
    finetunes = {
        "unet-4-424": [*SEG_RECIPES, *RESTORATION_TASKS],
        "hrnet-w18-small": [*SEG_RECIPES, *RESTORATION_TASKS],
        "unet-2-44": ["hrtem-seg"],
    }
    archs = dict(bases)
    for label, kinds in finetunes.items():
        for kind in kinds:
            recipe = RECIPES[SEG_RECIPES.get(kind, f"emsim-{kind}")]
            entries.append(
                ZooEntry(
                    name=f"{label}-emsim-{kind}",
                    arch=archs[label],
                    tag=f"emsim-{kind}",
                    task=recipe.task,
                    recipe=recipe.name,
                    base_model=f"{label}-emsim",
                    modality=recipe.modality,
                    max_steps=budget(archs[label], "finetune"),
                )
            )
    return [ZooEntry(**{**asdict(e), "sha256": pins.get(e.name), "published": False}) for e in entries]


ZOO: dict[str, ZooEntry] = _build_entries()


def list_models(pattern: str | None = None) -> list[str]:
    """Zoo checkpoint names, optionally filtered by an fnmatch pattern (``"unet-4-*"``)."""
    names = sorted(ZOO)
    return [n for n in names if fnmatch.fnmatch(n, pattern)] if pattern else names


def entries_for_arch(arch: str) -> list[ZooEntry]:
    return [e for e in ZOO.values() if e.arch == arch]


def pretrained_cfgs(arch: str, **base_cfg) -> dict[str, dict]:
    """timm ``default_cfgs`` for one architecture: the untagged random-init cfg first, then a
    tagged cfg (``arch.tag``) with the Hub id for every zoo entry of that architecture."""
    cfgs = {f"{arch}.*": dict(base_cfg)}  # '*': the untagged random-init cfg stays timm's default
    for entry in entries_for_arch(arch):
        cfgs[entry.timm_name] = dict(
            base_cfg,
            hf_hub_id=f"{entry.hub_id}@{entry.revision}",
            num_classes=entry.out_chans,
            license=entry.license,
            description=f"{entry.task} ({entry.recipe})",
            paper_ids=PAPER_ID,
        )
        if entry.shipped_folder is not None:  # timm reads the shipped file, offline
            cfgs[entry.timm_name]["file"] = str(entry.shipped_folder / "model.safetensors")
    return cfgs
