"""Model cards: Hub metadata the Hub understands plus a body rendered from the registry and
measured results only (a card never states a number nobody measured)."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from torch import nn

from emzoo.tasks import get_task
from emzoo.zoo import PAPER_ID, RECIPES, ZOO, ZooEntry

TEMPLATE = Path(__file__).parents[1] / "templates" / "model_card.md.j2"
SPACE_ID = "emzoo/emzoo-demo"
DATASET_IDS = {
    "pix2pix-cem500k": ["CEM500K"],
    "au-seg": ["Au-nanoparticles-HRTEM"],
    "temimagenet-denoise": ["TEMImageNet"],
    "temimagenet-bg-removal": ["TEMImageNet"],
    "temimagenet-super-res": ["TEMImageNet"],
}
DATASET_CITATIONS = {
    "CEM500K": "Conrad & Narayan, CEM500K, a large-scale heterogeneous unlabeled cellular electron microscopy "
    "image dataset for deep learning, eLife 10:e65894 (2021); EMPIAR-10592",
    "TEMImageNet": "Lin et al., TEMImageNet training library and AtomSegNet deep-learning models for "
    "high-precision atom segmentation, localization, denoising, and deblurring of atomic-resolution images, "
    "Sci. Rep. 11:5386 (2021)",
    "Au-nanoparticles-HRTEM": "Sytwu, Groschner, Scott, Understanding the influence of receptive field and network "
    "complexity in neural network-guided TEM image analysis, Microsc. Microanal. 28:1896 (2022); "
    "Zenodo 10.5281/zenodo.6419024",
}
LIMITATIONS = (
    "Trained on the data named above; images from other modalities, pixel sizes or detectors may need "
    "fine-tuning. Inputs are normalised per image as the config says; feed raw counts, not 8-bit screenshots, "
    "where you can. Outputs are model predictions, not measurements: check them against known structure."
)


def tags_for(arch: str, task: str) -> list[str]:
    family = "hrnet" if "hrnet" in arch else "unet"
    return ["emzoo", "electron-microscopy", "self-supervised", "gan", "pix2pix", family, task]


def card_data(
    arch: str, task: str, recipe: str | None, base_model: str | None, license: str, metrics: list[dict], name: str
) -> ModelCardData:
    eval_results = [
        EvalResult(
            task_type=get_task(task).pipeline_tag,
            dataset_type=m.get("dataset_type", m["dataset"]),
            dataset_name=m["dataset"],
            dataset_split=m.get("split", "test"),
            metric_type=m["name"].lower(),
            metric_name=m["name"],
            metric_value=float(m["value"]),
        )
        for m in metrics
    ]
    return ModelCardData(
        library_name="emzoo",
        pipeline_tag=get_task(task).pipeline_tag,
        tags=tags_for(arch, task),
        license=license,
        datasets=DATASET_IDS.get(recipe or "", None),
        base_model=base_model,
        model_name=name,
        eval_results=eval_results or None,
    )


def _recipe_text(recipe_name: str | None, meta: dict) -> str:
    if meta.get("train_summary"):
        return meta["train_summary"]
    recipe = RECIPES.get(recipe_name or "")
    if recipe is None:
        return "Trained with emzoo; the run directory holds the resolved config."
    text = (
        f"Recipe `{recipe.name}` (the paper's): data {recipe.data}; loss {recipe.loss}; Adam lr {recipe.lr}, "
        f"betas {recipe.betas}; batch {recipe.batch_size}; {recipe.epochs} epochs; {recipe.image_size}^2 crops."
    )
    if recipe.corruption:
        text += f" Corruptions (emzoo defaults; the paper does not state strengths): {recipe.corruption}."
    return text + f" Reproduce: `emzoo pretrain --recipe NAME` / `emzoo finetune --recipe NAME` ({PAPER_ID})."


def _cost_text(cost: dict | None) -> str | None:
    if not cost:
        return None
    where = f"{cost.get('cpu_cores')} CPU cores ({cost.get('cpu')})"
    if cost.get("gpu"):
        where += f" and {cost['gpu']}"
    runs = len(cost.get("runs", [])) or 1
    text = f"{cost['wall_seconds'] / 60:.1f} min for {cost.get('steps')} steps on {where}"
    return text + (f", summed over {runs} runs (warm starts from the previous weights)" if runs > 1 else "")


def render_card(config: dict, model: nn.Module | None = None, entry: ZooEntry | None = None) -> str:
    """The README.md of a checkpoint folder, from its config (and zoo entry, when it has one)."""
    meta = config.get("emzoo", {})
    entry = entry or ZOO.get(meta.get("zoo_name", ""))
    arch = config["architecture"]
    task = meta.get("task") or (entry.task if entry else "pretext")
    recipe = meta.get("recipe") or (entry.recipe if entry else None)
    if recipe in ZOO:  # a run started from a zoo entry's recipe records the entry's name
        recipe = ZOO[recipe].recipe
    name = meta.get("zoo_name") or (entry.name if entry else arch)
    base_model = meta.get("base_model") or (entry.base_model if entry else None)
    metrics = meta.get("metrics", [])
    data = card_data(arch, task, recipe, base_model, entry.license if entry else "mit", metrics, name)
    n_params = sum(p.numel() for p in model.parameters()) if model is not None else meta.get("n_params")
    if entry is not None and (entry.sha256 or entry.built_by_zoo):
        weights_status = (
            f'ship with emzoo (`emzoo.load("{entry.name}")` works offline; sha256 of `model.safetensors` '
            f"pinned in the registry); Hub id `{entry.hub_id}@{entry.revision}`"
        )
    elif entry is not None and model is None:
        weights_status = (
            f"published as `{entry.hub_id}@{entry.revision}`"
            if entry.published
            else f"not published yet; reserved Hub id `{entry.hub_id}`. Train them with the recipe below."
        )
    else:
        weights_status = "`model.safetensors` in this folder (with `test_pair.safetensors` to verify it)"
    pixel = meta.get("pixel_size_nm") or (entry.pixel_size_nm if entry else None)
    datasets = DATASET_IDS.get(recipe or "", [])
    card = ModelCard.from_template(
        data,
        template_path=str(TEMPLATE),
        title=f"emzoo: {name}",
        summary=get_task(task).summary,
        arch=arch,
        n_params=f"{n_params:,}" if n_params else "unknown",
        receptive_field=getattr(model, "receptive_field", None),
        task=task,
        in_chans=config.get("model_args", {}).get("in_chans", 1),
        modality=meta.get("modality") or (entry.modality if entry else "EM"),
        pixel_size=f"{pixel[0]}-{pixel[1]} nm" if pixel else None,
        particle_px=meta.get("particle_px"),
        border=meta.get("border"),
        polarity_confidence=meta.get("polarity_confidence"),
        level=meta.get("level", "off"),
        peak=meta.get("peak"),
        normalization=meta.get("normalization", "standardize"),
        remove_outliers=meta.get("remove_outliers", False),
        despike_prob=meta.get("despike_prob", 0.0),
        detector_noise_prob=meta.get("detector_noise_prob", 0.0),
        background_prob=meta.get("background_prob", 0.0),
        zoom_window_prob=meta.get("zoom_window_prob", 0.0),
        output=get_task(task).output_text,
        base_model=base_model,
        weights_status=weights_status,
        load_name=entry.name if entry and (model is None or entry.built_by_zoo) else "path/to/this/folder",
        train_cost=_cost_text(meta.get("train_cost")),
        recipe_text=_recipe_text(recipe, meta),
        metrics=metrics,
        metrics_source=meta.get("metrics_source", "see the run directory"),
        limitations=LIMITATIONS,
        dataset_citations=[DATASET_CITATIONS[d] for d in datasets if d in DATASET_CITATIONS],
        space_id=SPACE_ID,
    )
    return str(card)
