"""The Predict and Adapt docks. They hold no model logic: a model is loaded with emzoo.load, run
with emzoo's Predictor, measured with analyze_particles and adapted with emzoo.adapt, in a worker
thread (the viewer never freezes); the widgets only turn layers into arrays and results into
layers that keep the input's scale, translate and units."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from napari.layers import Image
from napari.qt.threading import create_worker
from qtpy.QtCore import QObject, QTimer, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from emzoo.adaptation import adapt
from emzoo.errors import EmzooError
from emzoo.hub import available_models, choice_label, load
from emzoo.inference.particles import analyze_particles, write_csv
from emzoo.inference.predictor import Predictor, model_task
from emzoo.napari_plugin._io import pixel_size_of
from emzoo.zoo import ZOO


class Cancelled(Exception):
    """Raised between two forward passes when the user presses Cancel."""


class _UserModels(QObject):
    """Model folders the user added (or adapted) in this session, shared by both docks."""

    changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.folders: list[str] = []

    def add(self, folder: str) -> None:
        if folder not in self.folders:
            self.folders.append(folder)
            self.changed.emit()


USER_MODELS = _UserModels()


def _image_layers(viewer) -> list[Image]:
    return [layer for layer in viewer.layers if isinstance(layer, Image)]


def _layer_meta(layer) -> dict[str, Any]:
    return {"scale": tuple(layer.scale), "units": tuple(str(u) for u in layer.units)}


def output_geometry(layer, zoom: int) -> dict[str, Any]:
    """scale/translate/units of a result with ``zoom`` output pixels per input pixel: a 2x
    result's pixel centres sit a quarter input pixel either side of the input's."""
    scale = np.array(layer.scale, float)
    translate = np.array(layer.translate, float)
    if zoom != 1:
        scale[-2:] /= zoom
        translate[-2:] -= scale[-2:] * (zoom - 1) / 2
    return {"scale": tuple(scale), "translate": tuple(translate), "units": tuple(layer.units)}


def run_model(model, data: np.ndarray, pixel_size: float | None, scale: float | str, on_batch=None) -> dict:
    """What the Predict dock computes, off the GUI thread: every frame through one prepared
    Predictor; for segmentation, the instance labels and the particle table (per frame)."""
    predictor = Predictor(model, scale=scale, on_batch=on_batch)
    frames = data if data.ndim == 3 else data[None]
    outputs, choices = [], []
    for frame in frames:
        outputs.append(predictor(np.asarray(frame, np.float32), pixel_size))
        choices.append(predictor.last_scale)
    result: dict[str, Any] = {"task": model_task(model), "choices": choices, "pixel_size_nm": pixel_size}
    if result["task"].segmentation:
        reports = [analyze_particles(p, pixel_size) for p in outputs]
        rows = [dict(row, frame=i) for i, rep in enumerate(reports) for row in rep.rows]
        labels = np.stack([rep.labels for rep in reports]).astype(np.int32)
        offsets = np.cumsum([0] + [rep.labels.max() for rep in reports[:-1]])
        for i in range(1, len(reports)):  # unique ids over the stack, as napari's features expect
            labels[i][labels[i] > 0] += offsets[i]
        for row in rows:
            row["index"] = int(row["particle"] + offsets[row["frame"]])
        result.update(labels=labels if data.ndim == 3 else labels[0], rows=rows, reports=reports)
    else:
        stacked = np.stack(outputs)
        result["image"] = stacked if data.ndim == 3 else stacked[0]
    return result


class PredictWidget(QWidget):
    """Pick a layer and a model (grouped by task), check the pixel size, run; the result comes
    back as a layer over the input (restoration: an image; segmentation: instance labels with the
    particle table as the layer's features)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._models: dict[str, Any] = {}
        self._cancel = threading.Event()
        self.worker = None
        self.last_result: dict | None = None
        self.last_labels = None

        self.layer_box = QComboBox()
        self.model_box = QComboBox()
        self.add_folder = QPushButton("Add model folder…")
        self.pixel_size = QLineEdit()
        self.pixel_size.setPlaceholderText("unknown")
        self.scale = QLineEdit("auto")
        self.run_button = QPushButton("Run")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.save_csv = QPushButton("Save particle table as CSV…")
        self.save_csv.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Layer", self.layer_box)
        form.addRow("Model", self.model_box)
        form.addRow("", self.add_folder)
        form.addRow("Pixel size (nm)", self.pixel_size)
        form.addRow("Working scale", self.scale)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.save_csv)
        layout.addStretch()

        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._batches, self._running_text = 0, ""
        self.refresh_layers()
        self.refresh_models()
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.layer_box.currentIndexChanged.connect(self._prefill_pixel_size)
        USER_MODELS.changed.connect(self.refresh_models)
        self.add_folder.clicked.connect(self._choose_folder)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_csv.clicked.connect(self._choose_csv)
        self._prefill_pixel_size()

    # -------------------------------------------------------------- choices
    def refresh_layers(self, *_: Any) -> None:
        current = self.layer_box.currentText()
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems([layer.name for layer in _image_layers(self.viewer)])
        index = self.layer_box.findText(current)
        self.layer_box.setCurrentIndex(max(index, 0) if index >= 0 else self.layer_box.count() - 1)
        self.layer_box.blockSignals(False)
        self._prefill_pixel_size()

    def refresh_models(self) -> None:
        current = self.model_box.currentData()
        self.model_box.clear()
        for folder in USER_MODELS.folders:
            self.model_box.addItem(f"folder · {Path(folder).name}", folder)
        for name in available_models():
            self.model_box.addItem(choice_label(name), name)
        index = self.model_box.findData(current)
        if index >= 0:
            self.model_box.setCurrentIndex(index)

    def select_model(self, name_or_folder: str) -> None:
        index = self.model_box.findData(str(name_or_folder))
        if index < 0:
            USER_MODELS.add(str(name_or_folder))
            index = self.model_box.findData(str(name_or_folder))
        self.model_box.setCurrentIndex(index)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A model folder (emzoo.save_pretrained, emzoo adapt)")
        if folder:
            self.select_model(folder)

    def layer(self) -> Image | None:
        name = self.layer_box.currentText()
        return next((layer for layer in _image_layers(self.viewer) if layer.name == name), None)

    def _prefill_pixel_size(self, *_: Any) -> None:
        layer = self.layer()
        pixel = pixel_size_of(_layer_meta(layer)) if layer is not None else None
        self.pixel_size.setText(f"{pixel:.6g}" if pixel else "")

    def _settings(self) -> tuple[float | None, float | str]:
        text = self.pixel_size.text().strip()
        scale_text = self.scale.text().strip().lower() or "auto"
        try:
            pixel = float(text) if text else None
            scale: float | str = scale_text if scale_text == "auto" else float(scale_text)
        except ValueError as e:
            raise EmzooError(f"pixel size {text!r} / scale {scale_text!r}: expected numbers (or empty / auto)") from e
        return pixel, scale

    def model(self):
        key = self.model_box.currentData()
        if key is None:
            raise EmzooError("choose a model first")
        if key not in self._models:
            self._models[key] = load(key)
        return self._models[key]

    # -------------------------------------------------------------- running
    def run(self) -> None:
        """Start a prediction in a worker thread; results arrive in :meth:`_show`."""
        layer = self.layer()
        try:
            if layer is None:
                raise EmzooError("open an image first (File > Open, or File > Open Sample > emzoo)")
            pixel, scale = self._settings()
            model = self.model()
        except EmzooError as e:
            self.status.setText(f"error: {e}")
            return
        self._cancel.clear()
        self._batches = 0

        def on_batch() -> None:  # in the worker thread: counts, or stops the run
            if self._cancel.is_set():
                raise Cancelled
            self._batches += 1

        data = np.asarray(layer.data)
        self.worker = create_worker(run_model, model, data, pixel, scale, on_batch, _ignore_errors=True)
        self.worker.returned.connect(lambda result: self._show(layer, result))
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._idle)
        self.progress.setRange(0, 0)  # busy: the number of passes depends on the working scale chosen
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._running_text = f"running {self.model_box.currentText()} on {layer.name}"
        self.status.setText(f"{self._running_text}…")
        self._timer.start(250)
        self.worker.start()

    def _tick(self) -> None:  # on the GUI thread: how far the worker got
        if not self._cancel.is_set():
            self.status.setText(f"{self._running_text}: {self._batches} forward passes")

    def cancel(self) -> None:
        self._cancel.set()
        self.status.setText("cancelling after the current pass…")

    def _idle(self) -> None:
        self._timer.stop()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _failed(self, error: Exception) -> None:
        self._timer.stop()
        self.status.setText("cancelled" if isinstance(error, Cancelled) else f"error: {error}")

    def _show(self, layer, result: dict) -> None:
        self._timer.stop()
        self.last_result = result
        task = result["task"]
        choice = result["choices"][0]
        model_name = Path(str(self.model_box.currentData())).name
        name = f"{layer.name} [{model_name}]"
        if task.segmentation:
            import pandas as pd

            features = pd.DataFrame(result["rows"]) if result["rows"] else None
            self.last_labels = self.viewer.add_labels(
                result["labels"], name=name, features=features, **output_geometry(layer, 1)
            )
            count = len(result["rows"])
            self.save_csv.setEnabled(True)
            self.status.setText(f"{count} particles; {choice.describe()}")
        else:
            self.viewer.add_image(
                result["image"], name=name, **output_geometry(layer, task.output_scale), colormap="gray"
            )
            self.status.setText(choice.describe())

    def save_particles(self, path: str | Path) -> Path:
        """The particle table of the last segmentation, as CSV (one row per particle)."""
        if not self.last_result or "rows" not in self.last_result:
            raise EmzooError("no segmentation result yet; run a segmentation model first")
        rows = [{k: v for k, v in row.items() if k != "index"} for row in self.last_result["rows"]]
        if self.last_result["labels"].ndim == 2:
            rows = [{k: v for k, v in row.items() if k != "frame"} for row in rows]
        return write_csv(Path(path), rows, self.last_result["pixel_size_nm"])

    def _choose_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Particle table", "particles.csv", "CSV (*.csv)")
        if path:
            self.status.setText(f"wrote {self.save_particles(path)}")


