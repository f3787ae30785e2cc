"""The emzoo Gradio app: every reachable model, tried in the browser or by ``gradio_client``.

``spaces/demo/app.py`` (the Hugging Face Space) and ``emzoo demo`` both build it from here.
The scriptable endpoint ``/predict`` takes (model name or folder, image file) and returns the
full-resolution result as a float TIFF with the pixel size kept.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from emzoo import io
from emzoo.errors import ConfigError, DataError, EmzooError, ModelNotFoundError
from emzoo.hub import available_models, choice_label, load
from emzoo.inference.particles import analyze_particles
from emzoo.inference.predictor import Predictor, model_task, output_pixel_size
from emzoo.io import to_uint8

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
MAX_UPLOAD_MB = 512
MAX_PIXELS = 16384 * 16384
# Debian's chromium, headless, on a machine whose network is closed (tests and screenshots)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def reachable_models(extra: list[str] | None = None) -> tuple[list[str], dict[str, object]]:
    """The given folders / hub ids first (each loaded now, so a typo fails when the app starts,
    not when a visitor picks it; the loaded models are returned for the cache), then the zoo's
    models whose weights are here."""
    given = [str(p) for p in extra or []]
    loaded = {name: load(name) for name in given}
    return given + [n for n in available_models() if n not in given], loaded


def launch(demo, **kwargs):
    """Serve the app with its upload limit enforced by Gradio itself (a larger file is refused
    before it reaches the disk), as `emzoo demo` and the Space both do."""
    return demo.launch(max_file_size=f"{MAX_UPLOAD_MB}mb", **kwargs)


def check_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port {port!r}: expected a TCP port from 1 to 65535")
    return port


class ModelCache:
    """The models this Space was started with, loaded on first use and kept as prepared predictors
    (engine folded once, per tiling choice); at most ``size`` models stay in memory. Any other name
    (a server path, say) is refused without touching the file system."""

    def __init__(self, allowed: list[str] | None = None, size: int = 4, loaded: dict | None = None) -> None:
        self.allowed = list(allowed) if allowed is not None else None
        self.size = size
        self._models: dict[str, object] = dict(list((loaded or {}).items())[-size:])  # loaded at start
        self._predictors: dict[tuple, Predictor] = {}

    def get(self, name: str):
        if self.allowed is not None and name not in self.allowed:
            served = ", ".join(Path(n).name if Path(n).is_absolute() else n for n in self.allowed)
            raise ModelNotFoundError(f"unknown model {Path(name).name[:80]!r}; this Space serves: {served}")
        if name not in self._models:
            while len(self._models) >= self.size:
                gone = next(iter(self._models))
                self._models.pop(gone)
                self._predictors = {k: v for k, v in self._predictors.items() if k[0] != gone}
            self._models[name] = load(name)
        self._models[name] = self._models.pop(name)  # most recently used last
        return self._models[name]

    def predictor(self, name: str, tile: int | None, overlap: int | None) -> Predictor:
        model = self.get(name)
        key = (name, tile, overlap)
        if key not in self._predictors:
            self._predictors[key] = Predictor(model, tile, overlap)
        return self._predictors[key]


class ResultFolder:
    """One temporary folder per Space for result files, keeping only the newest ``keep``."""

    def __init__(self, keep: int = 16) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="emzoo-demo-"))
        self.keep = keep

    def path(self, name: str) -> Path:
        old = sorted(self.root.glob("*/"), key=lambda p: p.stat().st_mtime)
        for folder in old[: max(0, len(old) - self.keep + 1)]:
            shutil.rmtree(folder, ignore_errors=True)
        return Path(tempfile.mkdtemp(dir=self.root)) / name


def describe(model) -> str:
    cfg = getattr(model, "emzoo_cfg", {}) or {}
    lines = [f"**{type(model).__name__}** · task: `{cfg.get('task', 'pretext')}`"]
    if cfg.get("base_model"):
        lines.append(f"fine-tuned from `{cfg['base_model']}`")
    for m in cfg.get("metrics", []):
        lines.append(f"{m['name']} = {m['value']:.4f} ({m['dataset']}, {m['split']})")
    if cfg.get("train_summary"):
        lines.append(cfg["train_summary"])
    return "  \n".join(lines)


def read_upload(path: str | Path) -> tuple[np.ndarray, dict]:
    """An uploaded micrograph, checked for what the app cannot handle."""
    path = Path(path)
    size_mb = path.stat().st_size / 1e6
    if size_mb > MAX_UPLOAD_MB:
        raise DataError(f"{path.name}: {size_mb:.0f} MB; the demo takes files up to {MAX_UPLOAD_MB} MB")
    try:
        image, meta = io.read(path, frames="each")
    except EmzooError as e:  # the message names the upload, never the server's temporary path
        raise DataError(str(e).replace(str(path), path.name)) from None
    if image.ndim == 3:
        raise DataError(
            f"{path.name}: a stack of {image.shape[0]} frames; the demo takes one image "
            "(save one frame, or run `emzoo predict --frames each` on the stack)"
        )
    if image.size > MAX_PIXELS:
        raise DataError(f"{path.name}: {image.shape[0]}x{image.shape[1]} pixels; the demo takes up to 16384^2")
    io.check_image(image, path.name)
    return image, meta


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB preview: the micrograph in gray with particles tinted orange."""
    gray = to_uint8(image).astype(np.float32)
    rgb = np.stack([gray] * 3, axis=-1)
    tint = np.array([255, 140, 0], np.float32)
    rgb[mask > 0] = 0.55 * rgb[mask > 0] + 0.45 * tint
    return rgb.astype(np.uint8)


