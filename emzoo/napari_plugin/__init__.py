"""emzoo in napari (``pip install 'emzoo[napari]'``; Plugins > emzoo): a reader that keeps the
pixel size of DM3/DM4/EMD/SER/MRC/TIFF files, Predict and Adapt docks over the Python API,
TIFF writers that keep the pixel size, and the bundled example micrographs. The manifest is
``napari.yaml``, registered under the ``napari.manifest`` entry point."""
