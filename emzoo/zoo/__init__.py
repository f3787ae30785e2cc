"""The zoo: the catalogue of checkpoints (names, architectures, tasks, recipes, Hub ids, pinned
shipped weights). :mod:`emzoo.build` trains the shipped ones."""

from emzoo.zoo.catalog import (  # noqa: F401
    DEFAULT_CORRUPTION,
    HUB_ORG,
    HUB_REVISION,
    LICENSE,
    PAPER_ID,
    PINS_FILE,
    RECIPES,
    SHIPPED_DIR,
    UNET_POOLS,
    ZOO,
    Recipe,
    ZooEntry,
    entries_for_arch,
    list_models,
    pretrained_cfgs,
)
