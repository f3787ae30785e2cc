"""The README's napari screenshot, taken from a real viewer: the bundled HAADF example opened
through emzoo's reader (pixel size from the file), the Predict dock run with the shipped U-Net
4/424 HAADF model, the particles as a labels layer over the image.

    python scripts/napari_screenshot.py            # on a desktop
    xvfb-run -a python scripts/napari_screenshot.py  # headless
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "napari.png"))
    parser.add_argument("--model", default="unet-4-424-emsim-haadf-seg")
    args = parser.parse_args()

    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1400, 860)
    viewer.open(str(ROOT / "emzoo" / "examples" / "haadf_nanoparticles.tif"), plugin="emzoo")
    _, widget = viewer.window.add_plugin_dock_widget("emzoo", "Predict")
    widget.select_model(args.model)
    widget.run()
    while widget.last_labels is None:  # the worker thread; the viewer keeps drawing meanwhile
        QApplication.processEvents()
        time.sleep(0.05)
        if widget.run_button.isEnabled() and widget.last_labels is None and widget.worker is not None:
            if not widget.worker.is_running:
                raise SystemExit(f"prediction failed: {widget.status.text()}")
    widget.last_labels.opacity = 0.45
    viewer.scale_bar.visible = True
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(args.out, canvas_only=False)
    print(f"wrote {args.out}: {widget.status.text()}")
    viewer.close()


if __name__ == "__main__":
    main()
