"""What the corpus holds: modalities, metals, supports, splits, the version."""

CORPUS_VERSION = 2  # the default; 2: absorption (amplitude contrast) in HRTEM and BF-STEM
SEGMENT_CORPUS_VERSION = 3  # 3: particles of 1-60 nm (to larger than the field), on crystals too, cut by the border
MODALITY_CYCLE = ("hrtem", "haadf", "hrtem", "adf", "hrtem", "haadf", "abf", "bf")
MODALITIES = tuple(dict.fromkeys(MODALITY_CYCLE))
SPLITS = {"train": 0, "val": 1, "test": 2}
SEGMENT_GROUP = {"hrtem": "tem", "haadf": "stem", "adf": "stem"}  # where particles have one contrast
# the corpus' parts, one dataset layout each (``data="corpus:PART"``; "" is the whole corpus)
SUBSETS = ("", "pretext", "restore", *sorted({f"segment/{g}" for g in SEGMENT_GROUP.values()}))
RESTORE_FOLDERS = ("image", "noNoise", "noBackgroundnoNoise", "noNoiseNoBackgroundSuperresolution")
METALS = {"Au": 4.08, "Pt": 3.92, "Pd": 3.89, "Ag": 4.09, "Cu": 3.61}
SUPPORTS = {"a-C": ((6,), 0.10), "a-SiN": ((14, 7), 0.09), "a-SiO2": ((14, 8, 8), 0.066)}  # Z, atoms/A^3
PARTICLE_SHAPES = (
    "sphere",
    "octahedron",
    "truncated-octahedron",
    "cuboctahedron",
    "cube",
    "twinned",
    "decahedron",
    "icosahedron",
)
STEM_EXPONENT = {"haadf": (1.7, 2.0), "adf": (1.3, 1.6), "abf": (0.5, 0.7)}
STEM_COLLECTION = {"haadf": 0.1, "adf": 0.3, "abf": 0.5, "bf": 0.8}