class AdaptWidget(QWidget):
    """Fine-tune a shipped denoiser on the selected image layers for a few minutes (emzoo adapt:
    no clean images needed); the adapted model joins the Predict dock's list."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.adapted: str | None = None
        self.layers = QListWidget()
        self.layers.setSelectionMode(QAbstractItemView.MultiSelection)
        self.model_box = QComboBox()
        for name in available_models():
            if ZOO[name].task == "denoise":
                self.model_box.addItem(name, name)
        self.minutes = QDoubleSpinBox()
        self.minutes.setRange(0.05, 600)
        self.minutes.setValue(3.0)
        self.run_button = QPushButton("Adapt")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Images", self.layers)
        form.addRow("Start from", self.model_box)
        form.addRow("Minutes", self.minutes)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.run_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addStretch()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self.refresh_layers()
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.run_button.clicked.connect(self.run)

    def refresh_layers(self, *_: Any) -> None:
        self.layers.clear()
        self.layers.addItems([layer.name for layer in _image_layers(self.viewer)])

    def chosen_layers(self) -> list[Image]:
        names = {item.text() for item in self.layers.selectedItems()}
        layers = _image_layers(self.viewer)
        return [layer for layer in layers if layer.name in names] or layers

    def run(self, steps: int | None = None) -> None:
        """Adapt in a worker thread; ``steps`` (tests) instead of the minutes budget."""
        layers = self.chosen_layers()
        if not layers:
            self.status.setText("error: open the micrographs to adapt to first")
            return
        pixel = next((p for p in (pixel_size_of(_layer_meta(layer)) for layer in layers) if p), None)
        images = [np.asarray(layer.data, np.float32) for layer in layers]
        minutes = None if steps else float(self.minutes.value())
        self.worker = create_worker(
            adapt,
            self.model_box.currentData(),
            images,
            minutes=minutes,
            steps=steps,
            pixel_size=pixel,
            progress=False,
            _ignore_errors=True,  # shown in the dock's status line instead
        )
        self.worker.returned.connect(self._done)
        self.worker.errored.connect(lambda e: self.status.setText(f"error: {e}"))
        self.worker.finished.connect(self._stop_timer)
        self._started, self._budget = time.monotonic(), (minutes or 0) * 60
        self.progress.setValue(0)
        self._timer.start(500)
        self.run_button.setEnabled(False)
        self.status.setText(f"adapting {self.model_box.currentText()} to {len(images)} image(s)…")
        self.worker.start()

    def _tick(self) -> None:
        if self._budget:
            self.progress.setValue(min(99, int(100 * (time.monotonic() - self._started) / self._budget)))

    def _stop_timer(self) -> None:
        self._timer.stop()
        self.run_button.setEnabled(True)

    def _done(self, model) -> None:
        folder = str(Path(model.emzoo_cfg["source"]))
        self.adapted = folder
        USER_MODELS.add(folder)
        self.progress.setValue(100)
        self.status.setText(f"adapted model: {folder} (now in the Predict dock's list)")
