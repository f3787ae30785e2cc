"""A simulated materials-EM corpus: broad, labelled, deterministic per sample, resumable.

Each sample is one scene imaged once, then recorded by a randomised detector:

- ``hrtem``: abTEM multislice (200/300 kV plane wave; CTF with defocus, Cs, objective aperture,
  focal spread and angular spread) of Au/Pt/Pd/Ag/Cu nanoparticles (spheres, octahedra, truncated
  octahedra, cuboctahedra, cubes, twinned particles, Ino decahedra, icosahedra; zone-axis or random
  orientations; isolated, touching, overlapping) on amorphous carbon, SiN or SiO2 of varied
  thickness, or thin crystals / 2-D materials (no particles); drift and vibration blur.
- ``haadf`` / ``adf`` / ``abf``: STEM in the incoherent approximation (projected atoms weighted
  by Z^n, convolved with a probe with tails; ABF as dark columns of a Z^0.6 image), ``bf``: STEM
  bright field by reciprocity with the HRTEM pipeline. Crystals of many structures and zone axes,
  and nanoparticles on supports. Scan line jitter, drift distortion and flyback artefacts.
- Acquisition: dose 10-5,000 e/A^2 (Poisson), read noise, detector MTF (TEM cameras), gain and
  offset, 8/16/32-bit quantisation with saturation, hot pixels, X-ray spikes, smooth background,
  contrast inversion; pixel sizes from 0.005 to 0.2 nm/px depending on modality and content.

Labels: semantic and instance particle masks, the noise-free image, the background-free image and
the 2x background-free image, all in the recorded image's units, plus every parameter and the
pixel size per sample (in the TIFF and in ``index.jsonl``). Layouts (read by the loaders as they are):

    pretext/{split}/{modality}/NAME.tif                         CEM500K's nested folders
    restore/{split}/image|noNoise|noBackgroundnoNoise|noNoiseNoBackgroundSuperresolution/NAME.tif
                                                                TEMImageNet's folders
    segment/{tem|stem}/{split}/images|masks|instances/NAME.*   images/ + masks/
    index.jsonl, corpus.json

Every sample draws from its own generator seeded by (seed, split, index), so a sample is the same
bytes whatever the order or the number of workers, the test split never shares a stream with
training, and an interrupted build resumes at the first missing sample.
"""

from emzoo.data.corpus.build import (  # noqa: F401
    build_corpus,
    default_corpus,
    records,
    seen_diameters_nm,
    subset_pixel_range,
    subset_records,
)
from emzoo.data.corpus.constants import (  # noqa: F401
    CORPUS_VERSION,
    MODALITIES,
    MODALITY_CYCLE,
    SEGMENT_GROUP,
    SPLITS,
    SUBSETS,
)
from emzoo.data.corpus.sample import simulate_sample  # noqa: F401
