"""EM datasets in their own layouts, paired augmentation, and simulated default data."""

from emzoo.data.pipeline import EMDataset, load_dataset
from emzoo.data.simulate import simulate_dataset, simulated
from emzoo.data.sources import detect_layout
from emzoo.data.transforms import Corruption

__all__ = ["Corruption", "EMDataset", "detect_layout", "load_dataset", "simulate_dataset", "simulated"]