def run_model(
    models: ModelCache,
    name: str,
    path: str,
    tile: int | None,
    overlap: int | None,
    progress: bool = False,
    results: ResultFolder | None = None,
    scale: float | str = "auto",
):
    """Predict and write the full-resolution TIFF; returns (model, input, result, tiff path, meta),
    the meta holding the working scale chosen (``scale``)."""
    if not name:
        raise ConfigError("choose a model first")
    if not path:
        raise ConfigError("upload an image or pick an example first")
    image, meta = read_upload(path)
    predictor = models.predictor(name, tile or None, overlap or None)
    predictor.progress = progress
    result = predictor(image, meta.get("pixel_size_nm"), scale=scale)
    meta = dict(meta, scale=predictor.last_scale)
    model = predictor.model
    pixel = output_pixel_size(model_task(model), meta.get("pixel_size_nm"))
    name_out = f"{Path(path).stem}_{model_task(model).name}.tif"
    out = results.path(name_out) if results is not None else Path(tempfile.mkdtemp(prefix="emzoo-demo-")) / name_out
    io.write(out, result, {"pixel_size_nm": pixel})
    return model, image, result, out, meta


def build_demo(extra_models: list[str] | None = None, default: str | None = None):
    import gradio as gr

    names, loaded = reachable_models(extra_models)
    models = ModelCache(allowed=names, loaded=loaded)
    results = ResultFolder()
    choices = [(choice_label(n), n) for n in names]
    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.tif"))

    def on_model(name: str) -> str:
        if not name:
            return "No model chosen."
        try:
            return describe(models.get(name))
        except EmzooError as e:
            raise gr.Error(str(e)) from None

    def on_run(name, upload, example, tile, overlap, scale=0, progress=gr.Progress(track_tqdm=True)):
        path = upload or example
        progress(0.1, desc="reading and predicting")  # then per batch of tiles: predict's tqdm is tracked
        try:
            zoom = float(scale) if scale else "auto"
            model, image, result, tiff, meta = run_model(
                models, name, path, int(tile or 0), int(overlap or 0), progress=True, results=results, scale=zoom
            )
        except EmzooError as e:
            raise gr.Error(str(e)) from None
        progress(0.9, desc="rendering")
        task = model_task(model)
        if task.segmentation:
            report = analyze_particles(result, meta.get("pixel_size_nm"))
            mask = report.labels > 0
            stats = report.summary
            summary = f"{stats['count']} particles · area fraction {stats['area_fraction']:.3f}"
            if stats.get("mean_diameter_nm"):
                summary += f" · mean diameter {stats['mean_diameter_nm']:.2f} nm"
                summary += f" (median {stats['median_diameter_nm']:.2f} nm)"
            seg_view = overlay(image, mask)
            before_after = (np.repeat(to_uint8(image)[..., None], 3, axis=-1), seg_view)  # image | particles
            mask_view = (mask * 255).astype(np.uint8)
        else:
            before = to_uint8(image)
            if task.output_scale > 1:
                before = np.kron(before, np.ones((task.output_scale, task.output_scale), np.uint8))
            before_after = (before, to_uint8(result))
            summary = f"{task.name}: {image.shape[0]}x{image.shape[1]} -> {result.shape[0]}x{result.shape[1]}"
            seg_view = mask_view = None
        summary += f" · {meta['scale'].describe()}"
        return before_after, seg_view, mask_view, summary, str(tiff)

    def api_predict(model_name: str, image_file: str) -> str:
        try:
            return str(run_model(models, model_name, image_file, None, None, results=results)[3])
        except EmzooError as e:
            raise gr.Error(str(e)) from None

    # Gradio's cache of uploads and results: swept every 10 min of files older than 30 min, and
    # emptied when the app stops
    with gr.Blocks(title="emzoo: EM image models", delete_cache=(600, 1800)) as demo:
        gr.Markdown(
            "# emzoo\nModels for electron micrographs: self-supervised GAN pretraining (Kazimi et al., CVPRW 2024) "
            "fine-tuned for nanoparticle segmentation, denoising, background removal and 2x super-resolution."
        )
        with gr.Row():
            with gr.Column(scale=1):
                model_box = gr.Dropdown(
                    choices=choices,
                    value=default if default in names else (names[0] if names else None),
                    label="Model",
                    allow_custom_value=True,
                )
                about = gr.Markdown()
                upload = gr.File(label="Micrograph (PNG/TIFF/MRC/DM3/DM4/EMD/SER/NPY)", type="filepath")
                example = gr.Dropdown(choices=examples, value=None, label="or a bundled example")
                with gr.Accordion("Scale and tiling", open=False):
                    scale = gr.Number(
                        value=0,
                        label="working scale (0: auto, the model picks where particles are the size it knows; "
                        "0.5: half resolution)",
                    )
                    tile = gr.Number(value=0, label="tile size (0: from the receptive field)", precision=0)
                    overlap = gr.Number(value=0, label="overlap (0: from the receptive field)", precision=0)
                run = gr.Button("Run", variant="primary", elem_id="run-button")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary")
                slider = gr.ImageSlider(label="before / after", type="numpy", format="png", elem_id="result-slider")
                with gr.Row():
                    seg_overlay = gr.Image(label="particles", type="numpy", format="png", elem_id="result-overlay")
                    seg_mask = gr.Image(label="mask", type="numpy", image_mode="L", format="png")
                result_file = gr.File(label="full-resolution result (float TIFF, pixel size kept)")
        model_box.change(on_model, model_box, about)
        demo.load(on_model, model_box, about)
        run.click(
            on_run,
            [model_box, upload, example, tile, overlap, scale],
            [slider, seg_overlay, seg_mask, summary, result_file],
            api_name="run",
        )
        hidden_model = gr.Textbox(visible=False)
        hidden_file = gr.File(visible=False, type="filepath")
        hidden_out = gr.File(visible=False)
        hidden_model.submit(api_predict, [hidden_model, hidden_file], hidden_out, api_name="predict")
    demo.queue(default_concurrency_limit=2, max_size=32)
    return demo
