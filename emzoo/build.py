"""`emzoo zoo build`: train every shipped checkpoint from the simulated corpus with emzoo's own
Trainer, pretext checkpoints first, then the fine-tunes from them.

A warm start (``emzoo zoo build NAME --warm-start``) continues from the checkpoint's shipped
weights on its recipe's current corpus, and replaces the folder only when the held-out test metric
improves over the shipped weights scored on the same split; the folder's ``train_cost`` sums the
steps and wall time of every run that made it, and ``docs/zoo_build_log.jsonl`` records every run,
kept or not. Budgets add up across sessions this way. ``--from-pretext`` fine-tunes again from the
shipped pretext checkpoint (after its own warm starts) under the same rule: a new lineage, whose
cost starts at its own run. Both settle with a cosine learning-rate schedule.

Resumable per checkpoint (a finished checkpoint, pinned in ``shipped.json``, is not retrained) and
within one (its run folder keeps Accelerate checkpoints, resumed with ``latest``). Each finished
folder is what ``emzoo publish`` uploads: config.json, model.safetensors (float16 for the large
networks, read back as float32), the test pair and the card, which records the pixel-size range
and modality it was trained at, its held-out test metrics, and the wall time and hardware it took.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from emzoo.calibration import calibrate
from emzoo.data.corpus import default_corpus, seen_diameters_nm, subset_pixel_range, subset_records
from emzoo.errors import ConfigError, ModelNotFoundError
from emzoo.fsutil import atomic_write_text, cache_root, sha256_file
from emzoo.hub import CONFIG_NAME, load, provenance_cfg, save_pretrained
from emzoo.hub.publish import write_cards
from emzoo.judge import beats, held_out, particle_free_area
from emzoo.tasks import get_task
from emzoo.train.config import TrainConfig
from emzoo.train.run_folder import RESULT_FILE, latest_checkpoint
from emzoo.train.trainer import Trainer
from emzoo.zoo.catalog import PINS_FILE, RECIPES, SHIPPED_DIR, WARM_STEPS, ZOO, ZooEntry, pinned_sha256

FLOAT16_ABOVE = 1_000_000  # parameters: larger networks ship in float16 (the 64 MB budget)


def shipped_entries() -> list[ZooEntry]:
    """What the build makes, in build order: each family's pretext checkpoint before its
    fine-tunes, the families that have fine-tunes first, the other U-Net pretext checkpoints last."""
    entries = [e for e in ZOO.values() if e.built_by_zoo]
    families = ["unet-4-424-emsim", "unet-2-44-emsim", "hrnet-w18-small-emsim"]

    def order(e: ZooEntry) -> tuple:
        family = e.base_model or e.name
        rank = families.index(family) if family in families else len(families)
        return (rank, not get_task(e.task).pretext, e.name)

    return sorted(entries, key=order)


def hardware() -> dict:
    """What a checkpoint was trained on, for its card."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cpu = platform.processor() or platform.machine()
    return {"cpu": cpu, "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu}


def corpus_for(recipe) -> Path:
    return default_corpus(**dict(recipe.corpus))


def subset_for(name: str) -> Path:
    """The corpus folder a shipped checkpoint trains and is judged on (simulated when missing)."""
    recipe = RECIPES[next(e for e in shipped_entries() if e.name == name).recipe]
    return corpus_for(recipe) / recipe.subset


BUILD_LOG = Path(__file__).resolve().parent.parent / "docs" / "zoo_build_log.jsonl"
CURVES_DIR = BUILD_LOG.parent / "build_curves"  # each run's loss and validation curves, kept or not
RESIZE_AUGMENTATION = (0.8, 1.25)  # data.transforms.random_rescale's range: the sizes a network saw


def particle_px_range(corpus: Path, subset: str, crop: int) -> list[float] | None:
    """Particle diameters (px) a segmentation network was trained on: the 5th-95th percentiles of
    the training particles as seen, widened by the resize augmentation, at most half the crop
    (a larger particle is never seen whole). ``predict(scale="auto")`` aims for this range."""
    diameters = [d / r["pixel_size_nm"] for r in subset_records(corpus, subset) for d in seen_diameters_nm(r)]
    if len(diameters) < 10:
        return None
    lo, hi = np.percentile(diameters, [5, 95])
    lo, hi = lo * RESIZE_AUGMENTATION[0], min(hi * RESIZE_AUGMENTATION[1], crop / 2)
    return [round(float(max(lo, 3.0)), 1), round(float(max(hi, 2 * lo)), 1)]


def train_config(
    entry: ZooEntry,
    corpus: Path,
    run_dir: Path,
    base_folder: Path | None,
    steps: int | None = None,
    warm: bool = False,
    progress: bool = True,
    settle: bool = False,
    lr: float | None = None,
    keep_spikes: bool = False,
    ema_decay: float | None = None,
    background_prob: float | None = None,
) -> TrainConfig:
    recipe = RECIPES[entry.recipe]
    return TrainConfig.from_recipe(
        entry.name,
        data=str(corpus / recipe.subset),
        output_dir=str(run_dir),
        model=str(base_folder) if base_folder else None,
        max_steps=steps,
        lr=lr,  # None: the recipe's
        ema_decay=ema_decay,  # None: the recipe's
        prior_head=recipe.prior_head and not warm,  # a warm start keeps its trained head
        remove_outliers=False if keep_spikes else None,  # None: the recipe's
        despike_prob=0.0 if keep_spikes else None,
        background_prob=background_prob,  # None: the recipe's
        lr_schedule="cosine" if settle else "constant",  # a rerun's new schedule settles to 0
        seed=0,
        checkpointing_steps=100,
        resume_from_checkpoint="latest" if latest_checkpoint(run_dir) else None,
        compile="off",  # on a CPU, compiling costs more of these short budgets than it saves
        mixed_precision="no",  # the shipped weights were built in float32; a rebuild reproduces them
        keep_checkpoints=False,
        progress=progress,
    )


def _log_run(record: dict) -> None:
    BUILD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(BUILD_LOG, "a") as f:
        f.write(json.dumps(record) + "\n")


def build_one(
    entry: ZooEntry,
    runs: Path,
    out: Path = SHIPPED_DIR,
    warm: bool = False,
    steps: int | None = None,
    progress: bool = True,
    from_pretext: bool = False,
    lr: float | None = None,
    keep_spikes: bool = False,
    ema_decay: float | None = None,
    background_prob: float | None = None,
) -> dict:
    """Train one checkpoint (resuming its run) and write its shipped folder. ``warm``: continue
    from the shipped weights; ``from_pretext``: fine-tune again from the shipped pretext weights;
    either keeps the result only if its held-out metric beats the shipped checkpoint's.
    ``keep_spikes``: inputs as recorded, where the recipe replaces x-ray hits and hot pixels;
    ``background_prob``: another share of frames given a smooth background (segmentation)."""
    recipe = RECIPES[entry.recipe]
    corpus = corpus_for(recipe)
    base_folder = None
    previous_cost: dict = {}
    shipped_folder = out / entry.name
    challenger = warm or from_pretext  # must beat what ships
    if challenger and not (shipped_folder / "model.safetensors").is_file():
        raise ConfigError(f"{entry.name}: not built yet; build it first (`emzoo zoo build {entry.name}`)")
    if from_pretext and not entry.base_model:
        raise ConfigError(f"{entry.name}: a pretext checkpoint has no pretext to start from; use --warm-start")
    if warm:
        base_folder = shipped_folder
        previous_cost = load(base_folder).emzoo_cfg.get("train_cost") or {}
        steps = steps or WARM_STEPS["hrnet" if entry.arch.startswith("emzoo_hrnet") else "unet"]
    elif entry.base_model:
        base_folder = out / entry.base_model
        if not (base_folder / "model.safetensors").is_file():
            raise ConfigError(f"{entry.name}: its pretext checkpoint {entry.base_model} is not built yet")
    runs_before = _runs_before(previous_cost)
    if from_pretext:  # one run folder per pretext version: a newer pretext starts a new run
        run_dir = runs / f"{entry.name}-from-{sha256_file(base_folder / 'model.safetensors')[:8]}"
    else:
        run_dir = runs / (f"{entry.name}-warm{runs_before}" if warm else entry.name)
    for label, value in (("lr", lr), ("ema", ema_decay), ("bg", background_prob)):  # each another run
        run_dir = run_dir.with_name(f"{run_dir.name}-{label}{value:g}") if value is not None else run_dir
    if keep_spikes := keep_spikes and bool(recipe.despike_prob):  # other inputs, another run
        run_dir = run_dir.with_name(f"{run_dir.name}-spikes-kept")
    run_dir = _unfinished_or_new(run_dir)
    start = time.perf_counter()
    variant = dict(lr=lr, keep_spikes=keep_spikes, ema_decay=ema_decay, background_prob=background_prob)
    config = train_config(entry, corpus, run_dir, base_folder, steps, warm, progress, challenger, **variant)
    result = Trainer(config).train()
    setup_and_test = time.perf_counter() - start - result["train_seconds"]
    return judge_run(entry, run_dir, result, out, warm, from_pretext, previous_cost, setup_and_test)


def _taken(run_dir: Path) -> bool:
    """A finished run that was not kept (its result written, no checkpoint left), or a name the log
    holds (its curve committed) whose folder went with a cleared cache: the log's records."""
    if not run_dir.exists():
        return (CURVES_DIR / f"{run_dir.name}.png").is_file()
    return (run_dir / RESULT_FILE).is_file() and latest_checkpoint(run_dir) is None


def _unfinished_or_new(run_dir: Path) -> Path:
    """The run to resume, or the next name after the log's records of the same kind of run."""
    candidate, n = run_dir, 1
    while _taken(candidate):
        n += 1
        candidate = run_dir.with_name(f"{run_dir.name}-{n}")
    return candidate


def _runs_before(previous_cost: dict) -> int:
    """Runs behind the shipped weights (a folder built before runs were recorded counts as one)."""
    return len(previous_cost.get("runs", [])) or (1 if previous_cost else 0)


def judge_run(
    entry: ZooEntry,
    run_dir: Path,
    result: dict,
    out: Path = SHIPPED_DIR,
    warm: bool = False,
    from_pretext: bool = False,
    previous_cost: dict | None = None,
    other_seconds: float = 0.0,
    note: str | None = None,
) -> dict:
    """A finished run's model: calibrated (segmentation), scored on the held-out split, logged, and
    shipped as ``out/NAME`` unless it is a challenger (``warm``/``from_pretext``) that does not
    beat the shipped folder there. ``other_seconds``: the run's time outside training so far."""
    recipe = RECIPES[entry.recipe]
    corpus = corpus_for(recipe)
    task = get_task(entry.task)
    shipped_folder = out / entry.name
    challenger = warm or from_pretext
    previous_cost = previous_cost or {}
    runs_before = _runs_before(previous_cost)
    judging = time.perf_counter()
    threshold, chosen = None, {}
    if task.segmentation:  # border, decision threshold and polarity chosen on validation; then the test
        subset = corpus / recipe.subset
        limit = particle_free_area(shipped_folder, subset, "val") if challenger else None
        chosen = calibrate(run_dir / "model", entry, corpus, max_false_area=limit)
        threshold = chosen["threshold"]
    result["test"] = held_out(run_dir / "model", entry, corpus)  # with the whole-frame scores that decide
    # the training of every invocation of a resumed run (in its state), and the rest of this one
    wall = result["run_train_seconds"] + other_seconds + time.perf_counter() - judging
    machine = hardware()
    record = {
        "name": entry.name,
        "run": run_dir.name,
        "warm": warm,
        **({"from_pretext": entry.base_model} if from_pretext else {}),
        "steps": result["steps"],
        "wall_seconds": round(wall, 1),
        **({"calibrated_threshold": threshold} if threshold is not None else {}),
        **({k: chosen[k] for k in ("border", "polarity_confidence")} if chosen else {}),
        **({"note": note} if note else {}),
    }
    record["test"] = result["test"]
    curve = run_dir / "loss_curve.png"
    if curve.is_file():  # where a run plateaus, for every run of the log
        CURVES_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(curve, CURVES_DIR / f"{run_dir.name}.png")
        record["curve"] = f"{CURVES_DIR.name}/{run_dir.name}.png"
    if challenger:
        shipped = held_out(shipped_folder, entry, corpus)
        record["shipped_test"] = shipped
        better = beats(task, result["test"], shipped)
        record["kept"] = bool(better)
        _log_run(record)
        if not better:
            return {"name": entry.name, "kept": False, "test": result["test"], "shipped_test": shipped}
    else:
        _log_run(record)
    model = load(run_dir / "model", verify=False)
    model.emzoo_cfg.pop("source", None)
    pixel_range, modalities = subset_pixel_range(corpus, recipe.subset)
    dataset = f"emzoo corpus v{dict(recipe.corpus)['version']} {recipe.subset}"
    n_params = sum(p.numel() for p in model.parameters())
    metrics = [
        {"name": k, "value": v, "dataset": f"{dataset} (held-out test split)", "split": "test"}
        for k, v in result["test"].items()
    ]
    save_pretrained(
        model,
        out / entry.name,
        task=entry.task,
        weights_dtype="float16" if n_params > FLOAT16_ABOVE else "float32",
        zoo_name=entry.name,
        recipe=recipe.name,
        base_model=entry.base_model,
        metrics=metrics,
        metrics_source="emzoo zoo build (held-out corpus test split, other seeds than training)",
        pixel_size_nm=pixel_range,
        modality=modalities,
        particle_px=particle_px_range(corpus, recipe.subset, recipe.image_size) if task.segmentation else None,
        train_cost=_summed_cost(previous_cost, run_dir.name, wall, result["steps"], machine),
        train_summary=(
            (
                f"`emzoo zoo build --warm-start` (run {runs_before + 1}): "
                if warm
                else "`emzoo zoo build --from-pretext`: "
                if from_pretext
                else "`emzoo zoo build`: "
            )
            + f"{result['steps']} steps of batch {recipe.batch_size} at {recipe.image_size}^2 "
            f"(best validation at step {result['best_val'].get('step')}) "
            f"on the corpus' {recipe.subset} folder"
            + (f", from {entry.base_model}" if entry.base_model else "")
            + _schedule(run_dir)
            + (
                f"; decision threshold calibrated on the validation split to p = {threshold:g} (in the head's bias)"
                if threshold not in (None, 0.5)
                else ""
            )
            + f"; {wall / 60:.1f} min on {machine['cpu_cores']} CPU cores"
            + (f" and {machine['gpu']}" if machine["gpu"] else "")
            + "."
        ),
    )
    return {
        "name": entry.name,
        "sha256": sha256_file(out / entry.name / "model.safetensors"),
        "wall_seconds": wall,
        **({"kept": True, "test": result["test"], "shipped_test": record["shipped_test"]} if challenger else {}),
    }


def _schedule(run_dir: Path) -> str:
    """The run's rate and averaging, as its run.json has them (a card names what made the weights)."""
    cfg = json.loads((run_dir / "run.json").read_text())["config"] if (run_dir / "run.json").is_file() else {}
    ema = f", weights averaged over steps (EMA decay {cfg['ema_decay']:g})" if cfg.get("ema_decay") else ""
    return f", Adam lr {cfg['lr']:g} ({cfg['lr_schedule']}){ema}" if cfg else ""


def _summed_cost(previous: dict, run: str, wall: float, steps: int, machine: dict) -> dict:
    """This run added to the runs that made the checkpoint before (a first build has none)."""
    runs = list(previous.get("runs", []))
    if previous and not runs:  # built before runs were recorded: its single build is run 1
        runs = [{"run": "build", "steps": previous.get("steps"), "wall_seconds": previous.get("wall_seconds")}]
    runs.append({"run": run, "steps": steps, "wall_seconds": round(wall, 1)})
    return {
        "wall_seconds": round(sum(r["wall_seconds"] or 0 for r in runs), 1),
        "steps": sum(r["steps"] or 0 for r in runs),
        "runs": runs,
        **machine,
    }


def _pin(name: str, sha256: str) -> None:
    pins = pinned_sha256()
    pins[name] = sha256
    atomic_write_text(PINS_FILE, json.dumps(dict(sorted(pins.items())), indent=1) + "\n")


def is_built(entry: ZooEntry, out: Path = SHIPPED_DIR) -> bool:
    pins = pinned_sha256()
    weights = out / entry.name / "model.safetensors"
    return entry.name in pins and weights.is_file() and sha256_file(weights) == pins[entry.name]


def refresh_config(entry: ZooEntry, out: Path = SHIPPED_DIR) -> None:
    """Bring a built folder's config.json provenance (timm tag, Hub id) up to the registry's;
    the weights, and so their pinned sha256, stay as they are."""
    path = out / entry.name / CONFIG_NAME
    config = json.loads(path.read_text())
    fixed = dict(config, pretrained_cfg=provenance_cfg(config.get("pretrained_cfg"), entry.name))
    if fixed != config:
        atomic_write_text(path, json.dumps(fixed, indent=2))


def build(
    names: list[str] | None = None,
    runs: str | Path | None = None,
    progress: bool = True,
    warm_start: bool = False,
    steps: int | None = None,
    from_pretext: bool = False,
    lr: float | None = None,
    keep_spikes: bool = False,
    ema_decay: float | None = None,
    background_prob: float | None = None,
) -> list[dict]:
    """Build the shipped checkpoints (all, or ``names``), skipping the finished ones; with
    ``warm_start``, continue each (built) one from its shipped weights for ``steps`` more; with
    ``from_pretext``, fine-tune each again from its shipped pretext checkpoint."""
    if warm_start and from_pretext:
        raise ConfigError("warm_start and from_pretext: choose one start")
    from tqdm.auto import tqdm

    entries = shipped_entries()
    if names:
        unknown = sorted(set(names) - {e.name for e in entries})
        if unknown:
            raise ModelNotFoundError(f"not shipped checkpoints: {', '.join(unknown)} (see `emzoo zoo build --list`)")
        entries = [e for e in entries if e.name in names]
    runs = Path(runs) if runs else cache_root() / "zoo-build"
    done = []
    for entry in tqdm(entries, desc="zoo build", unit="ckpt", disable=not progress):
        if warm_start or from_pretext:
            if from_pretext and not entry.base_model and not names:
                continue  # the pretext checkpoints themselves: nothing to start from
            variant = dict(progress=progress, lr=lr, keep_spikes=keep_spikes, ema_decay=ema_decay)
            variant["background_prob"] = background_prob
            record = build_one(entry, runs, warm=warm_start, steps=steps, from_pretext=from_pretext, **variant)
            if record.get("kept"):
                _pin(record["name"], record["sha256"])
                refresh_config(entry)
            done.append(record)
            continue
        if is_built(entry):
            refresh_config(entry)
            done.append({"name": entry.name, "skipped": True})
            continue
        record = build_one(entry, runs, progress=progress)
        _pin(record["name"], record["sha256"])
        refresh_config(entry)
        done.append(record)

    write_cards()  # cards/ and each shipped folder's README.md, from the measured configs
    return done
