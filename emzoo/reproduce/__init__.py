"""The paper's experiment: presets, the plan of stages, the run, the report."""

from emzoo.reproduce.presets import PRESETS, Preset
from emzoo.reproduce.run import reproduce

__all__ = ["PRESETS", "Preset", "reproduce"]
